"""Grading of the guided labs that ask students to configure something (docs/labs/).

Each check returns the list of what is missing or wrong (empty: the lab is done):

    python lab/run.py check lab1 --file my-sites.yaml
    python lab/run.py check lab2 [--results results]       (on a lab brought up with `up`)
    python lab/run.py check lab3 [--results results]
    python lab/run.py check lab4 --file my-fw.yaml [--results results]
    python lab/run.py check lab5 --file lab5.yaml [--results results]
    python lab/run.py check lab6 --file lab6.yaml [--results results]
    python lab/run.py check lab7 [--results results]
    python lab/run.py check lab8 --file my-dci.yaml [--results results]
"""

import json
from pathlib import Path

from controllers.intent import MODES
from lab.errors import LabError, TopologyError
from lab.model.topology import load_topology
from lab import REPO


def _topology(path):
    if path is None:
        return None, ["give your topology file: --file FILE"]
    try:
        return load_topology(str(path)), []
    except TopologyError as exc:
        return None, [f"your topology does not load: {exc}"]


def check_lab1(path=None, results=None):
    """A third site dc3, linked to dc1 by a 10 ms, 20 Mbit/s link, and a dual-active run on it
    that measured the link as configured (results False: the file alone)."""
    topo, problems = _topology(path)
    if topo is None:
        return problems
    if "dc3" not in [s.name for s in topo.sites]:
        return ["no site dc3: add it under sites:"]
    links = [l for l in topo.links if set(l.ends) == {"dc1", "dc3"}]
    if not links:
        return ["no link between dc1 and dc3: add one under links:"]
    link = links[0]
    if abs(link.delay_ms - 10.0) > 1e-9:
        problems.append(f"link {link.name} has delay {link.delay_ms:g} ms; the lab asks for 10ms")
    if link.bw != 20:
        problems.append(f"link {link.name} has bw {link.bw}; the lab asks for 20 (Mbit/s)")
    if problems or results is False:
        return problems
    return lab1_run_problems(link.name, path, Path(results or REPO / "results") / "dual-active")


def lab1_run_problems(link, path, root):
    """A dual-active run on the student's topology measured the new link: its RTT (about
    20 ms) and TCP throughput (about 19 Mbit/s) within the fidelity tolerances."""
    for run, params, metrics in _finished_runs(root):
        links = {l.get("name"): l for l in (params.get("topology") or {}).get("links", [])}
        mine = links.get(link)
        if mine is None or set(mine.get("between", [])) != {"dc1", "dc3"} \
                or mine.get("delay_ms") != 10.0:
            continue
        rows = [f for f in metrics.get("fidelity") or [] if f.get("link") == link]
        if {f.get("metric") for f in rows} < {"rtt_ms", "throughput_mbit"}:
            return [f"{run.name}: the run did not measure {link}'s RTT and throughput"]
        off = [f"{f['metric']} {f['measured']:.1f} vs {f['expected']:.1f}" for f in rows
               if not f.get("ok")]
        return [f"{run.name}: {link} measured off its configuration: {'; '.join(off)}"] if off \
            else []
    return [f"no dual-active run on your topology under {root}: sudo python lab/run.py "
            f"dual-active --quick --topology {path}"]


