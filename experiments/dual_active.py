"""dual-active: two active sites behind an anycast gateway, verified end to end.

Phase 1 (static L2 fabric): bring the topology up, check that every host reaches every other,
and measure each DCI and client-edge link on its own (RTT by ping, throughput by iperf3)
against its configuration: the fidelity table.
Phase 2 (controller): hand the switches to the os-ken controller (anycast gateway, anycast
VIPs, failover routing in --mode protection or restoration), check all-pairs reachability
through the gateway and which site serves each client's VIP traffic.
"""

import statistics

from lab import fabric, fidelity, traffic
from lab.controller import intent_for
from lab.experiment import Summary
from lab.results import format_table, write_csv, write_json

NAME = "dual-active"
TOPOLOGY = "dual-active"
DESCRIPTION = "two active sites: link fidelity, anycast gateway, anycast VIP placement"


def add_arguments(parser):
    parser.add_argument("--pings", type=int, default=None, metavar="N",
                        help="pings per link for the RTT check (default 40, --quick 20)")
    parser.add_argument("--iperf-seconds", type=float, default=None, metavar="S",
                        help="iperf3 seconds per link (default 4, --quick 2)")


def fidelity_phase(ctx, lab, pings, seconds):
    """All-pairs reachability and per-link RTT/throughput on the static fabric."""
    log, topo = ctx.log, ctx.topo
    log("checking all-pairs reachability")
    pairs = fidelity.all_pairs(lab)
    verified_s = log.elapsed()
    unreachable = [(s, d) for s, d, ok in pairs if not ok]
    log(f"sites up and verified in {verified_s:.1f}s: "
        f"{len(pairs) - len(unreachable)}/{len(pairs)} host pairs reachable")
    base = fidelity.base_rtt(lab)
    if base:
        log(f"base RTT through switch {base[0]} alone: {base[1]:.2f} ms")
    measurements, samples = [], []
    for link in sorted(topo.links, key=lambda l: (l.kind != "dci", l.name)):
        log(f"measuring {link.kind} link {link.name} ({link.a}-{link.b})")
        found, rtts = fidelity.measure_link(lab, link, pings=pings, seconds=seconds,
                                            run_dir=ctx.run_dir)
        measurements += found
        samples += [(link.name, seq, rtt) for seq, rtt in rtts]
        for m in found:
            log(f"  {m.metric}: configured {m.configured:g}, measured "
                f"{_num(m.measured)} -> {'ok' if m.ok else 'OFF'}")
    return pairs, verified_s, base, measurements, samples


def controller_phase(ctx, lab):
    """Controller ready, reachability through the gateway, VIP placement per client."""
    log, topo, options = ctx.log, ctx.topo, ctx.options
    mode, policy = options["mode"], options["vip_policy"]
    log(f"handing the switches to the controller ({mode}, VIP policy {policy}, "
        f"BFD {options['bfd_ms']} ms)")
    ready_s = lab.attach_controller(intent_for(topo, mode, policy), bfd_ms=options["bfd_ms"])
    log(f"controller ready in {ready_s:.1f}s: every switch, link, host and VIP server known")
    pairs = fidelity.all_pairs(lab)
    log(f"through the anycast gateway: {sum(ok for _, _, ok in pairs)}/{len(pairs)} "
        "host pairs reachable")
    placements = []
    for service in topo.services:
        sites = [topo.host(s).switch for s in service.servers]
        for client in topo.clients:
            expected = (service.primary if policy == "primary-backup"
                        else fabric.nearest_site(topo, client.switch, sites))
            server = traffic.vip_answer(lab, client.name, service.vip, service.port)
            site = topo.host(server).switch if server else None
            placements.append({"service": service.name, "client": client.name,
                               "server": server or None, "site": site,
                               "expected_site": expected, "ok": site == expected})
            log(f"  {client.name} -> {service.name} ({service.vip}): served by "
                f"{server or 'nobody'} in {site}, expected {expected}")
    return ready_s, pairs, placements


