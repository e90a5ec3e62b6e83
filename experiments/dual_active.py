"""dual-active: two sites up, verified, and every link's delay and bandwidth checked.

Brings the dual-active topology up, checks that every host reaches every other, then measures
each DCI and client-edge link on its own (RTT by ping, throughput by iperf3) against its
configuration and writes a fidelity table with the parameters and platform facts.
"""

import statistics

from lab import fidelity
from lab.experiment import Summary
from lab.results import format_table, write_csv, write_json

NAME = "dual-active"
TOPOLOGY = "dual-active"
DESCRIPTION = "two active sites: bring up, verify reachability, check link fidelity"


def add_arguments(parser):
    parser.add_argument("--pings", type=int, default=None, metavar="N",
                        help="pings per link for the RTT check (default 40, --quick 20)")
    parser.add_argument("--iperf-seconds", type=float, default=None, metavar="S",
                        help="iperf3 seconds per link (default 4, --quick 2)")


def run(ctx):
    quick = ctx.options.get("quick")
    pings = ctx.options.get("pings") or (20 if quick else 40)
    seconds = ctx.options.get("iperf_seconds") or (2.0 if quick else 4.0)
    log, topo, run_dir = ctx.log, ctx.topo, ctx.run_dir
    measurements, samples = [], []

    log(f"building {topo.name}: {len(topo.switches)} switches, {len(topo.hosts)} hosts, "
        f"{len(topo.links)} links ({ctx.platform.datapath_label} datapath, "
        f"{ctx.platform.delay_label})")
    with ctx.open_lab() as lab:
        built_s = log.elapsed()
        log("checking all-pairs reachability")
        pairs = fidelity.all_pairs(lab)
        verified_s = log.elapsed()
        unreachable = [(s, d) for s, d, ok in pairs if not ok]
        log(f"sites up and verified in {verified_s:.1f}s: "
            f"{len(pairs) - len(unreachable)}/{len(pairs)} host pairs reachable")
        base = fidelity.base_rtt(lab)
        if base:
            log(f"base RTT through switch {base[0]} alone: {base[1]:.2f} ms")
        for link in sorted(topo.links, key=lambda l: (l.kind != "dci", l.name)):
            log(f"measuring {link.kind} link {link.name} ({link.a}-{link.b})")
            found, rtts = fidelity.measure_link(lab, link, pings=pings, seconds=seconds,
                                                run_dir=run_dir)
            measurements += found
            samples += [(link.name, seq, rtt) for seq, rtt in rtts]
            for m in found:
                log(f"  {m.metric}: configured {m.configured:g}, measured "
                    f"{_num(m.measured)} -> {'ok' if m.ok else 'OFF'}")
        log("tearing down")
    torn_down_s = log.elapsed()

    write_csv(run_dir / "reachability.csv", ["src", "dst", "reachable"], pairs)
    write_csv(run_dir / "rtt_samples.csv", ["link", "seq", "rtt_ms"], samples)
    write_csv(run_dir / "fidelity.csv",
              ["link", "metric", "configured", "measured", "tolerance", "ok", "detail"],
              [(m.link, m.metric, m.configured, m.measured, m.tolerance, m.ok, m.detail)
               for m in measurements])
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
    }
    write_json(run_dir / "metrics.json", metrics)

    rows = [(m.link, topo.link(m.link).kind, "RTT ms" if m.metric == "rtt_ms" else "TCP Mbit/s",
             f"{m.configured:g}", _num(m.measured), f"±{m.tolerance:.2g}",
             "ok" if m.ok else "OFF", m.detail) for m in measurements]
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
    ])
    problems = [f"{s} cannot reach {d}" for s, d in unreachable]
    problems += [f"link {m.link}: {m.metric} off ({_num(m.measured)} vs {m.configured:g} "
                 f"±{m.tolerance:.2g})" for m in measurements if not m.ok]
    return Summary(text, ok=not unreachable, problems=problems)


def _num(value):
    return "-" if value is None else f"{value:.2f}"
