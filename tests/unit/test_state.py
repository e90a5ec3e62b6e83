"""The ledger, the lock and exact teardown, on real processes the test starts itself."""

import os
import subprocess
import sys

import pytest

from lab.emulation import state
from lab.errors import LabError


def sleeper():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_ledger_survives_reload(state_dir):
    ledger = state.Ledger.create("dual-active")
    ledger.add_bridge("dc1")
    ledger.add_interfaces("dc1-eth1", "dc1-eth1", "dc1-eth2")
    again = state.Ledger.load()
    assert again.data["bridges"] == ["dc1"]
    assert again.data["interfaces"] == ["dc1-eth1", "dc1-eth2"]
    assert again.owner_alive()


def test_teardown_stops_recorded_processes_and_removes_the_file(state_dir):
    proc = sleeper()
    ledger = state.Ledger.create("test")
    ledger.add_process(proc.pid, "sleeper")
    assert state.leftovers(ledger) == [f"process {proc.pid} (sleeper)"]
    assert state.teardown(ledger, log=lambda m: None) == []
    assert proc.wait(5) is not None
    assert state.leftovers(ledger) == []
    assert state.Ledger.load() is None


def test_a_reused_pid_is_not_signalled(state_dir):
    proc = sleeper()
    try:
        ledger = state.Ledger.create("test")
        ledger.add_process(proc.pid, "sleeper")
        ledger.data["processes"][0]["start_time"] -= 1        # as if the PID now belongs to another
        state.teardown(ledger, log=lambda m: None)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_second_lock_is_refused_naming_the_running_lab(state_dir):
    state.Ledger.create("dual-active")
    with state.RunLock():
        with pytest.raises(LabError, match="another lab is running: dual-active"):
            state.RunLock().acquire()
    with state.RunLock():                                      # free again once released
        pass


def test_scratch_folders_are_removed_at_teardown_and_only_under_the_scratch_root(
        state_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIVELAB_SCRATCH", str(tmp_path / "scratch"))
    ledger = state.Ledger.create("test")
    data = ledger.add_path(tmp_path / "scratch" / "run-1" / "dc1-srv2")
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "ibdata1").write_text("x")
    outside = tmp_path / "precious"
    outside.mkdir()
    with pytest.raises(LabError, match="must be under"):
        ledger.add_path(outside)
    with pytest.raises(LabError, match="must be under"):
        ledger.add_path(tmp_path / "scratch" / ".." / "precious")
    assert state.Ledger.load().data["paths"] == [str(data)]
    assert state.leftovers(ledger) == [f"folder {data}"]                  # positive control
    assert state.teardown(ledger, log=lambda m: None) == []
    assert not data.exists() and outside.exists()
    assert state.leftovers(ledger) == []


def test_a_detached_process_is_found_by_its_pid_file_only_while_it_works_there(state_dir,
                                                                               tmp_path):
    """What Patroni does with PostgreSQL: a process in a session of its own, named by a pid
    file in its working directory. Teardown stops it; a pid file naming a process that works
    elsewhere (a reused PID) is left alone."""
    home = tmp_path / "data"
    home.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=home,
                            start_new_session=True)
    other = sleeper()                                  # works in the test's own folder
    try:
        (home / "postmaster.pid").write_text(f"{proc.pid}\n{home}\n")
        ledger = state.Ledger.create("test")
        ledger.add_pidfile(home / "postmaster.pid", "postgres of patroni x")
        found = state.pidfile_process(ledger.data["pidfiles"][0])
        assert found["pid"] == proc.pid and found["group"] is True
        assert state.leftovers(ledger) == [f"process {proc.pid} (postgres of patroni x)"]
        elsewhere = tmp_path / "other.pid"
        elsewhere.write_text(f"{other.pid}\n")
        assert state.pidfile_process({"path": str(elsewhere), "what": "x"}) is None
        assert state.pidfile_process({"path": str(tmp_path / "gone.pid"), "what": "x"}) is None
        assert state.teardown(ledger, log=lambda m: None) == []
        assert proc.wait(5) is not None
        assert other.poll() is None
        assert state.leftovers(ledger) == []
    finally:
        for p in (proc, other):
            if p.poll() is None:
                p.kill()
                p.wait()


# ------------------------------------------------------------------------------ memory

TABLE = {   # pid: (ppid, pgid, rss_kb)
    1: (0, 1, 1000),
    100: (1, 100, 10240),        # the run
    101: (100, 101, 2048),       #   a host's shell
    102: (101, 102, 1024),       #     an agent in it
    200: (100, 200, 20480),      #   a database server (its own process group)
    201: (200, 200, 5120),       #     its worker
    300: (1, 200, 4096),         # re-parented to init, still in the server's group
    400: (100, 400, 30720),      #   the controller
    500: (1, 500, 7168),         # ovs-vswitchd (not ours: named by its pid file)
    600: (1, 600, 999999),       # someone else's process: never counted
}


def test_memory_counts_each_process_once_in_the_first_part_that_holds_it():
    parts = {"data tier": [200], "controller": [400], "open vswitch": [500, None, 9999],
             "run": [100]}
    mb = state.memory_mb(parts, table=TABLE)
    assert mb["data tier"] == round((20480 + 5120 + 4096) / 1024, 1)   # group and tree
    assert mb["controller"] == 30.0
    assert mb["open vswitch"] == 7.0                   # a missing pid (None, gone) is no error
    assert mb["run"] == round((10240 + 2048 + 1024) / 1024, 1)   # not the server again
    assert mb["total"] == round(sum(v for k, v in mb.items() if k != "total"), 1)
    assert mb["total"] < 999999 / 1024                # a stranger is not part of it


def test_memory_of_nothing_is_zero_and_descendants_stop_at_the_tree():
    assert state.memory_mb({"data tier": []}, table=TABLE) == {"data tier": 0, "total": 0}
    assert state.descendants(TABLE, [101]) == {101, 102}
    assert state.descendants(TABLE, [12345]) == set()


def test_memory_of_this_process_is_measured_from_proc():
    mb = state.memory_mb({"me": [os.getpid()]})
    assert 5 < mb["me"] == mb["total"] < 4096          # a Python process: MBs, not GBs
