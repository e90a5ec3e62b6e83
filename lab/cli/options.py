"""Option types and checks shared by the command line: every value checked before anything runs.

argparse calls these types with the text the user typed; an ArgumentTypeError becomes one line
naming the option (lab/run.py's parser), exit 1. Nothing here builds or writes anything.
"""

import argparse
import os
import shutil
from pathlib import Path

from lab.errors import LabError

MIN_FREE_MB = 50          # a run writes raw samples: refuse to start on a (nearly) full disk


def bounded(kind, low, high):
    """An argparse type: an int or float in [low, high] (inclusive)."""
    noun = "whole number" if kind is int else "number"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {noun}") from None
        if kind is float and value != value:                    # NaN
            raise argparse.ArgumentTypeError(f"{text!r} is not a number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range; use a {noun} from "
                                             f"{low:g} to {high:g}")
        return value

    parse.__name__ = noun                          # argparse names the type in its errors
    return parse


def int_list(low, high):
    """An argparse type: comma-separated whole numbers, each in [low, high]."""
    one = bounded(int, low, high)

    def parse(text):
        items = [t.strip() for t in text.split(",")]
        if not text.strip() or any(not t for t in items):
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                             "whole numbers (e.g. 1,5)")
        return [one(t) for t in items]

    parse.__name__ = "list"
    return parse


def name_list(allowed):
    """An argparse type: comma-separated names, each one of `allowed`, no repeats."""

    def parse(text):
        items = [t.strip() for t in text.split(",")]
        bad = [t for t in items if t not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad[0]!r}; use some of "
                                             + ",".join(allowed))
        if len(set(items)) != len(items):
            raise argparse.ArgumentTypeError(f"{text!r} names one twice")
        return ",".join(items)

    parse.__name__ = "list"
    return parse


def check_out_dir(path, min_free_mb=MIN_FREE_MB):
    """--out must be a folder we can create and write in, with room for a run's raw samples."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LabError(f"--out {path}: is a file, not a folder; give a folder for the results")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise LabError(f"--out {path}: {existing} is a file, not a folder; give a folder")
    resolved = existing.resolve()
    if resolved.parts[:2] in (("/", "proc"), ("/", "sys"), ("/", "dev")):
        raise LabError(f"--out {path}: {resolved.parts[1]} is a kernel file system, not a place "
                       "for results; give a folder on a disk")
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise LabError(f"--out {path}: {existing} is on a read-only file system; give a "
                       "writable folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LabError(f"--out {path}: {existing} is not writable; give a writable folder")
    free_mb = shutil.disk_usage(existing).free / 1e6
    if free_mb < min_free_mb:
        raise LabError(f"--out {path}: only {free_mb:.0f} MB free on its disk; a run needs "
                       f"{min_free_mb} MB: free some space or give another folder")
