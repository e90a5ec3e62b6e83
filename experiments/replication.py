"""replication: what synchronous replication costs in commit latency and what asynchronous
replication loses, with real databases in the sites.

On dual-active-data (two serving sites, a witness site dc3) the VIP service of each site is
the stateful app (lab/agents/dataapp.py) on its site's database. Each variant's data tier runs
in turn in the same lab:

  pg-async   PostgreSQL streaming replication: primary dc1-srv2, asynchronous standby dc2-srv2
  pg-sync    the same, the standby synchronous (synchronous_standby_names; a commit waits
             for the standby's flush)
  galera     MariaDB Galera, one node per site (dc1-srv2, dc2-srv2), garbd in dc3: every
             commit is certified by the whole primary component

1. Commit latency against the DCI delay: every link between sites set to each one-way delay of
   --delays in turn; the RTT between the database nodes (ping) and unloaded commits on dc1's
   node (lab/agents/dataapp.py probe): as the app commits (replicated) and local only.
2. Faults, each on a fresh data tier with the links between sites at --fault-delay: every
   client writes --rate per second through the VIP; the fault comes 3 s in:
     power-off   dc1 (the clients' nearest site, PostgreSQL's primary) loses power
     partition   dc1 isolated: every link between dc1 and the other sites cut at once
     gray        dci-a drops everything without losing carrier (BFD moves traffic to dci-b)
   PostgreSQL has no failover of its own. The standby is promoted as a DR runbook says: once
   the primary has been unreachable from the standby's host for PROMOTE_AFTER_S (the
   experiment carries the runbook out; it decides on reachability alone, as such runbooks
   do, so during a partition both sides are primaries: what asynchronous replication plus
   a naive runbook risks). Galera needs no one: the side with the majority of votes goes on.

Per fault and variant (lab/analysis/datametrics.py): rpo_writes, rpo_ms against the
database that serves afterwards, rto_ms, commit p50/p99 before/during/after, the standby's lag,
divergent_writes, and which sites kept accepting writes.
"""

from dataclasses import dataclass
import json
import subprocess
from pathlib import Path

from lab.agents import dataapp
from lab.analysis import datametrics, plots
from lab.analysis.results import format_table, write_json
from lab.cli.options import bounded, int_list, name_list
from lab.emulation import databases, traffic
from lab.emulation.controller import all_up, intent_for
from lab.emulation.faults import run_timeline
from lab.emulation.network import go
from lab.errors import LabError
from lab.experiment import Options, Summary
from lab.model.faults import Fault, isolation_links
from lab.model.topology import DataTier

NAME = "replication"
TOPOLOGY = "dual-active-data"
DESCRIPTION = ("data replication across sites: commit latency vs DCI delay, and RPO/RTO of "
               "PostgreSQL async/sync and Galera under faults")
VARIANTS = ("pg-async", "pg-sync", "galera", "pg-patroni")
DEFAULT_VARIANTS = VARIANTS[:3]
# pg-patroni's failover waits out Patroni's leader lease: its faults need writes for longer
PATRONI_AFTER_S = databases.PATRONI_TTL_S + 10
FAULTS = {"power-off": ("power-off", "power-on", "site"),
          "partition": ("isolate", "rejoin", "site"),
          "gray": ("gray", "ungray", "link")}
FAULT_AT = 3.0                 # s after the writers start
PROMOTE_AFTER_S = databases.PROMOTE_AFTER_S   # the runbook's patience
PROBE_COMMITS = 30
LOAD_PORT = 5301


@dataclass(frozen=True)
class ReplicationOptions(Options):
    variants: str = ",".join(DEFAULT_VARIANTS)
    delays: tuple = (1, 5, 20)         # one-way delay between sites, ms, for the sweep
    faults: str = ",".join(FAULTS)
    fault_delay: int = 10              # one-way delay between sites during the faults, ms
    rate: int = 100                    # writes per second per client
    after: float = 8.0                 # seconds of writes after the fault
    dci_load: str = "off"              # a bulk copy across the DCI during the faults
    payload: int = 8                   # KB of document stored with each write
    QUICK = {"delays": (10,), "faults": "power-off", "after": 5.0}


