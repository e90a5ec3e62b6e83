"""gslb: DNS-based global load balancing against anycast, and what the TTL costs.

On two-region, a GSLB (lab/agents/gslb.py, dnslib) answers web.lab with the nearest healthy site's
server by the client's subnet, health-checking every site. Clients resolve, keep the answer
for its TTL, and connect every 100 ms; dc1 powers off at 3 s. Variants, each in a fresh lab:

  anycast            clients connect to the VIP (the controller moves them)
  gslb ttl T         clients honour a T-second TTL
  gslb ttl T +C      clients keep answers C seconds beyond the TTL (as many resolvers do)

Per variant: each affected client's failover time (fault to the first answer from a live
site) and the attempts that failed meanwhile.
"""

import dataclasses
from dataclasses import dataclass
import json
import time
from pathlib import Path

from lab.analysis import plots
from lab.emulation.controller import intent_for
from lab.errors import LabError
from lab.experiment import Options, Summary
from lab.emulation.fabric import latencies
from lab.emulation.faults import run_timeline
from lab.model.faults import Fault, hosts_down
from lab.agents import gslb
from lab.agents.gslb import failover
from lab.cli.options import bounded, int_list
from lab.analysis.results import format_table, write_json

NAME = "gslb"
TOPOLOGY = "two-region"
DESCRIPTION = "DNS GSLB vs anycast failover, and the effect of the TTL and of caching clients"
FAULT_AT = 3.0
DNS_NAME = "web.lab"


AFTER_S, QUICK_AFTER_S = 5.0, 3.0      # seconds of traffic after the fault (beyond TTL + cache)


@dataclass(frozen=True)
class GslbOptions(Options):
    ttls: tuple = (1, 5)               # GSLB TTLs to compare, s
    cache_extra: float = 8.0           # how long caching clients keep answers beyond the TTL, s


OPTIONS = GslbOptions


def add_arguments(parser):
    default = GslbOptions.default
    parser.add_argument("--ttls", type=int_list(1, 300), default=None, metavar="LIST",
                        help="GSLB TTLs to compare, seconds, 1 to 300 each (default "
                             f"{','.join(map(str, default('ttls')))}; --quick too)")
    parser.add_argument("--cache-extra", type=bounded(float, 0, 300), default=None, metavar="S",
                        help="how long the caching clients keep answers beyond the TTL, "
                             f"0 to 300 s (default {default('cache_extra'):g})")


def validate(opts, topo):
    if not topo.services or "dc1" not in [s.name for s in topo.sites]:
        raise LabError(f"--topology {topo.name}: gslb needs a service and a site dc1")


def variants(opts):
    ttls, extra = list(opts.ttls), opts.cache_extra
    out = [("anycast", None, 0.0)] + [(f"gslb ttl {t}", t, 0.0) for t in ttls]
    return out + [(f"gslb ttl {ttls[0]} +{extra:g}s cache", ttls[0], extra)]


def variant_duration(opts, ttl, extra):
    """Seconds of client traffic: the fault, then the TTL, the cache extra and a tail (the
    answers' expiry depends on when they were fetched: the cache extra cannot be shortened)."""
    after = QUICK_AFTER_S if opts.quick else AFTER_S
    return FAULT_AT + after + (ttl or 0) + extra


def gslb_argv(topo, ttl, log):
    service = topo.services[0]
    sites = {s.name: topo.hosts_at(s.name)[0].ip.ip for s in topo.sites}
    proximity = {}
    for edge in (s for s in topo.switches if s.kind == "edge"):
        dist = latencies(topo, edge.name)
        proximity[edge.subnet] = sorted(sites, key=lambda n: (dist.get(n, float("inf")), n))
    return gslb.serve_argv(DNS_NAME, ttl, sites, proximity, service.port, log)


