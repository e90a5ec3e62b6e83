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


@pytest.mark.parametrize("argv", [["primary-backup"], ["three-site"],
                                  ["multi-active", "--sites", "2", "--layout", "ring"]])
def test_each_design_experiment_runs_alone(tmp_path, argv):
    proc = subprocess.run([sys.executable, str(REPO / "lab" / "run.py"), *argv, "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads(next((tmp_path / argv[0]).iterdir()).joinpath("metrics.json").read_text())
    assert metrics["design"] == argv[0] and metrics["rto_ms"] is not None
    assert sum(metrics["utilization"].values()) > 0.99
