"""What every experiment gets: its run context, progress output and a running lab."""

import time
from dataclasses import dataclass, field
from pathlib import Path

from lab import network
from lab.probe import Platform


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


@dataclass
class RunContext:
    """One experiment run: what it runs on, where it writes, and its options."""
    experiment: str
    topo: object
    platform: Platform
    run_dir: Path
    options: dict
    log: Progress = field(default_factory=Progress)
    seed: int = 1

    def open_lab(self):
        """Bring the topology up; a context manager that always tears it down exactly."""
        return network.running_lab(self.topo, self.platform, self.run_dir, self.experiment,
                                   log=self.log, seed=self.seed)
