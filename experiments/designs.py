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

Data (--data on, the default): each design runs the data tier it would have (design_data),
the VIP service is the stateful app on it (lab/agents/dataapp.py), and the clients write
--write-rate per second in all through the VIP during the same window:

  active/active (dual-active, multi-active)   MariaDB Galera, one node per site, no witness
                                               (every site holds data; with two sites a
                                               site's loss leaves the other without quorum)
  primary/backup, three-site                  PostgreSQL: the primary in the active site, a
                                               hot standby site's standby synchronous, a cold
                                               one's asynchronous; promoted by the DR runbook
                                               (lab.emulation.databases.DataTier.runbook)

with lab/analysis/datametrics.py's rpo_writes, rpo_ms, rto_ms (of writes: the fault to the
first acknowledged write after it) and commit_ms p50/p99 before the fault.
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

from lab.agents import dataapp, sessions, standby
from lab.analysis import datametrics, metrics as m_, plots
from lab.emulation import databases
from lab.emulation.controller import GATEWAY_MAC, intent_for
from lab.emulation.faults import run_timeline
from lab.emulation.network import go
from lab.model.faults import Fault
from lab.emulation.streams import ProbeSet
from lab.cli.options import bounded
from lab.analysis.results import format_table, write_csv, write_json
from lab.experiment import Options, Summary
from lab.model.topology import DataTier, load_topology, multi_active, with_dci

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


def roles_of(name, topo):
    """{site: active | hot | cold} of a design on its topology."""
    spec = DESIGNS[name]
    roles = {s.name: spec["roles"].get(s.name, "active") for s in topo.sites}
    if spec["policy"] == "primary-backup":
        primary = topo.services[0].primary
        roles = {site: ("active" if site == primary else role if role != "active" else "hot")
                 for site, role in roles.items()}
    return roles


def db_host(topo, site):
    """A site's database host: its last VIP server (None for a site without servers)."""
    servers = sorted(n for v in topo.services for n in v.servers
                     if topo.host(n).switch == site)
    return servers[-1] if servers else None


