"""Teardown that no signal can interrupt into a lie, and a full disk mid-run.

A short run (one fault, 2 s of traffic) is interrupted at several moments of its teardown,
twice in a row, and from a job whose SIGINT was ignored by its parent; each must end with
nothing of the lab left and say so only when that is true.
"""

import signal
import subprocess
import time

import pytest

from tests.emulation.conftest import lab_leftovers, patience

SHORT = ("dual-active", "--quick", "--faults", "1s cut dci-a", "--duration", "2",
         "--pings", "3", "--iperf-seconds", "1")


def assert_clean_interrupt(rc, out, err, tmp_path, code=130):
    assert rc == code, out + err
    assert "Traceback" not in err + out
    assert "the lab was torn down, nothing is left" in err, err
    assert lab_leftovers(run_dir=tmp_path) == []


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3, 0.8])
def test_sigint_during_teardown_still_tears_down_everything(lab_process, tmp_path, delay):
    run = lab_process(*SHORT, "--out", str(tmp_path))
    run.wait_for("tearing down", timeout=120)
    time.sleep(delay)
    run.signal(signal.SIGINT)
    rc, out, err = run.finish()
    if rc == 130:
        assert_clean_interrupt(rc, out, err, tmp_path)
    else:                     # the signal came after the lab was gone: the run simply finished
        assert rc in (0, 3), out + err
        assert lab_leftovers(run_dir=tmp_path) == []


def test_three_sigints_in_a_row_during_teardown(lab_process, tmp_path):
    run = lab_process(*SHORT, "--out", str(tmp_path))
    run.wait_for("tearing down", timeout=120)
    for _ in range(3):
        run.signal(signal.SIGINT)
        time.sleep(0.02)
    assert_clean_interrupt(*run.finish(), tmp_path)


def test_sigterm_during_the_build(lab_process, tmp_path):
    run = lab_process(*SHORT, "--out", str(tmp_path))
    run.wait_for("building dual-active")
    time.sleep(0.3)
    run.signal(signal.SIGTERM)
    run.signal(signal.SIGTERM)
    rc, out, err = run.finish()
    assert rc == 143, out + err
    assert "torn down" in err and lab_leftovers(run_dir=tmp_path) == []


def test_sigint_works_for_a_lab_started_with_sigint_ignored(lab_process, tmp_path):
    run = lab_process(*SHORT, "--out", str(tmp_path), ignore_sigint=True)
    run.wait_for("checking all-pairs reachability")
    run.signal(signal.SIGINT)
    assert_clean_interrupt(*run.finish(timeout=60), tmp_path)


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_disk_that_fills_during_the_run_is_one_line_and_leaves_nothing(lab_process, small_disk):
    run = lab_process(*SHORT, "--out", str(small_disk))
    run.wait_for("measuring dci link dci-a")
    filler = small_disk / "filler"
    with open(filler, "wb") as fh:                    # fill the disk to the last byte
        try:
            while True:
                fh.write(b"\0" * (1 << 20))
        except OSError:
            pass
    rc, out, err = run.finish(timeout=120)
    assert rc == 1, out + err
    assert "Traceback" not in err + out and err.count("\n") == 1, err
    assert "No space left on device" in err and "incomplete" in err
    assert lab_leftovers(run_dir=small_disk) == []


def test_a_full_or_read_only_out_is_refused_before_anything_is_built(small_disk):
    import sys
    from tests.emulation.conftest import REPO
    with open(small_disk / "filler", "wb") as fh:
        fh.write(b"\0" * (40 << 20))                   # 24 MB left: less than a run needs
    cmd = [sys.executable, str(REPO / "lab" / "run.py"), *SHORT, "--out", str(small_disk)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=patience(60))
    assert proc.returncode == 1 and "MB free" in proc.stderr and "--out" in proc.stderr
    (small_disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=patience(60))
    assert proc.returncode == 1 and "read-only" in proc.stderr, proc.stderr
    assert list(small_disk.iterdir()) == []


def test_sigint_while_the_databases_start_leaves_no_server_and_no_scratch(lab_process,
                                                                         tmp_path):
    """Ctrl-C while Galera's nodes install and join (a state transfer in progress): every
    server, garbd and app stopped by its PID, the scratch space gone."""
    from lab.emulation import state
    run = lab_process("replication", "--quick", "--variants", "galera", "--out", str(tmp_path))
    run.wait_for("[galera] starting its data tier", timeout=120)
    # the nodes' install has begun once its logs exist (under an emulated CPU it is seconds
    # later than here: wait for it, then interrupt mid-install / mid-join)
    deadline = time.monotonic() + patience(60)
    while time.monotonic() < deadline and not list(tmp_path.glob(
            "replication/*/galera/data/*-install.log")):
        time.sleep(0.1)
    time.sleep(1.0)
    run.signal(signal.SIGINT)
    rc, out, err = run.finish(timeout=120)
    assert rc == 130 and "Traceback" not in err + out, out + err
    assert "the lab was torn down, nothing is left" in err, err
    assert lab_leftovers("dual-active-data", tmp_path) == []
    run_dirs = list((tmp_path / "replication").iterdir())
    assert run_dirs and (run_dirs[0] / "galera" / "data").is_dir()   # it had begun (control)
    assert not [p for p in state.scratch_root().glob(f"{run_dirs[0].name}-*")]


def test_a_scratch_disk_too_small_for_the_databases_is_refused_before_the_build(small_disk,
                                                                                tmp_path):
    import os
    import sys
    from tests.emulation.conftest import REPO
    cmd = [sys.executable, str(REPO / "lab" / "run.py"), "replication", "--quick",
           "--out", str(tmp_path)]
    env = dict(os.environ, ACTIVELAB_SCRATCH=str(small_disk / "scratch"))   # 64 MB
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=patience(60), env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "MB free, the data tier needs about" in proc.stderr and "ACTIVELAB_SCRATCH" in \
        proc.stderr
    assert "building" not in proc.stdout and list(small_disk.iterdir()) == []
    assert lab_leftovers("dual-active-data") == []


def test_a_program_lost_in_a_host_namespace_is_a_leftover():
    """The leftover check itself: a program started in a namespace of its own from the
    checkout (as the lab starts every program in its hosts) is found; the same in ours is not."""
    from tests.emulation.conftest import REPO, lab_leftovers
    inside = subprocess.Popen(["unshare", "--net", "sleep", "30"], cwd=REPO)
    outside = subprocess.Popen(["sleep", "30"], cwd=REPO)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                f"process {inside.pid}:" in item for item in lab_leftovers()):
            time.sleep(0.05)
        found = lab_leftovers()
        assert any(f"process {inside.pid}:" in item for item in found), found
        assert not any(f"process {outside.pid}:" in item for item in found), found
    finally:
        for proc in (inside, outside):
            proc.kill()
            proc.wait()
    assert lab_leftovers() == []
