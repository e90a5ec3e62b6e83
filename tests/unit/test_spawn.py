"""A program the lab starts is recorded for teardown even when Ctrl-C lands while it starts."""

import signal
import subprocess
import sys

import pytest

from lab.emulation import network


class FakeLedger:
    def __init__(self):
        self.pids = []

    def add_process(self, pid, what, group=False):
        self.pids.append(pid)


def _lab():
    lab = network.LabNetwork.__new__(network.LabNetwork)
    lab.ledger, lab.processes = FakeLedger(), []
    return lab


def _popen_then_ctrl_c(monkeypatch, started):
    real = subprocess.Popen

    def popen(argv, **kwargs):
        proc = real([sys.executable, "-c", "import time; time.sleep(30)"], **kwargs)
        started.append(proc)
        signal.raise_signal(signal.SIGINT)       # Ctrl-C right after the fork, inside Popen
        return proc

    monkeypatch.setattr(network.subprocess, "Popen", popen)


def test_ctrl_c_while_a_program_starts_leaves_it_recorded(monkeypatch):
    lab, started = _lab(), []
    _popen_then_ctrl_c(monkeypatch, started)
    try:
        with pytest.raises(KeyboardInterrupt):          # the run still ends as interrupted
            lab._spawn(["galera"], "galera node", {}, group=True)
        assert lab.ledger.pids == [started[0].pid]      # ... with the program recorded
        assert lab.processes == started and started[0].group is True
    finally:
        started[0].kill()
        started[0].wait()


def test_without_the_shield_the_same_ctrl_c_orphans_it(monkeypatch):    # positive control
    lab, started = _lab(), []
    _popen_then_ctrl_c(monkeypatch, started)
    monkeypatch.setattr(network, "shielded", lambda work: work())
    try:
        with pytest.raises(KeyboardInterrupt):
            lab._spawn(["galera"], "galera node", {}, group=True)
        assert lab.ledger.pids == [] and lab.processes == []
        assert started[0].poll() is None                # running, and nobody knows its PID
    finally:
        started[0].kill()
        started[0].wait()


def test_a_program_started_from_a_thread_is_recorded_too(monkeypatch):
    import threading
    lab, out = _lab(), []
    real = subprocess.Popen
    monkeypatch.setattr(network.subprocess, "Popen",
                        lambda argv, **kw: real([sys.executable, "-c", "pass"], **kw))
    worker = threading.Thread(target=lambda: out.append(lab._spawn(["x"], "x", {})))
    worker.start()
    worker.join()
    assert lab.ledger.pids == [out[0].pid]
    out[0].wait()
