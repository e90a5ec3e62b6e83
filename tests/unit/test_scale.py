"""The scale benchmark's rows from synthetic lab folders, and its helpers."""

import dataclasses
import json

import pytest

from experiments import scale
from lab.analysis.results import write_csv, write_json
from lab.emulation import state
from lab.emulation.streams import Stream
from lab.model.topology import multi_active
from tests.unit.test_designs import rows_for


def lab_folder(folder, n=4, layout="mesh", gap=(3.0, 3.04), recovers=True, unverified=()):
    """A lab folder as one_case writes it: client1 served by dc1 until the power-off at 3 s,
    then by dc2 after `gap`; client2 by dc2 throughout."""
    folder.mkdir()
    topo = multi_active(n, layout)
    streams = [Stream(1, "client1>web", "client1", "10.200.0.10"),
               Stream(2, "client2>web", "client2", "10.200.0.10")]
    rows = rows_for(1, "dc1-srv1", 0, 3) + rows_for(2, "dc2-srv1", 0, 6)
    if recovers:
        rows += rows_for(1, "dc2-srv1", 3, 6, gap=gap)
    (folder / "probes").mkdir()
    for s in streams:
        write_json(folder / "probes" / f"tx-{s.stream}.json",
                   {"start": 0.0, "target_rate": 100, "sent": 600})
    write_csv(folder / "probes.csv", ["stream", "seq", "sent", "received", "host"], rows)
    write_json(folder / "streams.json", [dict(dataclasses.asdict(s), rate=100) for s in streams])
    write_json(folder / "case.json", {
        "sites": n, "layout": layout, "topology": topo.to_dict(), "switches": len(topo.switches),
        "links": len(topo.links), "hosts": len(topo.hosts), "up_s": 5.0, "ready_s": 3.0,
        "verified_s": 9.0, "unverified": list(unverified),
        "cpu": {"controller": 0.1, "ovs-vswitchd": 0.2}, "memory_mb": {"total": 500.0},
        "spread_ms": 3.0, "t0": 0.0, "t_fault": 3.0, "t_end": 6.0, "fault_site": "dc1"})
    return folder


def test_a_labs_row_has_the_power_offs_rto_from_the_client_dc1_served(tmp_path):
    row = scale.analyse_case(lab_folder(tmp_path / "4-mesh"))
    assert row["clients_hit"] == ["client1>web"]              # client2 was not dc1's
    assert 45 <= row["rto_ms"] <= 55          # probes 10 ms apart: the last at 2.99, next 3.04
    assert (row["sites"], row["layout"], row["switches"], row["links"]) == (4, "mesh", 8, 14)


def test_a_client_that_never_recovers_fails_the_run_and_a_slow_one_only_misses_its_target(
        tmp_path):
    lab_folder(tmp_path / "2-mesh", n=2)
    lab_folder(tmp_path / "4-mesh", gap=(3.0, 3.5))           # 500 ms: over the target
    lab_folder(tmp_path / "16-mesh", n=16, recovers=False)
    metrics = scale.analyse(tmp_path)
    assert [c["sites"] for c in metrics["cases"]] == [2, 4, 16]     # by size, not by name
    assert metrics["cases"][2]["rto_ms"] is None
    write_json(tmp_path / "metrics.json", metrics)
    summary = scale.summarize(tmp_path)
    assert not summary.ok
    assert summary.problems == ["16 sites mesh: a client stream never recovered from the "
                                "power-off of dc1"]
    lines = summary.text.splitlines()
    assert lines[2].split()[-1] == "met" and lines[3].split()[-1] == "missed"
    assert "never" in lines[4]


def test_an_unverified_lab_is_a_problem(tmp_path):
    lab_folder(tmp_path / "2-mesh", n=2, unverified=["client1 -> VIP 10.200.0.10"])
    write_json(tmp_path / "metrics.json", scale.analyse(tmp_path))
    summary = scale.summarize(tmp_path)
    assert not summary.ok and "not reachable: client1 -> VIP" in summary.problems[0]


def test_the_figure_is_drawn_from_the_metrics(tmp_path):
    lab_folder(tmp_path / "2-mesh", n=2)
    lab_folder(tmp_path / "4-ring", n=4, layout="ring")
    write_json(tmp_path / "metrics.json", scale.analyse(tmp_path))
    (out,) = scale.plot(tmp_path)
    assert out.exists() and out.stat().st_size > 10000


@pytest.mark.parametrize("sizes, layouts, want", [
    ((2, 16), "mesh", [(2, "mesh"), (16, "mesh")]),
    ((2, 4), "mesh,ring", [(2, "mesh"), (4, "mesh"), (4, "ring")]),   # 2 sites: one lab
    ((2,), "ring", [(2, "ring")]),
    ((8, 2, 8), "ring,mesh", [(2, "mesh"), (8, "ring"), (8, "mesh")]),
])
def test_cases(sizes, layouts, want):
    opts = scale.ScaleOptions(sizes=sizes, layouts=layouts)
    assert scale.cases(opts) == want


def test_cpu_share_of_a_core_between_two_readings():
    assert scale.cpu_window({"controller": 1.0, "ovs-vswitchd": 4.0},
                            {"controller": 1.5, "ovs-vswitchd": 6.0}, 2.0) == {
        "controller": 0.25, "ovs-vswitchd": 1.0}
    assert scale.cpu_window({"controller": 1.0}, {"controller": 2.0, "ovs-vswitchd": 3.0},
                            2.0) == {"controller": 0.5}            # a part read once: left out


def test_cpu_seconds_read_from_a_stat_line():
    import os
    tck = os.sysconf("SC_CLK_TCK")
    stat = f"42 (a (b) c) S 1 42 42 0 -1 0 0 0 0 0 {3 * tck} {tck} 0 0 20 0 1 0 100 0 0"
    assert state.cpu_seconds(42, stat) == 4.0                   # utime + stime; ')' in a name
    assert state.cpu_seconds(os.getpid()) > 0                   # this process, really
    assert state.cpu_seconds(2 ** 22 + 12345) is None           # no such process
