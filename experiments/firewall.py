"""firewall: stateful firewalls per site, asymmetric paths, and what each remedy saves.

Runs dual-active-fw (a transparent nftables + conntrack firewall on each site's client-edge
link) with hot-potato routing: traffic enters the sites at the client edge's nearest site (dc1)
and leaves each site by its own exit. Once per remedy:

  none       the firewalls as they are
  symmetric  the controller pins each session's return path to the site it entered by
  sync       conntrackd (FT-FW) replicates sessions between the two firewalls
  loose      no sync, but the firewalls pick up TCP sessions mid-stream (weaker: see probes)

Phase 1, asymmetric paths: every client opens long-lived TCP sessions (kernel sockets, and
as many crafted packet by packet with scapy, lab/agents/craftsessions.py) to a server in dc2; they
enter through dc1-fw, the replies leave through dc2-fw. Phase 2, failover: every client opens
sessions to a server in dc1 (symmetric through dc1-fw), then the link edge-dc1 is cut and the
sessions must continue through dc2-fw. Per remedy: sessions established, surviving failover,
firewall drops, and (sync) how far behind the second firewall learns a session.
The probe suite (lab/agents/fwprobes.py: denied ports, out-of-state ACK/RST/FIN, XMAS, NULL, spoofed
site source, ICMP variants, out-of-window injection) runs before phase 1 and after the
failover; every probe that reaches the server is a leak, named in the results. The policy
check (first remedy) tries every port the policy opens or the shipped policy opened, and SSH:
the table says which the firewall let through, against the policy (lab 4 grades it).
"""

import dataclasses
from dataclasses import dataclass
import json
import re
import statistics
import subprocess
import time
from pathlib import Path

from lab.agents import craftsessions, fwprobes, sessions
from lab.analysis import plots
from lab.emulation import firewall, probe
from lab.emulation.controller import GATEWAY_MAC, intent_for
from lab.emulation.network import go
from lab.errors import LabError
from lab.experiment import Options, Summary
from lab.cli.options import bounded, name_list
from lab.analysis.results import format_table, write_json

NAME = "firewall"
TOPOLOGY = "dual-active-fw"
DESCRIPTION = "stateful firewalls per site: asymmetric paths, failover, remedies side by side"
REMEDIES = ("none", "symmetric", "sync", "loose")
STRICT = ("none", "symmetric")      # no sync and no loose pickup: the second firewall has no
#                                     state for a session it did not see begin
SESSION_PORT = 443
EVENT_RE = re.compile(r"^\[(\d+\.\d+)\]\s+\[NEW\] tcp .*?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")


@dataclass(frozen=True)
class FirewallOptions(Options):
    remedies: str = ",".join(REMEDIES)   # the remedies to run, in order
    sessions: int = 10                   # TCP sessions per client per phase
    QUICK = {"sessions": 3}


OPTIONS = FirewallOptions


def add_arguments(parser):
    default = FirewallOptions.default
    parser.add_argument("--remedies", type=name_list(REMEDIES), default=None, metavar="LIST",
                        help=f"remedies to run, comma-separated (default {default('remedies')})")
    parser.add_argument("--sessions", type=bounded(int, 1, 100), default=None, metavar="N",
                        help="TCP sessions per client per phase, 1 to 100 (default "
                             f"{default('sessions')}, --quick {default('sessions', quick=True)})")


def validate(opts, topo):
    if len(topo.firewalls) != 2:
        raise LabError(f"--topology {topo.name}: the firewall experiment needs two firewalled "
                       "sites; use dual-active-fw")


def sessions_argv(dst, count, duration, out):
    return sessions.run_argv(dst, SESSION_PORT, count, duration, out, connect_timeout=1.5,
                             wait_go=True)


def crafted_argv(client, dst, count, duration, out):
    return craftsessions.run_argv(client.intf, client.mac, client.ip.ip, GATEWAY_MAC, dst,
                                  SESSION_PORT, count, duration, out, wait_go=True)


