import json
from pathlib import Path

import pytest

from lab.analysis import fidelity
from lab.emulation import traffic
from lab.errors import LabError

PING = """PING 10.2.0.11 (10.2.0.11) 56(84) bytes of data.
64 bytes from 10.2.0.11: icmp_seq=1 ttl=64 time=4.71 ms
64 bytes from 10.2.0.11: icmp_seq=3 ttl=64 time=4.52 ms

--- 10.2.0.11 ping statistics ---
3 packets transmitted, 2 received, 33.3333% packet loss, time 101ms
rtt min/avg/max/mdev = 4.520/4.615/4.710/0.095 ms
"""


def test_parse_ping_counts_and_samples():
    assert traffic.parse_ping(PING) == (3, 2, [(1, 4.71), (3, 4.52)])


def test_parse_ping_of_nothing():
    assert traffic.parse_ping("") == (0, 0, [])


def test_ping_argv_is_a_list_with_interval_and_deadline():
    assert traffic.ping_argv("10.0.0.1", 5, 0.05, 1) == [
        "ping", "-n", "-c", "5", "-i", "0.05", "-W", "1", "10.0.0.1"]


def test_parse_iperf3_report():
    text = (Path(__file__).parent / "iperf3_sample.json").read_text()
    report = traffic.parse_iperf3(text)
    assert report["received_mbit"] == pytest.approx(95.61, abs=0.01)
    assert report["retransmits"] == 24
    assert len(report["timeline"]) == 1          # omitted (slow-start) intervals left out


def test_parse_iperf3_error_is_a_lab_error():
    with pytest.raises(LabError, match="unable to connect"):
        traffic.parse_iperf3('{"error": "unable to connect to server"}')
    with pytest.raises(LabError, match="no JSON"):
        traffic.parse_iperf3("iperf3: error")


def test_iperf3_client_argv():
    argv = traffic.iperf3_client_argv("10.2.0.11", 3, port=5301)
    assert argv[:4] == ["iperf3", "-c", "10.2.0.11", "-p"] and "-J" in argv
    assert argv[argv.index("-t") + 1] == "3"


@pytest.mark.parametrize("configured, measured, ok", [
    (4.0, 4.19, True), (4.0, 4.21, False), (4.0, 3.81, True), (4.0, 3.79, False),  # ±0.2 ms
    (20.0, 20.99, True), (20.0, 21.01, False), (20.0, 18.99, False),                # ±5 %
    (4.0, 2.0, False),         # a 2 ms edge link delayed in one direction only: caught
    (4.0, None, False),
])
def test_rtt_judged_within_5_percent_or_0_2_ms(configured, measured, ok):
    assert fidelity.judge("l", "rtt_ms", configured, measured).ok is ok


def test_a_link_faster_than_the_emulators_floor_is_judged_against_the_base_rtt():
    m = fidelity.judge("l", "rtt_ms", 0.2, 0.55, base_ms=0.5)
    assert m.ok and m.expected == 0.5 and m.base_ms == 0.5
    assert not fidelity.judge("l", "rtt_ms", 0.2, 0.9, base_ms=0.5).ok


@pytest.mark.parametrize("configured, measured, ok", [
    (100, 95.64, True), (100, 91.0, True), (100, 90.8, False), (100, 100.4, True),
    (100, 100.5, False), (50, 47.8, True), (50, 45.0, False), (50, None, False)])
def test_throughput_judged_within_5_percent_of_tcp_goodput(configured, measured, ok):
    m = fidelity.judge("l", "throughput_mbit", configured, measured)
    assert m.ok is ok and m.expected == pytest.approx(configured * 1448 / 1514, abs=0.001)


def test_the_delay_element_is_set_to_the_delay_less_the_path_cost():
    from lab.emulation import shaping
    assert shaping.compensated_delay(2.0, 0.3) == pytest.approx(1.7)
    assert shaping.compensated_delay(0.1, 0.3) == 0.0


def _receiver(*intervals):
    """A server's -J report with (start, seconds, bytes) intervals."""
    return {"intervals": [{"sum": {"start": s, "seconds": d, "bytes": b}}
                          for s, d, b in intervals]}


def _mbit(mbit, seconds=0.1):
    return int(mbit * 1e6 / 8 * seconds)


def test_steady_throughput_leaves_out_the_receivers_warmup():
    # a slow start over the first 0.5 s, then 0.1 s slices at 96 Mbit/s
    ramp = [(0.1 * i, 0.1, _mbit(m)) for i, m in enumerate([20, 40, 60, 80, 90])]
    report = _receiver(*ramp, *[(0.1 * i, 0.1, _mbit(96)) for i in range(5, 10)])
    assert traffic.steady_received_mbit(report, warmup=0.5) == pytest.approx(96.0)
    # positive control: counted from the start, the slow start pulls it down
    assert traffic.steady_received_mbit(report, warmup=0) == pytest.approx(93.0)


