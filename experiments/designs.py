"""One yardstick for every design: the same client traffic, the same fault, the same metrics.

Each design is a topology, a VIP policy and the role of every site:

  active     serves from the start
  hot        standby with its service running (takes over as soon as the controller sees the
             primary's servers fail their health checks)
  cold       standby whose service starts only when its promotion agent (lab/agents/standby.py) has
             seen the primary down (3 checks, about 1 s) and waited out the promotion time

Traffic: a probe stream from every client to the service VIP (at --probe-rate) and three
long-lived TCP sessions per client. Fault: power-off of dc1 (the primary, or one of the
active sites) at FAULT_AT. Metrics (pure, see design_metrics):

  rto_ms          worst client outage among the clients dc1 served (probe streams)
  sessions_lost   long-lived sessions that died
  utilization     share of client probes each site served before the fault; idle sites
  dci_mbit        traffic on the DCI links before the fault (Mbit/s, both directions)
  latency_ms      median one-way client-to-server probe latency before the fault
"""

import csv
import dataclasses
from dataclasses import dataclass
import json
import statistics
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

from lab.agents import sessions, standby
from lab.analysis import metrics as m_, plots
from lab.emulation.controller import GATEWAY_MAC, intent_for
from lab.emulation.faults import run_timeline
from lab.emulation.network import go
from lab.model.faults import Fault
from lab.emulation.streams import ProbeSet
from lab.cli.options import bounded
from lab.analysis.results import format_table, write_csv, write_json
from lab.experiment import Options, Summary
from lab.model.topology import load_topology, multi_active, with_dci

FAULT_AT = 3.0
SESSION_PORT = 443
PROMOTION_S = 2.0

DESIGNS = {
    "dual-active": {"topology": "two-region", "policy": "anycast", "roles": {}},
    "primary-backup": {"topology": "two-region", "policy": "primary-backup",
                       "roles": {"dc2": "cold"}},
    "three-site": {"topology": "three-site", "policy": "primary-backup",
                   "roles": {"dc2": "hot", "dc3": "cold"}},
    "multi-active": {"topology": None, "policy": "anycast", "roles": {}},
}


# The options the design experiments honour (each design fixes its own VIP policy).
COMMON_OPTIONS = ("topology", "mode", "bfd_ms")


def design_topology(name, options):
    """The design's topology, with --dci-delay/--dci-bw applied when given."""
    spec = DESIGNS[name]
    if spec["topology"]:
        topo = load_topology(spec["topology"])
    else:
        opts = DesignOptions.parse(options)
        topo = multi_active(opts.sites, opts.layout)
    if options.get("dci_delay") or options.get("dci_bw"):
        topo = with_dci(topo, delay=options.get("dci_delay"), bw=options.get("dci_bw"))
    return topo


def dci_bytes(lab):
    """Bytes sent so far on every DCI switch port (both directions of every DCI link)."""
    total = 0
    for link in lab.topo.dci_links:
        for end in link.ends:
            intf = lab.topo.port_to(end, link.name).intf
            total += int(Path(f"/sys/class/net/{intf}/statistics/tx_bytes").read_text())
    return total


def design_metrics(topo, rows, streams, sessions, t0, t_fault, t_end, fault_site, dci_mbit,
                   summaries=None):
    """The yardstick's numbers from raw samples (pure). summaries: each stream's sender
    summary (start, target_rate, sent), so the fault's window counts every probe sent in it."""
    site_of = {h.name: h.switch for h in topo.hosts}
    by_stream = {}
    for row in rows:
        by_stream.setdefault(row[0], []).append(row)
    share = m_.site_share(rows, site_of, t0 + 0.5, t_fault)
    utilization = {s.name: share.get(s.name, 0.0) for s in topo.sites}
    hit, outages = [], []
    for stream in streams:
        served = [r for r in by_stream.get(stream.stream, []) if t0 + 0.5 <= r[3] < t_fault]
        if served and site_of.get(served[-1][4]) == fault_site:
            hit.append(stream.name)
            sender = (summaries or {}).get(stream.stream, {})
            impact = m_.fault_impact(by_stream.get(stream.stream, []), t_fault, t_end,
                                     sender.get("start"), sender.get("target_rate"),
                                     sender.get("sent"))
            outages.append(impact["outage_ms"] if impact["recovered"] else None)
    before = [r[3] - r[2] for r in rows if t0 + 0.5 <= r[3] < t_fault]
    all_sessions = [s for report in sessions for s in report["sessions"]]
    return {
        "utilization": utilization,
        "idle_sites": [site for site, v in utilization.items() if v == 0.0],
        "clients_hit": hit,
        "rto_ms": None if any(o is None for o in outages) else max(outages, default=0.0),
        "sessions": len(all_sessions),
        "sessions_lost": sum(1 for s in all_sessions if s["established"] and s["died"]),
        "dci_mbit": round(dci_mbit, 3),
        "latency_ms": round(1000 * statistics.median(before), 3) if before else None,
    }


