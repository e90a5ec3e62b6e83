"""dci-qos's analysis on synthetic raw files: per class latency and loss, BFD flaps and false
failovers, the commit latency, the bandwidth steps and their knee, and the targets."""

import json

import pytest

from experiments import dci_qos
from lab.model.topology import load_topology

T0 = 1000.0
CLASSES = (("control", 48), ("replication", 34), ("client", 18))


def write_phase(folder, phase, delay_ms=5.0, extra_ms=None, lost=0, flaps=(0, 0), downs=0,
                bulk_mbit=45.0, commits=None, rate=100, duration=4.0, tail=0.1):
    """A phase folder: per class a stream of `rate` x `duration` probes, each delayed
    delay_ms (+ extra_ms[class] for the last `tail` of its probes), the last `lost` missing."""
    folder.mkdir(parents=True)
    extra_ms = extra_ms or {}
    rows, summaries, streams = [], {}, []
    n = int(rate * duration)
    for stream, (name, dscp) in enumerate(CLASSES, start=1):
        streams.append({"stream": stream, "class": name, "dscp": dscp})
        summaries[str(stream)] = {"sent": n, "target_rate": rate, "achieved_rate": rate}
        for seq in range(n - lost):
            sent = T0 + seq / rate
            delay = delay_ms + (extra_ms.get(name, 0.0) if seq >= (1 - tail) * n else 0.0)
            rows.append(f"{stream},{seq},{sent:.6f},{sent + delay / 1000:.6f},dc2-srv1\n")
    (folder / "probes.csv").write_text("stream,seq,sent,received,host\n" + "".join(rows))
    stats = {"dci-a": {"dc1": {"control": {"bytes": 0, "packets": 0, "drops": 0},
                               "bulk": {"bytes": 0, "packets": 0, "drops": 0}}}}
    after = {"dci-a": {"dc1": {"control": {"bytes": 50_000, "packets": 500, "drops": 0},
                               "bulk": {"bytes": 20_000_000, "packets": 14000, "drops": 3}}}}
    (folder / "phase.json").write_text(json.dumps({
        "phase": phase, "t0": T0, "duration": duration, "rate": rate, "qos": phase != "qos-off",
        "link": "dci-a", "bw": 50.0, "streams": streams, "summaries": summaries,
        "guaranteed_mbit": {"control": 2.5, "bulk": 20.0} if phase != "qos-off" else {},
        "flaps_before": {"dc1-eth4": 1, "dc2-eth4": 1},
        "flaps_after": {"dc1-eth4": 1 + flaps[0], "dc2-eth4": 1 + flaps[1]},
        "dci_port_downs": downs,
        "class_stats": {"before": stats, "after": after, "seconds": 4.0} if phase != "qos-off"
        else {"before": {}, "after": {}, "seconds": 4.0},
        "bulk_streams": 0 if phase == "unloaded" else 4}))
    if phase != "unloaded":
        (folder / "bulk.json").write_text(json.dumps({
            "start": {}, "intervals": [],
            "end": {"sum_sent": {"bits_per_second": bulk_mbit * 1e6 + 1e5, "retransmits": 7},
                    "sum_received": {"bits_per_second": bulk_mbit * 1e6}}}))
    replicated = commits if commits is not None else [10.5 + i / 100 for i in range(50)]
    (folder / "commits.json").write_text(json.dumps({"replicated": replicated,
                                                     "local": [0.4] * 50}) + "\n")