OPTIONS = ReplicationOptions
COMMON_OPTIONS = ("topology", "bfd_ms")


def add_arguments(parser):
    default = ReplicationOptions.default
    parser.add_argument("--variants", type=name_list(VARIANTS), default=None, metavar="LIST",
                        help=f"data tiers to compare, comma-separated, of {', '.join(VARIANTS)} "
                             f"(default {default('variants')}; pg-patroni: PostgreSQL with a "
                             "synchronous standby and Patroni's failover, its lease in etcd on "
                             f"three sites; its faults run at least {PATRONI_AFTER_S} s)")
    parser.add_argument("--delays", type=int_list(1, 200), default=None, metavar="LIST",
                        help="one-way delays between sites for the commit-latency sweep, ms, 1 "
                             f"to 200 each (default {','.join(map(str, default('delays')))}, "
                             f"--quick {','.join(map(str, default('delays', quick=True)))})")
    parser.add_argument("--faults", type=name_list(tuple(FAULTS)), default=None,
                        metavar="LIST",
                        help=f"faults, each on a fresh data tier: {', '.join(FAULTS)} (default "
                             f"{default('faults')}, --quick {default('faults', quick=True)})")
    parser.add_argument("--fault-delay", type=bounded(int, 1, 200), default=None, metavar="MS",
                        help="one-way delay between sites during the faults, 1 to 200 ms "
                             f"(default {default('fault_delay')})")
    parser.add_argument("--rate", type=bounded(int, 10, 1000), default=None, metavar="N",
                        help="writes per second per client, 10 to 1000 (default "
                             f"{default('rate')})")
    parser.add_argument("--dci-load", choices=("on", "off"), default=None,
                        help="during the faults, a bulk TCP copy (iperf3, as a backup copy "
                             "would) from the first database site to the second at the DCI's "
                             f"line rate (default {default('dci_load')})")
    parser.add_argument("--payload", type=bounded(int, 0, 1024), default=None, metavar="KB",
                        help="KB of (incompressible) document each write stores, 0 to 1024 "
                             f"(default {default('payload')}): what makes replication traffic")
    parser.add_argument("--after", type=bounded(float, 2, 120), default=None, metavar="S",
                        help="seconds of writes after each fault, 2 to 120 (default "
                             f"{default('after'):g}, --quick {default('after', quick=True):g})")


def spec_of(variant, topo):
    """The data tier of a variant on the topology's two database hosts (its data: section's
    nodes; the witness's host for Galera's garbd, or as pg-patroni's third etcd member)."""
    primary, standby = topo.data.nodes[:2]
    if variant == "galera":
        return DataTier("galera", (primary, standby), witness=topo.data.witness)
    if variant == "pg-patroni":
        return DataTier("postgresql", (primary, standby), standbys=((standby, "sync"),),
                        failover="patroni", consensus=(primary, standby, topo.data.witness))
    mode = "sync" if variant == "pg-sync" else "async"
    return DataTier("postgresql", (primary, standby), standbys=((standby, mode),))


def validate(opts, topo):
    data = topo.data
    if (data is None or len(data.nodes) < 2 or not topo.services or not topo.clients
            or topo.host(data.nodes[0]).switch == topo.host(data.nodes[1]).switch):
        raise LabError(f"--topology {topo.name}: replication needs a data: section with nodes "
                       "in two sites, a service and clients; use dual-active-data")
    databases.check_space(data)
    for variant in ("galera", "pg-patroni"):
        if variant in opts.variants.split(",") and not data.witness:
            raise LabError(f"--topology {topo.name}: the {variant} variant needs a witness host "
                           "in a third site in the data: section (garbd, or etcd's third "
                           "member); use dual-active-data")


