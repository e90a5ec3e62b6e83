"""dci-qos: a DCI filled by a backup copy, with and without QoS classes, and how much DCI
bandwidth synchronous replication needs.

On dci-qos (two sites, one 20 Mbit/s DCI, a synchronous PostgreSQL pair, QoS classes in the
topology), in one lab:

Part `qos`, three phases of --phase-s seconds each (a topology without a qos: section runs the
first two: the damage, and nothing that prevents it):
  unloaded      QoS on, nothing else on the DCI: the reference figures
  qos-off       a bulk TCP copy (iperf3, --bulk-streams parallel streams, dc1-srv3 -> dc2-srv3)
                fills the DCI, which has one queue for everything (the topology's QoS off)
  qos-on        the same copy, the DCI with its QoS classes
During each: one probe stream per non-bulk class (dc1-srv1 -> dc2-srv1, marked with the
class's DSCP, --probe-rate per second): one-way latency p50/p99, loss, throughput; the
synchronous commit latency on the primary (commits one after another, each waiting for the
standby across the DCI); BFD flaps on the DCI (OVS's flap_count, both ends) and the false
failovers they caused (the controller taking a DCI port down); per class the bytes the DCI
egress sent (tc, with QoS on).

Part `bandwidth`: the DCI's rate stepped through --bandwidths while client1 writes
--write-rate writes per second of --payload KB through dc1's app: commit latency, the writes
acknowledged per second, the standby's receive lag, and the replication stream's rate (the
primary's WAL per second); the knee is the lowest rate whose commit p99 stays within
KNEE_FACTOR of the widest rate's with every write acknowledged at the offered rate.
"""

import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab.agents import dataapp
from lab.analysis import datametrics, plots
from lab.analysis.metrics import stream_stats
from lab.analysis.results import format_table, write_json
from lab.cli.options import bounded, int_list, name_list
from lab.emulation import traffic
from lab.emulation.controller import GATEWAY_MAC, intent_for
from lab.emulation.network import go
from lab.emulation.streams import ProbeSet
from lab.errors import LabError
from lab.experiment import Options, Summary
from lab.model.topology import QOS_CLASSES

NAME = "dci-qos"
TOPOLOGY = "dci-qos"
DESCRIPTION = ("a DCI saturated by a backup copy, QoS classes off vs on; replication's "
               "commit latency and lag against DCI bandwidth")
PHASES = ("unloaded", "qos-off", "qos-on")
PARTS = ("qos", "bandwidth")
BULK_PORT = 5201
PROBE_FRAME_BYTES = 106            # a probe on the wire: Ethernet + IP + UDP + 64 bytes
COMMIT_GAP_S = 0.02                # between the commit probe's commits
KNEE_FACTOR = 1.5                  # the knee: commit p99 within this of the widest rate's
PROTECTED = ("control", "replication")   # the classes QoS must keep as if unloaded
TARGET_MS = 1.0                    # ... within this much p99 of the unloaded figure


@dataclass(frozen=True)
class DciQosOptions(Options):
    parts: str = ",".join(PARTS)
    phase_s: float = 8.0               # seconds per QoS phase and per bandwidth step
    probe_rate: float = 200.0          # probes per second per class
    bulk_streams: int = 4              # parallel TCP streams of the backup copy
    bandwidths: tuple = (2, 5, 10, 15, 20, 50)   # Mbit/s, the bandwidth part's steps
    write_rate: int = 100              # writes per second in the bandwidth part
    payload: int = 8                   # KB per write
    QUICK = {"phase_s": 4.0, "bandwidths": (5, 20, 50)}


OPTIONS = DciQosOptions
COMMON_OPTIONS = ("topology", "bfd_ms")