def run_sessions(lab, run_dir, phase, dst, count, duration, during=None):
    """Every client opens `count` real (kernel) and `count` scapy-crafted sessions to dst;
    once all are established they talk for `duration` s together, and `during()` runs
    meanwhile. Returns {'client:kind': the session report}."""
    procs = {}
    for client in lab.topo.clients:
        for kind, argv_for in (("real", lambda out: sessions_argv(dst, count, duration, out)),
                               ("crafted", lambda out: crafted_argv(client, dst, count,
                                                                    duration, out))):
            out = run_dir / f"sessions-{phase}-{client.name}-{kind}.json"
            procs[f"{client.name}:{kind}"] = (
                lab.start_agent(client.name, argv_for(out), f"{kind} sessions {phase} {client.name}",
                                log=out.with_suffix(".log"), stdin=subprocess.PIPE, wait=False),
                out)
    lab.wait_agents([proc for proc, _ in procs.values()])
    go([proc for proc, _ in procs.values()])
    if during:
        during()
    reports = {}
    for name, (proc, out) in procs.items():
        proc.wait(duration + 15)
        reports[name] = json.loads(out.read_text())
    return reports


def count(reports, key, kind=None):
    return sum(1 for name, r in reports.items() for s in r["sessions"]
               if key(s) and (kind is None or name.endswith(f":{kind}")))


def listen_new(lab, paths):
    """`conntrack -E` for new TCP entries in each firewall {name: output file}; the Popens."""
    procs = [lab.popen(fw, ["conntrack", "-E", "-e", "NEW", "-p", "tcp", "-o", "timestamp"],
                       f"conntrack events {fw}", stdout=path) for fw, path in paths.items()]
    time.sleep(0.2)
    return procs


def new_entries(text):
    """[(time, src, dst, sport, dport)] of the NEW lines of `conntrack -E -o timestamp`."""
    out = []
    for line in text.splitlines():
        m = EVENT_RE.match(line)
        if m:
            out.append((float(m.group(1)), m.group(2), m.group(3), int(m.group(4)),
                        int(m.group(5))))
    return out


def picked_up(events, since, port):
    """How many sessions of the service port a firewall started tracking at or after `since`
    (the failover): a strict firewall starts none (it drops what it did not see begin); one
    that does is picking sessions up mid-stream, so they 'survive' without a remedy."""
    return len({e[1:] for e in new_entries(events) if e[0] >= since and port in e[3:]})


def sync_lags(events_a, events_b):
    """ms from a session's NEW event on one firewall to the same on the other."""
    def parse(text):
        found = {}
        for t, *key in new_entries(text):
            found.setdefault(tuple(key), t)
        return found
    a, b = parse(events_a), parse(events_b)
    return [round(1000 * (b[k] - a[k]), 3) for k in a if k in b and b[k] >= a[k]]


def probe_suite(lab, run_dir, tag, client, server, spoof, fw):
    """Run every firewall probe from client toward server through firewall node `fw`; returns
    the names that leaked: those seen leaving the firewall on its site side (a probe aimed at a
    BFD port would be taken by the switch's own BFD before any server could see it)."""
    return watched_through(lab, fw, run_dir / f"leaks-{tag}.json", f"probe watcher {tag}",
                           client.name, fwprobes.send_argv(client.intf, client.mac, client.ip.ip,
                                                           GATEWAY_MAC, server.ip.ip, spoof,
                                                           SESSION_PORT,
                                                           timeout=probe.patience(3.0)))


def watched_through(lab, fw, out, what, sender, argv):
    """Run `argv` in host `sender` while a watcher on firewall `fw`'s site side records into
    `out` which of its marked frames the firewall let out; returns their names."""
    link = dict(lab.topo.firewalls)[fw]
    watcher = lab.start_agent(fw, fwprobes.watch_argv(firewall.inside_intf(fw, link), out),
                              what, log=out.with_suffix(".log"))
    lab.node_run(sender, argv, timeout=60)
    time.sleep(0.3)
    lab.stop_process(watcher)
    return json.loads(out.read_text())


def probe_control(lab, run_dir, client, server, spoof, fw):
    """The probe suite through accept-all firewalls: every probe must arrive, or the suite
    could not have seen it leak. Returns the probes that did not arrive."""
    lab.firewalls.start(accept_all=True)
    try:
        arrived = probe_suite(lab, run_dir, "control", client, server, spoof, fw)
    finally:
        lab.firewalls.start()
    return [name for name, _ in fwprobes.PROBES if name not in arrived]


