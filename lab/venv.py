"""Run in the project's .venv whatever `python` started us (stdlib only: imported first).

`sudo python lab/run.py` may start any interpreter on root's PATH (Mininet issue #1128: the one
sudo finds is not the one you set up). Scripts call ensure_venv() before importing anything
else; it re-executes the script with .venv/bin/python, or says how to set the lab up.
"""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"


def ensure_venv():
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        sys.stderr.write(f"error: ActiveLab is not set up here ({python} is missing); "
                         f"run as root: bash {REPO / 'install.sh'}\n")
        sys.exit(1)
    script = str(Path(sys.argv[0]).resolve())
    os.execv(str(python), [str(python), script] + sys.argv[1:])
