"""dual-active: two active sites behind an anycast gateway, verified end to end.

Phase 1 (static L2 fabric): bring the topology up, check that every host reaches every other,
and measure each DCI and client-edge link on its own (RTT by ping, throughput by iperf3)
against its configuration: the fidelity table.
Phase 2 (controller): hand the switches to the os-ken controller (anycast gateway, anycast
VIPs, failover routing in --mode protection or restoration), check all-pairs reachability
through the gateway and which site serves each client's VIP traffic.
Phase 3 (faults): probe streams from every client to every VIP and east-west between the
sites (1000 packets/s each), iperf3 replication traffic on the DCI and client traffic to the
VIP, and the fault timeline (default: cut the primary DCI link and heal it, gray-fail it and
recover, power a site off and on). Per fault: which streams lost traffic, outage, loss,
convergence, throughput before/during/after, and each site's share of client traffic.
"""

import csv
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from lab.analysis import fidelity, metrics as m_, plots
from lab.emulation import fabric, probe, traffic
from lab.emulation.controller import GATEWAY_MAC, intent_for
from lab.errors import LabError
from lab.experiment import Options, Summary
from lab.emulation.faults import run_timeline
from lab.model.faults import Fault, hosts_down, parse_faults
from lab.cli.options import bounded
from lab.analysis.results import format_table, write_csv, write_json
from lab.emulation import streams
from lab.emulation.streams import IperfTimeline, ProbeSet

NAME = "dual-active"
TOPOLOGY = "dual-active"
DESCRIPTION = "two active sites: fidelity, anycast gateway and VIPs, failover under faults"
# each fault gets 2-3 s: its outage, convergence and the link's repair fit with room to spare.
# A healed link is in use within ms (proven by LLDP), but its BFD session is up only 0.9-1.9 s
# later (RFC 5880: once a second while down) and detects at its fast rate about a second after
# that: a gray failure 2-2.5 s after a heal was seen in 0.13-0.51 s in 6 of 26 runs here, 3 s
# after in < 0.1 s in 17 of 17. So the gray comes 3 s after the heal.
FAULTS = ("2s cut dci-a; 4s heal dci-a; 7s gray dci-a; 9s ungray dci-a; "
          "11.5s power-off dc1; 14s power-on dc1")
DURATION = 17.0
QUICK_FAULTS = "1s cut dci-a; 2s heal dci-a; 5s gray dci-a; 6s ungray dci-a"
QUICK_DURATION = 7.0
# on an emulated CPU BFD is paced to 300 ms (probe.paced_bfd_ms): a gray failure takes ~0.9 s
# to see, so --quick gives it 2 s there, as it had before
QUICK_PACED_FAULTS = "1s cut dci-a; 2s heal dci-a; 5s gray dci-a; 7s ungray dci-a"
QUICK_PACED_DURATION = 8.0
GUARD_S = 0.02       # probes sent this close to the next fault may be caught by it in flight


@dataclass(frozen=True)
class DualActiveOptions(Options):
    bfd_ms: int = 30                   # detection in 90 ms at ~9% of a core (bench/bfd_curve.py)
    pings: int = 40                    # pings per link for the RTT check
    iperf_seconds: float = 2.0         # iperf3 seconds per link
    probe_rate: float = 1000.0         # probe packets per second per stream
    duration: float = DURATION         # seconds of traffic for the fault timeline
    faults: str = FAULTS               # the fault timeline
    QUICK = {"iperf_seconds": 1.0, "duration": QUICK_DURATION, "faults": QUICK_FAULTS}


OPTIONS = DualActiveOptions