def policy_ports(topo):
    """The ports the policy check tries: every port this policy or the shipped one opens, and
    SSH: what a changed policy opens is tried, and what it closed."""
    from lab.model.topology import load_topology
    shipped = load_topology(TOPOLOGY).firewall
    tcp = sorted(set(topo.firewall.tcp) | set(shipped.tcp) | {22})
    udp = sorted(set(topo.firewall.udp) | set(shipped.udp))
    return tcp, udp


def probe_policy(lab, run_dir, tag, client, server, fw):
    """A SYN to every TCP port and a datagram to every UDP port of policy_ports, from client to
    server through firewall `fw`; returns the 'tcp/N' / 'udp/N' the firewall let through."""
    tcp, udp = policy_ports(lab.topo)
    return watched_through(lab, fw, run_dir / f"policy-{tag}.json", f"policy watcher {tag}",
                           client.name, fwprobes.policy_argv(client.intf, client.mac,
                                                             client.ip.ip, GATEWAY_MAC,
                                                             server.ip.ip, tcp, udp))


def one_remedy(ctx, remedy, n, control=False):
    """Run one remedy into RUN_DIR/REMEDY/: the session reports, the probe suites' leak files,
    the firewalls' conntrack events, and remedy.json (the cut's time, the counters and the
    firewalls' settings as read back). Everything analyse_remedy needs, nothing computed."""
    run_dir = ctx.run_dir / remedy
    run_dir.mkdir()
    sub = dataclasses.replace(ctx, run_dir=run_dir)
    topo, log = ctx.topo, ctx.log
    (fw1, link1), (fw2, _) = topo.firewalls
    near = topo.hosts_at(link1.firewall)[0]
    far = next(h for h in topo.servers if h.switch != link1.firewall)
    raw = {"remedy": remedy, "firewalls": [fw1, fw2], "control": control}
    with sub.open_lab() as lab:
        opts = ctx.opts
        lab.attach_controller(intent_for(topo, opts.mode, opts.vip_policy,
                                         routing="hot-potato",
                                         symmetric=remedy == "symmetric"),
                              bfd_ms=opts.bfd_ms)
        if remedy == "sync":
            lab.firewalls.start_sync()
        if remedy == "loose":
            lab.firewalls.start(midstream=True)
        for server in topo.servers:
            lab.start_agent(server.name, sessions.serve_argv(SESSION_PORT),
                            f"session server {server.name}")
        listeners = listen_new(lab, {fw: run_dir / f"conntrack-events-{fw}.txt"
                                     for fw in (fw1, fw2)})
        client = topo.clients[0]
        spoof = far.ip.network.network_address + 99          # an address of the other site
        if control:
            missing = probe_control(lab, run_dir, client, near, spoof, fw1)
            log(f"[{remedy}] probe suite positive control (accept-all firewalls): "
                + (f"{', '.join(missing)} did not arrive" if missing else "every probe arrived"))
            # the policy as enforced: each port tried through accept-all firewalls (every
            # one must arrive, or the check could not tell), then through the policy
            lab.firewalls.start(accept_all=True)
            try:
                probe_policy(lab, run_dir, "control", client, near, fw1)
            finally:
                lab.firewalls.start(midstream=remedy == "loose")
            through = probe_policy(lab, run_dir, "enforced", client, near, fw1)
            tcp, udp = policy_ports(topo)
            raw["policy"] = {"tcp": tcp, "udp": udp, "open_tcp": list(topo.firewall.tcp),
                             "open_udp": list(topo.firewall.udp), "firewall": fw1}
            log(f"[{remedy}] policy through {fw1}: {', '.join(through) or 'nothing'} let through")
        leaks = probe_suite(lab, run_dir, "before", client, near, spoof, fw1)
        log(f"[{remedy}] probe suite through {fw1}: {', '.join(leaks) or 'no leaks'}")
        log(f"[{remedy}] phase 1: {n} sessions per client to {far.name} (in by {fw1}, "
            f"replies out by {fw2})")
        asym = run_sessions(lab, run_dir, "asymmetric", far.ip.ip, n, 2.0)
        for proc in listeners:
            lab.stop_process(proc)
        log(f"[{remedy}]   established {count(asym, lambda s: s['established'])}/"
            f"{count(asym, lambda s: True)}")

        def table(fw, when):
            """What a firewall's connection tracking holds (TCP) and its counters, into the
            run folder: the sessions the second firewall knows when it takes over."""
            listing = lab.node_run(fw, ["conntrack", "-L", "-p", "tcp"], check=False)
            stats = lab.node_run(fw, ["conntrack", "-S"], check=False)
            (run_dir / f"conntrack-{fw}-{when}.txt").write_text(
                listing.stdout + listing.stderr + "\n# conntrack -S\n" + stats.stdout)

        def fail_over():
            time.sleep(1.0)
            table(fw2, "at-cut")
            raw["cut_t"] = time.time()
            lab.faults.set_link(link1.name, up=False)
            log(f"[{remedy}]   cut {link1.name}: sessions must continue through {fw2}")

        log(f"[{remedy}] phase 2: {n} sessions per client to {near.name} through {fw1}, "
            f"then {link1.name} fails")
        listeners = listen_new(lab, {fw2: run_dir / f"conntrack-events-{fw2}-failover.txt"})
        fail = run_sessions(lab, run_dir, "failover", near.ip.ip, n, 5.0, during=fail_over)
        table(fw2, "after-failover")
        for proc in listeners:
            lab.stop_process(proc)
        log(f"[{remedy}]   survived {count(fail, lambda s: s['established'] and not s['died'])}/"
            f"{count(fail, lambda s: s['established'])}")
        leaks = probe_suite(lab, run_dir, "after", client, near, spoof, fw2)
        log(f"[{remedy}] probe suite through {fw2} after the failover: "
            f"{', '.join(leaks) or 'no leaks'}")
        raw["counters"] = {fw: lab.firewalls.counters(fw) for fw in (fw1, fw2)}
        raw["settings"] = dict(lab.firewalls.settings)
        write_json(run_dir / "remedy.json", raw)


