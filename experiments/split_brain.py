"""split-brain: a two-site Galera cluster cut in two, and what a witness (or its absence, or
quorum turned off) decides.

On dual-active-data, a client writes to each site's app (client1 to dc1's, client2 to dc2's,
directly: each side has its own writer) --rate per second. --partition-at s in, dc2 is
isolated (every link between dc2 and the other sites cut at once) for --partition-s s, then
the links come back. Variants, each on a fresh data tier in the same lab:

  no-witness   two nodes, no arbitrator: each side has 1 vote of 2, neither a majority, so both
               stop taking writes (an outage, and no divergence)
  witness      garbd in dc3 (the third site): dc1 + garbd are 2 of 3 votes and go on; dc2
               stops
  quorum-off   two nodes with pc.ignore_quorum (and pc.ignore_sb): both sides go on taking
               writes that the other never sees: split brain, divergence counted (in red)

Per variant: per site the writes accepted during the partition and after the heal, each
client's RTO (the partition to its first acknowledged write after it), the divergent writes
(acknowledged during the partition by one side and missing from the other side's database),
and a timeline figure of the writes accepted per site through the partition and the heal.
"""

from dataclasses import dataclass
import json
import subprocess
import time
from pathlib import Path

from lab.agents import dataapp
from lab.analysis import datametrics, plots
from lab.analysis.results import format_table, write_json
from lab.cli.options import bounded, name_list
from lab.emulation import databases
from lab.emulation.controller import all_up, intent_for
from lab.emulation.network import go
from lab.errors import LabError
from lab.experiment import Options, Summary
from lab.model.topology import DataTier

NAME = "split-brain"
TOPOLOGY = "dual-active-data"
DESCRIPTION = ("a two-site Galera cluster partitioned: no witness, a garbd witness, and "
               "quorum turned off (divergence)")
VARIANTS = ("no-witness", "witness", "quorum-off")
APP_PORT_DEFAULT = 80


@dataclass(frozen=True)
class SplitBrainOptions(Options):
    variants: str = ",".join(VARIANTS)
    rate: int = 50                     # writes per second per client
    partition_at: float = 3.0          # s after the writers start
    partition_s: float = 8.0           # how long the partition lasts
    after: float = 5.0                 # s of writes after the heal
    QUICK = {"partition_s": 5.0, "after": 3.0}


OPTIONS = SplitBrainOptions
COMMON_OPTIONS = ("topology", "bfd_ms")


def add_arguments(parser):
    default = SplitBrainOptions.default
    parser.add_argument("--variants", type=name_list(VARIANTS), default=None, metavar="LIST",
                        help=f"variants, comma-separated (default {default('variants')})")
    parser.add_argument("--rate", type=bounded(int, 10, 1000), default=None, metavar="N",
                        help=f"writes per second per client, 10 to 1000 (default "
                             f"{default('rate')})")
    parser.add_argument("--partition-at", type=bounded(float, 1, 60), default=None,
                        metavar="S", help="when the partition starts, s after the writers, 1 to "
                                          f"60 (default {default('partition_at'):g})")
    parser.add_argument("--partition-s", type=bounded(float, 2, 300), default=None,
                        metavar="S", help="how long the partition lasts, 2 to 300 s (default "
                                          f"{default('partition_s'):g}, --quick "
                                          f"{default('partition_s', quick=True):g})")
    parser.add_argument("--after", type=bounded(float, 1, 120), default=None, metavar="S",
                        help="seconds of writes after the heal, 1 to 120 (default "
                             f"{default('after'):g}, --quick {default('after', quick=True):g})")


def validate(opts, topo):
    data = topo.data
    if data is None or data.engine != "galera" or len(data.nodes) != 2 or not data.witness:
        raise LabError(f"--topology {topo.name}: split-brain needs a Galera data tier of two "
                       "nodes in two sites and a witness in a third; use dual-active-data")
    databases.check_space(data)
    sites = [topo.host(n).switch for n in data.nodes]
    if len(set(sites)) != 2 or len(topo.clients) < 2 or not topo.services:
        raise LabError(f"--topology {topo.name}: split-brain needs the two nodes in two sites, "
                       "a service and two clients; use dual-active-data")


def spec_of(variant, topo):
    """(the data tier, quorum on?) of a variant."""
    nodes = tuple(topo.data.nodes)
    witness = topo.data.witness if variant == "witness" else None
    return DataTier("galera", nodes, witness=witness), variant != "quorum-off"


def app_server(topo, node):
    """The app a site's writer talks to: the first VIP server of the node's site."""
    site = topo.host(node).switch
    return next(n for n in topo.services[0].servers if topo.host(n).switch == site)