def add_arguments(parser):
    default = DualActiveOptions.default
    parser.add_argument("--pings", type=bounded(int, 3, 10000), default=None, metavar="N",
                        help="pings per link for the RTT check (twice: calibration, then the "
                             f"check), 3 to 10000 (default {default('pings')})")
    parser.add_argument("--iperf-seconds", type=bounded(float, 1, 600), default=None,
                        metavar="S", help="iperf3 seconds per link, 1 to 600 (default "
                                          f"{default('iperf_seconds'):g}, --quick "
                                          f"{default('iperf_seconds', quick=True):g})")
    parser.add_argument("--probe-rate", type=bounded(float, 1, 10000), default=None,
                        metavar="PPS", help="probe packets per second per stream, 1 to 10000 "
                                            f"(default {default('probe_rate'):g})")
    parser.add_argument("--duration", type=bounded(float, 1, 3600), default=None, metavar="S",
                        help=f"seconds of traffic for the fault timeline, 1 to 3600 (default "
                             f"{default('duration'):g}, --quick {default('duration', quick=True):g})")
    parser.add_argument("--faults", default=None, metavar="TIMELINE",
                        help=f"fault timeline, e.g. '3s cut dci-a; 6s heal dci-a', or 'none' "
                             f"(traffic only; default: {default('faults')}); actions: cut heal "
                             "gray ungray power-off power-on isolate rejoin server-down "
                             "server-up "
                             "controller-stop controller-start")


def timeline(opts):
    """(fault timeline, seconds of traffic) this run uses: the options', except that --quick
    left at its own timeline on an emulated CPU, where BFD is paced, uses QUICK_PACED."""
    if (opts.quick and (opts.faults, opts.duration) == (QUICK_FAULTS, QUICK_DURATION)
            and probe.paced_bfd_ms(opts.bfd_ms) != opts.bfd_ms):
        return QUICK_PACED_FAULTS, QUICK_PACED_DURATION
    return opts.faults, opts.duration


def validate(opts, topo):
    """The fault timeline against the topology and the duration, before anything is built."""
    text, duration = timeline(opts)
    faults = parse_faults(text, topo)
    late = [f for f in faults if f.at >= duration]
    if late:
        raise LabError(f"--faults: {late[0]} at {late[0].at:g}s is not before the end of the "
                       f"traffic (--duration {duration:g}s); use a longer --duration")
    return faults


def fidelity_phase(ctx, lab, pings, seconds, before_measuring=None):
    """All-pairs reachability and per-link RTT/throughput on the static fabric.
    before_measuring(): called once the pairs are checked, before the links are measured."""
    log, topo = ctx.log, ctx.topo
    log("checking all-pairs reachability")
    pairs = fidelity.all_pairs(lab)
    verified_s = log.elapsed()
    if before_measuring:
        before_measuring()
    unreachable = [(s, d) for s, d, ok in pairs if not ok]
    log(f"sites up and verified in {verified_s:.1f}s: "
        f"{len(pairs) - len(unreachable)}/{len(pairs)} host pairs reachable")
    base = lab.base_rtt
    if base:
        log(f"base RTT of the switch path (over {base['link']} with no delay): "
            f"{base['rtt_ms']:.2f} ms; every delay element adds its delay less "
            f"{base['compensation_ms']:.2f} ms each way")
    links = sorted(topo.links, key=lambda l: (l.kind != "dci", l.name))

    def measuring(group):
        log(f"measuring {', '.join(f'{l.kind} link {l.name} ({l.a}-{l.b})' for l in group)}"
            + (" (RTTs at once, throughput one by one)" if len(group) > 1 else ""))

    def measured(link, results):
        for m in results:
            log(f"  {link.name} {m.metric}: configured {m.configured:g}, expected "
                f"{m.expected:g}, measured {_num(m.measured)} -> {'ok' if m.ok else 'OFF'}")

    found = fidelity.measure_links(lab, links, pings=pings, seconds=seconds, run_dir=ctx.run_dir,
                                   measuring=measuring, measured=measured)
    measurements, samples = [], []
    for link in links:                   # in the table's order, whatever the rounds' order
        results, rtts = found[link.name]
        measurements += results
        samples += [(link.name, seq, rtt) for seq, rtt in rtts]
    return pairs, verified_s, base, measurements, samples