def read_sessions(run_dir, phase):
    """{'client:kind': session report} of one phase, from the agents' files."""
    prefix = f"sessions-{phase}-"
    return {path.stem[len(prefix):].rpartition("-")[0] + ":" + path.stem.rpartition("-")[2]:
            json.loads(path.read_text())
            for path in sorted(run_dir.glob(f"{prefix}*.json"))}


def analyse_remedy(run_dir):
    """One remedy's results from its folder's raw files alone (see one_remedy)."""
    raw = json.loads((run_dir / "remedy.json").read_text())
    fw1, fw2 = raw["firewalls"]
    asym, fail = read_sessions(run_dir, "asymmetric"), read_sessions(run_dir, "failover")
    connect = [s["connect_s"] for r in asym.values() for s in r["sessions"] if s["established"]]
    alive = lambda s: s["established"] and not s["died"]          # noqa: E731
    cut = raw.get("cut_t")

    def survived(s):
        """Through the failover: alive at the end *and* answered after the cut. A session
        that neither died nor got an echo after the cut (its window ended first, e.g. an agent
        slow to start on an emulated CPU) proves nothing either way: undecided."""
        return alive(s) and cut is not None and (s["last_ok"] or 0) > cut

    def undecided(s):
        return alive(s) and not survived(s)
    result = {
        "remedy": raw["remedy"],
        "asymmetric": {"attempted": count(asym, lambda s: True),
                       "established": count(asym, lambda s: s["established"]),
                       "crafted_established": count(asym, lambda s: s["established"], "crafted"),
                       "alive_at_end": count(asym, alive),
                       "connect_ms_p50": round(1000 * statistics.median(connect), 2)
                       if connect else None},
        "sync_lag_ms": sync_lags((run_dir / f"conntrack-events-{fw1}.txt").read_text(),
                                 (run_dir / f"conntrack-events-{fw2}.txt").read_text()),
        "failover": {"attempted": count(fail, lambda s: True),
                     "established": count(fail, lambda s: s["established"]),
                     "survived": count(fail, survived),
                     "crafted_survived": count(fail, survived, "crafted"),
                     "undecided": count(fail, undecided),
                     "reasons": sorted({s["reason"] for r in fail.values() for s in r["sessions"]
                                        if s["reason"]}),
                     "picked_up_midstream": picked_up(
                         (run_dir / f"conntrack-events-{fw2}-failover.txt").read_text(),
                         raw["cut_t"], SESSION_PORT) if "cut_t" in raw else None},
        "leaks": {"before": json.loads((run_dir / "leaks-before.json").read_text()),
                  "after_failover": json.loads((run_dir / "leaks-after.json").read_text())},
        "counters": raw["counters"],
        "settings": raw.get("settings", {}),
    }
    if raw.get("policy") and (run_dir / "policy-enforced.json").exists():
        spec = raw["policy"]
        through = set(json.loads((run_dir / "policy-enforced.json").read_text()))
        control = set(json.loads((run_dir / "policy-control.json").read_text()))
        rows = []
        for proto in ("tcp", "udp"):
            for port in spec[proto]:
                name = f"{proto}/{port}"
                rows.append({"proto": proto, "port": port, "open": port in spec[f"open_{proto}"],
                             "reached": name in through, "control_reached": name in control})
        result["policy"] = {"firewall": spec["firewall"], "ports": rows}
    if raw["control"]:
        arrived = json.loads((run_dir / "leaks-control.json").read_text())
        result["probe_control_missing"] = [name for name, _ in fwprobes.PROBES
                                           if name not in arrived]
    return result


