"""Running commands: argv lists only (no shell strings), with timeouts and one-line errors."""

import subprocess
import sys

from lab.errors import LabError


def run(argv, timeout=30, check=True, stdin=None):
    """Run argv; return CompletedProcess (text). Raises LabError when check and it fails."""
    argv = [str(a) for a in argv]
    try:
        # its own session: a Ctrl-C at the terminal reaches the lab, which decides (and
        # finishes its teardown), never the commands it runs
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)
    except FileNotFoundError:
        raise LabError(f"command not found: {argv[0]}; run the installer (bash install.sh)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"command timed out after {timeout}s: {' '.join(argv)}") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"command failed ({proc.returncode}): {' '.join(argv)}"
                       + (f": {detail[-1]}" if detail else ""))
    return proc


def ok(argv, timeout=10):
    """True when argv runs and exits 0."""
    try:
        return run(argv, timeout=timeout, check=False).returncode == 0
    except LabError:
        return False


def python_module(module, *args, python=None, **options):
    """The argv that runs `python -m module ARGS --option value ...`: each agent builds its
    command line with this beside its own parser. Options: snake_case → --kebab-case; None is
    left out; True is a bare flag, False left out; floats without a trailing .0; lists repeat
    the option once per item."""
    argv = [python or sys.executable, "-m", module, *[str(a) for a in args]]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
            continue
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            argv += [flag, f"{item:g}" if isinstance(item, float) else str(item)]
    return argv
