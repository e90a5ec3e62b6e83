"""Exact teardown: a ledger of everything a run creates, a lock, and removal of exactly that.

Before the lab creates a bridge, an interface or a process it writes its name (or PID and start
time) to a state file under /run/activelab. Teardown removes exactly what the ledger holds, in
reverse order of kind (processes, then interfaces, then bridges, then scratch folders) and
deletes the file; after a
crash `lab/run.py clean` does the same from the file. Nothing is ever found or killed by a name
pattern, and a PID is only signalled while its start time still matches (no PID reuse).
"""

import fcntl
import json
import os
import shutil
import signal
import time
from datetime import datetime
from pathlib import Path

from lab import sh
from lab.errors import LabError


def state_dir():
    return Path(os.environ.get("ACTIVELAB_STATE_DIR", "/run/activelab"))


def scratch_root():
    """Where a run's scratch space lives (databases' data directories, sockets): on disk, not
    in /run (tmpfs, often a few hundred MB on a small VM). Teardown removes only what is
    under it."""
    return Path(os.environ.get("ACTIVELAB_SCRATCH", "/var/tmp/activelab"))


def proc_start_time(pid):
    """The start time of a process in clock ticks since boot (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def cpu_seconds(pid, stat=None):
    """CPU time a process has used (user + system, seconds; None when it is gone). stat: the
    text of /proc/PID/stat (read when not given)."""
    if stat is None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_table():
    """Every process now: {pid: (ppid, pgid, rss_kb)} from /proc (ones that vanish while
    being read are left out)."""
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            table[int(stat.parent.name)] = (int(fields[1]), int(fields[2]),
                                            int(fields[21]) * page_kb)
        except (OSError, ValueError, IndexError):
            continue
    return table


def descendants(table, roots):
    """The PIDs in `roots` that exist, and every process below them."""
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [pid for pid in roots if pid in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def memory_mb(parts, table=None):
    """Resident memory (RSS, MB) of named parts of a lab, each given as root PIDs; a process
    counts once, in the first part that holds it (a root's process group and descendants
    belong to it), and 'total' is their sum. RSS counts shared pages (libraries) in every
    process, so the total is an upper bound of what the lab holds."""
    table = process_table() if table is None else table
    groups = {}
    for pid, (_, pgid, _) in table.items():
        groups.setdefault(pgid, []).append(pid)
    seen, out = set(), {}
    for name, roots in parts.items():
        roots = [pid for pid in roots if pid]
        members = descendants(table, roots + [p for r in roots for p in groups.get(r, ())])
        members -= seen
        seen |= members
        out[name] = round(sum(table[pid][2] for pid in members) / 1024, 1)
    out["total"] = round(sum(out.values()), 1)
    return out


class Ledger:
    """What one run has created, saved to disk after every change."""

    def __init__(self, path, data):
        self.path = Path(path)
        self.data = data

    @classmethod
    def create(cls, experiment, run_dir=None):
        data = {"pid": os.getpid(), "start_time": proc_start_time(os.getpid()),
                "experiment": experiment, "started": datetime.now().isoformat(timespec="seconds"),
                "run_dir": str(run_dir) if run_dir else None,
                "processes": [], "interfaces": [], "bridges": [], "paths": []}
        ledger = cls(state_dir() / "state.json", data)
        ledger.save()
        return ledger

    @classmethod
    def load(cls):
        path = state_dir() / "state.json"
        try:
            return cls(path, json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(f"{path}: unreadable state file ({exc}); inspect it, then delete it") from None

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)

    def add_process(self, pid, what, group=False):
        """Record a process we started (group: signal its whole process group, it leads one)."""
        self.data["processes"].append({"pid": pid, "start_time": proc_start_time(pid),
                                       "what": what, "group": group})
        self.save()

    def add_pidfile(self, path, what):
        """Record a pid file a program of ours will write for a process it detaches (Patroni
        starts PostgreSQL in a session of its own, so that it outlives Patroni): teardown stops
        the process the file names, if that process still works in the file's folder."""
        self.data.setdefault("pidfiles", []).append({"path": str(path), "what": what})
        self.save()

    def add_interfaces(self, *names):
        self.data["interfaces"].extend(n for n in names if n not in self.data["interfaces"])
        self.save()

    def add_path(self, path):
        """Record a scratch directory before creating it (teardown removes it and all it
        holds; only a path under scratch_root() is accepted)."""
        path = Path(path).resolve()
        if scratch_root().resolve() not in path.parents:
            raise LabError(f"{path}: scratch space must be under {scratch_root()}")
        if str(path) not in self.data.setdefault("paths", []):
            self.data["paths"].append(str(path))
            self.save()
        return path

    def add_bridge(self, name):
        if name not in self.data["bridges"]:
            self.data["bridges"].append(name)
            self.save()

    def owner_alive(self):
        """True while the run that wrote this ledger is still running."""
        return proc_start_time(self.data["pid"]) == self.data["start_time"]

    def summary(self):
        return (f"{self.data['experiment']} (pid {self.data['pid']}, since {self.data['started']}): "
                f"{len(self.data['processes'])} processes, {len(self.data['interfaces'])} "
                f"interfaces, {len(self.data['bridges'])} bridges, "
                f"{len(self.data.get('paths', []))} scratch folders")

    def remove(self):
        self.path.unlink(missing_ok=True)