def lab3_run_problem(run):
    """Why a run folder is not one of lab 3's runs (None when it is): the lab's experiment,
    topology and fault timeline, the controller in the mode it says, raw probe samples, and
    every fault recovered."""
    from experiments.dual_active import FAULTS, QUICK_FAULTS, QUICK_PACED_FAULTS
    from lab.model.faults import parse_faults
    try:
        params = json.loads((run / "params.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return "not a finished run (no params.json and metrics.json)"
    options = params.get("options") or {}
    if params.get("experiment") != "dual-active":
        return "not a dual-active run"
    if (params.get("topology") or {}).get("name") != "dual-active" or \
            metrics.get("topology") != "dual-active":
        return "not on the dual-active topology"
    mode = options.get("mode")
    if (metrics.get("controller") or {}).get("mode") != mode:
        return "its metrics do not show the controller in the mode it was started with"
    topo = load_topology("dual-active")
    timelines = {tuple(str(f) for f in parse_faults(text, topo))
                 for text in (FAULTS, QUICK_FAULTS, QUICK_PACED_FAULTS)}
    faults = metrics.get("faults") or []
    if options.get("faults") or tuple(f.get("fault") for f in faults) not in timelines:
        return "not the lab's fault timeline (run it without --faults)"
    not_recovered = [f.get("fault") for f in faults if f.get("recovered") is not True]
    if not_recovered:
        return f"traffic did not recover from {', '.join(not_recovered)}"
    try:
        with open(run / "probes.csv") as fh:
            if sum(1 for _ in zip(range(2), fh)) < 2:
                return "no probe samples in probes.csv"
    except OSError:
        return "no probes.csv (raw probe samples)"
    return None


def check_lab3(path=None, results=None):
    """A finished dual-active run of the lab's timeline in each failover mode, all recovered."""
    root = Path(results or REPO / "results") / "dual-active"
    modes, rejected = set(), {}
    for run in sorted(root.glob("*")) if root.is_dir() else []:
        problem = lab3_run_problem(run)
        mode = None
        try:
            mode = json.loads((run / "params.json").read_text()).get("options", {}).get("mode")
        except (OSError, ValueError, AttributeError):
            pass
        if problem is None:
            modes.add(mode)
        else:
            rejected.setdefault(mode, f"{run.name}: {problem}")
    return [f"no finished dual-active run with --mode {mode} in {root}"
            + (f" (not counted: {rejected[mode]})" if mode in rejected else "")
            for mode in MODES if mode not in modes]


def check_lab4(path=None, results=None):
    """The firewall policy opens TCP 8443 (and still 80 and 443) and no longer UDP 7000, and a
    firewall run on it shows the firewall doing exactly that."""
    topo, problems = _topology(path)
    if topo is None:
        return problems
    if topo.firewall is None or not topo.firewalls:
        return ["no firewall: start from topologies/dual-active-fw.yaml"]
    for port in (80, 443, 8443):
        if port not in topo.firewall.tcp:
            problems.append(f"the policy does not open TCP {port}: firewall.tcp")
    if 7000 in topo.firewall.udp:
        problems.append("the policy still opens UDP 7000: remove it from firewall.udp")
    if problems:
        return problems
    return lab4_run_problems(topo, path, Path(results or REPO / "results") / "firewall")


def lab4_run_problems(topo, path, root):
    """The policy's effect, from a firewall run on the student's topology: its policy check
    let TCP 80, 443 and 8443 through and stopped UDP 7000 (each also arrived through the
    accept-all control, so the check could see it)."""
    runs = [(run, m) for run, params, m in _finished_runs(root)
            if (params.get("topology") or {}).get("firewall")
            and sorted(params["topology"]["firewall"].get("tcp", [])) == sorted(topo.firewall.tcp)
            and sorted(params["topology"]["firewall"].get("udp", [])) == sorted(topo.firewall.udp)]
    if not runs:
        return [f"no firewall run on your policy under {root}: sudo python lab/run.py firewall "
                f"--quick --remedies none --topology {path}"]
    run, metrics = runs[0]
    policy = metrics.get("policy")
    if not policy:
        return [f"{run}: the run has no policy check (made by an older version): run it again"]
    rows = {f"{r['proto']}/{r['port']}": r for r in policy["ports"]}
    problems = []
    for name, want in (("tcp/80", True), ("tcp/443", True), ("tcp/8443", True),
                       ("udp/7000", False)):
        r = rows.get(name)
        if r is None or not r["control_reached"]:
            problems.append(f"{run.name}: {name} was not tried (or lost in the control): run "
                            "the firewall experiment again")
        elif r["reached"] != want:
            problems.append(f"{run.name}: {policy['firewall']} "
                            f"{'blocked' if want else 'let through'} {name}")
    return problems


def _finished_runs(root):
    """(run folder, params, metrics) of every finished run under root, newest first."""
    out = []
    for run in sorted(root.glob("*"), reverse=True) if root.is_dir() else []:
        try:
            out.append((run, json.loads((run / "params.json").read_text()),
                        json.loads((run / "metrics.json").read_text())))
        except (OSError, ValueError):
            continue
    return out


def lab7_replication_problem(metrics):
    """Why a replication run is not lab 7's (None when it is): all three variants, a sweep of
    at least two delays, and the power-off measured in each."""
    variants = metrics.get("variants") or {}
    missing = [v for v in ("pg-async", "pg-sync", "galera") if v not in variants]
    if missing:
        return f"it lacks the variant(s) {', '.join(missing)}"
    for name, v in variants.items():
        if len({p.get("delay_ms") for p in v.get("sweep") or []}) < 2:
            return f"{name} was measured at fewer than two delays (run it with --delays 1,20)"
        fault = (v.get("faults") or {}).get("power-off")
        if not fault or fault.get("rto_ms") is None:
            return f"{name} has no finished power-off (writes acknowledged again after it)"
    return None


def check_lab7(path=None, results=None):
    """A finished replication run (three variants, two delays, the power-off) and a
    split-brain run with the no-witness and witness variants."""
    root = Path(results or REPO / "results")
    problems = []
    runs = _finished_runs(root / "replication")
    reasons = [f"{run.name}: {lab7_replication_problem(m)}" for run, _, m in runs
               if lab7_replication_problem(m)]
    if len(reasons) == len(runs):
        problems.append(f"no finished replication run with pg-async, pg-sync and galera at two "
                        f"delays in {root / 'replication'} (sudo python lab/run.py replication "
                        "--delays 1,20)" + (f"; not counted: {reasons[0]}" if reasons else ""))
    split = [m for _, _, m in _finished_runs(root / "split-brain")
             if {"no-witness", "witness"} <= set(m.get("variants") or {})]
    if not split:
        problems.append(f"no finished split-brain run with the no-witness and witness variants "
                        f"in {root / 'split-brain'} (sudo python lab/run.py split-brain --quick)")
    return problems


def lab8_run_problem(params, metrics, source, name=None):
    """Why a dci-qos run is not lab 8's proof (None when it is): the student's topology, a
    qos-on phase, control and replication within the target of their unloaded p99, no BFD
    flap with QoS on."""
    topo = params.get("topology") or {}
    ran = Path(str(topo.get("source", "")))
    # the run stores the path as given, relative to where it ran: the same file, or one of
    # the same name describing the same topology
    if ran.resolve() != Path(source).resolve() and (
            ran.name != Path(source).name or topo.get("name") != name):
        return f"it ran {topo.get('source') or topo.get('name')}, not your file"
    variants = metrics.get("variants") or {}
    if "qos-on" not in variants:
        return "it has no qos-on phase (run it with --parts qos, your qos: section enabled)"
    target = metrics.get("target_ms", 1.0)
    bound = metrics.get("bound_ms", target)          # + what the run's probes can resolve
    over = (metrics.get("p99_over_unloaded_ms") or {}).get("qos-on") or {}
    for name in ("control", "replication"):
        if over.get(name) is None:
            return f"no {name} probe got through with QoS on"
        if over[name] > bound:
            return (f"with QoS on, {name}'s p99 was {over[name]:g} ms over its unloaded figure "
                    f"(the lab asks for at most {target:g} ms): give it a guaranteed share and "
                    "a higher priority than bulk")
    if variants["qos-on"].get("bfd_flaps"):
        return f"BFD flapped {variants['qos-on']['bfd_flaps']} times with QoS on"
    return None


def check_lab8(path=None, results=None):
    """QoS on the DCI: the student's topology has a qos: section (enabled, with control and
    replication classes) and a dci-qos run on it shows both protected under the copy."""
    topo, problems = _topology(path)
    if topo is None:
        return problems
    if topo.qos is None or not topo.qos.enabled:
        return ["your topology has no QoS enabled: add a qos: section (docs/labs/08-dci-qos.md)"]
    names = [c.name for c in topo.qos.classes]
    problems = [f"no {name} class in qos: (it carries what the lab protects)"
                for name in ("control", "replication") if name not in names]
    if problems:
        return problems
    root = Path(results or REPO / "results") / "dci-qos"
    runs = _finished_runs(root)
    reasons = [lab8_run_problem(p, m, path, topo.name) for _, p, m in runs]
    if not runs or all(reasons):
        mine = [r for r in reasons if r and "not your file" not in r]
        return [f"no finished dci-qos run on {path} that protects control and replication in "
                f"{root} (sudo python lab/run.py dci-qos --topology {path} --quick --parts qos)"
                + (f"; the newest: {mine[0]}" if mine else "")]
    return []


# ------------------------------------------------------------- lab 2: a lab that stays up

def check_lab2(path=None, results=None):
    """Lab 2 done on a lab brought up with `lab/run.py up dual-active`: a server moved to the
    other site (by `move`), the controller learned the move from its gratuitous ARP (its log
    says so, with names), the moved server answered a client again after the move, and ARP
    was answered at both sites with the gateway MAC."""
    root = Path(results or REPO / "results") / "up"
    runs = sorted((r for r in root.glob("*") if (r / "controller.log").is_file()), reverse=True) \
        if root.is_dir() else []
    if not runs:
        return [f"no lab brought up under {root}: start with sudo python lab/run.py up dual-active"]
    run = runs[0]
    supervisor = _read(run / "supervisor.log")
    controller = _read(run / "controller.log")
    moves = [l for l in supervisor.splitlines() if l.startswith("[supervisor] move ")]
    if not moves:
        return [f"{run}: no host was moved: sudo python lab/run.py move dc1-srv2 dc2"]
    problems = []
    done = None
    for line in moves:
        try:
            args = json.loads(line[len("[supervisor] move "):line.index("}") + 1])
        except ValueError:
            continue
        if "reaches it again" in line:
            done = args
    if done is None:
        return [f"{run}: no move was followed by a client reaching the moved host again "
                "(see the move's output)"]
    host = done["host"]
    if not any(f"host {host} (" in l and " moved from " in l and f" to {done['site']}:" in l
               for l in controller.splitlines()):
        problems.append(f"{run}/controller.log: the controller never logged {host} moving to "
                        f"{done['site']} (its gratuitous ARP)")
    topo = load_topology("dual-active")
    sites = [s.name for s in topo.sites]
    for site in sites:
        if not any(f" at {site} asked who has " in l and "gateway MAC" in l
                   for l in controller.splitlines()):
            problems.append(f"{run}/controller.log: no ARP answered at {site}: ping the "
                            f"gateway from a server there (exec {site}-srv1 -- ping -c1 "
                            f"{topo.switch(site).gateway})")
    return problems


def _read(path):
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


# ----------------------------------------------- labs 5 and 6: your numbers from your run

def _answers(path, lab):
    import yaml
    if path is None:
        return None, [f"give your answers file: --file {lab}.yaml (start from "
                      f"docs/labs/files/{lab}-answers.yaml)"]
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        return None, [f"{path}: cannot be read ({exc.strerror})"]
    except yaml.YAMLError as exc:
        return None, [f"{path}: not YAML ({str(exc).splitlines()[0]})"]
    if not isinstance(doc, dict):
        return None, [f"{path}: write the answers as 'key: value' lines"]
    return doc, []


def _close(answer, measured, rel=0.1, absolute=0.0):
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return False
    return abs(value - measured) <= max(rel * abs(measured), absolute)


def check_lab5(path=None, results=None):
    """Your answers (lab5.yaml) against your own compare-designs run: which design recovers
    fastest from dc1's power-off, each design's RTO (within 10 %) and share of sessions lost."""
    doc, problems = _answers(path, "lab5")
    if doc is None:
        return problems
    root = Path(results or REPO / "results") / "compare-designs"
    runs = [(run, m) for run, _, m in _finished_runs(root)
            if {"dual-active", "primary-backup"} <= {d.get("design") for d in m.get("designs", [])}]
    if not runs:
        return [f"no finished compare-designs run with dual-active and primary-backup under "
                f"{root}: sudo python lab/run.py compare-designs --quick"]
    run, metrics = runs[0]
    designs = {d["design"]: d for d in metrics["designs"] if d.get("rto_ms") is not None}
    fastest = min(designs, key=lambda n: designs[n]["rto_ms"])
    if doc.get("fastest_design") != fastest:
        problems.append(f"fastest_design: {doc.get('fastest_design')!r} is not what your run "
                        f"({run.name}) measured; read its RTO column")
    rto = doc.get("rto_ms") or {}
    lost = doc.get("sessions_lost_pct") or {}
    for name in ("dual-active", "primary-backup"):
        d = designs.get(name)
        if d is None:
            continue
        if not _close(rto.get(name) if isinstance(rto, dict) else None, d["rto_ms"], 0.1, 5.0):
            problems.append(f"rto_ms.{name}: {rto.get(name) if isinstance(rto, dict) else None} "
                            f"is not your run's RTO (within 10 %)")
        pct = 100.0 * d["sessions_lost"] / d["sessions"] if d.get("sessions") else 0.0
        if not _close(lost.get(name) if isinstance(lost, dict) else None, pct, 0.0, 1.0):
            problems.append(f"sessions_lost_pct.{name}: "
                            f"{lost.get(name) if isinstance(lost, dict) else None} is not the "
                            "share of sessions your run lost (within 1 point)")
    return problems


def check_lab6(path=None, results=None):
    """Your answers (lab6.yaml) against your own gslb run: anycast's failover and the GSLB's
    with the shortest TTL you ran (within 10 %), and how many more connection attempts the
    GSLB failed."""
    doc, problems = _answers(path, "lab6")
    if doc is None:
        return problems
    root = Path(results or REPO / "results") / "gslb"
    runs = []
    for run, _, metrics in _finished_runs(root):
        variants = metrics.get("variants") or []
        anycast = next((v for v in variants if v.get("variant") == "anycast"), None)
        gslb = sorted((v for v in variants if str(v.get("variant", "")).startswith("gslb")
                       and not v.get("cache_extra")), key=lambda v: v.get("ttl") or 0)
        if anycast and gslb and anycast.get("failover_s") is not None \
                and gslb[0].get("failover_s") is not None:
            runs.append((run, anycast, gslb[0]))
    if not runs:
        return [f"no finished gslb run with anycast and a GSLB variant under {root}: "
                "sudo python lab/run.py gslb --quick"]
    run, anycast, gslb = runs[0]
    if not _close(doc.get("anycast_failover_s"), anycast["failover_s"], 0.1, 0.01):
        problems.append(f"anycast_failover_s: {doc.get('anycast_failover_s')} is not your run's "
                        f"({run.name}) anycast failover (within 10 %)")
    if not _close(doc.get("gslb_ttl"), gslb["ttl"], 0.0, 0.0):
        problems.append(f"gslb_ttl: {doc.get('gslb_ttl')} is not the shortest TTL your run used")
    if not _close(doc.get("gslb_failover_s"), gslb["failover_s"], 0.1, 0.01):
        problems.append(f"gslb_failover_s: {doc.get('gslb_failover_s')} is not your run's GSLB "
                        "failover at that TTL (within 10 %)")
    extra = (gslb.get("failed_attempts") or 0) - (anycast.get("failed_attempts") or 0)
    if not _close(doc.get("extra_failed_attempts"), extra, 0.0, 0.0):
        problems.append(f"extra_failed_attempts: {doc.get('extra_failed_attempts')} is not how "
                        "many more attempts failed with the GSLB than with anycast in your run")
    return problems


CHECKS = {"lab1": check_lab1, "lab2": check_lab2, "lab3": check_lab3, "lab4": check_lab4,
          "lab5": check_lab5, "lab6": check_lab6, "lab7": check_lab7, "lab8": check_lab8}


def check(lab, path=None, results=None):
    if lab not in CHECKS:
        raise LabError(f"check: no grading for {lab!r}; labs with a check: {', '.join(CHECKS)}")
    return CHECKS[lab](path, results)


# ------------------------------------------------------------------ the students' copy

INSTRUCTOR_ONLY = ("docs/labs/instructor",)      # also export-ignore in .gitattributes
NEVER_COPIED = (".git", ".venv", "results", "tests/vm/out", "activelab.egg-info")


def student_files(repo):
    """The project's files a student gets (relative paths): what git tracks (or, outside a
    git checkout, every file) minus the answer keys and anything built or measured."""
    import subprocess
    repo = Path(repo)
    try:
        proc = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True,
                              timeout=30)
        tracked = [p for p in proc.stdout.decode().split("\0") if p] if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        tracked = None
    if not tracked:
        tracked = [str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()]
    skip = INSTRUCTOR_ONLY + NEVER_COPIED
    return sorted(p for p in tracked
                  if not any(p == s or p.startswith(s + "/") for s in skip)
                  and "__pycache__" not in p.split("/") and (repo / p).is_file())


def export_student(repo, dest):
    """Copy the students' files into `dest` (new or empty); returns how many. Nothing is left
    half-written: the copy is made beside `dest` and renamed into place."""
    import shutil
    import tempfile
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise LabError(f"{dest}: exists and is not an empty folder; give a new folder")
    if dest.resolve() == Path(repo).resolve() or Path(repo).resolve() in dest.resolve().parents:
        raise LabError(f"{dest}: inside the project itself; give a folder outside it")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    except OSError as exc:
        raise LabError(f"{dest}: cannot write there ({exc.strerror}); choose a writable "
                       "folder") from None
    try:
        files = student_files(repo)
        for rel in files:
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(repo) / rel, target)
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise LabError(f"{dest}: the copy failed ({exc.strerror or exc}); nothing was "
                       "left") from None
    return len(files)