def run_design(ctx, name, duration=None, rate=None):
    """Build the design's lab, run the yardstick, return its metrics (and write raw files)."""
    spec = DESIGNS[name]
    topo, log = ctx.topo, ctx.log
    opts = ctx.opts
    duration, rate = duration or opts.duration, rate or opts.probe_rate
    roles = {s.name: spec["roles"].get(s.name, "active") for s in topo.sites}
    if spec["policy"] == "primary-backup":
        primary = topo.services[0].primary
        roles = {site: ("active" if site == primary else role if role != "active" else "hot")
                 for site, role in roles.items()}
    serving = [h.name for h in topo.servers if roles[h.switch] != "cold"]
    fault_site = "dc1"
    log(f"[{name}] {topo.name}: " + ", ".join(f"{s} {r}" for s, r in roles.items())
        + f"; VIP policy {spec['policy']}")
    with ctx.open_lab() as lab:
        lab.attach_controller(intent_for(topo, opts.mode, spec["policy"]), bfd_ms=opts.bfd_ms,
                              serving=serving)
        service = topo.services[0]
        primaries = [str(h.ip.ip) for h in topo.servers if roles[h.switch] == "active"]
        agents = []
        for server in topo.servers:
            agents.append(lab.start_agent(server.name, sessions.serve_argv(SESSION_PORT),
                                          f"session server {server.name}", wait=False))
            if roles[server.switch] == "cold":
                agents.append(lab.start_agent(
                    server.name, standby.standby_argv(server.name, primaries, service.port,
                                                      PROMOTION_S),
                    f"standby agent {server.name}", wait=False))
        lab.wait_agents(agents)
        probes = ProbeSet(lab, ctx.run_dir, GATEWAY_MAC, rate=rate)
        for client in topo.clients:
            probes.add(f"{client.name}>{service.name}", client.name, service.vip)
        probes.start_receivers([h.name for h in topo.servers])
        clients = []
        for client in topo.clients:
            out = ctx.run_dir / f"sessions-{client.name}.json"
            clients.append((lab.start_agent(
                client.name, sessions.run_argv(service.vip, SESSION_PORT, 3, duration, out,
                                               wait_go=True),
                f"sessions {client.name}", log=out.with_suffix(".log"), stdin=subprocess.PIPE,
                wait=False), out))
        lab.wait_agents([proc for proc, _ in clients])
        t0 = probes.start(duration)
        go([proc for proc, _ in clients])            # the sessions span the same window
        bytes0 = dci_bytes(lab)
        time.sleep(max(0.0, t0 + FAULT_AT - time.time()))
        dci_mbit = 8 * (dci_bytes(lab) - bytes0) / max(time.time() - t0, 1e-3) / 1e6
        (_, t_fault), = run_timeline(lab.faults, [Fault(FAULT_AT, "power-off", fault_site)], t0)
        log(f"[{name}] t={t_fault - t0:.1f}s power-off {fault_site}")
        rows, _ = probes.collect(timeout=duration + 10)
        for proc, _ in clients:
            proc.wait(duration + 15)
    run_dir = ctx.run_dir
    write_csv(run_dir / "probes.csv", ["stream", "seq", "sent", "received", "host"],
              sorted(rows, key=lambda r: (r[0], r[1])))
    write_json(run_dir / "streams.json", [dict(vars(s), rate=rate) for s in probes.streams])
    write_json(run_dir / "design.json", {
        "design": name, "topology": topo.to_dict(), "policy": spec["policy"], "roles": roles,
        "t0": t0, "t_fault": t_fault, "t_end": t0 + duration, "fault_site": fault_site,
        "dci_mbit": dci_mbit, "sessions": [out.name for _, out in clients]})
    result = analyse_design(run_dir)
    log(f"[{name}] RTO {result['rto_ms']} ms, sessions lost {result['sessions_lost']}/"
        f"{result['sessions']}, utilization {result['utilization']}, DCI {result['dci_mbit']} Mbit/s")
    return result