def one_variant(lab, ctx, variant, run_dir):
    topo, opts, log = ctx.topo, ctx.opts, ctx.log
    run_dir.mkdir(parents=True)
    spec, quorum = spec_of(variant, topo)
    took = lab.restart_data_tier(spec, run_dir / "data", quorum=quorum)
    log(f"[{variant}] data tier up in {took:.1f} s ({len(spec.voters)} votes"
        f"{'' if quorum else ', quorum ignored'})")
    node1, node2 = spec.nodes
    isolated = topo.host(node2).switch
    port = topo.services[0].port
    duration = opts.partition_at + opts.partition_s + opts.after
    writers, pairs = [], []
    for client, node in zip(topo.clients, spec.nodes):
        server = app_server(topo, node)
        out = run_dir / f"writes-{client.name}.json"
        writers.append(lab.start_agent(
            client.name, dataapp.write_argv(str(topo.host(server).ip.ip), port, client.name,
                                            opts.rate, duration, out),
            f"writer {client.name}", log=out.with_suffix(".log"), stdin=subprocess.PIPE,
            wait=False))
        pairs.append((client.name, server))
    lab.wait_agents(writers)
    t0 = go(writers)
    time.sleep(max(0.0, t0 + opts.partition_at - time.time()))
    t_partition = time.time()
    lab.faults.isolate_site(isolated, isolated=True)
    t_isolated = time.time()           # the partition in place: its commands all carried out
    log(f"[{variant}] t={t_partition - t0:.1f}s isolate {isolated} (in place after "
        f"{1000 * (t_isolated - t_partition):.0f} ms)")
    time.sleep(max(0.0, t_partition + opts.partition_s - time.time()))
    # each side's database as the partition left it (a node outside the primary component
    # is read as it is)
    for node in spec.nodes:
        rows = sorted(lab.data.present(node))
        databases.write_present(run_dir / f"present-{node}.tsv", rows)
    statuses = {node: lab.data.galera_status(node).get("wsrep_cluster_status")
                for node in spec.nodes}
    t_heal = time.time()
    lab.faults.isolate_site(isolated, isolated=False)
    log(f"[{variant}] t={t_heal - t0:.1f}s rejoin {isolated} (during the partition: "
        + ", ".join(f"{n} {s}" for n, s in statuses.items()) + ")")
    for w in writers:
        w.wait(duration + 30)
    lab.controller.wait(lambda s: all_up(topo, s), "every link live again after the heal", 30.0)
    write_json(run_dir / "variant.json", {
        "variant": variant, "quorum": quorum, "voters": list(spec.voters), "t0": t0,
        "t_partition": t_partition, "t_isolated": t_isolated, "t_heal": t_heal,
        "isolated": isolated,
        "nodes": list(spec.nodes), "clients": [c for c, _ in pairs],
        "writes_to": dict(pairs), "status_during_partition": statuses,
        "site_of": {h.name: h.switch for h in topo.hosts},
        "suspect_timeout_s": databases.SUSPECT_S})
    result = analyse_variant(run_dir)
    log(f"[{variant}] accepted during the partition: "
        + (", ".join(f"{s} {n}" for s, n in result["accepted_during"].items()) or "none")
        + f"; divergent writes {result['divergent_writes']}")


# ------------------------------------------------------------------------------ analysis

def in_place(raw):
    """When the partition was in place (its commands all carried out; older runs recorded
    only when it began)."""
    return raw.get("t_isolated", raw["t_partition"])


def analyse_variant(run_dir):
    """One variant from its folder's raw files alone."""
    run_dir = Path(run_dir)
    raw = json.loads((run_dir / "variant.json").read_text())
    ledgers = [json.loads((run_dir / f"writes-{c}.json").read_text()) for c in raw["clients"]]
    site_of = raw["site_of"]
    present = {site_of[n]: datametrics.read_present(run_dir / f"present-{n}.tsv")
               for n in raw["nodes"]}
    tp, th = raw["t_partition"], raw["t_heal"]
    start = min(ledger["start"] for ledger in ledgers)
    end = max(ledger["end"] for ledger in ledgers)
    _, per_client = datametrics.rto(ledgers, tp)
    client_site = {c: site_of[s] for c, s in raw["writes_to"].items()}
    rto_by_site = {client_site[c]: ms for c, ms in per_client.items()}
    # a side that accepted writes again before the heal: its RTO; else it waited for the heal.
    # Accepted during the partition: writes sent once it was in place (a write sent while the
    # isolation's commands were still being carried out could replicate to both sides: CI saw
    # one such write per side, "accepted without a majority", in no-witness)
    during = datametrics.accepted(ledgers, site_of, in_place(raw), th)
    outage = {}
    for ledger in ledgers:
        site = client_site[ledger["client"]]
        acked = sorted(w["t_ack"] for w in ledger["writes"] if w.get("t_ack")
                       and w["t_sent"] >= tp)
        first = acked[0] if acked else None
        outage[site] = None if first is None else round(1000 * (first - tp), 3)
    return {
        "variant": raw["variant"], "quorum": raw["quorum"], "voters": raw["voters"],
        "isolated": raw["isolated"],
        "status_during_partition": raw["status_during_partition"],
        "accepted_before": datametrics.accepted(ledgers, site_of, start, tp),
        "accepted_during": during, "accepted_after": datametrics.accepted(ledgers, site_of, th,
                                                                          end + 1),
        "sites_accepting_during": sorted(during),
        "rto_ms_per_site": {site: ms for site, ms in rto_by_site.items()},
        "first_ack_after_partition_ms": outage,
        "witness_side_rto_ms": (next((ms for site, ms in rto_by_site.items()
                                      if site != raw["isolated"]), None)
                                if raw["variant"] == "witness" else None),
        "suspect_timeout_s": raw["suspect_timeout_s"],
        "divergent_writes": datametrics.divergent_writes(ledgers, site_of, present,
                                                         in_place(raw), th),
        "partition_s": round(th - tp, 3),
    }