def run(ctx):
    quick = ctx.options.get("quick")
    pings = ctx.options.get("pings") or (20 if quick else 40)
    seconds = ctx.options.get("iperf_seconds") or (2.0 if quick else 4.0)
    log, topo, run_dir = ctx.log, ctx.topo, ctx.run_dir

    log(f"building {topo.name}: {len(topo.switches)} switches, {len(topo.hosts)} hosts, "
        f"{len(topo.links)} links ({ctx.platform.datapath_label} datapath, "
        f"{ctx.platform.delay_label})")
    with ctx.open_lab() as lab:
        built_s = log.elapsed()
        pairs, verified_s, base, measurements, samples = fidelity_phase(ctx, lab, pings, seconds)
        ready_s, routed_pairs, placements = controller_phase(ctx, lab)
        status = lab.controller_status()
        log("tearing down")
    torn_down_s = log.elapsed()

    unreachable = [(s, d) for s, d, ok in pairs if not ok]
    unrouted = [(s, d) for s, d, ok in routed_pairs if not ok]
    write_csv(run_dir / "reachability.csv", ["src", "dst", "reachable", "phase"],
              [p + ("l2-fabric",) for p in pairs] + [p + ("controller",) for p in routed_pairs])
    write_csv(run_dir / "rtt_samples.csv", ["link", "seq", "rtt_ms"], samples)
    write_csv(run_dir / "fidelity.csv",
              ["link", "metric", "configured", "measured", "tolerance", "ok", "detail"],
              [(m.link, m.metric, m.configured, m.measured, m.tolerance, m.ok, m.detail)
               for m in measurements])
    write_csv(run_dir / "vip_placement.csv", list(placements[0]) if placements else ["service"],
              [list(p.values()) for p in placements])
    metrics = {
        "seconds_to_up": round(built_s, 2),
        "seconds_to_verified": round(verified_s, 2),
        "seconds_total": round(torn_down_s, 2),
        "reachability": {"pairs": len(pairs), "reachable": len(pairs) - len(unreachable),
                         "unreachable": unreachable},
        "base_rtt_ms": {"switch": base[0], "rtt_ms": round(base[1], 3)} if base else None,
        "fidelity": [m.to_dict() for m in measurements],
        "fidelity_ok": all(m.ok for m in measurements),
        "rtt_jitter_ms": {name: round(statistics.pstdev([r for n, _, r in samples if n == name]), 3)
                          for name in {n for n, _, _ in samples}},
        "controller": {
            "mode": ctx.options["mode"], "vip_policy": ctx.options["vip_policy"],
            "bfd_ms": ctx.options["bfd_ms"], "seconds_to_ready": round(ready_s, 2),
            "reachability": {"pairs": len(routed_pairs),
                             "reachable": len(routed_pairs) - len(unrouted),
                             "unreachable": unrouted},
            "vip_placement": placements,
            "links_discovered": len(status["links"]) if status else 0,
            "hosts_located": len(status["hosts"]) if status else 0,
        },
    }
    write_json(run_dir / "metrics.json", metrics)

    rows = [(m.link, topo.link(m.link).kind, "RTT ms" if m.metric == "rtt_ms" else "TCP Mbit/s",
             f"{m.configured:g}", _num(m.measured), f"±{m.tolerance:.2g}",
             "ok" if m.ok else "OFF", m.detail) for m in measurements]
    vip_rows = [(p["client"], p["service"], p["server"] or "-", p["site"] or "-",
                 p["expected_site"], "ok" if p["ok"] else "WRONG") for p in placements]
    text = "\n".join([
        f"platform: {ctx.platform.datapath_label} datapath ({ctx.platform.datapath_reason}); "
        f"delay by {ctx.platform.delay_label} ({ctx.platform.delay_reason})",
        f"reachability: {metrics['reachability']['reachable']}/{len(pairs)} host pairs; "
        f"up in {built_s:.1f}s, verified in {verified_s:.1f}s",
        (f"base RTT through one switch ({base[0]}): {base[1]:.2f} ms, part of every measured RTT"
         if base else ""),
        "",
        format_table(["link", "kind", "metric", "configured", "measured", "tolerance", "verdict",
                      "path"], rows),
        "",
        f"controller ({ctx.options['mode']}): ready in {ready_s:.1f}s; through the anycast "
        f"gateway {len(routed_pairs) - len(unrouted)}/{len(routed_pairs)} host pairs reachable",
        format_table(["client", "service", "served by", "site", "expected", "verdict"], vip_rows),
    ])
    problems = [f"{s} cannot reach {d}" for s, d in unreachable]
    problems += [f"{s} cannot reach {d} through the gateway" for s, d in unrouted]
    problems += [f"{p['client']}: {p['service']} served from {p['site']}, expected "
                 f"{p['expected_site']}" for p in placements if not p["ok"]]
    problems += [f"link {m.link}: {m.metric} off ({_num(m.measured)} vs {m.configured:g} "
                 f"±{m.tolerance:.2g})" for m in measurements if not m.ok]
    ok = not unreachable and not unrouted and all(p["ok"] for p in placements)
    return Summary(text, ok=ok, problems=problems)


def _num(value):
    return "-" if value is None else f"{value:.2f}"