def controller_phase(ctx, lab, opts):
    """Controller ready, reachability through the gateway, VIP placement per client."""
    log, topo = ctx.log, ctx.topo
    mode, policy = opts.mode, opts.vip_policy
    log(f"handing the switches to the controller ({mode}, VIP policy {policy}, "
        f"BFD {opts.bfd_ms} ms)")
    ready_s = lab.attach_controller(intent_for(topo, mode, policy), bfd_ms=opts.bfd_ms)
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


def traffic_phase(ctx, lab, faults, duration, rate):
    """Probe streams and iperf3 through the fault timeline; raw samples into the run folder."""
    log, topo, run_dir = ctx.log, ctx.topo, ctx.run_dir
    probes = ProbeSet(lab, run_dir, GATEWAY_MAC, rate=rate)
    for service in topo.services:
        for client in topo.clients:
            probes.add(f"{client.name}>{service.name}", client.name, service.vip)
    sites = topo.sites
    for a, b in zip(sites, sites[1:] + sites[:1]) if len(sites) > 1 else []:
        src, dst = topo.hosts_at(a.name)[0], topo.hosts_at(b.name)[-1]
        probes.add(f"{src.name}>{dst.name}", src.name, dst.ip.ip)
    probes.start_receivers([h.name for h in topo.servers], wait=False)
    probes.spawn_senders(duration)         # ready while the iperf3 flows start
    iperfs = []
    dci = min((l.bw for l in topo.dci_links if l.bw), default=100)
    if len(sites) > 1:
        src, dst = topo.hosts_at(sites[0].name)[0], topo.hosts_at(sites[1].name)[-1]
        iperfs.append(IperfTimeline(lab, run_dir, "replication", src.name, [dst.name],
                                    dst.ip.ip, round(0.2 * dci, 1), 5201))
    if topo.services and topo.clients:
        service = topo.services[0]
        iperfs.append(IperfTimeline(lab, run_dir, f"{topo.clients[0].name}>{service.name}",
                                    topo.clients[0].name, list(service.servers), service.vip,
                                    10, 5202))
    log(f"traffic: {len(probes.streams)} probe streams at {rate:g}/s, "
        f"{len(iperfs)} iperf3 flows, {duration:g}s, {len(faults)} faults")
    for flow in iperfs:
        flow.listen()
    t0 = probes.start(duration)
    for flow in iperfs:       # right after the probes: they end with them (whole seconds)
        flow.start(math.ceil(duration))

    def progress(now):
        log(f"  t={now - t0:4.1f}s live loss {100 * probes.live_loss(now):.1f}%")

    done = run_timeline(lab.faults, faults, t0, until=duration, every=progress,
                        announce=lambda fault, t: log(f"  t={t - t0:4.1f}s fault: {fault}"))
    rows, summaries = probes.collect()
    throughput = {flow.name: flow.collect()[0] for flow in iperfs}
    return probes, t0, done, rows, summaries, throughput