def add_arguments(parser):
    default = DciQosOptions.default
    parser.add_argument("--parts", type=name_list(PARTS), default=None, metavar="LIST",
                        help=f"what to run, comma-separated (default {default('parts')})")
    parser.add_argument("--phase-s", type=bounded(float, 2, 120), default=None, metavar="S",
                        help="seconds per phase and per bandwidth step, 2 to 120 (default "
                             f"{default('phase_s'):g}, --quick {default('phase_s', True):g})")
    parser.add_argument("--probe-rate", type=bounded(float, 10, 2000), default=None,
                        metavar="PPS", help="probes per second per class, 10 to 2000 (default "
                                            f"{default('probe_rate'):g})")
    parser.add_argument("--bulk-streams", type=bounded(int, 1, 16), default=None, metavar="N",
                        help="parallel TCP streams of the backup copy, 1 to 16 (default "
                             f"{default('bulk_streams')})")
    parser.add_argument("--bandwidths", type=int_list(1, 10000), default=None, metavar="LIST",
                        help="DCI rates for the bandwidth part, Mbit/s, comma-separated "
                             f"(default {','.join(map(str, default('bandwidths')))}; --quick "
                             f"{','.join(map(str, default('bandwidths', True)))})")
    parser.add_argument("--write-rate", type=bounded(int, 10, 1000), default=None, metavar="W",
                        help="writes per second in the bandwidth part, 10 to 1000 (default "
                             f"{default('write_rate')})")
    parser.add_argument("--payload", type=bounded(int, 0, 512), default=None, metavar="KB",
                        help=f"KB per write, 0 to 512 (default {default('payload')})")


def dci_link(topo):
    return topo.dci_links[0]


def roles(topo):
    """(probe source, probe sink, bulk source, bulk sink): servers of the DCI's two sites
    that hold no database node (the last servers for the copy, the first for the probes)."""
    link = dci_link(topo)
    busy = set(topo.data.voters) if topo.data else set()

    def free(site):
        hosts = [h.name for h in topo.hosts_at(site) if h.role == "server" and h.name not in busy]
        if len(hosts) < 2:
            raise LabError(f"--topology {topo.name}: dci-qos needs two servers without a "
                           f"database in site {site} (probes and the backup copy); give it "
                           "servers: 3")
        return hosts
    a, b = free(link.a), free(link.b)
    return a[0], b[0], a[-1], b[-1]


def validate(opts, topo):
    where = f"--topology {topo.name}"
    if not topo.dci_links or not dci_link(topo).bw:
        raise LabError(f"{where}: dci-qos needs a DCI link with a rate (bw)")
    data = topo.data
    if data is None or data.engine != "postgresql" or not any(
            mode == "sync" for _, mode in data.standbys):
        raise LabError(f"{where}: dci-qos needs a PostgreSQL primary with a synchronous "
                       "standby in data: (its commits cross the DCI)")
    link = dci_link(topo)
    sites = {topo.host(data.primary).switch, topo.host(data.standbys[0][0]).switch}
    if sites != {link.a, link.b}:
        raise LabError(f"{where}: the primary and its standby must be in the two sites of "
                       f"{link.name} ({link.a}, {link.b})")
    roles(topo)


# ------------------------------------------------------------------------------ measuring

def probe_classes(topo):
    """(class, DSCP) of each probe stream: the topology's classes but bulk (the copy is
    bulk), or without QoS the lab's default classes and marks."""
    if topo.qos is not None:
        return [(c.name, c.dscp) for c in topo.qos.classes if c.name != "bulk"]
    return [(name, spec[0]) for name, spec in QOS_CLASSES.items() if name != "bulk"]


def phases(topo):
    """The QoS phases a topology can run: without QoS classes no qos-on."""
    return PHASES if topo.qos is not None else PHASES[:2]


def bfd_flaps(lab):
    """OVS's BFD flap_count per interface of the DCI link (both ends), now."""
    return lab.bfd_flap_counts([dci_link(lab.topo).name])


def dci_port_downs(log_text, topo):
    """How many times the controller's log says a DCI port went down (a false failover
    when nothing was cut)."""
    link = dci_link(topo)
    ports = {(topo.switch(end).dpid, topo.port_to(end, link.name).number) for end in link.ends}
    count = 0
    for match in re.finditer(r"port ([0-9a-f]{16}):(\d+) down", log_text):
        if (int(match.group(1), 16), int(match.group(2))) in ports:
            count += 1
    return count


def log_offset(lab):
    try:
        return lab.controller.log.stat().st_size
    except OSError:
        return 0


def log_since(lab, offset):
    try:
        with open(lab.controller.log, errors="replace") as fh:
            fh.seek(offset)
            return fh.read()
    except OSError:
        return ""


