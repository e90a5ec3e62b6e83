"""ActiveLab: an emulation lab for distributed active/active data centers.

The package's folders are its layers (see the README's Architecture section):

    lab/model/       what the lab is told: topologies and fault timelines, as data
    lab/emulation/   the running network: build, shaping, teardown, controller process, traffic
    lab/agents/      programs that run inside lab hosts (probe streams, sessions, services ...)
    lab/analysis/    raw files to metrics, figures, the report
    lab/cli/         option types, the interactive CLI, grading
    lab/run.py       the one entry point; lab/experiment.py the experiment protocol

Modules that lived flat in lab/ before these folders (lab.topology, lab.network, ...) are
still importable under their old names: the same module objects (an alias, not a copy).
"""

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"
REPO = Path(__file__).resolve().parent.parent     # the checkout: topologies/, results/, .venv

MOVED = {
    "topology": "model", "faults": "model",
    "network": "emulation", "shaping": "emulation", "fabric": "emulation", "state": "emulation",
    "controller": "emulation", "firewall": "emulation", "probe": "emulation",
    "traffic": "emulation", "streams": "emulation",
    "probestream": "agents", "sessions": "agents", "craftsessions": "agents",
    "service": "agents", "gslb": "agents", "standby": "agents", "fwprobes": "agents",
    "delayline": "agents",
    "metrics": "analysis", "plots": "analysis", "report": "analysis", "results": "analysis",
    "fidelity": "analysis", "draw": "analysis",
    "interactive": "cli", "grading": "cli", "options": "cli",
}


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import lab.topology` gives lab.model.topology itself (same object, same state)."""

    def find_spec(self, name, path=None, target=None):
        prefix, _, leaf = name.partition(".")
        if prefix == "lab" and leaf in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(f"lab.{MOVED[spec.name[4:]]}.{spec.name[4:]}")
        self._real = (module, module.__spec__, module.__loader__)
        return module

    def exec_module(self, module):
        real, spec, loader = self._real           # importlib stamped the alias spec on it:
        real.__spec__, real.__loader__ = spec, loader   # give it back its own


sys.meta_path.append(_OldNames())
