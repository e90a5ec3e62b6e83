"""Stateful firewalls for real: the asymmetry trap, failover, and what each remedy saves."""

import pytest

from tests.emulation.conftest import lab_leftovers, run_experiment


@pytest.fixture(scope="module")
def remedies(tmp_path_factory):
    metrics, run_dir = run_experiment(tmp_path_factory, "firewall")
    return {r["remedy"]: r for r in metrics["remedies"]}, run_dir


def test_asymmetric_paths_break_sessions_only_without_a_remedy(remedies):
    results, _ = remedies
    none, symmetric, sync = results["none"], results["symmetric"], results["sync"]
    assert none["asymmetric"]["established"] == 0
    assert none["counters"]["dc2-fw"]["invalid"] > 0          # the replies dc2-fw never saw
    assert none["asymmetric"]["crafted_established"] == 0
    for r in (symmetric, sync):
        assert r["asymmetric"]["established"] == r["asymmetric"]["attempted"], r
        assert r["asymmetric"]["crafted_established"] == r["asymmetric"]["attempted"] // 2


def test_only_synchronised_firewalls_keep_sessions_through_a_failover(remedies):
    results, _ = remedies
    for remedy in ("none", "symmetric"):
        failover = results[remedy]["failover"]
        assert failover["established"] == failover["attempted"]
        assert failover["survived"] == 0, (remedy, failover)
    sync = results["sync"]["failover"]
    assert sync["survived"] == sync["established"] == sync["attempted"]
    assert sync["crafted_survived"] == sync["attempted"] // 2 > 0     # scapy-crafted ones too
    assert results["sync"]["sync_lag_ms"]


@pytest.mark.timing
def test_conntrackd_replicates_a_new_session_within_100_ms(remedies):
    results, _ = remedies
    assert max(results["sync"]["sync_lag_ms"]) < 100


def test_probe_suite_leaks_nothing_except_through_loose_pickup(remedies):
    results, _ = remedies
    for remedy in ("none", "symmetric", "sync"):
        assert results[remedy]["leaks"] == {"before": [], "after_failover": []}, remedy
    loose = results["loose"]
    # loose mid-stream pickup keeps sessions through the failover without sync...
    assert loose["failover"]["survived"] == loose["failover"]["established"] > 0
    # ...and that is exactly what it lets through: an ACK for no session
    assert loose["leaks"]["before"] == loose["leaks"]["after_failover"] == ["ack-out-of-state"]


def test_firewall_run_draws_its_plot_and_leaves_nothing(remedies):
    _, run_dir = remedies
    png = run_dir / "firewall.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10000
    assert lab_leftovers("dual-active-fw", run_dir) == []


def test_the_probe_suite_positive_control_sees_every_probe(remedies):
    import json
    _, run_dir = remedies
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["probe_control"]["probes"] >= 15
    assert metrics["probe_control"]["missing"] == []


def test_the_policy_check_sees_what_the_policy_opens(remedies):
    import json
    _, run_dir = remedies
    policy = json.loads((run_dir / "metrics.json").read_text())["policy"]
    rows = {f"{r['proto']}/{r['port']}": r for r in policy["ports"]}
    assert set(rows) == {"tcp/22", "tcp/80", "tcp/443", "udp/7000"}
    assert all(r["control_reached"] for r in rows.values()), rows   # the control saw them all
    assert {n for n, r in rows.items() if r["reached"]} == {"tcp/80", "tcp/443", "udp/7000"}
    assert not rows["tcp/22"]["reached"] and not rows["tcp/22"]["open"]