def one_phase(lab, ctx, phase, folder):
    """One QoS phase (raw files into folder)."""
    topo, opts, log = ctx.topo, ctx.opts, ctx.log
    folder.mkdir(parents=True)
    if topo.qos is not None:
        lab.set_qos(phase != "qos-off")
    src, dst, bulk_src, bulk_dst = roles(topo)
    link = dci_link(topo)
    primary = topo.data.primary
    flaps0, offset = bfd_flaps(lab), log_offset(lab)
    probes = ProbeSet(lab, folder, GATEWAY_MAC, rate=opts.probe_rate)
    for name, dscp in probe_classes(topo):
        probes.add(name, src, topo.host(dst).ip.ip, dscp=dscp)
    probes.start_receivers([dst])
    bulk = []
    if phase != "unloaded":
        bulk.append(lab.popen(bulk_dst, traffic.iperf3_server_argv(BULK_PORT),
                              f"bulk copy server {bulk_dst}"))
        traffic.wait_listening(lab, bulk_dst, BULK_PORT)
        # longer than the phase: it is interrupted (SIGINT: iperf3 still reports) once the
        # probes and the commits are done, so the commits never run on an idle DCI
        bulk.append(lab.popen(bulk_src, traffic.iperf3_client_argv(
            topo.host(bulk_dst).ip.ip, opts.phase_s + 30, BULK_PORT, omit=0) + [
                "-P", str(opts.bulk_streams)], f"bulk copy {bulk_src}",
            stdout=folder / "bulk.json"))
        time.sleep(1.0)                           # the copy has filled the queue
    stats0, t_stats0 = lab.qos_stats(), time.time()
    t0 = probes.start(opts.phase_s)
    count = max(10, int(opts.phase_s / 2 / (COMMIT_GAP_S + 2 * link.delay_ms / 1000)))
    commits = lab.popen(primary, dataapp.probe_argv("postgresql",
                                                    lab.data.nodes[primary]["socket"], count),
                        f"commit probe {primary}", stdout=folder / "commits.json")
    rows, summaries = probes.collect(timeout=opts.phase_s + 15)
    stats1, t_stats1 = lab.qos_stats(), time.time()
    commits.wait(60)
    if bulk:
        server, client = bulk
        client.send_signal(signal.SIGINT)
        try:
            client.wait(10)
        except subprocess.TimeoutExpired:
            lab.stop_process(client)
        lab.stop_process(server)
    flaps1 = bfd_flaps(lab)
    write_json(folder / "phase.json", {
        "phase": phase, "t0": t0, "duration": opts.phase_s, "rate": opts.probe_rate,
        "qos": phase != "qos-off", "link": link.name, "bw": lab.bws.get(link.name, link.bw),
        "guaranteed_mbit": {c.name: round(c.rate_on(lab.bws.get(link.name, link.bw)), 3)
                            for c in topo.qos.classes}
        if topo.qos is not None and phase != "qos-off" else {},
        "streams": [{"stream": s.stream, "class": s.name, "dscp": s.dscp}
                    for s in probes.streams],
        "summaries": {str(k): v for k, v in summaries.items()},
        "flaps_before": flaps0, "flaps_after": flaps1,
        "dci_port_downs": dci_port_downs(log_since(lab, offset), topo),
        "class_stats": {"before": stats0, "after": stats1, "seconds": t_stats1 - t_stats0},
        "bulk_streams": opts.bulk_streams if bulk else 0})
    with open(folder / "probes.csv", "w") as fh:
        fh.write("stream,seq,sent,received,host\n")
        fh.writelines(f"{r[0]},{r[1]},{r[2]:.6f},{r[3]:.6f},{r[4]}\n" for r in rows)
    result = analyse_phase(folder)
    log(f"[{phase}] " + ", ".join(
        f"{name} p99 {_fmt(c['p99_ms'])} ms loss {_fmt(c['loss_pct'])}%"
        for name, c in result["classes"].items() if c.get("p99_ms") is not None)
        + f"; commit p50 {_fmt(result['commit_ms_p50'])} ms; bulk "
          f"{_fmt(result['bulk_mbit'])} Mbit/s; BFD flaps {result['bfd_flaps']}")


