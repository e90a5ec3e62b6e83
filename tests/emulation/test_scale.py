"""The scale benchmark end to end on small labs: every lab verified, every power-off recovered,
the figures and the report written, nothing left behind."""

import pytest

from tests.emulation.conftest import lab_leftovers, run_experiment


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    return run_experiment(tmp_path_factory, "scale", "--sizes", "2,4", "--layouts", "mesh,ring",
                          "--duration", "4")


def test_each_lab_is_verified_and_its_clients_recover_from_a_power_off(scaled):
    metrics, run_dir = scaled
    cases = {(c["sites"], c["layout"]): c for c in metrics["cases"]}
    assert set(cases) == {(2, "mesh"), (4, "mesh"), (4, "ring")}      # 2 sites: one layout
    for key, case in cases.items():
        assert case["unverified"] == [], key
        assert case["clients_hit"] == ["client1>web"], key                # dc1's own client
        assert case["rto_ms"] is not None and case["rto_ms"] > 0, key
        assert case["switches"] == 2 * key[0] and case["hosts"] == 3 * key[0], key
        assert case["cpu"]["controller"] > 0 and case["cpu"]["ovs-vswitchd"] > 0, key
        assert case["memory_mb"]["total"] > 100, key
        assert case["verified_s"] >= case["up_s"] + case["ready_s"] - 0.01, key
    assert (run_dir / "scale.png").stat().st_size > 10000
    assert (run_dir / "report.html").exists() and (run_dir / "summary.txt").exists()


def test_nothing_is_left_behind(scaled):
    from lab.model.topology import multi_active
    _, run_dir = scaled
    for sites, layout in ((2, "mesh"), (4, "mesh"), (4, "ring")):
        assert lab_leftovers(multi_active(sites, layout), run_dir) == []
