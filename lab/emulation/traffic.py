"""Traffic tools run inside lab hosts: ping and iperf3 (with -J), with their output parsed.

Command lines are built as data (``ping_argv``, ``iperf3_*_argv``) and parsing is pure, so both
are unit-tested without a network.
"""

import json
import re
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


def iperf3_server_argv(port=IPERF_PORT):
    return ["iperf3", "-s", "-1", "-p", str(port)]


def iperf3_client_argv(dst, seconds, port=IPERF_PORT, omit=1, interval=0.5, udp_mbit=None):
    argv = ["iperf3", "-c", str(dst), "-p", str(port), "-t", f"{seconds:g}", "-O", str(omit),
            "-i", f"{interval:g}", "-J"]
    if udp_mbit:
        argv += ["-u", "-b", f"{udp_mbit:g}M"]
    return argv


def parse_iperf3(text):
    """Summary of an iperf3 -J client report: receiver Mbit/s, sender Mbit/s, retransmits,
    and the per-interval Mbit/s timeline."""
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
            "timeline": timeline}


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


def iperf3(lab, src, dst_host, dst_ip, seconds=3, port=IPERF_PORT, save_to=None):
    """TCP throughput from host `src` to `dst_host` (address `dst_ip`); returns parse_iperf3()."""
    server = lab.popen(dst_host, iperf3_server_argv(port), f"iperf3 server in {dst_host}")
    try:
        wait_listening(lab, dst_host, port)
        proc = lab.node_run(src, iperf3_client_argv(dst_ip, seconds, port),
                            timeout=seconds + 20, check=False)
    finally:
        lab.stop_process(server)
    if save_to:
        save_to.write_text(proc.stdout)
    return parse_iperf3(proc.stdout)


def vip_answer(lab, client, ip, port):
    """Which server answers `client` on ip:port (its name), or '' when none does."""
    return lab.node_run(client, service.query_argv(ip, port), check=False).stdout.strip()
