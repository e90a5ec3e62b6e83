"""dual-active's analysis is pure: metrics.json follows from the run folder's raw files alone.

A synthetic run folder (two streams at 100/s for 10 s, a cut at 3 s and a power-off at 6 s)
with known gaps; the figures must be the ones the gaps make."""

import csv
import json

import pytest

from experiments import dual_active
from lab.model.topology import load_topology

T0 = 1_000_000.0
RATE = 100.0


def write_run(tmp_path, gaps, faults, end_loss=None, duration=10.0):
    """A run folder: stream 1 client1>web (to dc1-srv1), stream 2 dc1-srv1>dc2-srv2; `gaps`
    {stream: [(from_s, to_s)]} are lost; end_loss {stream: s}: nothing after that time."""
    topo = load_topology("dual-active")
    run = tmp_path / "run"
    (run / "probes").mkdir(parents=True)
    options = {"mode": "protection", "vip_policy": "anycast", "bfd_ms": 100}
    (run / "params.json").write_text(json.dumps({"experiment": "dual-active", "options": options,
                                                 "topology": topo.to_dict()}))
    (run / "platform.json").write_text(json.dumps({
        "datapath_label": "kernel", "datapath_reason": "test", "delay_label": "netem",
        "delay_reason": "test"}))
    streams = [{"stream": 1, "name": "client1>web", "src": "client1", "dst_ip": "10.200.0.10",
                "rate": RATE},
               {"stream": 2, "name": "dc1-srv1>dc2-srv2", "src": "dc1-srv1",
                "dst_ip": str(topo.host("dc2-srv2").ip.ip), "rate": RATE}]
    (run / "streams.json").write_text(json.dumps(streams))
    rows = []
    sent = int(duration * RATE)
    for s in streams:
        n = s["stream"]
        (run / "probes" / f"tx-{n}.json").write_text(json.dumps({
            "stream": n, "sent": sent, "start": T0, "end": T0 + duration,
            "target_rate": RATE, "achieved_rate": RATE}))
        for seq in range(sent):
            t = seq / RATE
            if any(a <= t < b for a, b in gaps.get(n, [])):
                continue
            if end_loss and n in end_loss and t >= end_loss[n]:
                continue
            host = "dc1-srv1" if n == 1 else "dc2-srv2"
            rows.append((n, seq, T0 + t, T0 + t + 0.001, host))
    with open(run / "probes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("stream", "seq", "sent", "received", "host")] + rows)
    with open(run / "faults.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("at_s", "fault", "t")]
                                 + [(at, text, T0 + at) for at, text in faults])
    with open(run / "throughput.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("name", "t", "mbit")]
                                 + [("replication", T0 + k * 0.5, 20.0) for k in range(20)])
    with open(run / "rtt_samples.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("link", "seq", "rtt_ms"), ("dci-a", 1, 4.0), ("dci-a", 2, 6.0)])
    (run / "phases.json").write_text(json.dumps({
        "seconds_to_up": 1.0, "seconds_to_verified": 2.0, "seconds_total": 20.0,
        "seconds_to_ready": 1.5, "reachability": [["client1", "dc1-srv1", True]],
        "routed": [["client1", "dc1-srv1", True], ["client2", "dc2-srv1", False]],
        "base_rtt_ms": None, "fidelity": [], "vip_placement": [],
        "controller_status": {"links": 3, "hosts": 6, "backup_coverage": None},
        "timeline": {"t0": T0, "duration_s": duration, "probe_rate": RATE}}))
    return run


def test_outage_loss_and_recovery_come_from_the_raw_files(tmp_path):
    run = write_run(tmp_path, gaps={2: [(3.0, 3.25)]},
                    faults=[(3.0, "cut dci-a"), (6.0, "power-off dc1")])
    metrics = dual_active.analyse(run)
    cut, power = metrics["faults"]
    assert cut["fault"] == "cut dci-a" and cut["affected"] == ["dc1-srv1>dc2-srv2"]
    assert cut["lost"] == 25 and cut["recovered"]
    assert cut["outage_ms"] == pytest.approx(260, abs=15)
    # power-off dc1 takes dc1-srv1 down: its own stream is not judged; the stream to the VIP
    # is (its VIP lives on), and it lost nothing here
    assert power["endpoint_down"] == ["dc1-srv1>dc2-srv2"]
    assert power["affected"] == [] and power["recovered"]
    assert metrics["rtt_jitter_ms"] == {"dci-a": 1.0}
    assert metrics["controller"]["reachability"]["unreachable"] == [["client2", "dc2-srv1"]]
    assert cut["replication_mbit"]["before"] == 20.0


def test_loss_at_the_end_is_not_recovered_and_fails_the_summary(tmp_path):
    run = write_run(tmp_path, gaps={}, faults=[(3.0, "cut dci-a")], end_loss={1: 3.0})
    metrics = dual_active.analyse(run)
    (cut,) = metrics["faults"]
    assert not cut["recovered"] and cut["not_recovered"] == ["client1>web"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    summary = dual_active.summarize(run)
    assert not summary.ok
    assert any("client1>web did not recover" in p for p in summary.problems)
    assert any("client2 cannot reach dc2-srv1 through the gateway" in p for p in summary.problems)


def test_nothing_received_is_all_lost_not_a_crash(tmp_path):
    run = write_run(tmp_path, gaps={1: [(0, 10)], 2: [(0, 10)]}, faults=[])
    metrics = dual_active.analyse(run)
    assert [s["lost"] for s in metrics["streams"]] == [1000, 1000]
    assert metrics["faults"] == []


def test_the_same_files_give_the_same_figures(tmp_path):
    run = write_run(tmp_path, gaps={1: [(3.0, 3.1)], 2: [(3.0, 3.3)]}, faults=[(3.0, "cut dci-a")])
    assert dual_active.analyse(run) == dual_active.analyse(run)
    assert json.loads(json.dumps(dual_active.analyse(run))) == json.loads(
        json.dumps(dual_active.analyse(run)))


def _opts(argv):
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--bfd-ms", type=int, default=None)
    dual_active.add_arguments(parser)
    raw = {k: v for k, v in vars(parser.parse_args(argv)).items()}
    if raw.get("bfd_ms") is None:
        raw.pop("bfd_ms")
    return dual_active.DualActiveOptions.parse(raw)


def test_quick_gives_a_gray_failure_two_seconds_where_bfd_is_paced(monkeypatch):
    paced = lambda ms, accel=None: max(ms, 300)                     # noqa: E731 (QEMU TCG)
    monkeypatch.setattr(dual_active.probe, "paced_bfd_ms", paced)
    assert dual_active.timeline(_opts(["--quick"])) == (dual_active.QUICK_PACED_FAULTS, 8.0)
    # what the user gave wins; and a full run keeps its own timeline
    assert dual_active.timeline(_opts(["--quick", "--faults", "1s cut dci-a"]))[0] == \
        "1s cut dci-a"
    assert dual_active.timeline(_opts([])) == (dual_active.FAULTS, dual_active.DURATION)
    # positive control: where BFD runs as asked, --quick keeps its 7 s timeline
    monkeypatch.setattr(dual_active.probe, "paced_bfd_ms", lambda ms, accel=None: ms)
    assert dual_active.timeline(_opts(["--quick"])) == (dual_active.QUICK_FAULTS, 7.0)
    # the paced one still gives the gray failure 3 s after the heal, and 2 s of its own
    gray, ungray = [f for f in dual_active.parse_faults(
        dual_active.QUICK_PACED_FAULTS, load_topology("dual-active")) if "gray" in str(f)]
    assert ungray.at - gray.at == 2