def interface_exists(name):
    return Path("/sys/class/net", name).exists()


def bridge_exists(name):
    return sh.run(["ovs-vsctl", "--timeout=5", "br-exists", name], check=False).returncode == 0


def stop_process(entry, grace=2.0):
    """SIGTERM a recorded process (its group if it leads one), SIGKILL after `grace` seconds.

    Returns True when it was still ours and running."""
    pid = entry["pid"]

    def alive():
        return entry["start_time"] is not None and proc_start_time(pid) == entry["start_time"]

    if not alive():
        return False
    send = (lambda sig: os.killpg(pid, sig)) if entry.get("group") else (lambda sig: os.kill(pid, sig))
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            send(sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:                       # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not alive():
                return True
            time.sleep(0.02)
    return True


def pidfile_process(entry):
    """The process a recorded pid file names, as a process entry (stop_process), or None when
    the file is gone or its PID is no longer a process working in the file's folder (a PID
    reused by someone else is never touched). The first line is the PID (PostgreSQL's
    postmaster.pid; its working directory is its data directory)."""
    path = Path(entry["path"])
    try:
        pid = int(path.read_text().split()[0])
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (OSError, ValueError, IndexError):
        return None
    if cwd.resolve() != path.parent.resolve():
        return None
    try:
        group = os.getpgid(pid) == pid
    except OSError:
        return None
    return {"pid": pid, "start_time": proc_start_time(pid), "what": entry["what"],
            "group": group}


def teardown(ledger, log=print):
    """Remove everything in the ledger that still exists; return a list of what could not be."""
    problems = []
    for entry in reversed(ledger.data.get("pidfiles", [])):
        process = pidfile_process(entry)
        try:
            if process:
                stop_process(process)
        except OSError as exc:
            problems.append(f"process {process['pid']} ({entry['what']}): {exc}")
    for entry in reversed(ledger.data["processes"]):
        try:
            stop_process(entry)
        except OSError as exc:
            problems.append(f"process {entry['pid']} ({entry['what']}): {exc}")
    for name in ledger.data["interfaces"]:
        if interface_exists(name):
            proc = sh.run(["ip", "link", "del", "dev", name], check=False)
            if proc.returncode != 0 and interface_exists(name):
                problems.append(f"interface {name}: {proc.stderr.strip()}")
    for name in ledger.data["bridges"]:
        proc = sh.run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", name], check=False)
        if proc.returncode != 0:
            problems.append(f"bridge {name}: {proc.stderr.strip()}")
    for name in reversed(ledger.data.get("paths", [])):
        path = Path(name)
        if scratch_root().resolve() not in path.parents:      # never outside our scratch
            problems.append(f"folder {name}: not under {scratch_root()}, left alone")
            continue
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"folder {name}: {exc.strerror or exc}")
    if problems:
        for problem in problems:
            log(f"teardown: could not remove {problem}")
    else:
        ledger.remove()
    return problems


def leftovers(ledger):
    """What of the ledger still exists (for tests and for `clean`)."""
    left = [f"process {p['pid']} ({p['what']})" for p in ledger.data["processes"]
            if p["start_time"] is not None and proc_start_time(p["pid"]) == p["start_time"]]
    left += [f"process {p['pid']} ({p['what']})" for p in
             map(pidfile_process, ledger.data.get("pidfiles", [])) if p]
    left += [f"interface {n}" for n in ledger.data["interfaces"] if interface_exists(n)]
    left += [f"bridge {n}" for n in ledger.data["bridges"] if bridge_exists(n)]
    left += [f"folder {n}" for n in ledger.data.get("paths", []) if Path(n).exists()]
    return left


class RunLock:
    """One lab at a time: an flock on /run/activelab/lock, held for the run's lifetime."""

    def __init__(self):
        self.path = state_dir() / "lock"
        self.fh = None

    def acquire(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            self.fh = None
            ledger = Ledger.load()
            if ledger is not None and ledger.data.get("experiment") == "up":
                raise LabError(f"a lab is up ({ledger.data.get('run_dir')}, supervisor pid "
                               f"{ledger.data.get('pid')}, since {ledger.data.get('started')}): "
                               "take it down first with: sudo python lab/run.py down") from None
            running = ledger.summary() if ledger else "another ActiveLab run"
            raise LabError(f"another lab is running: {running}; wait for it to finish "
                           "or stop it (Ctrl-C in its terminal)") from None
        return self

    def release(self):
        if self.fh:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
