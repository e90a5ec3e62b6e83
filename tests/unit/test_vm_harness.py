"""The VM harness's own contract, without booting a VM (that is tests/vm/run.sh's job)."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VM = REPO / "tests" / "vm"


def run(*argv):
    return subprocess.run(list(argv), capture_output=True, text=True, cwd=REPO, timeout=30)


def test_the_scripts_parse():
    for script in ("run.sh", "suite.sh"):
        assert run("bash", "-n", str(VM / script)).returncode == 0, script
    assert run("sh", "-n", str(VM / "guest-init")).returncode == 0


def test_an_unknown_distribution_or_argument_is_one_line_and_exit_1():
    for bad in ("debian11", "--fast"):
        proc = run("bash", str(VM / "run.sh"), bad)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stderr.count("\n") == 1 and f"unknown argument '{bad}'" in proc.stderr
        assert "debian12|debian13" in proc.stderr and proc.stdout == ""
    proc = run("bash", str(VM / "suite.sh"), "--fast")
    assert proc.returncode == 1 and "unknown argument '--fast'" in proc.stderr


def test_help_names_both_distributions_and_exits_0():
    proc = run("bash", str(VM / "run.sh"), "--help")
    assert proc.returncode == 0 and "[debian12|debian13] [--smoke]" in proc.stdout


def test_the_image_gets_exactly_the_packages_install_sh_lists():
    # one list, read from install.sh: a package added there reaches the VM image
    listed = run("bash", "-c", "sed -n '/^APT_PACKAGES=(/,/^)/p' install.sh | sed '1d;$d;s/#.*//' "
                 "| tr -s ' \\n' ',' | sed 's/^,//;s/,$//'").stdout.strip().split(",")
    assert {"mininet", "openvswitch-switch", "conntrackd", "nftables", "python3-venv"} <= set(listed)
    assert "" not in listed and not any(" " in p for p in listed)
    assert "lab_packages=$(sed -n '/^APT_PACKAGES=(/,/^)/p' install.sh" in (VM / "run.sh").read_text()


def test_ci_runs_the_readme_test_command_then_the_vm_smoke():
    ci = "\n".join(line for line in (REPO / ".ci" / "run").read_text().splitlines()
                   if not line.startswith("#"))
    assert "bash install.sh && .venv/bin/python -m pytest" in ci
    assert "bash tests/vm/run.sh debian12 --smoke" in ci
    assert ci.index("-m pytest") < ci.index("tests/vm/run.sh")
    # on by default: only ACTIVELAB_CI_VM=0 (or a host that is not x86_64) skips it
    assert 'ACTIVELAB_CI_VM:-1}" = 0' in ci and "set -euo pipefail" in ci
