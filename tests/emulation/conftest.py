"""Emulation tests build real lab networks: they need root, Open vSwitch and Mininet.

Without root they are skipped (a developer's laptop); as root a missing Open vSwitch is a
failure, not a skip, so CI cannot pass without really running them.
"""

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.emulation import probe, state
from lab.model.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
# On an emulated CPU (QEMU TCG, the VM harness) everything takes several times longer: the
# tests' own deadlines for a lab to come up or go away stretch there (lab.emulation.probe).
patience = probe.patience


def timing_bound(ok, message):
    """A bound on time (an outage, a deadline): fails the test where timing is judged; on an
    emulated CPU it is reported (xfail naming the accelerator) once the functional checks
    before it have passed."""
    judged, why_not = probe.timing_judged()
    if ok:
        return
    if judged:
        pytest.fail(message)
    pytest.xfail(f"timing, not judged on {why_not}: {message}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "emulation" in str(item.fspath):
            item.add_marker(pytest.mark.emulation)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="emulation tests need root"))


@pytest.fixture(scope="session", autouse=True)
def open_vswitch():
    if os.geteuid() == 0:
        assert probe.ovs_running(), "Open vSwitch is not running: run bash install.sh"


class LabProcess:
    """lab/run.py as a subprocess whose output we can wait on, stopped by its PID at the end."""

    def __init__(self, *args, ignore_sigint=False):
        # ignore_sigint: started as a non-interactive shell starts a job with `&`
        preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
        self.proc = subprocess.Popen([sys.executable, str(REPO / "lab" / "run.py"), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     bufsize=1, cwd=REPO, preexec_fn=preexec)
        self.lines = []

    def wait_for(self, text, timeout=60):
        deadline = time.monotonic() + patience(timeout)
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.lines.append(line)
                if text in line:
                    return line
        raise AssertionError(f"{text!r} not seen; output so far:\n{''.join(self.lines)}"
                             f"{self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def finish(self, timeout=60):
        out, err = self.proc.communicate(timeout=patience(timeout))
        self.lines.append(out)
        return self.proc.returncode, "".join(self.lines), err

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(patience(30))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def lab_process():
    started = []

    def start(*args, **kwargs):
        started.append(LabProcess(*args, **kwargs))
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


def in_a_lab_namespace(proc_dir):
    """A process the lab started in a host (every program it starts runs in the checkout) whose
    network namespace is not ours: once the lab is down, only a program it lost keeps one."""
    try:
        return (os.readlink(proc_dir / "cwd") == str(REPO)
                and os.readlink(proc_dir / "ns" / "net") != os.readlink("/proc/self/ns/net"))
    except OSError:
        return False


def lab_leftovers(topology="dual-active", run_dir=None):
    """Everything of a topology's lab still on the machine: bridges, root-namespace interfaces,
    host and link-node shells, processes naming the run folder or the lab's scratch space
    (databases, HAProxy: their files live there), and the state file. topology: a shipped
    topology's name, or a Topology (a generated one)."""
    topo = load_topology(topology) if isinstance(topology, str) else topology
    left = [f"bridge {s.name}" for s in topo.switches if state.bridge_exists(s.name)]
    names = [p.intf for s in topo.switches for p in topo.ports(s.name)]
    names += [s.name for s in topo.switches]
    names += [f"{l.name}-eth{n}" for l in topo.links for n in (0, 1)]
    names += [f"{fw}-eth{n}" for fw, _ in topo.firewalls for n in (0, 1)]
    left += [f"interface {n}" for n in names if state.interface_exists(n)]
    shells = {f"mininet:{n}" for n in [h.name for h in topo.hosts] + [l.name for l in topo.links]
              + [fw for fw, _ in topo.firewalls]}
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(args.rstrip().endswith(shell) for shell in shells) or (
                run_dir and str(run_dir) in args) or str(state.scratch_root()) + "/" in args \
                or in_a_lab_namespace(proc_dir):
            left.append(f"process {proc_dir.name}: {args.strip()}")
    if (state.state_dir() / "state.json").exists():
        left.append("state file")
    return left


def run_experiment(tmp_path_factory, name, *args, timeout=600):
    """lab/run.py NAME --quick [args] into a fresh folder; returns (metrics, run folder)."""
    import json
    out = tmp_path_factory.mktemp(name)
    proc = subprocess.run([sys.executable, str(REPO / "lab" / "run.py"), name, "--quick", *args,
                           "--out", str(out)], capture_output=True, text=True,
                          timeout=patience(timeout))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = next((out / name).iterdir())
    return json.loads((run_dir / "metrics.json").read_text()), run_dir