def analyse_streams(hosts, streams, t0, duration, done, rows, summaries, throughput):
    """Per-stream totals and per-fault impact from the raw samples (pure).

    hosts: the topology's hosts (name, switch, ip, role: params.json); streams: Stream-like
    (stream, name, src, dst_ip); done: [(Fault, t injected)]; rows: (stream, seq, sent,
    received, host); summaries: each sender's summary by stream; throughput: {flow: [(t, mbit)]}."""
    by_stream = {}
    for row in rows:
        by_stream.setdefault(row[0], []).append(row)
    stats = [m_.stream_stats(s.stream, s.name, by_stream.get(s.stream, []), summaries[s.stream])
             for s in streams]
    site_of = {h["name"]: h["switch"] for h in hosts}
    clients = {h["name"] for h in hosts if h["role"] == "client"}
    client_streams = {s.stream for s in streams if s.src in clients}
    client_rows = [r for r in rows if r[0] in client_streams]
    replication = throughput.get("replication", [])
    impacts, shares = [], []
    first = done[0][1] if done else t0 + duration
    shares.append({"phase": "before faults", "share": m_.site_share(client_rows, site_of,
                                                                     t0 + 0.5, first)})
    # hosts powered off or down: their own streams cannot recover
    down_sets = hosts_down(site_of, [fault for fault, _ in done])
    host_ip = {h["ip"].split("/")[0]: h["name"] for h in hosts}

    def endpoint_in(stream, hosts):
        return stream.src in hosts or host_ip.get(stream.dst_ip) in hosts

    windows = m_.fault_windows([(fault.at, t) for fault, t in done], t0 + duration)
    for i, (fault, injected) in enumerate(done):
        was_down, down = down_sets[i]
        t, t_end = windows[i]
        per_stream = {}
        for s in streams:
            summary = summaries[s.stream]
            impact = m_.fault_impact(by_stream.get(s.stream, []), t, t_end, summary["start"],
                                     summary["target_rate"], summary["sent"], guard=GUARD_S)
            impact["endpoint_down"] = endpoint_in(s, down)
            if endpoint_in(s, was_down) and not impact["endpoint_down"]:
                # back from the dead: the outage that matters starts at the repair
                impact["outage_ms"] = impact["convergence_ms"]
            per_stream[s.name] = impact
        # streams whose host is down, or whose sender sent nothing in the window, are not judged
        judged = {n: imp for n, imp in per_stream.items()
                  if not imp["endpoint_down"] and imp["recovered"] is not None}
        affected = [n for n, imp in judged.items() if imp["lost"] or not imp["recovered"]]
        impacts.append({
            "fault": str(fault), "at_s": fault.at, "t": injected, "window": [t, t_end],
            "affected": affected,
            "endpoint_down": sorted(n for n, imp in per_stream.items() if imp["endpoint_down"]),
            # the worst outage of the streams that lost traffic (a lower bound when one did
            # not recover); without loss, the longest delivery gap any stream saw
            "outage_ms": max((judged[n]["outage_ms"] or 0) for n in affected) if affected
            else max((imp["outage_ms"] or 0) for imp in judged.values()) if judged else None,
            "lost": sum(imp["lost"] for imp in judged.values()),
            "recovered": all(imp["recovered"] for imp in judged.values()),
            "not_recovered": [n for n, imp in judged.items() if not imp["recovered"]],
            "convergence_ms": (max((imp["convergence_ms"] or 0) for imp in judged.values())
                               if judged and all(imp["recovered"] for imp in judged.values())
                               else None),
            "streams": per_stream,
            "replication_mbit": m_.rate_around(replication, t, t_end),
        })
        shares.append({"phase": f"after {fault}", "share": m_.site_share(client_rows, site_of,
                                                                         t + 0.5, t_end)})
    return stats, impacts, shares


