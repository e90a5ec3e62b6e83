from pathlib import Path

import pytest

from lab import fidelity, traffic
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
    (4.0, 4.99, True), (4.0, 5.01, False), (4.0, 3.0, True),      # ±1 ms floor
    (20.0, 22.9, True), (20.0, 23.1, False), (20.0, 16.9, False),  # ±15 %
])
def test_rtt_judged_within_15_percent_or_1_ms(configured, measured, ok):
    assert fidelity.judge("l", "rtt_ms", configured, measured).ok is ok


@pytest.mark.parametrize("configured, measured, ok", [
    (100, 86, True), (100, 84, False), (100, 114, True), (100, 116, False), (50, None, False)])
def test_throughput_judged_within_15_percent(configured, measured, ok):
    assert fidelity.judge("l", "throughput_mbit", configured, measured).ok is ok
