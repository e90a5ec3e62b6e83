"""Grading of the guided labs that ask students to configure something (docs/labs/).

Each check returns the list of what is missing or wrong (empty: the lab is done):

    python lab/run.py check lab1 --file my-sites.yaml
    python lab/run.py check lab3 [--results results]
    python lab/run.py check lab4 --file my-fw.yaml
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
    """A third site dc3, linked to dc1 by a 10 ms, 20 Mbit/s link."""
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
    return problems


def lab3_run_problem(run):
    """Why a run folder is not one of lab 3's runs (None when it is): the lab's experiment,
    topology and fault timeline, the controller in the mode it says, raw probe samples, and
    every fault recovered."""
    from experiments.dual_active import FAULTS, QUICK_FAULTS
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
    timelines = {tuple(str(f) for f in parse_faults(text, topo)) for text in (FAULTS, QUICK_FAULTS)}
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
    """The firewall policy opens TCP 8443 (and still 80 and 443) and no longer UDP 7000."""
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
    over = (metrics.get("p99_over_unloaded_ms") or {}).get("qos-on") or {}
    for name in ("control", "replication"):
        if over.get(name) is None:
            return f"no {name} probe got through with QoS on"
        if over[name] > target:
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


CHECKS = {"lab1": check_lab1, "lab3": check_lab3, "lab4": check_lab4, "lab7": check_lab7,
          "lab8": check_lab8}


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
