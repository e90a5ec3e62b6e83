"""gslb: three ways to fail over, side by side: anycast, DNS-based global load balancing (and
what its TTL costs), and an L4-L7 load balancer (HAProxy) in each site.

On two-region, a GSLB (lab/agents/gslb.py, dnslib) answers web.lab with the nearest healthy site's
server by the client's subnet, health-checking every site. Clients resolve, keep the answer
for its TTL, and connect every 100 ms; dc1 powers off at 3 s. Variants, each in a fresh lab:

  anycast            clients connect to the VIP (the controller moves them)
  gslb ttl T         clients honour a T-second TTL
  gslb ttl T +C      clients keep answers C seconds beyond the TTL (as many resolvers do)
  haproxy            an HAProxy per site (lab/emulation/loadbalancers.py) serves the VIP
                     (anycast to the nearest LB) in front of its site's app servers, the
                     other site's as backup; dc1 powers off, its LB with it
  haproxy app-down   the same, but only dc1's app servers fail: dc1's LB stays and sends its
                     clients across the DCI to dc2's servers (the trombone)

Per variant: each affected client's failover time (fault to the first answer from a live
server), the attempts that failed meanwhile, the request time before the fault and once
served again (what the trombone adds), and the DCI traffic before and after the fault.
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
from lab.emulation import loadbalancers, traffic
from experiments.designs import dci_bytes
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
    haproxy: str = "on"                # the HAProxy variants (haproxy, haproxy app-down)


OPTIONS = GslbOptions


def add_arguments(parser):
    default = GslbOptions.default
    parser.add_argument("--ttls", type=int_list(1, 300), default=None, metavar="LIST",
                        help="GSLB TTLs to compare, seconds, 1 to 300 each (default "
                             f"{','.join(map(str, default('ttls')))}; --quick too)")
    parser.add_argument("--cache-extra", type=bounded(float, 0, 300), default=None, metavar="S",
                        help="how long the caching clients keep answers beyond the TTL, "
                             f"0 to 300 s (default {default('cache_extra'):g})")
    parser.add_argument("--haproxy", choices=("on", "off"), default=None,
                        help="run the HAProxy variants: dc1 powered off, and only dc1's app "
                             f"servers down (default {default('haproxy')})")


def validate(opts, topo):
    if not topo.services or "dc1" not in [s.name for s in topo.sites]:
        raise LabError(f"--topology {topo.name}: gslb needs a service and a site dc1")


HAPROXY, HAPROXY_APP_DOWN = "haproxy", "haproxy app-down"


def variants(opts):
    ttls, extra = list(opts.ttls), opts.cache_extra
    out = [("anycast", None, 0.0)] + [(f"gslb ttl {t}", t, 0.0) for t in ttls]
    out += [(f"gslb ttl {ttls[0]} +{extra:g}s cache", ttls[0], extra)]
    if getattr(opts, "haproxy", "off") == "on":
        out += [(HAPROXY, None, 0.0), (HAPROXY_APP_DOWN, None, 0.0)]
    return out


def lb_topology(topo):
    """The topology as the HAProxy variants see it: the VIP served by each site's load
    balancer (the controller health-checks and anycasts to those), not by the app servers."""
    lbs = [lb for lb, _ in loadbalancers.plan(topo).values()]
    service = dataclasses.replace(topo.services[0], servers=tuple(lbs))
    return dataclasses.replace(topo, services=(service,) + topo.services[1:])


def faults_of(label, topo):
    """The variant's faults: dc1 powers off; for `haproxy app-down` dc1's app servers (not
    its load balancer) go down instead."""
    if label == HAPROXY_APP_DOWN:
        _, apps = loadbalancers.plan(topo)["dc1"]
        return [Fault(FAULT_AT, "server-down", app) for app in apps]
    return [Fault(FAULT_AT, "power-off", "dc1")]


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
    balanced = label in (HAPROXY, HAPROXY_APP_DOWN)
    if balanced:
        topo = lb_topology(topo)
    sub = dataclasses.replace(ctx, run_dir=run_dir, topo=topo)
    service = topo.services[0]
    survivor = next(s.name for s in topo.sites if s.name != "dc1")
    gslb_host = topo.hosts_at(survivor)[-1]
    faults = faults_of(label, topo)
    with sub.open_lab() as lab:
        opts = ctx.opts
        lab.attach_controller(intent_for(topo, opts.mode, opts.vip_policy), bfd_ms=opts.bfd_ms,
                              serving=[] if balanced else None)
        lbs, rtts = None, None
        if balanced:
            lbs = loadbalancers.LoadBalancers(lab, run_dir)
            sites = lbs.start(service.port)
            # what the trombone should add: from dc1's load balancer, the other sites'
            # servers are farther than its own by (RTT to them - RTT to its own)
            lb = sites["dc1"][0]
            rtts = {app: rtt_of(lab, lb, topo.host(app).ip.ip)
                    for _, apps in sites.values() for app in apps}
            lab.controller.wait(lambda s: all(s["servers"].get(n) for n in service.servers),
                                "every load balancer healthy", 30.0)
        if ttl is not None:
            lab.start_agent(gslb_host.name, gslb_argv(topo, ttl, run_dir / "gslb.jsonl"),
                            f"gslb on {gslb_host.name}", log=run_dir / "gslb.log")
        clients = []
        for client in topo.clients:
            out = run_dir / f"attempts-{client.name}.json"
            target = ({"vip": service.vip} if ttl is None else
                      {"server": gslb_host.ip.ip, "name": DNS_NAME, "cache_extra": extra})
            proc = lab.start_agent(client.name, gslb.client_argv(service.port, duration, out,
                                                                 http=balanced, **target),
                                   f"client {client.name}", log=out.with_suffix(".log"),
                                   wait=False)
            clients.append((client.name, proc, out))
        lab.wait_agents([proc for _, proc, _ in clients])
        dci = [(time.time(), dci_bytes(lab))]
        instants = run_timeline(lab.faults, faults, time.time())
        t_fault = instants[0][1]
        dci.append((time.time(), dci_bytes(lab)))
        for _, proc, _ in clients:
            proc.wait(duration + 15)
        dci.append((time.time(), dci_bytes(lab)))
        if lbs:
            lbs.stop()
    write_json(run_dir / "variant.json", {"variant": label, "ttl": ttl, "cache_extra": extra,
                                          "fault": "; ".join(map(str, faults)),
                                          "t_fault": t_fault, "dci_bytes": dci,
                                          "check_inter_ms": loadbalancers.CHECK_INTER_MS
                                          if balanced else None, "lb_rtt_ms": rtts,
                                          "clients": [name for name, _, _ in clients]})
    result = analyse_variant(run_dir, {h.name: h.switch for h in topo.hosts})
    log(f"[{label}] affected {', '.join(result['affected']) or 'none'}: failover "
        f"{result['failover_s']} s, {result['failed_attempts']} failed requests"
        + (f", request {result['latency_ms_before']} -> {result['latency_ms_after']} ms"
           if result["latency_ms_after"] is not None else "")
        + f", DCI {result['dci_kbit_before']} -> {result['dci_kbit_after']} kbit/s")


def variant_dir(label):
    return label.replace(" ", "-").replace("+", "")


def analyse_variant(run_dir, site_of):
    """One variant's results from its folder's raw files (variant.json, each client's
    attempts) alone. site_of: {host: its switch}, to know which hosts the fault took down."""
    raw = json.loads((run_dir / "variant.json").read_text())
    faults = [Fault.parse(FAULT_AT, f.strip()) for f in raw["fault"].split(";")]
    failed_hosts = hosts_down(site_of, faults)[-1][1]
    per_client = {name: failover(json.loads((run_dir / f"attempts-{name}.json").read_text()),
                                 raw["t_fault"], failed_hosts)
                  for name in raw["clients"]}
    hit = {n: c for n, c in per_client.items() if c["hit"]}
    times = [c["failover_s"] for c in hit.values()]
    before = [c["latency_ms_before"] for c in hit.values() if c["latency_ms_before"] is not None]
    after = [c["latency_ms_after"] for c in hit.values() if c["latency_ms_after"] is not None]
    mean = (lambda xs: round(sum(xs) / len(xs), 3) if xs else None)
    # the added time's own precision: the clients' medians are independent estimates
    cis = [c.get(f"latency_ci_ms_{when}") for c in hit.values() for when in ("before", "after")
           if c["latency_ms_before"] is not None and c["latency_ms_after"] is not None]
    resolution = (round(sum(ci * ci for ci in cis) ** 0.5 / (len(cis) // 2), 3)
                  if cis and None not in cis else None)
    rates = dci_rates(raw.get("dci_bytes"))
    return {"variant": raw["variant"], "ttl": raw["ttl"], "cache_extra": raw["cache_extra"],
            "fault": raw["fault"], "clients": per_client, "affected": sorted(hit),
            "failover_s": None if any(t is None for t in times) else max(times, default=0.0),
            "failed_attempts": sum(c["failed_attempts"] for c in hit.values()),
            "latency_ms_before": mean(before), "latency_ms_after": mean(after),
            "added_latency_ms": (round(mean(after) - mean(before), 3)
                                 if before and after else None),
            "added_latency_resolution_ms": resolution,
            "dci_kbit_before": rates[0], "dci_kbit_after": rates[1],
            "check_inter_ms": raw.get("check_inter_ms"),
            "expected_added_ms": trombone_ms(raw.get("lb_rtt_ms"), site_of, failed_hosts)
            if hit and "app-down" in raw["variant"] else None}


def rtt_of(lab, src, dst, count=20):
    """Median RTT (ms) of `count` pings from host src to address dst (None: no answer)."""
    _, _, samples = traffic.ping(lab, src, dst, count=count, interval=0.02)
    values = sorted(rtt for _, rtt in samples)
    return values[(len(values) - 1) // 2] if values else None


def trombone_ms(rtts, site_of, failed_hosts):
    """What serving dc1's clients from another site should add per request: the median RTT
    from dc1's load balancer to the surviving remote servers minus that to its own servers
    (None without the RTTs)."""
    if not rtts:
        return None
    local = [v for h, v in rtts.items() if site_of.get(h) == "dc1" and v is not None]
    remote = [v for h, v in rtts.items() if site_of.get(h) != "dc1" and h not in failed_hosts
              and v is not None]
    if not local or not remote:
        return None
    return round(min(remote) - min(local), 3)


def dci_rates(samples):
    """(kbit/s before the fault, kbit/s after it) on every DCI port from [(t, bytes)] at the
    start, the fault and the end; (None, None) without them (older runs)."""
    if not samples or len(samples) < 3:
        return None, None
    (t0, b0), (t1, b1), (t2, b2) = samples[:3]
    rate = (lambda db, dt: round(8 * db / dt / 1000, 1) if dt > 0 else None)
    return rate(b1 - b0, t1 - t0), rate(b2 - b1, t2 - t1)


def analyse(run_dir):
    """metrics.json's content from the run folder's raw files alone (pure)."""
    run_dir = Path(run_dir)
    params = json.loads((run_dir / "params.json").read_text())
    site_of = {h["name"]: h["switch"] for h in params["topology"]["hosts"]}
    # a run from before the HAProxy variants has no folders for them
    return {"variants": [analyse_variant(run_dir / variant_dir(label), site_of)
                         for label, _, _ in variants(GslbOptions.parse(params["options"]))
                         if label not in (HAPROXY, HAPROXY_APP_DOWN)
                         or (run_dir / variant_dir(label) / "variant.json").exists()]}


def plot(run_dir):
    """Failover time per variant (anycast, the GSLB TTLs, HAProxy), and the request time
    before the fault and once served again."""
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


def _num(value, fmt="{:g}"):
    return "-" if value is None else fmt.format(value)


def summarize(run_dir):
    """The run's Summary from metrics.json."""
    run_dir = Path(run_dir)
    results = json.loads((run_dir / "metrics.json").read_text())["variants"]
    rows = [(r["variant"], r.get("fault", "power-off dc1"), ", ".join(r["affected"]) or "none",
             "never" if r["failover_s"] is None else f"{r['failover_s']:.2f}",
             r["failed_attempts"], _num(r.get("latency_ms_before")),
             _num(r.get("latency_ms_after")), _num(r.get("added_latency_ms"), "{:+g}"),
             f"{_num(r.get('dci_kbit_before'))} / {_num(r.get('dci_kbit_after'))}")
            for r in results]
    text = format_table(["variant", "fault", "clients hit", "failover s", "failed requests",
                         "request ms before", "request ms after", "added ms",
                         "DCI kbit/s before / after"], rows)
    for r in results:
        if r.get("check_inter_ms") and r["failover_s"] is not None:
            bound = 3 * r["check_inter_ms"] / 1000
            text += (f"\n{r['variant']}: failover {r['failover_s']:.3f} s against 3 x its "
                     f"{r['check_inter_ms']} ms check interval = {bound:g} s: "
                     + ("within" if r["failover_s"] <= bound else "over (a timing verdict)"))
        if r.get("expected_added_ms") is not None and r.get("added_latency_ms") is not None:
            res = r.get("added_latency_resolution_ms")
            text += (f"\n{r['variant']}: served across the DCI, requests took "
                     f"{r['added_latency_ms']:+.2f}"
                     + ("" if res is None else f" ± {res:.2f}") + " ms; the path is longer by "
                     f"{r['expected_added_ms']:.2f} ms (RTT from dc1's load balancer to the "
                     "remote server minus to its own)")
    text += f"\nplot: {run_dir / 'gslb.png'}"
    failed = [f"variant {r['variant']}: the clients the fault hit never reached a live server"
              for r in results if r["failover_s"] is None]
    return Summary(text, ok=not failed, problems=failed)
