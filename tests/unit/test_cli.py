"""The command line: one-line errors, no tracebacks, nothing created on bad input."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "lab" / "run.py"), *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def test_list_names_experiments_and_topologies():
    proc = run_cli("list")
    assert proc.returncode == 0
    assert "dual-active" in proc.stdout and "2 sites, 6 hosts, 4 links" in proc.stdout


def test_unknown_option_is_one_line(tmp_path):
    proc = run_cli("dual-active", "--datapath", "warp", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--datapath" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_topology_file_is_one_line_naming_file_field_and_fix(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites:\n  dc1: {subnet: 10.1.0.0/24}\n  dc2: {subnet: 10.2.0.0/24}\n"
                   "links:\n  dci-a: {between: [dc1, dc2], delay: 2}\n")
    out = tmp_path / "out"
    proc = run_cli("dual-active", "--topology", str(bad), "--out", str(out))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "bad.yaml: links.dci-a.delay: 2 has no unit; write e.g. '2ms'" in proc.stderr
    assert not out.exists()


def test_doctor_json_reports_every_check():
    import json
    proc = run_cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert {"root", "open vswitch", "ovs datapath", "delay/loss", "os-ken"} <= set(checks)
    assert checks["delay/loss"]["status"] in ("ok", "fallback")
    assert proc.returncode == (1 if any(c["blocks"] for c in checks.values()) else 0)


def test_any_python_is_redirected_into_the_project_venv():
    """The 'sudo python is another interpreter' trap: run.py re-executes itself in .venv."""
    import json
    system_python = Path(sys.base_prefix) / "bin" / "python3"
    proc = subprocess.run([str(system_python), str(REPO / "lab" / "run.py"), "doctor", "--json"],
                          capture_output=True, text=True, timeout=60)
    python = next(c for c in json.loads(proc.stdout) if c["name"] == "python")
    assert str(REPO / ".venv" / "bin" / "python") in python["detail"]


def test_without_setup_the_message_says_to_run_the_installer(tmp_path):
    (tmp_path / "lab").mkdir()
    for name in ("__init__.py", "venv.py", "run.py"):
        (tmp_path / "lab" / name).write_text((REPO / "lab" / name).read_text())
    script = tmp_path / "lab" / "run.py"
    proc = subprocess.run([sys.executable, str(script), "list"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert "not set up" in proc.stderr and "install.sh" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_platform_choice_follows_what_the_kernel_has(monkeypatch):
    import pytest
    from lab import probe
    from lab.errors import LabError
    monkeypatch.setattr(probe, "has_kernel_datapath", lambda: False)
    monkeypatch.setattr(probe, "has_netem", lambda: True)
    chosen = probe.choose_platform()
    assert (chosen.datapath, chosen.delay_method) == ("user", "netem")
    assert chosen.datapath_reason == "no openvswitch kernel module in this kernel"
    assert probe.choose_platform("user", "delayline").delay_reason == "--delay-method delayline"
    with pytest.raises(LabError, match="--datapath kernel: this kernel has no openvswitch"):
        probe.choose_platform("kernel")