def inter_site_links(topo):
    sites = {s.name for s in topo.sites}
    return [l.name for l in topo.links if all(end in sites for end in l.ends)]


def fault_of(name, topo):
    """(the Fault, its repair) of a fault name on the topology: the clients' nearest site
    is the first database node's."""
    action, repair, kind = FAULTS[name]
    site = topo.host(topo.data.nodes[0]).switch
    target = site if kind == "site" else next(
        l for l in isolation_links(topo, site) if l in [d.name for d in topo.dci_links])
    return Fault(FAULT_AT, action, target), Fault(0.0, repair, target)


def set_delays(lab, delay_ms):
    for name in inter_site_links(lab.topo):
        lab.set_link_delay(name, float(delay_ms))


def rtt_ms(lab, src, dst):
    """min/avg RTT of 10 pings from host src to host dst, ms."""
    out = lab.node_run(src, ["ping", "-c", "10", "-i", "0.05", "-q",
                             str(lab.topo.host(dst).ip.ip)], check=False).stdout
    for line in out.splitlines():
        if "min/avg" in line:
            low, avg = line.split("=")[1].split("/")[:2]
            return float(low), float(avg)
    raise LabError(f"no ping answer from {dst} to {src}: the path between the database nodes "
                   f"is down; see {lab.controller.log}")


def sweep(lab, run_dir, delays, log, name="sweep.json", label=None):
    """Commit latency against the one-way delay between sites (raw: run_dir/name). For Galera
    the RTT between every pair of voters too: what its commit model needs."""
    data = lab.data
    first = data.spec.nodes[0]
    galera = data.spec.engine == "galera"
    voters = [n for n in data.spec.voters if galera and (n != data.spec.witness or data.witness)]
    peers = [n for n in voters if n != first] if galera \
        else [host for host, mode in data.spec.standbys]
    label = label or data.spec.engine
    points = []
    for delay in delays:
        set_delays(lab, delay)
        rtts = {peer: rtt_ms(lab, first, peer) for peer in peers}
        pairs = [[a, b, rtts[b][1] if a == first else rtt_ms(lab, a, b)[1]]
                 for i, a in enumerate(voters) for b in voters[i + 1:]]
        low, avg = rtts[peers[0]]
        farthest = max(rtts, key=lambda p: rtts[p][1])
        out = lab.node_run(first, dataapp.probe_argv(data.spec.engine,
                                                     data.nodes[first]["socket"],
                                                     PROBE_COMMITS), timeout=120).stdout
        probe = json.loads(out.strip().splitlines()[-1])
        points.append({"delay_ms": delay, "rtt_ms_min": low, "rtt_ms_avg": avg,
                       "rtt_ms_per_peer": {p: v[1] for p, v in rtts.items()},
                       "rtt_ms_pairs": pairs, "writer": first,
                       "farthest": farthest, "rtt_ms_farthest": rtts[farthest][1], **probe})
        log(f"[{label}] delay {delay} ms: RTT {avg:.2f} ms "
            f"({', '.join(f'{p} {v[1]:.2f}' for p, v in rtts.items())}), commit p50 "
            f"{sorted(probe['replicated'])[len(probe['replicated']) // 2]:.2f} ms "
            f"(local {sorted(probe['local'])[len(probe['local']) // 2]:.2f} ms)")
    write_json(run_dir / name, points)


def start_dci_load(lab, spec, seconds, case_dir):
    """A bulk TCP copy (iperf3) from a server of the first database node's site to one of the
    second's, for `seconds`: the DCI busy as a backup copy keeps it; the database traffic
    queues behind it (what QoS would prevent). Returns the Popens (server, client)."""
    topo = lab.topo

    def host_at(node):
        site = topo.host(node).switch
        others = [h.name for h in topo.hosts_at(site) if h.name not in spec.nodes]
        return (others or [node])[0]

    src, dst = host_at(spec.nodes[0]), host_at(spec.nodes[1])
    server = lab.popen(dst, traffic.iperf3_server_argv(LOAD_PORT), f"dci load server {dst}")
    traffic.wait_listening(lab, dst, LOAD_PORT)
    client = lab.popen(src, traffic.iperf3_client_argv(topo.host(dst).ip.ip, seconds + 1,
                                                       LOAD_PORT, omit=0, interval=0.5),
                       f"dci load {src}", stdout=case_dir / "dci-load.json")
    return [client, server]


