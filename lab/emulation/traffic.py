"""Traffic tools run inside lab hosts: ping and iperf3 (with -J), with their output parsed.

Command lines are built as data (``ping_argv``, ``iperf3_*_argv``) and parsing is pure, so both
are unit-tested without a network.
"""

import json
import re
import statistics
import time

from lab import sh
from lab.agents import service
from lab.errors import LabError

RTT_RE = re.compile(r"icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms")
SUMMARY_RE = re.compile(r"(\d+) packets transmitted, (\d+) received")
IPERF_PORT = 5201


def ping_argv(dst, count, interval=0.2, wait=1.0):
    return ["ping", "-n", "-c", str(count), "-i", f"{interval:g}", "-W", f"{wait:g}", str(dst)]


def parse_ping(text):
    """(sent, received, [(seq, rtt_ms)]) from ping's output."""
    samples = [(int(seq), float(rtt)) for seq, rtt in RTT_RE.findall(text)]
    match = SUMMARY_RE.search(text)
    sent, received = (int(match.group(1)), int(match.group(2))) if match else (0, len(samples))
    return sent, received, samples


def ping(lab, src, dst, count=1, interval=0.2, wait=1.0):
    """Ping from host `src` to address `dst`; returns (sent, received, [(seq, rtt_ms)])."""
    timeout = count * interval + wait + 10
    proc = lab.node_run(src, ping_argv(dst, count, interval, wait), timeout=timeout, check=False)
    return parse_ping(proc.stdout)


def wait_reachable(lab, src, dst, timeout=10.0):
    """Ping until one answer comes back or `timeout` passes; returns seconds taken or None."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if ping(lab, src, dst, count=1, wait=0.5)[1]:
            return time.monotonic() - start
    return None


# the receiver's first 0.3 s (connection, slow start) are left out of a link's throughput
WARMUP_S = 0.3
RECEIVER_INTERVAL_S = 0.1


def iperf3_server_argv(port=IPERF_PORT, interval=None):
    """A one-shot server; with `interval`, it reports what it received every `interval` seconds
    in JSON (the client fetches that report with --get-server-output)."""
    argv = ["iperf3", "-s", "-1", "-p", str(port)]
    if interval:
        argv += ["-i", f"{interval:g}", "-J"]
    return argv


def iperf3_client_argv(dst, seconds, port=IPERF_PORT, omit=1, interval=0.5, udp_mbit=None,
                       server_output=False):
    argv = ["iperf3", "-c", str(dst), "-p", str(port), "-t", f"{seconds:g}", "-O", str(omit),
            "-i", f"{interval:g}", "-J"]
    if udp_mbit:
        argv += ["-u", "-b", f"{udp_mbit:g}M"]
    if server_output:
        argv.append("--get-server-output")
    return argv


def parse_iperf3(text, warmup=WARMUP_S):
    """Summary of an iperf3 -J client report: receiver Mbit/s, sender Mbit/s, retransmits,
    the per-interval Mbit/s timeline, and with the receiver's report (--get-server-output) its
    steady Mbit/s after `warmup` s."""
    try:
        report = json.loads(text)
    except ValueError:
        raise LabError("iperf3 gave no JSON report: " + text.strip()[:200]) from None
    if "error" in report:
        raise LabError(f"iperf3: {report['error']}")
    end = report["end"]
    received = end.get("sum_received") or end["sum"]
    sent = end.get("sum_sent") or end["sum"]
    timeline = [(iv["sum"]["start"], iv["sum"]["bits_per_second"] / 1e6)
                for iv in report.get("intervals", []) if not iv["sum"].get("omitted")]
    return {"received_mbit": received["bits_per_second"] / 1e6,
            "sent_mbit": sent["bits_per_second"] / 1e6,
            "retransmits": sent.get("retransmits", 0),
            "timeline": timeline,
            "steady_mbit": steady_received_mbit(report.get("server_output_json"), warmup,
                                                sent.get("seconds"))}


def steady_received_mbit(server_report, warmup=WARMUP_S, until=None):
    """The rate the receiver sustained from `warmup` seconds (the connection and slow start)
    to `until` (the sender's end: the receiver's clock runs on until it hears the test is
    over): the median of its per-interval rates (Mbit/s), from its own report; None without
    one, or with no interval in between.

    The median, not bytes over time: the receiver counts bytes when a read returns, so a late
    read moves bytes from one 0.1 s slice to the next (96 then 95 becomes 81 then 108); a
    window's two edges then cut such pairs in half and move a 0.7 s mean by 2-3 %, while the
    median of the slices stays on the link's rate. Slices shorter than half the others (the
    last, partial one) are left out; with fewer than 3 slices, bytes over time.

    A throughput measured this way needs no omitted second at the sender (iperf3 before 3.17
    takes only whole seconds for -O): the receiver's own clock says what arrived when."""
    if not server_report:
        return None
    received = [iv["sum"] for iv in server_report.get("intervals", [])
                if iv.get("sum") and iv["sum"]["start"] >= warmup - 1e-6
                and (until is None or iv["sum"]["start"] < until - 1e-6)]
    seconds = sum(iv["seconds"] for iv in received)
    if seconds <= 0:
        return None
    whole = [iv for iv in received
             if iv["seconds"] >= 0.5 * max(iv["seconds"] for iv in received)]
    if len(whole) >= 3:
        return statistics.median(8 * iv["bytes"] / iv["seconds"] / 1e6 for iv in whole)
    return 8 * sum(iv["bytes"] for iv in received) / seconds / 1e6


def warmup_s(rtt_ms, seconds):
    """The part of a TCP test left out as its start: 0.3 s, or 30 round trips on a long path
    (slow start and the queue it fills), at most half the test."""
    return min(max(WARMUP_S, 30 * (rtt_ms or 0) / 1000), seconds / 2)


def wait_listening(lab, host, port, timeout=5.0):
    """Poll until a TCP listener on `port` exists in `host`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = lab.node_run(host, ["ss", "-Hltn", f"sport = :{port}"], check=False)
        if proc.stdout.strip():
            return
        time.sleep(0.02)
    raise LabError(f"iperf3 server in {host} did not listen on port {port} within {timeout:g}s")


def wait_root_listening(port, timeout=15.0, proc=None):
    """Poll until something listens on 127.0.0.1:port in the root namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LabError(f"the process meant to listen on port {port} exited "
                           f"(code {proc.returncode})")
        if sh.run(["ss", "-Hltn", f"sport = :{port}"], check=False).stdout.strip():
            return
        time.sleep(0.05)
    raise LabError(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s")


def iperf3(lab, src, dst_host, dst_ip, seconds=3, port=IPERF_PORT, save_to=None, warmup=WARMUP_S):
    """TCP throughput from host `src` to `dst_host` (address `dst_ip`) for `seconds`; returns
    parse_iperf3(), whose steady_mbit is what the receiver took in after `warmup` s."""
    server = lab.popen(dst_host, iperf3_server_argv(port, interval=RECEIVER_INTERVAL_S),
                       f"iperf3 server in {dst_host}")
    try:
        wait_listening(lab, dst_host, port)
        proc = lab.node_run(src, iperf3_client_argv(dst_ip, seconds, port, omit=0,
                                                    server_output=True),
                            timeout=seconds + 20, check=False)
    finally:
        lab.stop_process(server)
    if save_to:
        save_to.write_text(proc.stdout)
    return parse_iperf3(proc.stdout, warmup)


def vip_answer(lab, client, ip, port):
    """Which server answers `client` on ip:port (its name), or '' when none does."""
    return lab.node_run(client, service.query_argv(ip, port), check=False).stdout.strip()