def one_step(lab, ctx, bw, folder):
    """One bandwidth step (raw files into folder): the DCI at `bw`, writes through the app."""
    topo, opts = ctx.topo, ctx.opts
    folder.mkdir(parents=True)
    link = dci_link(topo)
    lab.set_link_bw(link.name, bw)
    primary = topo.data.primary
    standby = topo.data.standbys[0][0]
    laggers = [lab.start_agent(node, dataapp.lag_argv(lab.data.nodes[node]["socket"],
                                                      folder / f"lag-{role}.jsonl", role=role),
                               f"lag {node}", log=folder / f"lag-{role}.log", wait=False)
               for node, role in ((standby, "standby"), (primary, "primary"))]
    app = next(n for n in topo.services[0].servers
               if topo.host(n).switch == topo.host(primary).switch)
    client = topo.clients[0]
    out = folder / f"writes-{client.name}.json"
    # a writer id of its own per step: each step's writes are new rows
    writer = lab.start_agent(client.name, dataapp.write_argv(
        str(topo.host(app).ip.ip), topo.services[0].port, f"{client.name}-bw{bw:g}",
        opts.write_rate, opts.phase_s, out), f"writer {client.name}",
        log=out.with_suffix(".log"), stdin=subprocess.PIPE, wait=False)
    lab.wait_agents(laggers + [writer])
    t0 = go([writer])
    writer.wait(opts.phase_s + 60)
    for proc in laggers:
        lab.stop_process(proc)
    write_json(folder / "step.json", {"bw": bw, "t0": t0, "duration": opts.phase_s,
                                      "write_rate": opts.write_rate, "payload_kb": opts.payload,
                                      "client": client.name})
    result = analyse_step(folder)
    ctx.log(f"[bandwidth {bw:g} Mbit/s] commit p50 {_fmt(result['commit_ms_p50'])} ms p99 "
            f"{_fmt(result['commit_ms_p99'])} ms, {_fmt(result['acked_per_s'])} writes/s "
            f"acknowledged, lag p99 {_fmt(result['lag_ms_p99'])} ms, WAL "
            f"{_fmt(result['wal_mbit'])} Mbit/s")


def run(ctx):
    """One lab: the QoS phases, then the bandwidth steps (raw files only); then metrics.json,
    the figures and the summary from those files."""
    topo, opts = ctx.topo, ctx.opts
    validate(opts, topo)
    parts = opts.parts.split(",")
    with ctx.open_lab() as lab:
        lab.attach_controller(intent_for(topo), bfd_ms=opts.bfd_ms, serving=[])
        took = lab.start_data_tier(payload=1024 * opts.payload)
        ctx.log(f"data tier up in {took:.1f} s")
        if "qos" in parts:
            for phase in phases(topo):
                one_phase(lab, ctx, phase, ctx.run_dir / "qos" / phase)
            if topo.qos is None:
                ctx.log("the topology declares no QoS classes (qos:): no qos-on phase")
        if "bandwidth" in parts:
            if topo.qos is not None:
                lab.set_qos(topo.qos.enabled)
            for bw in opts.bandwidths:
                one_step(lab, ctx, bw, ctx.run_dir / "bandwidth" / f"{bw:g}")
    write_json(ctx.run_dir / "metrics.json", analyse(ctx.run_dir))
    plot(ctx.run_dir)
    return summarize(ctx.run_dir)


# ------------------------------------------------------------------------------ analysis

def read_rows(path):
    import csv
    with open(path, newline="") as fh:
        return [(int(r["stream"]), int(r["seq"]), float(r["sent"]), float(r["received"]),
                 r["host"]) for r in csv.DictReader(fh)]


def latency_stats(rows):
    """p50/p99 one-way latency (ms, nearest rank) of received probes (None when none)."""
    values = sorted(1000 * (r[3] - r[2]) for r in rows)
    if not values:
        return None, None
    return (round(datametrics.percentile(values, 50), 3),
            round(datametrics.percentile(values, 99), 3))


def class_deltas(stats, end, key):
    """{class: growth of `key` (bytes, drops)} at the DCI egress of switch `end` between the
    phase's two tc readings ({} without them)."""
    if not stats or not stats.get("before") or not stats.get("after"):
        return {}
    link = next(iter(stats["after"]))
    after, before = stats["after"][link].get(end, {}), stats["before"][link].get(end, {})
    return {name: after[name][key] - before.get(name, {}).get(key, 0) for name in after}