def one_case(lab, ctx, variant, fault_name, case_dir, fresh=True):
    """One variant under one fault, on a fresh data tier (fresh=False: the one running, which
    nothing has faulted yet; raw files into case_dir)."""
    topo, opts, log = ctx.topo, ctx.opts, ctx.log
    case_dir.mkdir(parents=True)
    spec = spec_of(variant, topo)
    if fresh:
        took = lab.restart_data_tier(spec, case_dir / "data", payload=1024 * opts.payload)
        log(f"[{variant}] {fault_name}: data tier up in {took:.1f} s")
    set_delays(lab, opts.fault_delay)
    laggers = []
    if spec.engine == "postgresql":
        standby, primary = spec.standbys[0][0], spec.nodes[0]
        laggers = [lab.start_agent(node, dataapp.lag_argv(lab.data.nodes[node]["socket"],
                                                          case_dir / f"lag-{role}.jsonl",
                                                          role=role),
                                   f"lag {node}", log=case_dir / f"lag-{role}.log", wait=False)
                   for node, role in ((standby, "standby"), (primary, "primary"))]
        lab.wait_agents(laggers)
    service = topo.services[0]
    duration = FAULT_AT + (max(opts.after, PATRONI_AFTER_S) if spec.failover == "patroni"
                           else opts.after)
    load = start_dci_load(lab, spec, duration, case_dir) if opts.dci_load == "on" else []
    writers = [lab.start_agent(c.name, dataapp.write_argv(str(service.vip), service.port,
                                                          c.name, opts.rate, duration,
                                                          case_dir / f"writes-{c.name}.json"),
                               f"writer {c.name}", log=case_dir / f"writer-{c.name}.log",
                               stdin=subprocess.PIPE, wait=False)
               for c in topo.clients]
    lab.wait_agents(writers)
    fault, repair = fault_of(fault_name, topo)
    t0 = go(writers)
    memory = lab.memory_mb()          # the whole lab with its writes running (the fault waits)
    (_, t_fault), = run_timeline(lab.faults, [fault], t0)
    spread = lab.faults.spread_ms if fault.action == "power-off" else None
    log(f"[{variant}] t={t_fault - t0:.1f}s {fault}"
        + (f" (its ports went down within {spread} ms)" if spread is not None else ""))
    t_promote = (lab.data.runbook(lambda: any(w.poll() is None for w in writers), log,
                                  PROMOTE_AFTER_S) if spec.failover == "runbook"
                 and spec.engine == "postgresql" else None)
    for w in writers:
        w.wait(duration + 30)
    for proc in laggers + load:
        lab.stop_process(proc)
    # what each database holds at the end, as it is (before the repair lets them meet again)
    down = {h.name for h in topo.hosts if fault.action == "power-off"
            and topo.host(h.name).switch == fault.target}
    read = lab.data.record(case_dir, log=lambda m: log(f"[{variant}] {m}"))
    write_json(case_dir / "case.json", {
        "variant": variant, "fault_name": fault_name, "fault": str(fault), "t0": t0,
        "t_fault": t_fault, "t_promote": t_promote, "fault_spread_ms": spread,
        "fault_delay_ms": opts.fault_delay,
        "rate": opts.rate, "clients": [c.name for c in topo.clients],
        "nodes": list(spec.nodes), "down": sorted(down), "read": read,
        "site_of": {h.name: h.switch for h in topo.hosts}, "memory_mb": memory})
    lab.faults.inject(repair)
    if repair.action in ("power-on", "rejoin", "ungray"):
        lab.controller.wait(lambda s: all_up(topo, s), "every link live again after the repair",
                            30.0)
    result = datametrics.case_metrics(case_dir)
    log(f"[{variant}] {fault_name}: RPO {result['rpo_writes']} writes / {result['rpo_ms']} ms, "
        f"RTO {result['rto_ms']} ms, accepting after: {result['accepting_after'] or 'none'}")