def analyse(run_dir):
    """metrics.json's content from the run folder's raw files alone (pure)."""
    run_dir = Path(run_dir)
    params = json.loads((run_dir / "params.json").read_text())
    opts = SplitBrainOptions.parse(params["options"])
    return {"topology": params["topology"]["name"], "rate_per_client": opts.rate,
            "variants": {v: analyse_variant(run_dir / v) for v in opts.variants.split(",")
                         if (run_dir / v / "variant.json").exists()}}


def timeline_data(run_dir):
    """Per variant: its partition and heal (s from the writers' start) and per site the
    acknowledged writes' send times (s), the divergent ones apart."""
    run_dir = Path(run_dir)
    out = {}
    for variant in json.loads((run_dir / "metrics.json").read_text())["variants"]:
        folder = run_dir / variant
        raw = json.loads((folder / "variant.json").read_text())
        site_of = raw["site_of"]
        present = {site_of[n]: datametrics.read_present(folder / f"present-{n}.tsv")
                   for n in raw["nodes"]}
        sites = {}
        for client in raw["clients"]:
            ledger = json.loads((folder / f"writes-{client}.json").read_text())
            for w in ledger["writes"]:
                if not w.get("t_ack"):
                    continue
                site = site_of.get(w["server"], w["server"])
                key = (client, w["seq"])
                diverged = (in_place(raw) <= w["t_sent"] < raw["t_heal"]
                            and any(key not in rows for s, rows in present.items()
                                    if s != site))
                sites.setdefault(site, {"ok": [], "divergent": []})[
                    "divergent" if diverged else "ok"].append(w["t_sent"] - raw["t0"])
        metrics = json.loads((run_dir / "metrics.json").read_text())["variants"][variant]
        if not metrics["divergent_writes"]:       # one side only: nothing diverged
            for lists in sites.values():
                lists["ok"] += lists["divergent"]
                lists["divergent"] = []
        out[variant] = {"partition": raw["t_partition"] - raw["t0"],
                        "heal": raw["t_heal"] - raw["t0"], "sites": sites,
                        "divergent_writes": metrics["divergent_writes"]}
    return out


def plot(run_dir):
    """Writes accepted per site through the partition and the heal, per variant."""
    run_dir = Path(run_dir)
    out = run_dir / "split_brain.png"
    plots.split_brain(timeline_data(run_dir), out)
    return [out]


def run(ctx):
    validate(ctx.opts, ctx.topo)
    with ctx.open_lab() as lab:
        lab.attach_controller(intent_for(ctx.topo), bfd_ms=ctx.opts.bfd_ms, serving=[])
        for variant in ctx.opts.variants.split(","):
            one_variant(lab, ctx, variant, ctx.run_dir / variant)
        lab.data.stop()
    write_json(ctx.run_dir / "metrics.json", analyse(ctx.run_dir))
    plot(ctx.run_dir)
    return summarize(ctx.run_dir)


def summarize(run_dir):
    run_dir = Path(run_dir)
    variants = json.loads((run_dir / "metrics.json").read_text())["variants"]
    rows = []
    for name, v in variants.items():
        rows.append((name, len(v["voters"]), "on" if v["quorum"] else "OFF",
                     ", ".join(f"{s} {n}" for s, n in v["accepted_during"].items()) or "none",
                     ", ".join(f"{s} {'-' if ms is None else f'{ms:g}'}"
                               for s, ms in sorted(v["rto_ms_per_site"].items())),
                     ("DIVERGED " if v["divergent_writes"] else "") + str(v["divergent_writes"]),
                     ", ".join(f"{s} {n}" for s, n in v["accepted_after"].items()) or "none"))
    text = "\n".join([
        format_table(["variant", "votes", "quorum", "accepted during the partition",
                      "rto ms per site", "divergent writes", "accepted after the heal"], rows),
        f"plot: {run_dir / 'split_brain.png'}"])
    problems = []
    for name, v in variants.items():
        if v["quorum"] and v["divergent_writes"]:
            problems.append(f"{name}: {v['divergent_writes']} divergent writes with quorum on")
        if name == "no-witness" and v["accepted_during"]:
            problems.append(f"no-witness: writes accepted during the partition "
                            f"({v['accepted_during']}) without a majority")
        if name == "witness" and sorted(v["accepted_during"]) != sorted(
                set(v["accepted_before"]) - {v["isolated"]}):
            problems.append(f"witness: the witness's side should keep accepting and the "
                            f"isolated {v['isolated']} stop; accepted {v['accepted_during']}")
        if name == "quorum-off" and not v["divergent_writes"]:
            problems.append("quorum-off: both sides should have diverged, and did not")
    return Summary(text, ok=not problems, problems=problems)