def test_a_phase_gives_per_class_latency_loss_and_throughput(tmp_path):
    write_phase(tmp_path / "p", "qos-on", extra_ms={"client": 30.0}, lost=8, flaps=(1, 2),
                downs=1)
    got = dci_qos.analyse_phase(tmp_path / "p")
    control, client = got["classes"]["control"], got["classes"]["client"]
    assert control["p50_ms"] == pytest.approx(5.0, abs=1e-3)
    assert control["p99_ms"] == pytest.approx(5.0, abs=1e-3)
    assert client["p99_ms"] == pytest.approx(35.0, abs=1e-3)       # its slow last tenth
    assert control["loss_pct"] == 2.0 and control["received"] == 392
    assert control["dci_mbit"] == pytest.approx(0.1)               # 50 kB in 4 s
    assert got["classes"]["bulk"]["throughput_mbit"] == 45.0
    assert got["classes"]["bulk"]["dci_mbit"] == pytest.approx(40.0)
    assert got["classes"]["bulk"]["dci_drops"] == 3
    assert control["guaranteed_mbit"] == 2.5 and got["classes"]["client"]["guaranteed_mbit"] \
        is None
    assert got["bfd_flaps"] == 3 and got["false_failovers"] == 1
    assert got["commit_ms_p50"] == pytest.approx(10.75, abs=0.01) and got["commits"] == 50


def test_nothing_received_and_a_failed_copy_are_none_not_errors(tmp_path):
    write_phase(tmp_path / "p", "qos-off", lost=400, commits=[])
    (tmp_path / "p" / "bulk.json").write_text("iperf3: error - unable to connect")
    assert dci_qos.bulk_report(tmp_path / "nothing.json") is None
    got = dci_qos.analyse_phase(tmp_path / "p")
    assert got["classes"]["control"]["p99_ms"] is None
    assert got["classes"]["control"]["loss_pct"] == 100.0
    assert got["classes"]["bulk"]["throughput_mbit"] is None
    assert got["commit_ms_p50"] is None and got["commits"] == 0


def test_an_interrupted_copy_is_counted_by_what_it_sent(tmp_path):
    path = tmp_path / "bulk.json"
    path.write_text(json.dumps({"end": {
        "sum_sent": {"bits_per_second": 19_751_518.2, "retransmits": 61},
        "sum_received": {"bits_per_second": 0}}, "error": "interrupt - the client has terminated"}))
    assert dci_qos.bulk_report(path) == {"mbit": 19.752, "retransmits": 61}


def test_reordered_probes_still_give_the_latency_of_each(tmp_path):
    write_phase(tmp_path / "p", "unloaded")
    path = tmp_path / "p" / "probes.csv"
    head, *lines = path.read_text().splitlines(keepends=True)
    path.write_text(head + "".join(reversed(lines)))
    got = dci_qos.analyse_phase(tmp_path / "p")
    assert got["classes"]["replication"]["p99_ms"] == pytest.approx(5.0, abs=1e-3)
    assert got["classes"]["replication"]["loss_pct"] == 0.0


def run_folder(tmp_path, on_extra, off_extra, on_flaps=(0, 0), steps=()):
    run = tmp_path / "run"
    write_phase(run / "qos" / "unloaded", "unloaded")
    write_phase(run / "qos" / "qos-off", "qos-off", extra_ms=off_extra, flaps=(2, 1), downs=1,
                commits=[60.0 + i for i in range(50)])
    write_phase(run / "qos" / "qos-on", "qos-on", extra_ms=on_extra, flaps=on_flaps)
    for bw, p99, acked in steps:
        write_step(run / "bandwidth" / f"{bw:g}", bw, p99, acked)
    return run


def write_step(folder, bw, commit_ms, acked_share, rate=100, duration=4.0):
    folder.mkdir(parents=True)
    n = int(rate * duration)
    writes = [{"seq": i, "t_sent": T0 + i / rate,
               "t_ack": T0 + i / rate + commit_ms / 1000 if i < acked_share * n else None,
               "commit_ms": commit_ms, "server": "dc1-srv1"} for i in range(n)]
    (folder / "writes-client1.json").write_text(json.dumps(
        {"client": "client1", "start": T0, "end": T0 + duration, "writes": writes}))
    # the primary writes 100 kB/s of WAL; the standby is 20 ms behind it
    (folder / "lag-primary.jsonl").write_text("".join(
        json.dumps({"t": T0 + k * 0.01, "lsn": 1000 * k}) + "\n" for k in range(400)))
    (folder / "lag-standby.jsonl").write_text("".join(
        json.dumps({"t": T0 + k * 0.01 + 0.02, "recv": 1000 * k}) + "\n" for k in range(398)))
    (folder / "step.json").write_text(json.dumps({
        "bw": bw, "t0": T0, "duration": duration, "write_rate": rate, "payload_kb": 8,
        "client": "client1"}))


