"""compare-designs end to end: the same traffic and fault, and what each design shows."""

import json
import subprocess
import sys

import pytest

from tests.emulation.conftest import REPO, lab_leftovers, run_experiment


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    metrics, run_dir = run_experiment(tmp_path_factory, "compare-designs")
    return {r["design"]: r for r in metrics["designs"]}, run_dir


def test_active_active_uses_both_sites_and_primary_backup_idles_one(compared):
    results, _ = compared
    assert min(results["dual-active"]["utilization"].values()) > 0.3
    assert results["primary-backup"]["idle_sites"] == ["dc2"]
    assert results["three-site"]["idle_sites"] == ["dc2", "dc3"]
    assert min(results["multi-active"]["utilization"].values()) > 0.2


def test_every_design_recovers_and_a_cold_standby_takes_longest(compared):
    results, _ = compared
    for name, r in results.items():
        assert r["rto_ms"] is not None and r["rto_ms"] > 0, name
    assert results["primary-backup"]["rto_ms"] > results["dual-active"]["rto_ms"] + 1000
    assert results["primary-backup"]["rto_ms"] > results["three-site"]["rto_ms"]


def test_active_active_loses_only_the_failed_sites_sessions(compared):
    results, _ = compared
    da, pb = results["dual-active"], results["primary-backup"]
    assert 0 < da["sessions_lost"] < da["sessions"]
    assert pb["sessions_lost"] == pb["sessions"]
    # the standby design carries the far region's traffic across the DCI
    assert pb["dci_mbit"] > da["dci_mbit"]


def test_comparison_figure_and_nothing_left(compared):
    _, run_dir = compared
    png = run_dir / "designs.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10000
    for topology in ("two-region", "three-site"):
        assert lab_leftovers(topology, run_dir) == []


def test_each_design_runs_its_data_tier_and_pays_for_it_differently(compared):
    """primary/backup: PostgreSQL with an async standby promoted by the runbook; three-site:
    a synchronous local standby; dual-active: two Galera nodes without a witness (a site's loss
    leaves the other without quorum); multi-active: a Galera node per site."""
    results, run_dir = compared
    variants = json.loads((run_dir / "metrics.json").read_text())["variants"]
    assert set(variants) == set(results)
    for name, v in variants.items():
        assert v["commit_ms_p50"] is not None and v["commit_ms_p50"] > 0, name
    pb, ts, da, ma = (variants[n] for n in ("primary-backup", "three-site", "dual-active",
                                            "multi-active"))
    assert ts["rpo_writes"] == 0 and ma["rpo_writes"] == 0 and da["rpo_writes"] == 0
    # a synchronous standby 1.5 ms away costs every commit a round trip the async one does not
    assert ts["commit_ms_p50"] > pb["commit_ms_p50"] + 1.0
    # promoted standbys take writes again, later than the service comes back
    for v in (pb, ts):
        assert v["rto_ms"] is not None and v["rto_ms"] > v["service_rto_ms"]
    assert ma["rto_ms"] is not None                  # two of three votes go on
    assert da["rto_ms"] is None                      # one of two does not
    assert "no write acknowledged after dc1 powered off" in (run_dir / "summary.txt").read_text()
    for name in results:                             # what each database held, per design
        assert list((run_dir / name / "data").glob("present-*.tsv")), name


@pytest.mark.parametrize("argv", [["primary-backup"], ["three-site"],
                                  ["multi-active", "--sites", "2", "--layout", "ring"]])
def test_each_design_experiment_runs_alone(tmp_path, argv):
    proc = subprocess.run([sys.executable, str(REPO / "lab" / "run.py"), *argv, "--quick",
                           "--data", "off", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads(next((tmp_path / argv[0]).iterdir()).joinpath("metrics.json").read_text())
    assert metrics["design"] == argv[0] and metrics["rto_ms"] is not None
    assert sum(metrics["utilization"].values()) > 0.99
