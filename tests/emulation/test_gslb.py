"""GSLB against anycast for real: failover after dc1 powers off, and what TTLs cost."""

import pytest

from tests.emulation.conftest import lab_leftovers, run_experiment


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    metrics, run_dir = run_experiment(tmp_path_factory, "gslb")
    return {r["variant"]: r for r in metrics["variants"]}, run_dir


def test_dc1_clients_fail_over_in_every_variant(variants):
    results, _ = variants
    for name, r in results.items():
        assert r["affected"] == ["client1", "client2"], name        # east: nearest dc1
        assert r["failover_s"] is not None and r["failover_s"] > 0, name


def test_anycast_beats_dns_and_longer_ttls_and_caching_cost_more(variants):
    results, _ = variants
    anycast, ttl1, ttl5 = results["anycast"], results["gslb ttl 1"], results["gslb ttl 5"]
    cached = next(r for n, r in results.items() if "cache" in n)
    assert anycast["failover_s"] < 1.0 < ttl1["failover_s"]
    assert ttl5["failover_s"] > ttl1["failover_s"] + 1.0
    assert cached["failover_s"] > ttl1["failover_s"] + 2.0
    assert ttl1["failed_attempts"] > anycast["failed_attempts"]


def test_gslb_plot_and_nothing_left(variants):
    _, run_dir = variants
    assert (run_dir / "gslb.png").stat().st_size > 10000
    assert lab_leftovers("two-region", run_dir) == []
