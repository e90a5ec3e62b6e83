"""A lab that stays up: up, status, faults between commands, exec, the attached prompt, down;
misuse answered in one line; nothing left behind on any way down (down, the supervisor killed,
Ctrl-C during up)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lab.cli import lifecycle
from lab.emulation import state
from tests.emulation.conftest import REPO, lab_leftovers, patience


def run(*args, timeout=None, stdin=None):
    return subprocess.run([sys.executable, str(REPO / "lab" / "run.py"), *args], cwd=REPO,
                          capture_output=True, text=True, input=stdin,
                          timeout=timeout or patience(240))


def status():
    proc = run("status", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def link(data, name):
    return next(l for l in data["links"] if l["name"] == name)


def wait(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    return condition()


@pytest.fixture
def lab_up(tmp_path):
    """dual-active up (and always down, and checked gone, at the end)."""
    assert lab_leftovers() == [], "a lab was left before the test"
    proc = run("up", "dual-active", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        yield tmp_path
    finally:
        if lifecycle.Session.load() is not None:
            run("down")
        assert lab_leftovers() == []
        assert not lifecycle.session_path().exists()


def test_up_status_faults_exec_down(lab_up):
    first = status()
    assert first["topology"] == "dual-active"
    assert {l["name"]: l["state"] for l in first["links"]} == {
        "dci-a": "up", "dci-b": "up", "edge-dc1": "up", "edge-dc2": "up"}
    assert all(l["controller"] == "live" for l in first["links"])
    assert link(first, "dci-b")["bw_mbit"] == 50 and link(first, "dci-b")["delay_ms"] == 5
    assert {v["client"]: v["site"] for v in first["vip_placement"]} == {"client1": "dc1",
                                                                        "client2": "dc1"}
    assert first["backup_coverage"]["covered"] == 2
    assert first["controller"]["running"] and first["controller"]["switches_connected"] == 3
    assert {n["name"] for n in first["nodes"]} == {"dc1", "dc2", "edge", "client1", "client2",
                                                   "dc1-srv1", "dc1-srv2", "dc2-srv1", "dc2-srv2"}

    # a fault between commands, seen by the controller, undone
    proc = run("fail", "dci-a")
    assert proc.returncode == 0 and "the controller sees it down" in proc.stdout, proc.stdout
    cut = status()
    assert link(cut, "dci-a")["state"] == "cut" and link(cut, "dci-a")["controller"] == "down"
    assert run("heal", "dci-a").returncode == 0
    assert wait(lambda: link(status(), "dci-a")["controller"] == "live", patience(10))

    # a power-off moves the clients to the other site; power-on brings it back
    assert run("power-off", "dc1").returncode == 0
    off = status()
    assert {s["name"]: s["power"] for s in off["sites"]} == {"dc1": "off", "dc2": "on"}
    assert wait(lambda: {v["site"] for v in status()["vip_placement"]} == {"dc2"}, patience(15))
    assert run("power-on", "dc1").returncode == 0

    # exec runs in the host's namespace and exits with the command's status
    proc = run("exec", "client1", "--", "ip", "-4", "-o", "addr", "show")
    assert proc.returncode == 0 and "10.100.0.11" in proc.stdout
    assert run("exec", "client1", "--", "false").returncode == 1
    proc = run("exec", "dc1", "--", "ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "dc1")
    assert proc.returncode == 0 and "type=ff" in proc.stdout, proc.stdout + proc.stderr

    # a move: the host answers from its new site; lab 2's check grades it from the logs
    graded = run("check", "lab2", "--results", str(lab_up))
    assert graded.returncode == 1 and "no host was moved" in graded.stdout, graded.stdout
    proc = run("move", "dc1-srv2", "dc2")
    assert proc.returncode == 0, proc.stderr
    assert "client1 reaches it again" in proc.stdout, proc.stdout
    graded = run("check", "lab2", "--results", str(lab_up))
    assert graded.returncode == 0 and "lab2: done" in graded.stdout, graded.stdout
    moved = status()
    assert next(h for h in moved["hosts"] if h["name"] == "dc1-srv2")["site"] == "dc2"
    assert wait(lambda: run("exec", "client1", "--", "ping", "-c1", "-W1", "10.1.0.12"
                            ).returncode == 0, patience(15))

    # the attached prompt: commands through the supervisor, hosts by name; leaving keeps it up
    proc = run("cli", stdin="gray dci-b\nungray dci-b\nclient2 ping -c1 -W2 dc2-srv1\nexit\n")
    assert proc.returncode == 0, proc.stderr
    assert "dci-b drops every frame" in proc.stdout and "1 received" in proc.stdout
    assert lifecycle.running_session() is not None

    proc = run("down")
    assert proc.returncode == 0 and "nothing is left" in proc.stdout
    assert lab_leftovers() == []


def test_misuse_is_one_line(lab_up):
    cases = [(("up", "dual-active"), "a lab is up"),
             (("dual-active", "--quick"), "lab/run.py down"),
             (("fail", "dci-z"), "unknown link 'dci-z'"),
             (("power-off", "dc9"), "unknown site 'dc9'"),
             (("move", "nobody", "dc2"), "unknown host 'nobody'"),
             (("exec", "nobody", "--", "true"), "unknown node 'nobody'"),
             (("exec", "client1"), "no command")]
    for args, text in cases:
        proc = run(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and text in lines[0], (args, proc.stderr)
    # the lab is still up and whole
    assert all(l["controller"] == "live" for l in status()["links"])


def test_nothing_up():
    assert lifecycle.running_session() is None
    for args in (("down",), ("status",), ("fail", "dci-a"), ("exec", "client1", "--", "true")):
        proc = run(*args)
        assert proc.returncode == 1 and "no lab is up" in proc.stderr, (args, proc.stderr)


def test_a_killed_supervisor_is_cleaned_by_down(tmp_path):
    proc = run("up", "dual-active", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    session = lifecycle.Session.load()
    assert lab_leftovers() != []                     # positive control: the lab is there
    os.kill(session.data["pid"], signal.SIGKILL)
    assert wait(lambda: not session.alive(), 10)
    proc = run("down")
    assert proc.returncode == 0, proc.stderr
    assert "is gone" in proc.stdout
    assert lab_leftovers() == [] and not lifecycle.session_path().exists()


def test_ctrl_c_during_up_tears_down(tmp_path):
    proc = subprocess.Popen([sys.executable, str(REPO / "lab" / "run.py"), "up", "dual-active",
                             "--out", str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + patience(60)
    while not (state.state_dir() / "state.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)                                  # mid-build
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=patience(120))
    assert proc.returncode == 130, out + err
    assert lab_leftovers() == [] and lifecycle.running_session() is None