def test_a_bandwidth_step_gives_commit_latency_lag_and_the_wal_rate(tmp_path):
    write_step(tmp_path / "s", 10, 12.0, 1.0)
    got = dci_qos.analyse_step(tmp_path / "s")
    assert got["commit_ms_p99"] == 12.0 and got["acked"] == 400
    assert got["acked_per_s"] == 100.0
    # the standby misses what the primary wrote after the position it has: its samples first
    # show more one sample (10 ms) after that position, 10 ms before the standby's sample
    assert got["lag_ms_p99"] == pytest.approx(10.0, abs=0.5)
    assert got["wal_mbit"] == pytest.approx(0.8, abs=0.01)          # 100 kB/s


@pytest.mark.parametrize("steps, expected", [
    ([(2, 400.0, 0.5), (5, 30.0, 1.0), (10, 12.0, 1.0), (50, 11.0, 1.0)], 10),
    ([(2, 12.0, 1.0), (5, 11.5, 1.0), (50, 11.0, 1.0)], 2),
    # a good step below a bad one is not the knee: from the knee up every step is good
    ([(2, 12.0, 1.0), (5, 90.0, 1.0), (20, 11.0, 1.0), (50, 11.0, 1.0)], 20),
    ([(50, 11.0, 1.0)], None),
    ([(2, 900.0, 0.2), (50, 11.0, 0.5)], None),                      # even the widest drops
])
def test_the_knee_is_the_lowest_rate_from_which_on_commits_keep_up(tmp_path, steps,
                                                                     expected):
    for bw, p99, acked in steps:
        write_step(tmp_path / f"{bw}", bw, p99, acked)
    assert dci_qos.knee([dci_qos.analyse_step(tmp_path / f"{bw}")
                         for bw, _, _ in steps]) == expected


def test_protected_classes_within_a_millisecond_pass_and_more_fails(tmp_path):
    run = run_folder(tmp_path, on_extra={"client": 50.0}, off_extra={"control": 80.0,
                                                                      "replication": 80.0})
    metrics = dci_qos.analyse(run)
    assert set(metrics["variants"]) == {"unloaded", "qos-off", "qos-on"}
    assert metrics["p99_over_unloaded_ms"]["qos-off"]["control"] == pytest.approx(80.0)
    assert metrics["p99_over_unloaded_ms"]["qos-on"]["replication"] == pytest.approx(0.0)
    (run / "metrics.json").write_text(json.dumps(metrics))
    summary = dci_qos.summarize(run)
    assert summary.ok, summary.problems              # client may wait: it is not protected
    assert "qos-off" in summary.text and "BFD flaps" in summary.text
    assert "guaranteed Mbit/s" in summary.text
    paths = dci_qos.plot(run)
    assert [p.name for p in paths] == ["dci_qos.png"] and paths[0].stat().st_size > 10_000

    bad = run_folder(tmp_path / "b", on_extra={"control": 3.0}, off_extra={},
                     on_flaps=(1, 0))
    (bad / "metrics.json").write_text(json.dumps(dci_qos.analyse(bad)))
    problems = dci_qos.summarize(bad).problems
    assert any("control's p99 is 3 ms over" in p for p in problems), problems
    assert any("BFD flaps with QoS on" in p for p in problems)


