#!/usr/bin/env python3
"""Benchmark: outage of a DCI link cut per failover mode, and of a gray failure (BFD), repeated.

Builds dual-active, hands it to the controller in each mode, runs east-west probe streams at
1000/s between the sites and cuts/heals dci-a, then gray-fails/recovers it, --repeat times
each. Prints median and 90th percentile outage per fault and mode, and the gray-failure
target (3 x BFD interval + 10 ms). Run as root:

    python bench/convergence.py [--repeat 10] [--bfd-ms 100] [--modes protection,restoration]
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.venv import ensure_venv  # noqa: E402  (stdlib only)

CYCLE = 4.5           # seconds per fault and repair: BFD needs ~2 s to come up after a repair


def run_mode(mode, args, topo, platform):
    from lab.analysis import metrics
    from lab.emulation.controller import GATEWAY_MAC, intent_for
    from lab.experiment import Progress
    from lab.emulation.faults import run_timeline
    from lab.model.faults import Fault
    from lab.emulation.network import running_lab
    from lab.emulation.streams import ProbeSet

    faults = []
    for k in range(args.repeat):
        faults += [Fault(1 + k * CYCLE, "cut", "dci-a"), Fault(2.5 + k * CYCLE, "heal", "dci-a")]
    base = 1 + args.repeat * CYCLE
    for k in range(args.repeat):
        faults += [Fault(base + k * CYCLE, "gray", "dci-a"),
                   Fault(base + 1.5 + k * CYCLE, "ungray", "dci-a")]
    duration = base + args.repeat * CYCLE + 0.5
    with tempfile.TemporaryDirectory() as tmp, running_lab(
            topo, platform, Path(tmp), "bench", log=Progress(quiet=True)) as lab:
        lab.attach_controller(intent_for(topo, mode), bfd_ms=args.bfd_ms)
        probes = ProbeSet(lab, Path(tmp), GATEWAY_MAC, rate=1000)
        a, b = topo.hosts_at("dc1")[0], topo.hosts_at("dc2")[-1]
        probes.add(f"{a.name}>{b.name}", a.name, b.ip.ip)
        probes.add(f"{b.name}>{a.name}", b.name, a.ip.ip)
        probes.start_receivers([a.name, b.name])
        t0 = probes.start(duration)
        done = run_timeline(lab.faults, faults, t0, until=duration)
        rows, summaries = probes.collect()
    outages = {"cut": [], "gray": []}
    windows = metrics.fault_windows([(fault.at, t) for fault, t in done], t0 + duration)
    for (fault, _), (t, t_end) in zip(done, windows):
        if fault.action not in outages:
            continue
        impacts = []
        for s in probes.streams:
            sender = summaries[s.stream]
            impacts.append(metrics.fault_impact([r for r in rows if r[0] == s.stream], t, t_end,
                                                sender["start"], sender["target_rate"],
                                                sender["sent"], guard=0.02))
        outages[fault.action].append(max(i["outage_ms"] if i["recovered"] else float("inf")
                                         for i in impacts))
    rates = [s["achieved_rate"] for s in summaries.values()]
    return outages, min(rates)


def main():
    ensure_venv()
    from lab.emulation import probe
    from lab.analysis.results import format_table
    from lab.model.topology import load_topology

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="faults of each kind per mode")
    parser.add_argument("--bfd-ms", type=int, default=100, help="BFD interval, ms")
    parser.add_argument("--modes", default="protection,restoration")
    args = parser.parse_args()
    topo = load_topology("dual-active")
    platform = probe.choose_platform()
    print(f"{platform.datapath_label} datapath, {platform.delay_label}; BFD {args.bfd_ms} ms; "
          f"{args.repeat} of each fault per mode")
    rows = []
    for mode in args.modes.split(","):
        outages, rate = run_mode(mode, args, topo, platform)
        for kind, values in outages.items():
            values = sorted(values)
            target = {"cut": 50 if mode == "protection" else 250,
                      "gray": 3 * args.bfd_ms + 10}[kind]
            p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
            rows.append((mode, f"{kind} dci-a", len(values), f"{statistics.median(values):.1f}",
                         f"{p90:.1f}", f"{max(values):.1f}", f"<= {target}",
                         "met" if statistics.median(values) <= target else "MISSED",
                         f"{rate:.0f}/s"))
        print(format_table(["mode", "fault", "n", "outage p50 ms", "p90 ms", "max ms", "target",
                            "median", "min probe rate"], rows), flush=True)


if __name__ == "__main__":
    main()
