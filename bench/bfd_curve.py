#!/usr/bin/env python3
"""Benchmark: what BFD's interval buys (gray-failure outage) and costs (CPU), on dual-active.

For each interval in --bfd-ms, in a lab of its own (protection mode): the CPU that ovs-vswitchd
and the userspace delay lines use over --idle-s seconds with nothing but BFD, LLDP and health
checks running (and once with BFD off: the baseline, so the difference is BFD's); then east-west
probe streams at 1000/s across the sites and client streams to the VIP, and --repeat gray
failures of dci-a (each healed before the next): the outage of the streams that cross dci-a
(median, p90) and the probes lost by streams that never cross it. Run as root:

    python bench/bfd_curve.py [--bfd-ms 100,50,30,20] [--repeat 5] [--idle-s 5]
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

CYCLE = 5.0           # seconds per gray failure (1.5 s) and its repair (BFD up again before the next)


def idle_cpu(lab, seconds):
    """{part: share of one core} over `seconds` of an idle lab."""
    before, t = lab.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    after, span = lab.cpu_seconds(), time.monotonic() - t
    return {part: (after[part] - before[part]) / span for part in after if part in before}


def one_interval(bfd_ms, args, topo, platform):
    from lab import sh
    from lab.analysis import metrics
    from lab.emulation.controller import GATEWAY_MAC, intent_for
    from lab.emulation.faults import run_timeline
    from lab.emulation.network import running_lab
    from lab.emulation.streams import ProbeSet
    from lab.experiment import Progress
    from lab.model.faults import Fault

    with tempfile.TemporaryDirectory() as tmp, running_lab(
            topo, platform, Path(tmp), "bench", log=Progress(quiet=True)) as lab:
        lab.attach_controller(intent_for(topo, "protection"), bfd_ms=bfd_ms)
        time.sleep(1.0)
        cpu = idle_cpu(lab, args.idle_s)
        ports = [topo.port_to(end, link.name).intf for link in topo.links for end in link.ends]
        baseline = None
        if args.baseline:
            sh.run(["ovs-vsctl"] + sum((["--", "set", "interface", p, "bfd:enable=false"]
                                        for p in ports), []))
            time.sleep(0.5)
            baseline = idle_cpu(lab, args.idle_s)
            sh.run(["ovs-vsctl"] + sum((["--", "set", "interface", p, "bfd:enable=true"]
                                        for p in ports), []))
            lab.wait_links_live(timeout=20)
        faults = []
        for k in range(args.repeat):
            faults += [Fault(1 + k * CYCLE, "gray", "dci-a"),
                       Fault(1 + k * CYCLE + 1.5, "ungray", "dci-a")]
        duration = 1 + args.repeat * CYCLE + 0.5
        probes = ProbeSet(lab, Path(tmp), GATEWAY_MAC, rate=1000)
        a, b = topo.hosts_at("dc1")[0], topo.hosts_at("dc2")[-1]
        probes.add(f"{a.name}>{b.name}", a.name, b.ip.ip)
        probes.add(f"{b.name}>{a.name}", b.name, a.ip.ip)
        service = topo.services[0]
        for client in topo.clients:
            probes.add(f"{client.name}>{service.name}", client.name, service.vip)
        probes.start_receivers([h.name for h in topo.servers])
        t0 = probes.start(duration)
        done = run_timeline(lab.faults, faults, t0, until=duration)
        rows, summaries = probes.collect()
    crossing = {s.stream for s in probes.streams[:2]}
    windows = metrics.fault_windows([(f.at, t) for f, t in done], t0 + duration)
    outages, other_lost = [], 0
    for (fault, _), (t, t_end) in zip(done, windows):
        if fault.action != "gray":
            continue
        worst = 0.0
        for s in probes.streams:
            sender = summaries[s.stream]
            impact = metrics.fault_impact([r for r in rows if r[0] == s.stream], t, t_end,
                                          sender["start"], sender["target_rate"], sender["sent"],
                                          guard=0.02)
            if s.stream in crossing:
                worst = max(worst, impact["outage_ms"] if impact["recovered"] else float("inf"))
            else:
                other_lost += impact["lost"]
                if impact["lost"] and args.verbose:
                    print(f"  gray at {t - t0:.2f} s: {s.name} lost {impact['lost']}, outage "
                          f"{impact['outage_ms']} ms, converged {impact['convergence_ms']} ms",
                          flush=True)
        outages.append(worst)
    return cpu, baseline, sorted(outages), other_lost


def main():
    ensure_venv()
    from lab.analysis.results import format_table
    from lab.emulation import probe
    from lab.model.topology import load_topology

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bfd-ms", default="100,50,30,20",
                        help="BFD intervals, ms, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="gray failures per interval")
    parser.add_argument("--idle-s", type=float, default=5.0, help="seconds of CPU sampling")
    parser.add_argument("--verbose", action="store_true",
                        help="say which streams off dci-a lost probes, and when")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the BFD-off CPU baseline")
    args = parser.parse_args()
    topo = load_topology("dual-active")
    platform = probe.choose_platform()
    print(f"{platform.datapath_label} datapath, {platform.delay_label}; dual-active, "
          f"protection; {args.repeat} gray failures of dci-a per interval", flush=True)
    rows = []
    for bfd_ms in [int(x) for x in args.bfd_ms.split(",")]:
        cpu, baseline, outages, other_lost = one_interval(bfd_ms, args, topo, platform)
        p90 = outages[min(len(outages) - 1, int(0.9 * len(outages)))]
        print(f"BFD {bfd_ms} ms: gray outages {', '.join(f'{o:.0f}' for o in outages)} ms",
              flush=True)

        def pct(part, table):
            return f"{100 * table[part]:.1f}" if table and part in table else "-"
        bfd_share = None
        if baseline:
            bfd_share = sum(cpu.get(p, 0) - baseline.get(p, 0)
                            for p in ("ovs-vswitchd", "delay lines"))
        rows.append((bfd_ms, 3 * bfd_ms, f"{statistics.median(outages):.1f}", f"{p90:.1f}",
                     other_lost, pct("ovs-vswitchd", cpu), pct("delay lines", cpu),
                     pct("ovs-vswitchd", baseline), pct("delay lines", baseline),
                     "-" if bfd_share is None else f"{100 * bfd_share:.1f}"))
        print(format_table(["BFD ms", "detect ms (3x)", "gray outage p50 ms", "p90 ms",
                            "lost off dci-a", "ovs CPU %", "delay lines CPU %",
                            "ovs CPU % BFD off", "delay lines % BFD off", "BFD's share %"],
                           rows), flush=True)


if __name__ == "__main__":
    main()