def test_the_bandwidth_figure_marks_the_knee(tmp_path):
    run = run_folder(tmp_path, {}, {}, steps=[(2, 400.0, 0.5), (10, 12.0, 1.0),
                                              (50, 11.0, 1.0)])
    metrics = dci_qos.analyse(run)
    assert metrics["knee_mbit"] == 10
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert "knee: 10 Mbit/s" in dci_qos.summarize(run).text
    paths = dci_qos.plot(run)
    assert paths[1].name == "dci_bandwidth.png" and paths[1].stat().st_size > 10_000


def test_the_controller_log_counts_only_the_dci_ports_going_down():
    topo = load_topology("dci-qos")
    port = topo.port_to("dc1", "dci-a").number
    text = (f"port 0000000000000001:{port} down (state 0x1)\n"
            f"port 0000000000000001:{port} live (state 0x4)\n"
            "port 0000000000000001:1 down (state 0x1)\n"
            f"port 0000000000000002:{topo.port_to('dc2', 'dci-a').number} down (state 0x1)\n")
    assert dci_qos.dci_port_downs(text, topo) == 2


def test_the_topology_needs_a_sync_standby_across_the_dci_and_free_servers():
    from lab.errors import LabError
    topo = load_topology("dci-qos")
    dci_qos.validate(dci_qos.DciQosOptions(), topo)
    assert dci_qos.roles(topo) == ("dc1-srv1", "dc2-srv1", "dc1-srv3", "dc2-srv3")
    assert dci_qos.phases(topo) == ("unloaded", "qos-off", "qos-on")
    with pytest.raises(LabError, match="synchronous standby"):
        dci_qos.validate(dci_qos.DciQosOptions(), load_topology("dual-active-data"))
    # lab 8's start: no QoS yet: the damage only, probes with the lab's default marks
    start = load_topology("docs/labs/files/lab8-dci.yaml")
    dci_qos.validate(dci_qos.DciQosOptions(), start)
    assert dci_qos.phases(start) == ("unloaded", "qos-off")
    assert dci_qos.probe_classes(start) == [("control", 48), ("replication", 34),
                                            ("client", 18)]


def test_a_class_is_judged_on_the_pooled_unloaded_p99_within_the_runs_resolution(tmp_path):
    # unloaded, 8 of control's 400 probes were 0.5 ms late (a scheduling hiccup): control's own
    # p99 reads 5.5 ms, all 1200 probes together 5 ms; the classes' own p99s are 0.5 ms apart,
    # which is what this run can resolve: the bound is 1 ms + 0.5 ms
    def judged(folder, extra):
        run = tmp_path / folder
        write_phase(run / "qos" / "unloaded", "unloaded", extra_ms={"control": 0.5}, tail=0.02)
        write_phase(run / "qos" / "qos-on", "qos-on", extra_ms={"control": extra})
        metrics = dci_qos.analyse(run)
        (run / "metrics.json").write_text(json.dumps(metrics))
        return metrics, dci_qos.summarize(run)

    metrics, summary = judged("within", 1.4)
    unloaded = metrics["variants"]["unloaded"]
    assert unloaded["classes"]["control"]["p99_ms"] == pytest.approx(5.5, abs=1e-3)
    assert unloaded["p99_ms_all_classes"] == pytest.approx(5.0, abs=1e-3)
    assert metrics["p99_resolution_ms"] == pytest.approx(0.5) and metrics["bound_ms"] == 1.5
    assert metrics["p99_over_unloaded_ms"]["qos-on"]["control"] == pytest.approx(1.4, abs=1e-3)
    assert summary.ok, summary.problems
    assert "judged within 1 ms + 0.5 ms" in summary.text
    metrics, summary = judged("beyond", 2.0)                     # a real degradation fails
    assert metrics["p99_over_unloaded_ms"]["qos-on"]["control"] == pytest.approx(2.0, abs=1e-3)
    assert not summary.ok and any("control" in p for p in summary.problems)