def run(ctx):
    """Build, measure and break: every raw file into the run folder; then analyse (metrics.json),
    plot and summarize from those files alone."""
    opts = ctx.opts
    pings, seconds, rate = opts.pings, opts.iperf_seconds, opts.probe_rate
    log, topo, run_dir = ctx.log, ctx.topo, ctx.run_dir
    faults = validate(opts, topo)
    duration = timeline(opts)[1]

    log(f"building {topo.name}: {len(topo.switches)} switches, {len(topo.hosts)} hosts, "
        f"{len(topo.links)} links ({ctx.platform.datapath_label} datapath, "
        f"{ctx.platform.delay_label})")
    with ctx.open_lab() as lab:
        built_s = log.elapsed()
        lab.start_bfd(opts.bfd_ms)        # its sessions come up while the links are measured
        # os-ken loads while the sites are verified (no switch points at it yet), and is
        # listening before the links are measured, so it takes no CPU from the measurements
        lab.controller.spawn(intent_for(topo, opts.mode, opts.vip_policy))
        pairs, verified_s, base, measurements, samples = fidelity_phase(
            ctx, lab, pings, seconds, before_measuring=lab.controller.wait_listening)
        streams.preload()                 # while the controller learns the network
        ready_s, routed_pairs, placements = controller_phase(ctx, lab, opts)
        probes, t0, done, rows, summaries, throughput = traffic_phase(ctx, lab, faults,
                                                                      duration, rate)
        status = lab.controller_status() or {}
        bfd_used = lab.bfd_ms
        log("tearing down")
    torn_down_s = log.elapsed()

    write_csv(run_dir / "reachability.csv", ["src", "dst", "reachable", "phase"],
              [p + ("l2-fabric",) for p in pairs] + [p + ("controller",) for p in routed_pairs])
    write_csv(run_dir / "rtt_samples.csv", ["link", "seq", "rtt_ms"], samples)
    write_csv(run_dir / "fidelity.csv",
              ["link", "metric", "configured", "expected", "raw", "base_ms", "measured",
               "tolerance", "ok", "detail"],
              [(m.link, m.metric, m.configured, m.expected, m.raw, m.base_ms, m.measured,
                m.tolerance, m.ok, m.detail) for m in measurements])
    write_csv(run_dir / "vip_placement.csv", list(placements[0]) if placements else ["service"],
              [list(p.values()) for p in placements])
    write_csv(run_dir / "probes.csv", ["stream", "seq", "sent", "received", "host"],
              sorted(rows, key=lambda r: (r[0], r[1])))
    write_json(run_dir / "streams.json", [dict(vars(s), rate=rate) for s in probes.streams])
    write_csv(run_dir / "faults.csv", ["at_s", "fault", "t"], [(f.at, str(f), t) for f, t in done])
    write_csv(run_dir / "throughput.csv", ["name", "t", "mbit"],
              [(name, t, mbit) for name, tl in throughput.items() for t, mbit in tl])
    # what the build and controller phases observed (the traffic phase's raw files are above)
    write_json(run_dir / "phases.json", {
        "seconds_to_up": round(built_s, 2), "seconds_to_verified": round(verified_s, 2),
        "seconds_total": round(torn_down_s, 2), "seconds_to_ready": round(ready_s, 2),
        "bfd_ms": bfd_used,             # what ran (paced on an emulated CPU)
        "reachability": [list(p) for p in pairs], "routed": [list(p) for p in routed_pairs],
        "base_rtt_ms": base, "fidelity": [m.to_dict() for m in measurements],
        "vip_placement": placements,
        "controller_status": {"links": len(status.get("links", [])),
                              "hosts": len(status.get("hosts", {})),
                              "backup_coverage": status.get("backup_coverage")},
        "timeline": {"t0": t0, "duration_s": duration, "probe_rate": rate},
    })
    write_json(run_dir / "metrics.json", analyse(run_dir))
    figures = plot(run_dir)
    summary = summarize(run_dir)
    summary.figures = figures
    return summary


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def analyse(run_dir):
    """metrics.json's content from the run folder's raw files alone (pure: the same files give
    the same figures; `lab/run.py analyse RUN_DIR` recomputes an old run's)."""
    run_dir = Path(run_dir)
    params = json.loads((run_dir / "params.json").read_text())
    phases = json.loads((run_dir / "phases.json").read_text())
    options, hosts = params["options"], params["topology"]["hosts"]
    streams = [SimpleNamespace(**s) for s in json.loads((run_dir / "streams.json").read_text())]
    summaries = {s.stream: json.loads((run_dir / "probes" / f"tx-{s.stream}.json").read_text())
                 for s in streams}
    rows = [(int(r["stream"]), int(r["seq"]), float(r["sent"]), float(r["received"]), r["host"])
            for r in _read_csv(run_dir / "probes.csv")]
    done = [(Fault.parse(float(r["at_s"]), r["fault"]), float(r["t"]))
            for r in _read_csv(run_dir / "faults.csv")]
    throughput = {}
    for r in _read_csv(run_dir / "throughput.csv"):
        throughput.setdefault(r["name"], []).append((float(r["t"]), float(r["mbit"])))
    timeline = phases["timeline"]
    stats, impacts, shares = analyse_streams(hosts, streams, timeline["t0"],
                                             timeline["duration_s"], done, rows, summaries,
                                             throughput)
    samples = [(r["link"], float(r["rtt_ms"])) for r in _read_csv(run_dir / "rtt_samples.csv")]
    pairs, routed = phases["reachability"], phases["routed"]
    status = phases["controller_status"]
    return {
        "seconds_to_up": phases["seconds_to_up"],
        "seconds_to_verified": phases["seconds_to_verified"],
        "seconds_total": phases["seconds_total"],
        "reachability": {"pairs": len(pairs), "reachable": sum(1 for p in pairs if p[2]),
                         "unreachable": [p[:2] for p in pairs if not p[2]]},
        "base_rtt_ms": phases["base_rtt_ms"],
        "fidelity": phases["fidelity"],
        "fidelity_ok": all(m["ok"] for m in phases["fidelity"]),
        "rtt_jitter_ms": {name: round(statistics.pstdev([r for n, r in samples if n == name]), 3)
                          for name in {n for n, _ in samples}},
        "controller": {
            "mode": options["mode"], "vip_policy": options["vip_policy"],
            "bfd_ms": phases.get("bfd_ms", options["bfd_ms"]), "seconds_to_ready": phases["seconds_to_ready"],
            "reachability": {"pairs": len(routed), "reachable": sum(1 for p in routed if p[2]),
                             "unreachable": [p[:2] for p in routed if not p[2]]},
            "vip_placement": phases["vip_placement"],
            "links_discovered": status["links"],
            "backup_coverage": status["backup_coverage"],
            "hosts_located": status["hosts"],
        },
        "topology": params["topology"]["name"],
        "timeline": dict(timeline, trustworthy=all(s.trustworthy for s in stats)),
        "streams": [s.to_dict() for s in stats],
        "faults": impacts,
        "site_share": shares,
    }


