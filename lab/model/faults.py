"""Fault timelines as data: "3s cut dci-a; 6s heal dci-a; 10s power-off dc1".

(What a fault does to a running lab, and the timeline runner: lab/emulation/faults.py.) Each entry is a time after the traffic starts and an action with its target. The lab breaks
something and measures; it never tells the controller what it broke.

| action | target | what happens |
|---|---|---|
| cut / heal | link | both switch ports of the link go down / up (carrier loss, seen at once) |
| gray / ungray | link | the link stays up but drops everything (only BFD can tell) / works again |
| power-off / power-on | site | every port of the site's switch and every host interface go down / up in one instant; the far end of each of its links one link delay later (the neighbours lose carrier when the light stops arriving) |
| isolate / rejoin | site | every link between the site and another site is cut / restored, in one instant (a DCI partition: its clients still reach it) |
| server-down / server-up | host | the host's interface goes down / up |
| controller-stop / controller-start | - | the controller process stops / a new one starts |
"""

import re
from dataclasses import dataclass

from lab.errors import LabError

ACTIONS = {"cut": "link", "heal": "link", "gray": "link", "ungray": "link",
           "power-off": "site", "power-on": "site", "isolate": "site", "rejoin": "site",
           "server-down": "host", "server-up": "host",
           "controller-stop": None, "controller-start": None}
ENTRY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s\s+([a-z-]+)(?:\s+([a-z0-9-]+))?\s*$")


@dataclass(frozen=True)
class Fault:
    at: float            # seconds after the traffic starts
    action: str
    target: str = None

    def __str__(self):
        return f"{self.action} {self.target}" if self.target else self.action

    @classmethod
    def parse(cls, at, text):
        """The Fault whose str() is `text` ('cut dci-a', 'controller-stop'), at `at` s."""
        action, _, target = text.partition(" ")
        return cls(at, action, target or None)


def parse_faults(text, topo, option="--faults"):
    """The faults of a timeline, in time order ('none': no faults, traffic only). Raises
    LabError naming the bad entry."""
    faults = []
    if text.strip().lower() == "none":
        return ()
    for entry in filter(str.strip, text.split(";")):
        match = ENTRY_RE.match(entry)
        if not match:
            raise LabError(f"{option}: {entry.strip()!r} is not a fault; write e.g. "
                           "'3s cut dci-a' (time in s, action, target)")
        at, action, target = float(match.group(1)), match.group(2), match.group(3)
        if action not in ACTIONS:
            raise LabError(f"{option}: {entry.strip()!r}: unknown action {action!r}; use one of "
                           + ", ".join(ACTIONS))
        kind = ACTIONS[action]
        names = {"link": [l.name for l in topo.links], "site": [s.name for s in topo.sites],
                 "host": [h.name for h in topo.hosts]}.get(kind, [])
        if kind and target not in names:
            raise LabError(f"{option}: {entry.strip()!r}: {action} needs a {kind} of "
                           f"{topo.name}: one of {', '.join(names)}")
        if not kind and target:
            raise LabError(f"{option}: {entry.strip()!r}: {action} takes no target")
        faults.append(Fault(at, action, target))
    return tuple(sorted(faults, key=lambda f: f.at))


def hosts_down(site_of, faults):
    """What each fault of a timeline does to the hosts: for each fault in order, the set of
    hosts down (powered off with their site, or their own link down) before it and after it.
    site_of: {host: its site's switch} (topology.site_of()). The one place that knows which
    hosts a fault takes down or brings back."""
    down, out = set(), []
    for fault in faults:
        before = set(down)
        if fault.action in ("power-off", "power-on"):
            site = {h for h, switch in site_of.items() if switch == fault.target}
            down = down | site if fault.action == "power-off" else down - site
        elif fault.action in ("server-down", "server-up"):
            down = down | {fault.target} if fault.action == "server-down" else down - {fault.target}
        out.append((before, set(down)))
    return out


def isolation_links(topo, site):
    """The links an `isolate SITE` cuts: every link between the site and another site (DCI and
    witness links), not its links to edges (its clients still reach it)."""
    sites = {s.name for s in topo.sites}
    return tuple(l.name for l in topo.links
                 if site in l.ends and all(end in sites for end in l.ends))