# ------------------------------------------------------------------------------ analysis

def analyse_sweep(points, engine=None, sync=False):
    """Per delay: RTT, unloaded commit p50/p99 (replicated and local), the commit's cost
    beyond the local commit against one RTT, and what the engine's model predicts (model_ms:
    Galera, the local commit + EVS safe delivery over the measured RTTs between every pair of
    members, datametrics.galera_commit_ms; PostgreSQL, the local commit + one RTT to a
    synchronous standby, + nothing for an asynchronous one)."""
    out = []
    for p in points:
        replicated, local = sorted(p["replicated"]), sorted(p["local"])
        r50, l50 = datametrics.percentile(replicated, 50), datametrics.percentile(local, 50)
        model = None
        if engine == "galera" and p.get("rtt_ms_pairs"):
            model = l50 + datametrics.galera_commit_ms(
                p["writer"], {frozenset((a, b)): rtt for a, b, rtt in p["rtt_ms_pairs"]})
        elif engine == "postgresql":
            model = l50 + (p["rtt_ms_avg"] if sync else 0.0)
        out.append({"delay_ms": p["delay_ms"], "rtt_ms": p["rtt_ms_avg"],
                    "rtt_ms_min": p["rtt_ms_min"],
                    "members": 1 + len(p.get("rtt_ms_per_peer", {})),
                    "commit_ms_p50": round(r50, 3),
                    "commit_ms_p99": round(datametrics.percentile(replicated, 99), 3),
                    "local_ms_p50": round(l50, 3),
                    "replication_ms": round(r50 - l50, 3),
                    "replication_minus_rtt_ms": round(r50 - l50 - p["rtt_ms_avg"], 3),
                    "replication_rtts": round((r50 - l50) / p["rtt_ms_avg"], 2),
                    "model_ms": None if model is None else round(model, 3),
                    "commit_minus_model_ms": None if model is None else round(r50 - model, 3)})
    return out


analyse_case = datametrics.case_metrics       # one variant under one fault (pure)


def case_dir_of(run_dir, variant, fault_name):
    return Path(run_dir) / variant / fault_name


def analyse(run_dir):
    """metrics.json's content from the run folder's raw files alone (pure): a `variants`
    mapping keyed by variant name."""
    run_dir = Path(run_dir)
    params = json.loads((run_dir / "params.json").read_text())
    opts = ReplicationOptions.parse(params["options"])
    variants = {}
    for variant in opts.variants.split(","):
        engine = "galera" if variant == "galera" else "postgresql"

        def points_of(name):
            path = run_dir / variant / name
            return (analyse_sweep(json.loads(path.read_text()), engine,
                                  variant in ("pg-sync", "pg-patroni"))
                    if path.exists() else [])
        points = points_of("sweep.json")
        faults = {name: datametrics.case_metrics(case_dir_of(run_dir, variant, name))
                  for name in opts.faults.split(",")
                  if (case_dir_of(run_dir, variant, name) / "case.json").exists()}
        rpos = [f["rpo_writes"] for f in faults.values()]
        rtos = [f["rto_ms"] for f in faults.values()]
        before = [f["commit_ms"]["before"] for f in faults.values()]
        memory = [json.loads((case_dir_of(run_dir, variant, name) / "case.json").read_text())
                  .get("memory_mb") for name in faults]
        lags = [f["lag_ms"]["p50"] for f in faults.values() if f["lag_ms"] and f["lag_ms"]["p50"]
                is not None]
        variants[variant] = {
            "sweep": points, "faults": faults,
            **({"sweep_no_witness": points_of("sweep-no-witness.json")}
               if (run_dir / variant / "sweep-no-witness.json").exists() else {}),
            # the worst over the faults, under the names
            "rpo_writes": None if None in rpos else max(rpos, default=None),
            "rpo_ms": max((f["rpo_ms"] for f in faults.values() if f["rpo_ms"] is not None),
                          default=None),
            "rto_ms": None if None in rtos else max(rtos, default=None),
            "commit_ms_p50": max((b["p50"] for b in before if b["p50"] is not None),
                                 default=None),
            "commit_ms_p99": max((b["p99"] for b in before if b["p99"] is not None),
                                 default=None),
            "lag_ms_p50": max(lags, default=None),
            "divergent_writes": sum(f["divergent_writes"] for f in faults.values()),
            # RSS of the whole lab with its writes running, the largest over the faults
            "memory_mb": max((m for m in memory if m), key=lambda m: m["total"], default=None),
        }
    return {"topology": params["topology"]["name"], "fault_delay_ms": opts.fault_delay,
            "delays_ms": list(opts.delays), "rate_per_client": opts.rate,
            "promote_after_s": PROMOTE_AFTER_S, "suspect_timeout_s": databases.SUSPECT_S,
            "variants": variants}