def one_variant(ctx, label, ttl, extra, duration):
    topo, log = ctx.topo, ctx.log
    run_dir = ctx.run_dir / variant_dir(label)
    run_dir.mkdir()
    sub = dataclasses.replace(ctx, run_dir=run_dir)
    service = topo.services[0]
    survivor = next(s.name for s in topo.sites if s.name != "dc1")
    gslb_host = topo.hosts_at(survivor)[-1]
    fault = Fault(FAULT_AT, "power-off", "dc1")
    with sub.open_lab() as lab:
        opts = ctx.opts
        lab.attach_controller(intent_for(topo, opts.mode, opts.vip_policy), bfd_ms=opts.bfd_ms)
        if ttl is not None:
            lab.start_agent(gslb_host.name, gslb_argv(topo, ttl, run_dir / "gslb.jsonl"),
                            f"gslb on {gslb_host.name}", log=run_dir / "gslb.log")
        clients = []
        for client in topo.clients:
            out = run_dir / f"attempts-{client.name}.json"
            target = ({"vip": service.vip} if ttl is None else
                      {"server": gslb_host.ip.ip, "name": DNS_NAME, "cache_extra": extra})
            proc = lab.start_agent(client.name, gslb.client_argv(service.port, duration, out,
                                                                 **target),
                                   f"client {client.name}", log=out.with_suffix(".log"),
                                   wait=False)
            clients.append((client.name, proc, out))
        lab.wait_agents([proc for _, proc, _ in clients])
        (_, t_fault), = run_timeline(lab.faults, [fault], time.time())
        for _, proc, _ in clients:
            proc.wait(duration + 15)
    write_json(run_dir / "variant.json", {"variant": label, "ttl": ttl, "cache_extra": extra,
                                          "fault": str(fault), "t_fault": t_fault,
                                          "clients": [name for name, _, _ in clients]})
    result = analyse_variant(run_dir, {h.name: h.switch for h in topo.hosts})
    log(f"[{label}] affected {', '.join(result['affected']) or 'none'}: failover "
        f"{result['failover_s']} s, {result['failed_attempts']} failed connections")


def variant_dir(label):
    return label.replace(" ", "-").replace("+", "")


def analyse_variant(run_dir, site_of):
    """One variant's results from its folder's raw files (variant.json, each client's
    attempts) alone. site_of: {host: its switch}, to know which hosts the fault took down."""
    raw = json.loads((run_dir / "variant.json").read_text())
    fault = Fault.parse(FAULT_AT, raw["fault"])
    (_, failed_hosts), = hosts_down(site_of, [fault])
    per_client = {name: failover(json.loads((run_dir / f"attempts-{name}.json").read_text()),
                                 raw["t_fault"], failed_hosts)
                  for name in raw["clients"]}
    hit = {n: c for n, c in per_client.items() if c["hit"]}
    times = [c["failover_s"] for c in hit.values()]
    return {"variant": raw["variant"], "ttl": raw["ttl"], "cache_extra": raw["cache_extra"],
            "clients": per_client, "affected": sorted(hit),
            "failover_s": None if any(t is None for t in times) else max(times, default=0.0),
            "failed_attempts": sum(c["failed_attempts"] for c in hit.values())}


def analyse(run_dir):
    """metrics.json's content from the run folder's raw files alone (pure)."""
    run_dir = Path(run_dir)
    params = json.loads((run_dir / "params.json").read_text())
    site_of = {h["name"]: h["switch"] for h in params["topology"]["hosts"]}
    return {"variants": [analyse_variant(run_dir / variant_dir(label), site_of)
                         for label, _, _ in variants(GslbOptions.parse(params["options"]))]}


def plot(run_dir):
    """Failover time per variant: anycast against the GSLB TTLs."""
    out = run_dir / "gslb.png"
    plots.gslb(plots.read_metrics(run_dir)["variants"], out)
    return [out]


def run(ctx):
    """Every variant in its own lab (raw files only), then metrics.json, the figure and the
    summary from those files."""
    validate(ctx.opts, ctx.topo)
    for label, ttl, extra in variants(ctx.opts):
        one_variant(ctx, label, ttl, extra, variant_duration(ctx.opts, ttl, extra))
    write_json(ctx.run_dir / "metrics.json", analyse(ctx.run_dir))
    plot(ctx.run_dir)
    return summarize(ctx.run_dir)


def summarize(run_dir):
    """The run's Summary from metrics.json."""
    run_dir = Path(run_dir)
    results = json.loads((run_dir / "metrics.json").read_text())["variants"]
    rows = [(r["variant"], ", ".join(r["affected"]) or "none",
             "never" if r["failover_s"] is None else f"{r['failover_s']:.2f}",
             r["failed_attempts"]) for r in results]
    text = (format_table(["variant", "clients dc1 served", "failover s", "failed connections"],
                         rows) + f"\nplot: {run_dir / 'gslb.png'}")
    failed = [f"variant {r['variant']}: the clients dc1 served never reached a live site"
              for r in results if r["failover_s"] is None]
    return Summary(text, ok=not failed, problems=failed)