def analyse(run_dir):
    """metrics.json's content from the run folder's raw files alone (pure)."""
    run_dir = Path(run_dir)
    params = json.loads((run_dir / "params.json").read_text())
    opts = FirewallOptions.parse(params["options"])
    results = [analyse_remedy(run_dir / remedy) for remedy in opts.remedies.split(",")]
    return {"topology": params["topology"]["name"], "sessions_per_client": opts.sessions,
            "probe_control": {"probes": len(fwprobes.PROBES),
                              "missing": results[0].get("probe_control_missing", [])},
            "policy": results[0].pop("policy", None),
            "remedies": results}


def plot(run_dir):
    """The sessions established over asymmetric paths and surviving failover, per remedy."""
    out = run_dir / "firewall.png"
    plots.firewall(plots.read_metrics(run_dir)["remedies"], out)
    return [out]


def run(ctx):
    """Every remedy in turn (raw files only), then metrics.json, the figure and the summary
    from those files."""
    validate(ctx.opts, ctx.topo)
    opts = ctx.opts
    for i, remedy in enumerate(opts.remedies.split(",")):
        one_remedy(ctx, remedy, opts.sessions, control=i == 0)
    write_json(ctx.run_dir / "metrics.json", analyse(ctx.run_dir))
    plot(ctx.run_dir)
    return summarize(ctx.run_dir)


