"""Running commands: argv lists only (no shell strings: run_all quotes each argv into one sh
script), with timeouts and one-line errors."""

import shlex
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


BATCHED = ("ip", "tc")          # tools with a -batch mode: consecutive commands, one process


def _batchable(argv):
    return (len(argv) > 1 and argv[0] in BATCHED and not argv[1].startswith("-")
            and all(a and not any(c.isspace() or c in "\"'\\" for c in a) for a in argv))


def script(argvs, check=True):
    """A POSIX sh script running argvs in order. Consecutive `ip` or `tc` commands become one
    `ip -batch`/`tc -batch` (one process for all). check: the first command that fails stops
    the script and says which on stderr ("failed: COMMAND"); else every command runs."""
    argvs = [[str(a) for a in argv] for argv in argvs]
    groups = []
    for argv in argvs:
        if groups and _batchable(argv) and _batchable(groups[-1][0]) \
                and groups[-1][0][0] == argv[0]:
            groups[-1].append(argv)
        else:
            groups.append([argv])
    lines = []
    for group in groups:
        if len(group) > 1:
            tool = group[0][0]
            cmd = f"{tool} {'' if check else '-force '}-batch -"
            body = "\n".join(" ".join(argv[1:]) for argv in group)
            what = f"{tool} -batch ({len(group)} commands, from: {shlex.join(group[0])})"
            lines.append(f"{cmd} <<'ACTIVELAB_BATCH' || "
                         + (f"{{ echo {shlex.quote('failed: ' + what)} >&2; exit 1; }}"
                            if check else "true")
                         + f"\n{body}\nACTIVELAB_BATCH")
            continue
        cmd = shlex.join(group[0])          # stdin: not the rest of the script (sh -s)
        lines.append(f"{cmd} </dev/null || {{ echo {shlex.quote('failed: ' + cmd)} >&2; exit 1; }}"
                     if check else f"{cmd} </dev/null || true")
    return "\n".join(lines)


def run_all(argvs, timeout=60, check=True, wrap=None):
    """Run many commands as one process (one sh script: a fork and exec for all of them
    instead of one each, which is what building a 16-site lab spends its time on).
    wrap(argv): what runs the script (e.g. inside a node). Raises LabError naming the first
    command that failed and its error when check. Returns CompletedProcess (None for none)."""
    if not argvs:
        return None
    argv = ["sh", "-s"]                       # the script on stdin: no argument-size limit
    proc = run(wrap(argv) if wrap else argv, timeout=timeout, check=False,
               stdin=script(argvs, check) + "\n")
    if check and proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        failed = next((l for l in reversed(lines) if l.startswith("failed: ")), None)
        if failed is None:
            raise LabError(f"commands failed ({proc.returncode}): "
                           + (lines[-1] if lines else "sh gave no reason"))
        detail = lines[lines.index(failed) - 1] if lines.index(failed) > 0 else ""
        raise LabError(f"command failed: {failed[len('failed: '):]}"
                       + (f": {detail}" if detail else ""))
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