def plot(run_dir):
    """Commit latency against the DCI RTT, and RPO/RTO per variant and fault."""
    run_dir = Path(run_dir)
    metrics = plots.read_metrics(run_dir)
    out_latency, out_loss = run_dir / "commit_latency.png", run_dir / "rpo_rto.png"
    plots.commit_latency(metrics["variants"], out_latency)
    plots.rpo_rto(metrics["variants"], out_loss)
    return [out_latency, out_loss]


def run(ctx):
    """One lab; per variant the delay sweep, then each fault on a fresh data tier (raw files
    only); then metrics.json, the figures and the summary from those files."""
    topo, opts, log = ctx.topo, ctx.opts, ctx.log
    validate(opts, topo)
    with ctx.open_lab() as lab:
        lab.attach_controller(intent_for(topo), bfd_ms=opts.bfd_ms, serving=[])
        for variant in opts.variants.split(","):
            folder = ctx.run_dir / variant
            folder.mkdir()
            log(f"[{variant}] starting its data tier")
            took = lab.restart_data_tier(spec_of(variant, topo), folder / "data",
                                         payload=1024 * opts.payload)
            log(f"[{variant}] data tier up in {took:.1f} s; commit latency sweep")
            sweep(lab, folder, opts.delays, log)
            if lab.data.spec.engine == "galera" and lab.data.spec.witness:
                # the same sweep without garbd (it leaves gracefully; the nodes keep quorum):
                # what the witness costs each commit
                lab.data.stop_witness()
                sweep(lab, folder, opts.delays, log, name="sweep-no-witness.json",
                      label=f"{variant} without its witness")
                lab.data.start_witness()
            for i, fault_name in enumerate(opts.faults.split(",")):
                one_case(lab, ctx, variant, fault_name,
                         case_dir_of(ctx.run_dir, variant, fault_name), fresh=i > 0)
        lab.data.stop()
    write_json(ctx.run_dir / "metrics.json", analyse(ctx.run_dir))
    plot(ctx.run_dir)
    return summarize(ctx.run_dir)


def _fmt(value, unit=""):
    return "-" if value is None else f"{value:g}{unit}"


def memory_line(variants):
    """One line: the whole lab's resident memory per variant, with its data tier's share."""
    return "memory (RSS of the whole lab, writes running; shared libraries counted per " \
        "process): " + ", ".join(
            f"{name} {m['total']:g} MB (data tier {m['data tier']:g} MB)"
            for name, v in variants.items() if (m := v.get("memory_mb")))