def plot(run_dir):
    """The run's figures from its raw files and metrics.json; returns their paths."""
    return plots.timeline(run_dir)


def summarize(run_dir):
    """The run's Summary (text, problems, timing verdicts) from metrics.json and its params."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    params = json.loads((run_dir / "params.json").read_text())
    platform = json.loads((run_dir / "platform.json").read_text())
    links = {l["name"]: l for l in params["topology"]["links"]}
    mode = params["options"]["mode"]
    ctl, timeline = metrics["controller"], metrics["timeline"]
    measurements = [fidelity.Measurement(**m) for m in metrics["fidelity"]]
    stats, impacts, shares = metrics["streams"], metrics["faults"], metrics["site_share"]
    placements, base = ctl["vip_placement"], metrics["base_rtt_ms"]
    reach, routed = metrics["reachability"], ctl["reachability"]
    rows = [(m.link, links[m.link]["kind"], "RTT ms" if m.metric == "rtt_ms" else "TCP Mbit/s",
             f"{m.configured:g}", f"{m.expected:g}", _num(m.raw) if m.raw is not None else "",
             _num(m.base_ms) if m.metric == "rtt_ms" else "", _num(m.measured),
             f"±{m.tolerance:.2g}",
             "ok" if m.ok else "OFF", m.detail) for m in measurements]
    vip_rows = [(p["client"], p["service"], p["server"] or "-", p["site"] or "-",
                 p["expected_site"], "ok" if p["ok"] else "WRONG") for p in placements]
    text = "\n".join([
        f"platform: {platform['datapath_label']} datapath ({platform['datapath_reason']}); "
        f"delay by {platform['delay_label']} ({platform['delay_reason']})",
        f"reachability: {reach['reachable']}/{reach['pairs']} host pairs; "
        f"up in {metrics['seconds_to_up']:.1f}s, verified in {metrics['seconds_to_verified']:.1f}s",
        (f"base RTT of the switch path: {base['rtt_ms']:.2f} ms (over {base['link']} with no "
         f"delay), taken off every delay element ({base['compensation_ms']:.2f} ms each way)"
         if base else "base RTT: not calibrated (no link with a delay element between hosts)"),
        "",
        format_table(["link", "kind", "metric", "configured", "expected", "raw", "base",
                      "measured", "tolerance", "verdict", "path"], rows),
        "",
        f"controller ({mode}): ready in {ctl['seconds_to_ready']:.1f}s; through the anycast "
        f"gateway {routed['reachable']}/{routed['pairs']} host pairs reachable",
        format_table(["client", "service", "served by", "site", "expected", "verdict"], vip_rows),
        coverage_line(mode, ctl["backup_coverage"]),
        "",
        f"probe streams ({timeline['probe_rate']:g}/s each): "
        + ", ".join(f"{s['name']} {s['loss_pct']:g}% lost, {s['reordered']} reordered"
                    + ("" if s["trustworthy"] else
                       f" (UNTRUSTWORTHY: sent {s['achieved_rate']:g}/s)")
                    for s in stats),
        format_table(["t s", "fault", "affected streams", "outage ms", "lost", "converged ms",
                      "DCI Mbit/s before/during/after", "client share after"],
                     [(f"{i['at_s']:g}", i["fault"], ", ".join(i["affected"]) or "none",
                       _num(i["outage_ms"]) if i["recovered"] else f">{_num(i['outage_ms'])}",
                       i["lost"], _num(i["convergence_ms"]),
                       "/".join(_num(i["replication_mbit"][k]) for k in ("before", "during", "after")),
                       " ".join(f"{site} {100 * v:.0f}%" for site, v in sh["share"].items()))
                      for i, sh in zip(impacts, shares[1:])]),
        f"plots: {run_dir / 'delivery.png'}, throughput.png, site_share.png",
    ])
    problems = [f"{s} cannot reach {d}" for s, d in reach["unreachable"]]
    problems += [f"{s} cannot reach {d} through the gateway" for s, d in routed["unreachable"]]
    problems += [f"{p['client']}: {p['service']} served from {p['site']}, expected "
                 f"{p['expected_site']}" for p in placements if not p["ok"]]
    problems += [f"fault {i['fault']}: {', '.join(i['not_recovered'])} did not recover by "
                 f"the end of its window ({i['lost']} probes lost)"
                 for i in impacts if not i["recovered"]]
    timing = [f"link {m.link}: {m.metric} off ({_num(m.measured)} vs {m.expected:g} "
              f"±{m.tolerance:.2g})" for m in measurements if not m.ok]
    timing += [f"stream {s['name']}: sent {s['achieved_rate']:g}/s of {s['target_rate']:g}/s, "
               "its figures are untrustworthy" for s in stats if not s["trustworthy"]]
    return Summary(text, ok=not problems, problems=problems, timing=timing)


def coverage_line(mode, coverage):
    """What protection covers: site pairs with a loop-free alternate in the switches."""
    if not coverage:
        return "backup coverage: unknown (no controller status)"
    text = (f"backup coverage: {coverage['covered']}/{coverage['pairs']} site pairs have a "
            "loop-free alternate in the switches")
    if coverage["uncovered"]:
        text += ("; without one (they wait for the controller"
                 + (", even in protection mode" if mode == "protection" else "") + "): "
                 + ", ".join(f"{a}>{b}" for a, b in coverage["uncovered"]))
    return text


def _num(value):
    return "-" if value is None else f"{value:.2f}"
