#!/usr/bin/env python3
"""Benchmark: how faithfully does this machine emulate a link's delay and bandwidth?

For each one-way delay, builds two sites joined by one link (bw Mbit/s) and measures the RTT
idle, the RTT while UDP fills half the link (the delay element under load, without queueing),
and TCP throughput. Prints a table; run as root:

    python bench/link_fidelity.py [--delays 0.5,1,2,5,10,20,50] [--bw 100]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.venv import ensure_venv  # noqa: E402  (stdlib only)


TOPOLOGY = """
sites:
  dc1: {{subnet: 10.1.0.0/24, servers: 1}}
  dc2: {{subnet: 10.2.0.0/24, servers: 1}}
links:
  wire: {{between: [dc1, dc2], bw: {bw}, delay: {delay}ms, queue: 100}}
"""


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def measure(delay_ms, bw, pings, platform):
    from lab.emulation import traffic
    from lab.experiment import Progress
    from lab.emulation.network import running_lab
    from lab.model.topology import parse_topology

    topo = parse_topology(TOPOLOGY.format(bw=bw, delay=delay_ms), source=f"bench {delay_ms}ms")
    src, dst = topo.hosts
    with tempfile.TemporaryDirectory() as tmp, \
            running_lab(topo, platform, Path(tmp), "bench", log=Progress(quiet=True)) as lab:
        traffic.wait_reachable(lab, src.name, dst.ip.ip)
        idle = [r for _, r in traffic.ping(lab, src.name, dst.ip.ip, pings, 0.02)[2]]
        server = lab.popen(dst.name, traffic.iperf3_server_argv(5202), "iperf3 server")
        traffic.wait_listening(lab, dst.name, 5202)
        seconds = pings * 0.02 + 2
        load = lab.popen(src.name, traffic.iperf3_client_argv(dst.ip.ip, seconds, 5202, omit=0,
                                                              udp_mbit=bw / 2), "udp load")
        time.sleep(1)
        loaded = [r for _, r in traffic.ping(lab, src.name, dst.ip.ip, pings, 0.02)[2]]
        load.wait(seconds + 10)
        lab.stop_process(server)
        tcp = traffic.iperf3(lab, src.name, dst.name, dst.ip.ip, 4)["steady_mbit"]
    return idle, loaded, tcp


def main():
    ensure_venv()
    from lab.emulation import probe
    from lab.analysis.results import format_table
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delays", default="0.5,1,2,5,10,20,50", help="one-way delays, ms")
    parser.add_argument("--bw", type=float, default=100, help="link bandwidth, Mbit/s")
    parser.add_argument("--pings", type=int, default=100, help="pings per measurement")
    parser.add_argument("--datapath", default="auto", choices=("auto", "kernel", "user"))
    parser.add_argument("--delay-method", default="auto", choices=("auto", "netem", "delayline"))
    args = parser.parse_args()
    platform = probe.choose_platform(args.datapath, args.delay_method)
    print(f"{platform.datapath_label} datapath, {platform.delay_label}, {args.bw:g} Mbit/s link")
    rows = []
    for delay in [float(d) for d in args.delays.split(",")]:
        idle, loaded, tcp = measure(delay, args.bw, args.pings, platform)
        rows.append((f"{delay:g}", f"{2 * delay:g}", f"{statistics.median(idle):.2f}",
                     f"{percentile(idle, 0.95):.2f}", f"{statistics.median(loaded):.2f}",
                     f"{percentile(loaded, 0.95):.2f}", f"{tcp:.1f}"))
        print(format_table(["one-way ms", "RTT want", "idle p50", "idle p95", "load p50",
                            "load p95", "TCP Mbit/s"], rows).splitlines()[-1], flush=True)
    print()
    print(format_table(["one-way ms", "RTT want", "idle p50", "idle p95", "load p50",
                        "load p95", "TCP Mbit/s"], rows))


if __name__ == "__main__":
    main()
