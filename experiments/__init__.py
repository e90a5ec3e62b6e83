"""The experiments, by name: the one registry lab/run.py and the bench scripts use.

Each experiment module follows the protocol described in lab/experiment.py (NAME, DESCRIPTION,
TOPOLOGY, add_arguments, run, analyse, summarize, plot; optionally COMMON_OPTIONS,
topology_for, validate); Experiment.from_module checks it when this registry is built.
"""

import json
from pathlib import Path

from experiments import (compare_designs, dci_qos, dual_active, firewall, gslb, multi_active,
                         primary_backup, replication, scale, split_brain, three_site)
from lab.errors import LabError
from lab.experiment import Experiment

EXPERIMENTS = {e.name: e for e in map(Experiment.from_module,
                                      (dual_active, firewall, primary_backup, three_site,
                                       multi_active, gslb, compare_designs, replication,
                                       split_brain, dci_qos, scale))}


def of_run(run_dir):
    """The experiment that wrote a run folder (from its params.json)."""
    try:
        name = json.loads((Path(run_dir) / "params.json").read_text())["experiment"]
    except (OSError, ValueError, KeyError, TypeError):
        raise LabError(f"{run_dir}: no readable params.json naming its experiment; give a run "
                       "folder written by lab/run.py") from None
    if name not in EXPERIMENTS:
        raise LabError(f"{run_dir}: written by experiment {name!r}, which this version does not "
                       f"have (it has {', '.join(EXPERIMENTS)})")
    return EXPERIMENTS[name]


def plot(run_dir):
    """Redraw a run folder's figures with the experiment that wrote it; returns the paths."""
    return of_run(run_dir).plot(run_dir)
