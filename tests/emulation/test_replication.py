"""The replication and split-brain experiments for real (--quick): what synchronous
replication costs, what asynchronous loses, and what a witness decides."""

import pytest

from lab.emulation import state
from tests.emulation.conftest import lab_leftovers, patience, run_experiment


@pytest.fixture(scope="module")
def replication(tmp_path_factory):
    return run_experiment(tmp_path_factory, "replication")


def test_synchronous_tiers_lose_nothing_through_a_power_off(replication):
    metrics, _ = replication
    variants = metrics["variants"]
    assert set(variants) == {"pg-async", "pg-sync", "galera"}
    for name in ("pg-sync", "galera"):
        fault = variants[name]["faults"]["power-off"]
        assert fault["rpo_writes"] == 0, (name, fault)
        assert fault["rto_ms"] is not None and fault["rto_ms"] > 0
        assert fault["accepting_after"] and "dc1" not in fault["accepting_after"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    # 48 KB per write: the WAL (~85 Mbit/s) needs more than its share of the 100 Mbit/s DCI
    # beside the bulk copy, so the standby falls behind every time (with the default 8 KB,
    # ~14 Mbit/s, it does or does not depending on how the two TCP flows share the link)
    return run_experiment(tmp_path_factory, "replication", "--variants", "pg-async",
                          "--dci-load", "on", "--payload", "48")


def test_under_load_asynchronous_loses_what_its_lag_says(loaded):
    metrics, run_dir = loaded
    fault = metrics["variants"]["pg-async"]["faults"]["power-off"]
    assert fault["rpo_writes"] > 0 and fault["wal_missing_ms"] > 100, fault   # fell behind
    lag, missing, rpo_ms = fault["lag_ms"]["at_fault"], fault["wal_missing_ms"], fault["rpo_ms"]
    slow = fault["response_ms"]["before"]["p99"]     # the slowest acknowledgements
    sampling = 2 * 10 + 5                            # the two samplers' 10 ms, timestamps
    # the WAL still on the wire at the fault arrives (queued behind the copy: at most as long as
    # a response across that DCI takes), and sampling stopped at most one sample before it
    assert lag - slow - sampling <= missing <= lag + sampling, (lag, missing, slow)
    # a lost write was acknowledged after its WAL was written, which is beyond what the standby
    # has: the loss cannot reach back further than what is missing, and falls short of it by
    # no more than an acknowledgement's way back to its client
    interval_ms = 1000 / (2 * metrics["rate_per_client"])     # two clients
    assert missing - slow - interval_ms <= rpo_ms <= missing + sampling, (rpo_ms, missing, slow)
    assert (run_dir / "pg-async" / "power-off" / "dci-load.json").stat().st_size > 0


def test_a_replicated_commit_costs_at_least_one_rtt_and_an_async_one_does_not(replication):
    metrics, _ = replication
    for name, v in metrics["variants"].items():
        (point,) = v["sweep"]
        if name == "pg-async":
            assert point["commit_ms_p50"] < point["rtt_ms"] / 2, point
        else:
            assert point["replication_ms"] >= point["rtt_ms"] - 1.0, (name, point)


def test_replication_figures_and_nothing_left(replication):
    _, run_dir = replication
    for name in ("commit_latency.png", "rpo_rto.png"):
        assert (run_dir / name).stat().st_size > 10_000
    assert lab_leftovers("dual-active-data", run_dir) == []
    assert not any(p.name.startswith(run_dir.name) for p in state.scratch_root().glob("*"))


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return run_experiment(tmp_path_factory, "split-brain")


def test_a_witness_decides_and_without_quorum_both_sides_diverge(split):
    metrics, run_dir = split
    v = metrics["variants"]
    assert v["no-witness"]["accepted_during"] == {} and v["no-witness"]["divergent_writes"] == 0
    assert list(v["witness"]["accepted_during"]) == ["dc1"]
    assert v["witness"]["divergent_writes"] == 0
    assert 0 < v["witness"]["witness_side_rto_ms"] <= patience(2000 * v["witness"][
        "suspect_timeout_s"])
    assert v["quorum-off"]["sites_accepting_during"] == ["dc1", "dc2"]
    assert v["quorum-off"]["divergent_writes"] > 0
    assert (run_dir / "split_brain.png").stat().st_size > 10_000
    assert lab_leftovers("dual-active-data", run_dir) == []


def test_each_engine_commits_as_its_model_says(replication):
    """pg-sync: local + 1 RTT; Galera without its witness: local + 1 RTT; with garbd as far as
    the other node: EVS safe delivery, 1.5 RTT. Within a few ms (the probe's own overhead and
    the emulation's scheduling), and the witness visibly costs something."""
    metrics, _ = replication
    galera = metrics["variants"]["galera"]
    for point in (metrics["variants"]["pg-sync"]["sweep"][0], galera["sweep"][0],
                  galera["sweep_no_witness"][0]):
        assert -1.0 <= point["commit_minus_model_ms"] <= 3.0, point
    assert galera["sweep"][0]["replication_rtts"] > 1.3
    assert galera["sweep_no_witness"][0]["replication_rtts"] < 1.2


def test_patroni_fences_the_cut_off_primary_and_fails_over_after_its_lease(tmp_path_factory):
    """pg-patroni, dc1 (the primary) isolated: its Patroni cannot renew the leader lease in
    etcd (dc2 and dc3 hold the majority) and demotes it; once the lease has run out, dc2's
    standby (synchronous: it has every acknowledged commit) is promoted. Nothing lost, dc1
    takes no writes after the fault, and Patroni's detached PostgreSQL is gone at the end."""
    from lab.emulation import databases
    metrics, run_dir = run_experiment(tmp_path_factory, "replication", "--variants",
                                      "pg-patroni", "--faults", "partition")
    fault = metrics["variants"]["pg-patroni"]["faults"]["partition"]
    assert fault["rpo_writes"] == 0 and fault["divergent_writes"] == 0, fault
    assert list(fault["accepting_after"]) == ["dc2"], fault
    # the lease (ttl) must run out first: no earlier, and not much later
    assert databases.PATRONI_TTL_S * 1000 * 0.8 < fault["rto_ms"] < 40_000, fault
    assert lab_leftovers("dual-active-data", run_dir) == []
    assert not any(p.name.startswith(run_dir.name) for p in state.scratch_root().glob("*"))
