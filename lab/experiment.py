"""Experiments as a protocol, and what every experiment gets: its run context, progress
output and a running lab.

An experiment is a module (experiments/NAME.py) with:

    NAME, DESCRIPTION, TOPOLOGY        its name, one line for `list`, its default topology
    add_arguments(parser)              its own options (argparse, each checked before a build)
    run(ctx) -> Summary                builds, measures, writes the raw files into
                                       ctx.run_dir; then metrics.json (analyse), its figures
                                       (plot) and its Summary (summarize), from the files alone
    analyse(run_dir) -> metrics        metrics.json's content from the raw files (pure:
                                       `lab/run.py analyse RUN_DIR` recomputes an old run's)
    summarize(run_dir) -> Summary      the summary from metrics.json and params.json
    plot(run_dir) -> [paths]           its figures from the run folder alone (`lab/run.py plot`)
  optional:
    COMMON_OPTIONS                     which shared options it takes (default options.COMMON)
    topology_for(args)                 builds its topology instead of loading --topology
    OPTIONS                            its Options dataclass (default Options): the runner
                                       parses the command line into it once (ctx.opts)
    validate(opts, topo)               refuses bad option/topology pairs before anything runs

Experiment.from_module reads a module into this shape once (experiments/__init__.py), so the
runner never asks a module what it has.
"""

import contextlib
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Optional

from controllers.intent import DEFAULT_MODE, DEFAULT_POLICY
from lab.analysis import mpl
from lab.emulation import network
from lab.emulation.probe import Platform

# The shared options every experiment is offered unless it declares COMMON_OPTIONS itself.
COMMON_OPTIONS = ("topology", "mode", "vip_policy", "bfd_ms")


@dataclass(frozen=True)
class Options:
    """An experiment's options, declared once with their defaults (a subclass per experiment,
    its own fields added) and parsed once from the command line's values (``parse``).

    QUICK: the defaults --quick changes ({field: value}). A value the user gave always wins;
    a field the command line left out (None) takes the --quick or the plain default."""
    mode: str = DEFAULT_MODE
    vip_policy: str = DEFAULT_POLICY
    bfd_ms: int = 100
    quick: bool = False
    seed: int = 1
    QUICK = {}

    @classmethod
    def parse(cls, raw):
        raw = dict(raw)
        quick = bool(raw.get("quick"))
        values = {}
        for f in fields(cls):
            given = raw.get(f.name)
            if given is not None:
                values[f.name] = given
            elif quick and f.name in cls.QUICK:
                values[f.name] = cls.QUICK[f.name]
        return cls(**values)

    @classmethod
    def default(cls, name, quick=False):
        """The default of option `name` (for --help texts)."""
        if quick and name in cls.QUICK:
            return cls.QUICK[name]
        return next(f.default for f in fields(cls) if f.name == name)


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    topology: str
    add_arguments: Callable
    run: Callable
    analyse: Callable
    summarize: Callable
    plot: Callable
    common_options: tuple = COMMON_OPTIONS
    topology_for: Optional[Callable] = None
    validate: Optional[Callable] = None
    options: type = None               # its Options dataclass (OPTIONS; default: Options)
    doc: str = ""                      # the module's docstring: the experiment's --help

    @classmethod
    def from_module(cls, module):
        required = {"name": "NAME", "description": "DESCRIPTION", "topology": "TOPOLOGY",
                    "add_arguments": "add_arguments", "run": "run", "analyse": "analyse",
                    "summarize": "summarize", "plot": "plot"}
        missing = [attr for attr in required.values() if not hasattr(module, attr)]
        if missing:
            raise TypeError(f"experiment module {module.__name__} lacks {', '.join(missing)} "
                            "(see lab/experiment.py)")
        optional = {"common_options": "COMMON_OPTIONS", "topology_for": "topology_for",
                    "validate": "validate", "options": "OPTIONS"}
        values = {"doc": module.__doc__ or "", "options": Options}
        values.update({field_: getattr(module, attr) for field_, attr in required.items()})
        values.update({field_: getattr(module, attr) for field_, attr in optional.items()
                       if hasattr(module, attr)})
        return cls(**values)


class Progress:
    """Progress lines with the seconds since the run command started."""

    def __init__(self, t0=None, quiet=False):
        self.t0 = t0 if t0 is not None else time.monotonic()
        self.quiet = quiet

    def elapsed(self):
        return time.monotonic() - self.t0

    def __call__(self, message):
        if not self.quiet:
            print(f"[{self.elapsed():6.1f}s] {message}", flush=True)


@dataclass
class Summary:
    """How a run ended: the text the CLI prints, success, and the problems found.

    timing: verdicts about time (fidelity of delays and rates, senders keeping their rate) that
    failed. They fail the run like problems, except on an emulated CPU (QEMU TCG), where they
    are reported with the accelerator named (probe.timing_judged)."""
    text: str
    ok: bool
    problems: list
    timing: list = field(default_factory=list)
    figures: list = field(default_factory=list)   # the figures the run drew (paths)


@dataclass
class RunContext:
    """One experiment run: what it runs on, where it writes, and its options."""
    experiment: str
    topo: object
    platform: Platform
    run_dir: Path
    options: dict                      # the command line's values, as params.json records them
    opts: Options = None               # the same parsed once into the experiment's OPTIONS
    log: Progress = field(default_factory=Progress)
    seed: int = 1

    @contextlib.contextmanager
    def open_lab(self):
        """Bring the topology up; a context manager that always tears it down exactly. The
        figures come after it: matplotlib loads while the lab tears down (mpl.preload)."""
        with network.running_lab(self.topo, self.platform, self.run_dir, self.experiment,
                                 log=self.log, seed=self.seed) as lab:
            try:
                yield lab
            finally:
                mpl.preload()
