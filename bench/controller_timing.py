#!/usr/bin/env python3
"""Benchmark: controller start-to-ready, reaction time to a link cut, and what BFD costs.

Builds dual-active, attaches the controller (in each mode), cuts and restores dci-a several
times and reads the controller's own reaction times (port-down event to flow/group mods sent),
then measures ovs-vswitchd's and the controller's CPU with BFD at several intervals. Run as root:

    python bench/controller_timing.py [--cuts 10] [--bfd 20,50,100,300]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.venv import ensure_venv  # noqa: E402  (stdlib only)


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_percent(pid, seconds):
    start = cpu_seconds(pid)
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - start) / seconds


def main():
    ensure_venv()
    from lab import sh
    from lab.emulation import probe
    from lab.emulation.controller import bfd_cmd, intent_for
    from lab.experiment import Progress
    from lab.emulation.network import running_lab
    from lab.analysis.results import format_table
    from lab.model.topology import load_topology

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cuts", type=int, default=10, help="dci-a cuts per mode")
    parser.add_argument("--bfd", default="20,50,100,300", help="BFD intervals to cost, ms")
    parser.add_argument("--cpu-seconds", type=float, default=5.0, help="CPU sampling window")
    args = parser.parse_args()
    topo = load_topology("dual-active")
    platform = probe.choose_platform()
    vswitchd = int(Path("/var/run/openvswitch/ovs-vswitchd.pid").read_text())
    print(f"{platform.datapath_label} datapath, {platform.delay_label}, {os.cpu_count()} CPUs")
    rows, cpu_rows = [], []
    for mode in ("protection", "restoration"):
        with tempfile.TemporaryDirectory() as tmp, running_lab(
                topo, platform, Path(tmp), "bench", log=Progress(quiet=True)) as lab:
            ready = lab.attach_controller(intent_for(topo, mode))
            reactions = []
            for _ in range(args.cuts):
                seen = len(lab.controller_status()["reactions"])
                lab.faults.set_link("dci-a", up=False)
                time.sleep(0.3)
                new = lab.controller_status()["reactions"][seen:]
                reactions += [r["ms"] for r in new if r["event"] == "port_down"]
                lab.faults.set_link("dci-a", up=True)
                lab.wait_links_live()
            rows.append((mode, f"{ready:.2f}", len(reactions),
                         f"{statistics.median(reactions):.2f}" if reactions else "-",
                         f"{max(reactions):.2f}" if reactions else "-"))
            if mode == "protection":
                ports = [topo.port_to(end, l.name).intf for l in topo.links for end in l.ends]
                for interval in [int(x) for x in args.bfd.split(",")]:
                    for intf in ports:
                        sh.run(bfd_cmd([intf], interval))
                    time.sleep(2)
                    cpu_rows.append((interval, len(ports), f"{cpu_percent(vswitchd, args.cpu_seconds):.1f}",
                                     f"{cpu_percent(lab.emulation.controller.pid, args.cpu_seconds):.1f}"))
                for intf in ports:
                    sh.run(["ovs-vsctl", "set", "interface", intf, "bfd:enable=false"])
                time.sleep(2)
                cpu_rows.append(("off", 0, f"{cpu_percent(vswitchd, args.cpu_seconds):.1f}",
                                 f"{cpu_percent(lab.emulation.controller.pid, args.cpu_seconds):.1f}"))
    print(format_table(["mode", "start-to-ready s", "port-down reactions",
                        "reaction p50 ms", "reaction max ms"], rows))
    print()
    print(format_table(["BFD interval ms", "BFD endpoints", "ovs-vswitchd CPU %",
                        "controller CPU %"], cpu_rows))


if __name__ == "__main__":
    main()