def summarize(run_dir):
    """The run's Summary from metrics.json."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    results, missing = metrics["remedies"], metrics["probe_control"]["missing"]
    rows = []
    for r in results:
        lags = r["sync_lag_ms"]
        picked = r["failover"].get("picked_up_midstream")
        rows.append((r["remedy"],
                     f"{r['asymmetric']['established']}/{r['asymmetric']['attempted']}",
                     f"{r['failover']['survived']}/{r['failover']['established']}"
                     + (f" ({r['failover']['undecided']} undecided)"
                        if r["failover"].get("undecided") else ""),
                     "-" if picked is None else picked,
                     " ".join(f"{fw} {c.get('invalid', 0)}/{c.get('denied', 0)}"
                              for fw, c in r["counters"].items()),
                     f"{statistics.median(lags):.2f}" if lags else "-",
                     len(set(r["leaks"]["before"]) | set(r["leaks"]["after_failover"]))))
    probe_rows = [(name, what) + tuple(
        ("LEAK" if name in r["leaks"]["before"] else "blocked") + " / "
        + ("LEAK" if name in r["leaks"]["after_failover"] else "blocked") for r in results)
        for name, what in fwprobes.PROBES]
    weakened = {r["remedy"]: sorted(set(r["leaks"]["before"]) | set(r["leaks"]["after_failover"]))
                for r in results}
    policy = metrics.get("policy")
    policy_lines = []
    if policy:
        policy_lines = ["", f"the policy as {policy['firewall']} enforced it (a SYN or datagram "
                            "to each port; through accept-all firewalls first, as a control):",
                        format_table(["port", "policy", "let through", "control", "verdict"], [
                            (f"{r['proto']}/{r['port']}", "open" if r["open"] else "closed",
                             "yes" if r["reached"] else "no",
                             "arrived" if r["control_reached"] else "LOST",
                             "ok" if r["reached"] == r["open"] and r["control_reached"]
                             else "OFF") for r in policy["ports"]])]
    text = "\n".join([
        "routing hot-potato: sessions to dc2 enter by dc1-fw and their replies leave by dc2-fw",
        f"probe suite positive control: {len(fwprobes.PROBES) - len(missing)}/"
        f"{len(fwprobes.PROBES)} probes arrived through accept-all firewalls",
        format_table(["remedy", "established (asymmetric)", "survived failover",
                      "picked up mid-stream",
                      "firewall drops invalid/denied", "sync lag p50 ms", "probes leaked"], rows),
        "",
        "probe suite (before / after the failover), per remedy:",
        format_table(["probe", "what"] + [r["remedy"] for r in results], probe_rows),
    ] + policy_lines + [f"remedy {remedy} weakens the firewall: lets through {', '.join(leaks)}"
         for remedy, leaks in weakened.items() if leaks] + [
        f"plot: {run_dir / 'firewall.png'}",
    ])
    expected_secure = {"none", "symmetric", "sync"}
    problems = [f"remedy {remedy} leaked {', '.join(leaks)}" for remedy, leaks in weakened.items()
                if leaks and remedy in expected_secure]
    problems += [f"remedy {r['remedy']}: {r['failover']['picked_up_midstream']} sessions were "
                 "picked up mid-stream by the second firewall after the failover, which a strict "
                 "firewall never does (see its settings in metrics.json)"
                 for r in results if r["remedy"] in STRICT and r["failover"].get("picked_up_midstream")]
    # what the remedies exist for: symmetric and sync carry asymmetric sessions, sync keeps
    # them through the failover (a run where they do not must not pass: conntrackd that never
    # started once gave 0/40 with "every check passed")
    problems += [f"remedy {r['remedy']}: {r['asymmetric']['established']} of "
                 f"{r['asymmetric']['attempted']} asymmetric sessions established"
                 for r in results if r["remedy"] in ("symmetric", "sync")
                 and r["asymmetric"]["established"] < r["asymmetric"]["attempted"]]
    problems += [f"remedy sync: {r['failover']['survived']} of {r['failover']['established']} "
                 "sessions survived the failover (conntrackd replicates every session: see "
                 "sync/conntrackd-*.log)" for r in results if r["remedy"] == "sync"
                 and r["failover"]["survived"] < r["failover"]["established"]]
    problems += [f"probe suite positive control: {name} did not arrive through accept-all "
                 "firewalls, so the suite cannot tell whether it leaks" for name in missing]
    for r in (policy or {}).get("ports", []):
        name = f"{r['proto']}/{r['port']}"
        if not r["control_reached"]:
            problems.append(f"policy check: {name} did not arrive through accept-all firewalls, "
                            "so the check cannot tell whether the policy lets it through")
        elif r["reached"] != r["open"]:
            problems.append(f"policy check: {name} is {'open' if r['open'] else 'closed'} in the "
                            f"policy but {policy['firewall']} "
                            f"{'blocked' if r['open'] else 'let it through'}")
    timing = [f"remedy {r['remedy']}: {r['failover']['undecided']} failover sessions neither "
              "died nor had an echo after the cut before their window ended (an agent that "
              "started late): they count as not surviving" for r in results
              if r["failover"].get("undecided")]
    return Summary(text, ok=not problems, problems=problems, timing=timing)