def summarize(run_dir):
    """The run's Summary from metrics.json: the targets checked."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    variants = metrics["variants"]
    sweep_rows = [(name + suffix, p["delay_ms"], f"{p['rtt_ms']:.2f}",
                   f"{p['local_ms_p50']:.2f}", f"{p['commit_ms_p50']:.2f}",
                   f"{p['commit_ms_p99']:.2f}", f"{p['replication_minus_rtt_ms']:+.2f}",
                   f"{p['replication_rtts']:.2f}" if "replication_rtts" in p else "-",
                   _fmt(p.get("model_ms")))
                  for name, v in variants.items()
                  for key, suffix in (("sweep", ""), ("sweep_no_witness", " (no witness)"))
                  for p in v.get(key) or []]
    fault_rows = []
    for name, v in variants.items():
        for fault, f in v["faults"].items():
            c = f["commit_ms"]
            fault_rows.append((
                name, f["fault"], _fmt(f["rpo_writes"]), _fmt(f["rpo_ms"]), _fmt(f["rto_ms"]),
                "/".join(_fmt(c[w]["p50"]) for w in ("before", "during", "after")),
                "/".join(_fmt(c[w]["p99"]) for w in ("before", "during", "after")),
                _fmt(f["lag_ms"]["at_fault"]) if f["lag_ms"] else "-",
                f["divergent_writes"],
                ", ".join(f"{s} {n}" for s, n in f["accepting_after"].items()) or "none"))
    text = "\n".join([
        "commit latency against the one-way delay between sites (unloaded commits on the "
        "first database node; commit-local-RTT: what replication adds beyond one RTT):",
        format_table(["variant", "delay ms", "RTT ms", "local p50 ms", "commit p50 ms",
                      "commit p99 ms", "commit-local-RTT ms", "RTTs added", "model ms"],
                     sweep_rows),
        "model: PostgreSQL sync = local + 1 RTT, async = local; Galera = local + EVS safe "
        "delivery over the measured RTTs between its members (1 RTT with two members, 1.5 "
        "with a witness as far as the other node: the writer waits until every member is "
        "known to hold the write set and everything before it)",
        "",
        f"faults (one-way delay between sites {metrics['fault_delay_ms']} ms, "
        f"{metrics['rate_per_client']} writes/s per client):",
        format_table(["variant", "fault", "rpo writes", "rpo ms", "rto ms",
                      "commit p50 ms b/d/a", "commit p99 ms b/d/a", "lag at fault ms",
                      "divergent", "accepting after"], fault_rows),
    ] + [f"{name} {f['fault']}: lost {f['rpo_writes']} acknowledged writes reaching back "
         f"{f['rpo_ms']:g} ms; the standby was {f['lag_ms']['at_fault']:g} ms behind at the "
         f"fault (receive lag)" + (
             f" and, once the WAL on the wire had arrived, missed what the primary wrote in "
             f"the last {f['wal_missing_ms']:g} ms before it (the loss is less by the time "
             "acknowledgements took to reach the clients: response p99 "
             f"{_fmt((f.get('response_ms') or {}).get('before', {}).get('p99'))} ms)"
             if f.get("wal_missing_ms") is not None else "")
         for name, v in variants.items() for f in v["faults"].values()
         if f["rpo_writes"] and f["lag_ms"] and f["lag_ms"]["at_fault"] is not None] + (
        [memory_line(variants)] if any(v.get("memory_mb") for v in variants.values()) else []
    ) + [f"plots: {run_dir / 'commit_latency.png'}, {run_dir / 'rpo_rto.png'}"])
    problems = []
    for name, v in variants.items():
        for fault, f in v["faults"].items():
            if name in ("pg-sync", "galera", "pg-patroni") and f["rpo_writes"]:
                problems.append(f"{name} {f['fault']}: {f['rpo_writes']} acknowledged writes "
                                "lost, which synchronous replication must never do")
            if f["rto_ms"] is None:
                problems.append(f"{name} {f['fault']}: a client never had a write acknowledged "
                                "after the fault")
            if name == "galera" and f["divergent_writes"]:
                problems.append(f"{name} {f['fault']}: {f['divergent_writes']} divergent writes "
                                "(split brain) with quorum on")
    return Summary(text, ok=not problems, problems=problems)
