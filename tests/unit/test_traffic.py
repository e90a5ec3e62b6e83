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
