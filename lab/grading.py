"""Grading of the guided labs that ask students to configure something (docs/labs/).

Each check returns the list of what is missing or wrong (empty: the lab is done):

    python lab/run.py check lab1 --file my-sites.yaml
    python lab/run.py check lab3 [--results results]
    python lab/run.py check lab4 --file my-fw.yaml
"""

import json
from pathlib import Path

from lab.errors import LabError, TopologyError
from lab.topology import load_topology


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


def check_lab3(path=None, results=None):
    """A finished dual-active run in each failover mode."""
    root = Path(results or Path(__file__).resolve().parent.parent / "results") / "dual-active"
    modes = set()
    for run in sorted(root.glob("*")) if root.is_dir() else []:
        try:
            params = json.loads((run / "params.json").read_text())
            metrics = json.loads((run / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        if metrics.get("faults"):
            modes.add(params.get("options", {}).get("mode"))
    return [f"no finished dual-active run with --mode {mode} in {root}"
            for mode in ("protection", "restoration") if mode not in modes]


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


CHECKS = {"lab1": check_lab1, "lab3": check_lab3, "lab4": check_lab4}


def check(lab, path=None, results=None):
    if lab not in CHECKS:
        raise LabError(f"check: no grading for {lab!r}; labs with a check: {', '.join(CHECKS)}")
    return CHECKS[lab](path, results)
