"""The guided labs' commands: all are valid, and those no other test runs are run here.

dual-active, firewall, compare-designs, gslb and cli run in their own emulation tests; lab 3's
pair of runs (both failover modes), its comparison and its grading run here, end to end.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LABS = sorted((REPO / "docs" / "labs").glob("0*.md"))


def lab_commands(path):
    """Every `sudo python lab/run.py ...` line of a lab's shell blocks (and steps)."""
    text = path.read_text()
    found = re.findall(r"sudo python lab/run\.py ([^`\n]+)", text)
    return [shlex.split(c.strip()) for c in found]


def test_there_are_eight_labs_each_with_goal_setup_steps_observations_and_questions():
    assert len(LABS) == 8
    for lab in LABS:
        text = lab.read_text()
        for part in ("**Goal.**", "**Setup.**", "**Steps", "**What to observe.**", "**Questions.**"):
            assert part in text, (lab.name, part)
        assert lab_commands(lab), lab.name
        answers = REPO / "docs" / "labs" / "instructor" / f"{lab.name[:2]}-answers.md"
        assert answers.exists(), answers


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_every_lab_command_is_a_valid_command_line(lab):
    sys.path.insert(0, str(REPO / "lab"))
    from run import build_parser
    parser = build_parser()
    for argv in lab_commands(lab):
        if "<" in " ".join(argv):                 # placeholders such as <protection-run>
            argv = [a for a in argv if "<" not in a and ">" not in a] + ["results/x"]
        parser.parse_args(argv)


def run_lab(*argv, timeout=300):
    return subprocess.run([sys.executable, str(REPO / "lab" / "run.py"), *argv],
                          capture_output=True, text=True, timeout=timeout)


def test_lab1_drawing(tmp_path):
    proc = run_lab("draw", "dual-active", "--out", str(tmp_path / "dual-active.png"))
    assert proc.returncode == 0 and (tmp_path / "dual-active.png").stat().st_size > 20000


def test_lab3_end_to_end_both_modes_compared_and_graded(tmp_path):
    assert run_lab("check", "lab3", "--results", str(tmp_path)).returncode == 1
    for mode in ("protection", "restoration"):
        proc = run_lab("dual-active", "--quick", "--mode", mode, "--out", str(tmp_path))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = sorted((tmp_path / "dual-active").iterdir())
    proc = run_lab("compare", *map(str, runs), "--out", str(tmp_path / "compare.png"))
    assert proc.returncode == 0 and (tmp_path / "compare.png").stat().st_size > 10000
    for run in runs:
        assert (run / "report.html").exists()
    graded = run_lab("check", "lab3", "--results", str(tmp_path))
    assert graded.returncode == 0 and "lab3: done" in graded.stdout


def test_lab8_end_to_end_the_student_turns_qos_on_and_check_grades_the_run(tmp_path):
    start = REPO / "docs" / "labs" / "files" / "lab8-dci.yaml"
    mine = tmp_path / "my-dci.yaml"
    mine.write_text(start.read_text())
    results = tmp_path / "results"
    check = run_lab("check", "lab8", "--file", str(mine), "--results", str(results))
    assert check.returncode != 0 and "no QoS enabled" in check.stdout + check.stderr
    mine.write_text(start.read_text() + "qos:\n"
                    "  control: {share: 5, priority: 0}\n"
                    "  replication: {share: 30, priority: 1}\n"
                    "  client: {share: 25, priority: 2}\n"
                    "  bulk: {share: 40, priority: 3}\n")
    check = run_lab("check", "lab8", "--file", str(mine), "--results", str(results))
    assert check.returncode != 0 and "no finished dci-qos run" in check.stdout + check.stderr
    run = run_lab("dci-qos", "--topology", str(mine), "--quick", "--parts", "qos",
                  "--out", str(results), timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    check = run_lab("check", "lab8", "--file", str(mine), "--results", str(results))
    assert check.returncode == 0, check.stdout + check.stderr


def test_lab4_graded_from_a_run_on_the_students_policy(tmp_path):
    text = (REPO / "topologies" / "dual-active-fw.yaml").read_text()
    mine = tmp_path / "my-fw.yaml"
    mine.write_text(text.replace("tcp: [80, 443]", "tcp: [80, 443, 8443]").replace(
        "udp: [7000]", "udp: []"))
    graded = run_lab("check", "lab4", "--file", str(mine), "--results", str(tmp_path))
    assert graded.returncode == 1 and "no firewall run on your policy" in graded.stdout
    proc = run_lab("firewall", "--quick", "--remedies", "none", "--topology", str(mine),
                   "--out", str(tmp_path))
    assert "policy through dc1-fw" in proc.stdout, proc.stdout + proc.stderr
    graded = run_lab("check", "lab4", "--file", str(mine), "--results", str(tmp_path))
    assert graded.returncode == 0 and "lab4: done" in graded.stdout, graded.stdout