def analyse_phase(folder):
    """One QoS phase's figures from its raw files alone."""
    folder = Path(folder)
    raw = json.loads((folder / "phase.json").read_text())
    rows = read_rows(folder / "probes.csv")
    ends = list(raw["flaps_before"])
    link_end = None
    stats = raw.get("class_stats") or {}
    if stats.get("after"):
        link_end = next(iter(next(iter(stats["after"].values()))), None)
    seconds = stats.get("seconds")
    sent = class_deltas(stats, link_end, "bytes") if link_end and seconds else {}
    rates = {name: round(8 * b / seconds / 1e6, 3) for name, b in sent.items()}
    drops = class_deltas(stats, link_end, "drops") if link_end else {}
    classes = {}
    probed = {s["stream"] for s in raw["streams"]}
    pooled_p99 = latency_stats([r for r in rows if r[0] in probed])[1]
    for s in raw["streams"]:
        mine = [r for r in rows if r[0] == s["stream"]]
        summary = raw["summaries"][str(s["stream"])]
        st = stream_stats(s["stream"], s["class"], mine, summary)
        p50, p99 = latency_stats(mine)
        classes[s["class"]] = {
            "dscp": s["dscp"], "p50_ms": p50, "p99_ms": p99, "loss_pct": st.loss_pct,
            "sent": st.sent, "received": st.received,
            "throughput_mbit": round(8 * PROBE_FRAME_BYTES * st.received / raw["duration"]
                                     / 1e6, 4),
            "dci_mbit": rates.get(s["class"]), "dci_drops": drops.get(s["class"]),
            "guaranteed_mbit": (raw.get("guaranteed_mbit") or {}).get(s["class"])}
    bulk = bulk_report(folder / "bulk.json")
    classes["bulk"] = {"dscp": None, "p50_ms": None, "p99_ms": None, "loss_pct": None,
                       "throughput_mbit": bulk["mbit"] if bulk else None,
                       "retransmits": bulk["retransmits"] if bulk else None,
                       "dci_mbit": rates.get("bulk"), "dci_drops": drops.get("bulk"),
                       "guaranteed_mbit": (raw.get("guaranteed_mbit") or {}).get("bulk")}
    commits = read_commits(folder / "commits.json")
    replicated = sorted(commits.get("replicated", []))
    local = sorted(commits.get("local", []))
    flaps = sum(max(0, raw["flaps_after"].get(i, 0) - raw["flaps_before"].get(i, 0))
                for i in ends)
    return {
        "phase": raw["phase"], "qos": raw["qos"], "bw": raw["bw"], "classes": classes,
        "p99_ms_all_classes": pooled_p99,
        "commit_ms_p50": _pct(replicated, 50), "commit_ms_p99": _pct(replicated, 99),
        "commits": len(replicated), "local_commit_ms_p50": _pct(local, 50),
        "bulk_mbit": classes["bulk"]["throughput_mbit"], "bfd_flaps": flaps,
        "false_failovers": raw["dci_port_downs"]}


def bulk_report(path):
    """The backup copy's rate (Mbit/s) and retransmits from its iperf3 -J report. The copy is
    interrupted at the phase's end (SIGINT): iperf3 then reports what it sent and no
    receiver figures, so the sender's rate stands for it. None: no report (it failed)."""
    try:
        end = json.loads(Path(path).read_text()).get("end") or {}
    except (OSError, ValueError):
        return None
    sent = end.get("sum_sent") or end.get("sum") or {}
    received = end.get("sum_received") or {}
    bps = received.get("bits_per_second") or sent.get("bits_per_second")
    if not bps:
        return None
    return {"mbit": round(bps / 1e6, 3), "retransmits": sent.get("retransmits")}


