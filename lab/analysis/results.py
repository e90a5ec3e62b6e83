"""Run folders and what goes in them: parameters, platform facts, CSV samples, metrics, tables."""

import csv
import json
import os
from datetime import datetime
from pathlib import Path
from lab import REPO

RESULTS_ROOT = REPO / "results"


def new_run_dir(experiment, root=None):
    """results/<experiment>/<run-id>/, created; the run id is the start time (unique)."""
    base = Path(root or RESULTS_ROOT) / experiment
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        run_dir = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run folder under {base}")


def write_json(path, data):
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")


def write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def hand_to_invoking_user(path):
    """Under sudo, give the run folder to the user who typed the command."""
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if not (uid and gid):
        return
    for root, dirs, files in os.walk(path):
        for name in [root] + [os.path.join(root, f) for f in dirs + files]:
            os.chown(name, int(uid), int(gid))


def format_table(headers, rows):
    """A plain text table, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