def analyse_design(run_dir):
    """One design's metrics from its folder's raw files alone (design.json, probes.csv,
    streams.json, the senders' summaries and the session reports): pure."""
    run_dir = Path(run_dir)
    raw = json.loads((run_dir / "design.json").read_text())
    topo = raw["topology"]
    shape = SimpleNamespace(
        hosts=[SimpleNamespace(name=h["name"], switch=h["switch"]) for h in topo["hosts"]],
        sites=[SimpleNamespace(name=s["name"]) for s in topo["switches"] if s["kind"] == "site"])
    streams = [SimpleNamespace(**s) for s in json.loads((run_dir / "streams.json").read_text())]
    summaries = {s.stream: json.loads((run_dir / "probes" / f"tx-{s.stream}.json").read_text())
                 for s in streams}
    with open(run_dir / "probes.csv", newline="") as fh:
        rows = [(int(r["stream"]), int(r["seq"]), float(r["sent"]), float(r["received"]),
                 r["host"]) for r in csv.DictReader(fh)]
    reports = [json.loads((run_dir / name).read_text()) for name in raw["sessions"]]
    result = design_metrics(shape, rows, streams, reports, raw["t0"], raw["t_fault"],
                            raw["t_end"], raw["fault_site"], raw["dci_mbit"], summaries)
    result.update(design=raw["design"], topology=topo["name"], policy=raw["policy"],
                  roles=raw["roles"])
    return result


@dataclass(frozen=True)
class DesignOptions(Options):
    probe_rate: float = 200.0          # probe packets per second per client
    duration: float = 15.0             # seconds of traffic around the power-off
    sites: int = 3                     # multi-active: active sites
    layout: str = "mesh"               # multi-active: DCI links as a mesh or a ring
    QUICK = {"duration": 10.0}


OPTIONS = DesignOptions


def add_arguments(parser):
    parser.add_argument("--probe-rate", type=bounded(float, 1, 5000), default=None,
                        metavar="PPS", help="probe packets per second per client, 1 to 5000 "
                                            f"(default {DesignOptions.default('probe_rate'):g})")


def run_one(ctx, name):
    """An experiment that is one design: run it, write metrics.json, summarize."""
    run_design(ctx, name)
    write_json(ctx.run_dir / "metrics.json", analyse_design(ctx.run_dir))
    plot_one(ctx.run_dir)
    return summarize_one(ctx.run_dir)


def summarize_one(run_dir):
    """An experiment that is one design: its Summary from metrics.json."""
    result = json.loads((Path(run_dir) / "metrics.json").read_text())
    return Summary(table([result]), ok=not problems([result]), problems=problems([result]))


def plot_one(run_dir):
    """An experiment that is one design: its RTO, utilization and sessions lost."""
    out = run_dir / "designs.png"
    plots.designs([plots.read_metrics(run_dir)], out)
    return [out]


def problems(results):
    """The verdicts that failed: a design whose clients did not all recover from the fault."""
    return [f"design {r['design']}: the clients dc1 served ({', '.join(r['clients_hit'])}) "
            "did not all recover before the run ended" for r in results if r["rto_ms"] is None]


def run_designs(ctx, names):
    """run_design for each name, each in its own lab and subfolder (RUN_DIR/NAME/)."""
    for name in names:
        sub = ctx.run_dir / name
        sub.mkdir()
        run_design(dataclasses.replace(ctx, topo=design_topology(name, ctx.options),
                                       run_dir=sub), name)


def table(results):
    rows = [(r["design"], r["topology"], r["policy"],
             "-" if r["rto_ms"] is None else f"{r['rto_ms']:.0f}",
             f"{r['sessions_lost']}/{r['sessions']}",
             " ".join(f"{site} {100 * v:.0f}%" for site, v in r["utilization"].items()),
             ", ".join(r["idle_sites"]) or "none", f"{r['dci_mbit']:.2f}",
             "-" if r["latency_ms"] is None else f"{r['latency_ms']:.2f}") for r in results]
    return format_table(["design", "topology", "VIP policy", "RTO ms (dc1 off)", "sessions lost",
                         "utilization before", "idle sites", "DCI Mbit/s", "one-way ms"], rows)