def design_data(name, topo):
    """The data tier a design runs (the topology's own data: section when it has one):
    anycast designs a Galera cluster with a node in every site that serves (no witness: every
    site holds data); primary/backup designs PostgreSQL with the primary in the active site,
    a hot standby site's standby synchronous and a cold one's asynchronous."""
    if topo.data is not None:
        return topo.data
    roles = roles_of(name, topo)
    sites = [s.name for s in topo.sites if db_host(topo, s.name)]
    if DESIGNS[name]["policy"] != "primary-backup":
        return DataTier("galera", tuple(db_host(topo, s) for s in sites))
    primary = next(s for s in sites if roles[s] == "active")
    standbys = tuple((db_host(topo, s), "sync" if roles[s] == "hot" else "async")
                     for s in sites if s != primary)
    return DataTier("postgresql", (db_host(topo, primary),) + tuple(h for h, _ in standbys),
                    standbys=standbys)


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
    opts = ctx.opts
    data = design_data(name, ctx.topo) if opts.data == "on" else None
    if data is not None:
        databases.check_space(data)
        ctx = dataclasses.replace(ctx, topo=dataclasses.replace(ctx.topo, data=data))
    topo, log = ctx.topo, ctx.log
    duration, rate = duration or opts.duration, rate or opts.probe_rate
    roles = roles_of(name, topo)
    serving = [h.name for h in topo.servers if roles[h.switch] != "cold"]
    fault_site = "dc1"
    log(f"[{name}] {topo.name}: " + ", ".join(f"{s} {r}" for s, r in roles.items())
        + f"; VIP policy {spec['policy']}" + (f"; data: {describe_data(data)}" if data else ""))
    with ctx.open_lab() as lab:
        lab.attach_controller(intent_for(topo, opts.mode, spec["policy"]), bfd_ms=opts.bfd_ms,
                              serving=[] if data else serving)
        if data:
            took = lab.start_data_tier(serving=serving)
            log(f"[{name}] data tier up in {took:.1f} s")
        service = topo.services[0]
        primaries = [str(h.ip.ip) for h in topo.servers if roles[h.switch] == "active"]
        agents = []
        for server in topo.servers:
            agents.append(lab.start_agent(server.name, sessions.serve_argv(SESSION_PORT),
                                          f"session server {server.name}", wait=False))
            if roles[server.switch] == "cold":
                agents.append(lab.start_agent(
                    server.name, standby.standby_argv(
                        server.name, primaries, service.port, PROMOTION_S,
                        then=lab.service_argv(server.name, service.port) if data else None),
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
        writers, laggers = (start_writers(lab, ctx.run_dir / "data", opts.write_rate, duration)
                            if data else ([], []))
        lab.wait_agents([proc for proc, _ in clients] + writers + laggers)
        t0 = probes.start(duration)
        go([proc for proc, _ in clients] + writers)     # the sessions span the same window
        bytes0 = dci_bytes(lab)
        memory = lab.memory_mb()          # the design's whole lab, its traffic running
        time.sleep(max(0.0, t0 + FAULT_AT - time.time()))
        dci_mbit = 8 * (dci_bytes(lab) - bytes0) / max(time.time() - t0, 1e-3) / 1e6
        (_, t_fault), = run_timeline(lab.faults, [Fault(FAULT_AT, "power-off", fault_site)], t0)
        log(f"[{name}] t={t_fault - t0:.1f}s power-off {fault_site}")
        t_promote = None
        if data and data.engine == "postgresql":
            t_promote = lab.data.runbook(lambda: any(w.poll() is None for w in writers), log)
        rows, _ = probes.collect(timeout=duration + 10)
        for proc, _ in clients:
            proc.wait(duration + 15)
        if data:
            for w in writers:
                w.wait(duration + 30)
            for proc in laggers:
                lab.stop_process(proc)
            record_data(lab, ctx.run_dir / "data", name, t0, t_fault, t_promote, fault_site,
                        log)
    run_dir = ctx.run_dir
    write_csv(run_dir / "probes.csv", ["stream", "seq", "sent", "received", "host"],
              sorted(rows, key=lambda r: (r[0], r[1])))
    write_json(run_dir / "streams.json", [dict(vars(s), rate=rate) for s in probes.streams])
    write_json(run_dir / "design.json", {
        "design": name, "topology": topo.to_dict(), "policy": spec["policy"], "roles": roles,
        "memory_mb": memory,
        "t0": t0, "t_fault": t_fault, "t_end": t0 + duration, "fault_site": fault_site,
        "dci_mbit": dci_mbit, "sessions": [out.name for _, out in clients]})
    result = analyse_design(run_dir)
    log(f"[{name}] RTO {result['rto_ms']} ms, sessions lost {result['sessions_lost']}/"
        f"{result['sessions']}, utilization {result['utilization']}, DCI {result['dci_mbit']} Mbit/s"
        + (f"; data: RPO {result['rpo_writes']} writes / {result['rpo_ms']} ms, write RTO "
           f"{result['write_rto_ms']} ms, commit p50 {result['commit_ms_p50']} ms"
           if data else ""))
    return result


def describe_data(data):
    """'galera on dc1-srv2, dc2-srv2' / 'postgresql dc1-srv2 -> dc2-srv2 (sync), ...'."""
    if data.engine == "galera":
        return (f"galera on {', '.join(data.nodes)}"
                + (f", witness {data.witness}" if data.witness else ", no witness"))
    return (f"postgresql {data.primary} -> "
            + ", ".join(f"{host} ({mode})" for host, mode in data.standbys))


def start_writers(lab, folder, total_rate, duration):
    """Every client writes total_rate/clients per second through the VIP (waiting for go);
    for PostgreSQL, the lag of the standby that can lose writes (an asynchronous one, else the
    first) and the primary's position sampled beside it. Returns (writers, laggers)."""
    topo, data = lab.topo, lab.data.spec
    folder.mkdir(parents=True, exist_ok=True)
    service = topo.services[0]
    per_client = total_rate / len(topo.clients)
    writers = [lab.start_agent(c.name, dataapp.write_argv(str(service.vip), service.port,
                                                          c.name, per_client, duration,
                                                          folder / f"writes-{c.name}.json"),
                               f"writer {c.name}", log=folder / f"writer-{c.name}.log",
                               stdin=subprocess.PIPE, wait=False)
               for c in topo.clients]
    laggers = []
    if data.engine == "postgresql":
        watched = next((h for h, mode in data.standbys if mode == "async"), data.standbys[0][0])
        laggers = [lab.start_agent(node, dataapp.lag_argv(lab.data.nodes[node]["socket"],
                                                          folder / f"lag-{role}.jsonl",
                                                          role=role),
                                   f"lag {node}", log=folder / f"lag-{role}.log", wait=False)
                   for node, role in ((watched, "standby"), (data.primary, "primary"))]
    return writers, laggers


def record_data(lab, folder, name, t0, t_fault, t_promote, fault_site, log):
    """What each database holds after the fault, and the case's facts (datametrics.case_metrics
    reads them)."""
    topo, data = lab.topo, lab.data.spec
    read = lab.data.record(folder, log=lambda m: log(f"[{name}] {m}"))
    write_json(folder / "case.json", {
        "variant": name, "fault_name": "power-off", "fault": f"power-off {fault_site}",
        "t0": t0, "t_fault": t_fault, "t_promote": t_promote,
        "fault_spread_ms": lab.faults.spread_ms, "fault_delay_ms": None,
        "engine": data.engine, "data": describe_data(data),
        "clients": [c.name for c in topo.clients], "nodes": list(data.nodes),
        "down": sorted(h.name for h in topo.hosts_at(fault_site)), "read": read,
        "site_of": {h.name: h.switch for h in topo.hosts}})


def read_yardstick(run_dir, topo):
    """A yardstick folder's raw probe files (streams.json, probes/tx-N.json, probes.csv) and
    the shape of its topology (topo: its to_dict()): (shape, streams, summaries, rows), what
    design_metrics takes."""
    shape = SimpleNamespace(
        hosts=[SimpleNamespace(name=h["name"], switch=h["switch"]) for h in topo["hosts"]],
        sites=[SimpleNamespace(name=s["name"]) for s in topo["switches"] if s["kind"] == "site"])
    streams = [SimpleNamespace(**s) for s in json.loads((run_dir / "streams.json").read_text())]
    summaries = {s.stream: json.loads((run_dir / "probes" / f"tx-{s.stream}.json").read_text())
                 for s in streams}
    with open(run_dir / "probes.csv", newline="") as fh:
        rows = [(int(r["stream"]), int(r["seq"]), float(r["sent"]), float(r["received"]),
                 r["host"]) for r in csv.DictReader(fh)]
    return shape, streams, summaries, rows


def analyse_design(run_dir):
    """One design's metrics from its folder's raw files alone (design.json, probes.csv,
    streams.json, the senders' summaries and the session reports): pure."""
    run_dir = Path(run_dir)
    raw = json.loads((run_dir / "design.json").read_text())
    topo = raw["topology"]
    shape, streams, summaries, rows = read_yardstick(run_dir, topo)
    reports = [json.loads((run_dir / name).read_text()) for name in raw["sessions"]]
    result = design_metrics(shape, rows, streams, reports, raw["t0"], raw["t_fault"],
                            raw["t_end"], raw["fault_site"], raw["dci_mbit"], summaries)
    result.update(design=raw["design"], topology=topo["name"], policy=raw["policy"],
                  roles=raw["roles"], memory_mb=raw.get("memory_mb"))
    result.update(data_columns(run_dir / "data"))
    return result


def data_columns(folder):
    """The data tier's figures of one design (all None when it ran without one)."""
    if not (folder / "case.json").exists():
        return {"data": None, "rpo_writes": None, "rpo_ms": None, "write_rto_ms": None,
                "commit_ms_p50": None, "commit_ms_p99": None, "data_detail": None}
    case = json.loads((folder / "case.json").read_text())
    detail = datametrics.case_metrics(folder)
    before = detail["commit_ms"]["before"]
    return {"data": case["data"], "rpo_writes": detail["rpo_writes"], "rpo_ms": detail["rpo_ms"],
            "write_rto_ms": detail["rto_ms"], "commit_ms_p50": before["p50"],
            "commit_ms_p99": before["p99"], "data_detail": detail}


@dataclass(frozen=True)
class DesignOptions(Options):
    probe_rate: float = 200.0          # probe packets per second per client
    duration: float = 15.0             # seconds of traffic around the power-off
    sites: int = 3                     # multi-active: active sites
    layout: str = "mesh"               # multi-active: DCI links as a mesh or a ring
    data: str = "on"                   # run each design's data tier and its writers
    write_rate: float = 100.0          # writes per second, all clients together
    QUICK = {"duration": 10.0}


OPTIONS = DesignOptions


def add_arguments(parser):
    parser.add_argument("--probe-rate", type=bounded(float, 1, 5000), default=None,
                        metavar="PPS", help="probe packets per second per client, 1 to 5000 "
                                            f"(default {DesignOptions.default('probe_rate'):g})")
    parser.add_argument("--data", choices=("on", "off"), default=None,
                        help="run each design's data tier (Galera or PostgreSQL) with writers "
                             "through the VIP: RPO, write RTO, commit latency (default "
                             f"{DesignOptions.default('data')})")
    parser.add_argument("--write-rate", type=bounded(float, 10, 1000), default=None,
                        metavar="W", help="writes per second, all clients together, 10 to 1000 "
                                          f"(default {DesignOptions.default('write_rate'):g})")


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
    result = plots.read_metrics(run_dir)
    plots.designs([result], out)
    return [out] + plots.design_closeups(run_dir, result)


def problems(results):
    """The verdicts that failed: a design whose clients did not all recover from the fault,
    or whose data tier acknowledged no write before it (a data tier that stops after the fault
    is a finding, not a failure: see data_notes)."""
    out = [f"design {r['design']}: the clients dc1 served ({', '.join(r['clients_hit'])}) "
           "did not all recover before the run ended" for r in results if r["rto_ms"] is None]
    out += [f"design {r['design']}: its data tier ({r['data']}) acknowledged no write before "
            "the fault; see its data/ folder's logs" for r in results
            if r.get("data") and not (r["data_detail"]["commit_ms"]["before"]["count"])]
    return out


def data_notes(results):
    """What the data columns mean where a design's writes did not come back."""
    notes = []
    for r in results:
        if r.get("data") and r["write_rto_ms"] is None:
            after = r["data_detail"]["accepting_after"]
            notes.append(f"{r['design']}: no write acknowledged after dc1 powered off "
                         f"({r['data']}: "
                         + ("a Galera cluster without a majority of its votes stops; a witness "
                            "in a third site keeps the surviving site writing)"
                            if r["data"].startswith("galera") else "no primary took over)")
                         + (f"; accepting after: {after}" if after else ""))
    return notes


def run_designs(ctx, names):
    """run_design for each name, each in its own lab and subfolder (RUN_DIR/NAME/)."""
    for name in names:
        sub = ctx.run_dir / name
        sub.mkdir()
        run_design(dataclasses.replace(ctx, topo=design_topology(name, ctx.options),
                                       run_dir=sub), name)


def _num(value, fmt="{:.0f}", none="-"):
    return none if value is None else fmt.format(value)


def memory_cell(memory):
    """'1234 (456)': the whole lab's resident memory and its data tier's, MB."""
    return "-" if not memory else f"{memory['total']:.0f} ({memory.get('data tier', 0):.0f})"


def table(results):
    rows = [(r["design"], r["topology"], r["policy"], _num(r["rto_ms"]),
             f"{r['sessions_lost']}/{r['sessions']}",
             " ".join(f"{site} {100 * v:.0f}%" for site, v in r["utilization"].items()),
             ", ".join(r["idle_sites"]) or "none", f"{r['dci_mbit']:.2f}",
             _num(r["latency_ms"], "{:.2f}")) for r in results]
    text = format_table(["design", "topology", "VIP policy", "RTO ms (dc1 off)", "sessions lost",
                         "utilization before", "idle sites", "DCI Mbit/s", "one-way ms"], rows)
    with_data = [r for r in results if r.get("data")]
    if with_data:
        rows = [(r["design"], r["data"], _num(r["rpo_writes"], "{}"), _num(r["rpo_ms"], "{:.1f}"),
                 _num(r["write_rto_ms"], none="never"),
                 f"{_num(r['commit_ms_p50'], '{:.2f}')} / {_num(r['commit_ms_p99'], '{:.2f}')}",
                 memory_cell(r.get("memory_mb")))
                for r in with_data]
        text += "\n\n" + format_table(["design", "data tier", "RPO writes", "RPO ms",
                                        "write RTO ms", "commit p50 / p99 ms",
                                        "lab RSS MB (data tier)"], rows)
        notes = data_notes(with_data)
        if notes:
            text += "\n" + "\n".join(f"note: {n}" for n in notes)
    return text