def test_steady_throughput_stops_where_the_sender_stopped():
    # the sender stopped at 0.7 s; the receiver reported on, taking in the last bytes in flight
    # and then nothing, until it heard the test was over
    report = _receiver(*[(0.1 * i, 0.1, _mbit(96)) for i in range(3, 7)],
                       (0.7, 0.1, _mbit(20)), *[(0.1 * i, 0.1, 0) for i in range(8, 12)])
    assert traffic.steady_received_mbit(report, until=0.7) == pytest.approx(96.0)
    # positive control: without the sender's end, the receiver's idle tail is counted
    assert traffic.steady_received_mbit(report) < 50


def test_steady_throughput_is_not_moved_by_a_late_read_at_the_window_edge():
    # a late read moved bytes from the 0.8 s slice into the 0.9 s one, which is past the
    # sender's end: bytes over time would read the window 2 % low; the median does not
    slices = [96, 95, 96, 95, 96, 81, 108]
    report = _receiver(*[(0.3 + 0.1 * i, 0.1, _mbit(m)) for i, m in enumerate(slices)])
    assert traffic.steady_received_mbit(report, until=0.85) == pytest.approx(95.5)
    # positive control: the mean of the same slices is off by 2.5 %
    mean = sum(slices[:6]) / 6
    assert mean == pytest.approx(93.17, abs=0.01)


def test_steady_throughput_of_fewer_than_three_slices_is_bytes_over_time():
    # a shorter interval counts for its 50 ms, not as a whole interval
    report = _receiver((0.3, 0.1, 1_200_000), (0.4, 0.05, 300_000))
    assert traffic.steady_received_mbit(report) == pytest.approx(8 * 1_500_000 / 0.15 / 1e6)


def test_steady_throughput_without_a_report_or_after_warmup_is_none():
    assert traffic.steady_received_mbit(None) is None
    assert traffic.steady_received_mbit({}) is None
    assert traffic.steady_received_mbit(_receiver()) is None               # nothing received
    assert traffic.steady_received_mbit(_receiver((0.0, 0.1, 1000))) is None   # warmup only
    # received nothing after the warmup: 0, not None (the link carried nothing)
    assert traffic.steady_received_mbit(_receiver((0.3, 0.1, 0), (0.4, 0.1, 0))) == 0


def test_warmup_grows_with_the_path_and_leaves_half_the_test():
    assert traffic.warmup_s(4, 1) == 0.3             # a short path: slow start is over early
    assert traffic.warmup_s(20, 2) == pytest.approx(0.6)      # 30 round trips of 20 ms
    assert traffic.warmup_s(100, 1) == 0.5           # never more than half the test
    assert traffic.warmup_s(None, 1) == 0.3


def test_fidelity_iperf3_asks_for_the_receivers_report():
    argv = traffic.iperf3_client_argv("10.2.0.11", 1, omit=0, server_output=True)
    assert "--get-server-output" in argv and argv[argv.index("-O") + 1] == "0"
    server = traffic.iperf3_server_argv(5201, interval=0.1)
    assert server[server.index("-i") + 1] == "0.1" and "-J" in server
    assert "-J" not in traffic.iperf3_server_argv(5201)


def test_parse_iperf3_reads_the_receivers_steady_rate():
    report = json.loads((Path(__file__).parent / "iperf3_sample.json").read_text())
    assert traffic.parse_iperf3(json.dumps(report))["steady_mbit"] is None
    report["server_output_json"] = _receiver((0.0, 0.1, 100_000), (0.3, 0.1, 1_000_000))
    assert traffic.parse_iperf3(json.dumps(report))["steady_mbit"] == pytest.approx(80.0)
    # the sender's seconds bound the receiver's report
    report["end"]["sum_sent"]["seconds"] = 0.25
    assert traffic.parse_iperf3(json.dumps(report))["steady_mbit"] is None
    report["end"]["sum_sent"]["seconds"] = 1.99997
    assert traffic.parse_iperf3(json.dumps(report), warmup=0)["steady_mbit"] == pytest.approx(
        8 * 1_100_000 / 0.2 / 1e6)


def test_links_are_measured_in_rounds_that_each_fit_one_spanning_tree():
    from lab.emulation import fabric
    from lab.model.topology import load_topology, multi_active
    topo = load_topology("dual-active")
    links = sorted(topo.links, key=lambda l: (l.kind != "dci", l.name))
    rounds = [[l.name for l in group] for group in fidelity.link_rounds(topo, links)]
    assert rounds == [["dci-a", "edge-dc1"], ["dci-b", "edge-dc2"]]
    # the two parallel DCI links never share a round (one would close a loop with the other)
    mesh = multi_active(4, "mesh")
    for group in fidelity.link_rounds(mesh, mesh.links):
        names = {l.name for l in group}
        assert names <= fabric.spanning_tree(mesh, names) and len(group) <= 4
    assert sorted(l.name for g in fidelity.link_rounds(mesh, mesh.links) for l in g) == \
        sorted(l.name for l in mesh.links)                      # every link, once
    # positive control: one at a time, every link is a round of its own
    assert len(fidelity.link_rounds(topo, links, at_once=1)) == len(links)