def read_commits(path):
    try:
        return json.loads(Path(path).read_text().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return {}


def _pct(ordered, p):
    return round(datametrics.percentile(ordered, p), 3) if ordered else None


def read_jsonl(path):
    try:
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError:
        return []


def analyse_step(folder):
    """One bandwidth step's figures from its raw files alone: commit latency of the writes
    acknowledged, writes acknowledged per second, the standby's receive lag, and the
    replication stream (the primary's WAL, Mbit/s)."""
    folder = Path(folder)
    raw = json.loads((folder / "step.json").read_text())
    ledger = json.loads((folder / f"writes-{raw['client']}.json").read_text())
    commit = datametrics.commit_stats([ledger], float("-inf"), float("inf"))
    acked = [w for w in ledger["writes"] if w.get("t_ack")]
    span = max(ledger["end"] - ledger["start"], 1e-9)
    primary = read_jsonl(folder / "lag-primary.jsonl")
    standby = read_jsonl(folder / "lag-standby.jsonl")
    lag = datametrics.lag_stats(datametrics.receive_lag(standby, primary))
    wal = None
    if len(primary) >= 2:
        first, last = min(primary, key=lambda s: s["t"]), max(primary, key=lambda s: s["t"])
        if last["t"] > first["t"]:
            wal = round(8 * (last["lsn"] - first["lsn"]) / (last["t"] - first["t"]) / 1e6, 3)
    return {"bw": raw["bw"], "write_rate": raw["write_rate"], "payload_kb": raw["payload_kb"],
            "writes": len(ledger["writes"]), "acked": len(acked),
            "acked_per_s": round(len(acked) / span, 1),
            "commit_ms_p50": commit["p50"], "commit_ms_p99": commit["p99"],
            "lag_ms_p50": lag["p50"], "lag_ms_p99": lag["p99"], "wal_mbit": wal}


def knee(steps):
    """The lowest bandwidth whose commit p99 is within KNEE_FACTOR of the widest step's and
    whose writes were all acknowledged at the offered rate (95 %); None when no step is, or
    fewer than two steps ran."""
    usable = [s for s in steps if s["commit_ms_p99"] is not None]
    if len(usable) < 2:
        return None
    widest = max(usable, key=lambda s: s["bw"])
    good = [s["bw"] for s in usable
            if s["commit_ms_p99"] <= KNEE_FACTOR * widest["commit_ms_p99"]
            and s["acked"] >= 0.95 * s["writes"]
            and s["acked_per_s"] >= 0.95 * s["write_rate"]]
    # the knee: from there up, every step is good
    ordered = sorted(s["bw"] for s in usable)
    for i, bw in enumerate(ordered):
        if all(b in good for b in ordered[i:]):
            return bw
    return None


def analyse(run_dir):
    """metrics.json's content from the run folder's raw files alone (pure): `variants`
    keyed by phase (unloaded, qos-off, qos-on) and the bandwidth steps with their knee."""
    run_dir = Path(run_dir)
    variants = {phase: analyse_phase(run_dir / "qos" / phase) for phase in PHASES
                if (run_dir / "qos" / phase / "phase.json").exists()}
    steps = sorted((analyse_step(p.parent) for p in (run_dir / "bandwidth").glob("*/step.json")),
                   key=lambda s: s["bw"])
    protected = {}
    base = variants.get("unloaded")
    # unloaded, every class takes the same path with the same treatment: their latencies are
    # one distribution, and its p99 over all of them is a steadier baseline than one class's
    # (800 probes per class in --quick: the classes' own p99s differed by up to 0.8 ms)
    baseline = base and base.get("p99_ms_all_classes")
    for phase in ("qos-off", "qos-on"):
        if base and phase in variants:
            protected[phase] = {
                name: (None if variants[phase]["classes"][name]["p99_ms"] is None
                       or baseline is None else
                       round(variants[phase]["classes"][name]["p99_ms"] - baseline, 3))
                for name in PROTECTED if name in base["classes"]}
    # what the run can resolve: how far apart the unloaded classes' own p99s are (the same
    # path, the same treatment: only sampling separates them); a class is judged on the
    # target plus that
    own = [c["p99_ms"] for name, c in (base or {}).get("classes", {}).items()
           if name != "bulk" and c["p99_ms"] is not None]
    resolution = round(max(own) - min(own), 3) if len(own) > 1 else 0.0
    return {"variants": variants, "p99_over_unloaded_ms": protected, "bandwidth": steps,
            "knee_mbit": knee(steps), "knee_factor": KNEE_FACTOR, "target_ms": TARGET_MS,
            "p99_resolution_ms": resolution, "bound_ms": round(TARGET_MS + resolution, 3)}


def plot(run_dir):
    run_dir = Path(run_dir)
    metrics = plots.read_metrics(run_dir)
    out = [run_dir / "dci_qos.png"]
    plots.dci_qos(metrics, out[0])
    if metrics["bandwidth"]:
        out.append(run_dir / "dci_bandwidth.png")
        plots.dci_bandwidth(metrics, out[1])
    return out


def _fmt(value, unit=""):
    return "-" if value is None else f"{value:g}{unit}"


def summarize(run_dir):
    """The run's Summary from metrics.json: the targets checked."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    variants, text = metrics["variants"], []
    if variants:
        rows = []
        for phase, v in variants.items():
            for name, c in v["classes"].items():
                rows.append((phase, name, _fmt(c["p50_ms"]), _fmt(c["p99_ms"]),
                             _fmt(c["loss_pct"]), _fmt(c["throughput_mbit"]),
                             _fmt(c.get("guaranteed_mbit")), _fmt(c.get("dci_mbit")),
                             _fmt(c.get("dci_drops"))))
        text.append("per class (probes dc1 -> dc2 across the DCI; bulk: the backup copy; at "
                    "dc1's DCI egress: the class's guaranteed rate, what it sent, what its "
                    "queue dropped):")
        text.append(format_table(["phase", "class", "p50 ms", "p99 ms", "loss %",
                                  "throughput Mbit/s", "guaranteed Mbit/s",
                                  "DCI class Mbit/s", "queue drops"], rows))
        text.append(format_table(
            ["phase", "sync commit p50 ms", "sync commit p99 ms", "BFD flaps",
             "false failovers", "bulk Mbit/s"],
            [(phase, _fmt(v["commit_ms_p50"]), _fmt(v["commit_ms_p99"]), v["bfd_flaps"],
              v["false_failovers"], _fmt(v["bulk_mbit"])) for phase, v in variants.items()]))
        for phase, deltas in metrics["p99_over_unloaded_ms"].items():
            text.append(f"{phase}: p99 over the unloaded figure: " + ", ".join(
                f"{name} {_fmt(d, ' ms')}" for name, d in deltas.items()))
        if "p99_resolution_ms" in metrics:
            text.append(f"judged within {TARGET_MS:g} ms + {metrics['p99_resolution_ms']:g} ms: "
                        "the unloaded classes' own p99s were that far apart (one path, one "
                        "treatment: what this run's probes can resolve)")
    steps = metrics["bandwidth"]
    if steps:
        text.append(f"\nbandwidth (writes {steps[0]['write_rate']}/s of "
                    f"{steps[0]['payload_kb']} KB through dc1's app, synchronous standby):")
        text.append(format_table(
            ["DCI Mbit/s", "commit p50 ms", "commit p99 ms", "acked/s", "lag p99 ms",
             "WAL Mbit/s"],
            [(_fmt(s["bw"]), _fmt(s["commit_ms_p50"]), _fmt(s["commit_ms_p99"]),
              _fmt(s["acked_per_s"]), _fmt(s["lag_ms_p99"]), _fmt(s["wal_mbit"]))
             for s in steps]))
        text.append(f"knee: {_fmt(metrics['knee_mbit'], ' Mbit/s')} (the lowest rate from "
                    f"which on commit p99 stays within {KNEE_FACTOR:g}x the widest's and every "
                    "write is acknowledged at the offered rate)")
    figures = [run_dir / "dci_qos.png"] + ([run_dir / "dci_bandwidth.png"] if steps else [])
    text.append("plots: " + ", ".join(map(str, figures)))
    problems = []
    on = variants.get("qos-on")
    if on:
        for name, delta in metrics["p99_over_unloaded_ms"].get("qos-on", {}).items():
            if delta is None:
                problems.append(f"qos-on: class {name} had no probe through")
            elif delta > metrics.get("bound_ms", TARGET_MS):
                problems.append(f"qos-on: class {name}'s p99 is {delta:g} ms over the unloaded "
                                f"figure (target {TARGET_MS:g} ms + "
                                f"{metrics.get('p99_resolution_ms', 0):g} ms resolution): QoS "
                                "did not protect it")
        if on["bfd_flaps"]:
            problems.append(f"qos-on: {on['bfd_flaps']} BFD flaps with QoS on")
        if not on["bulk_mbit"]:
            problems.append("qos-on: the backup copy moved nothing: the DCI was not saturated")
    for phase, v in variants.items():
        if v["commits"] == 0:
            problems.append(f"{phase}: no commit completed on the primary")
    if steps and all(s["acked"] == 0 for s in steps):
        problems.append("bandwidth: no write was acknowledged at any rate")
    return Summary("\n".join(text), ok=not problems, problems=problems)
