"""The command line: one-line errors, no tracebacks, nothing created on bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

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
    assert proc.returncode == 1
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
    assert proc.returncode == 1
    assert "not set up" in proc.stderr and "install.sh" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_platform_choice_follows_what_the_kernel_has(monkeypatch):
    import pytest
    from lab.emulation import probe
    from lab.errors import LabError
    monkeypatch.setattr(probe, "has_kernel_datapath", lambda: False)
    monkeypatch.setattr(probe, "has_netem", lambda: True)
    monkeypatch.delenv("ACTIVELAB_DATAPATH", raising=False)
    monkeypatch.delenv("ACTIVELAB_DELAY_METHOD", raising=False)
    chosen = probe.choose_platform()
    assert (chosen.datapath, chosen.delay_method) == ("user", "netem")
    assert chosen.datapath_reason == "no openvswitch kernel module in this kernel"
    assert probe.choose_platform("user", "delayline").delay_reason == "--delay-method delayline"
    with pytest.raises(LabError, match="--datapath kernel: this kernel has no openvswitch"):
        probe.choose_platform("kernel")


def one_line_error(proc, *words):
    """Exit 1, one line on stderr naming each of `words`, no traceback."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)


BAD_OPTIONS = [
    ("dual-active", "--probe-rate", "-3"), ("dual-active", "--probe-rate", "0"),
    ("dual-active", "--probe-rate", "nan"), ("dual-active", "--pings", "0"),
    ("dual-active", "--pings", "2.5"), ("dual-active", "--iperf-seconds", "-1"),
    ("dual-active", "--iperf-seconds", "0"), ("dual-active", "--iperf-seconds", "0.5"),
    ("dual-active", "--duration", "-5"),
    ("dual-active", "--duration", "0"), ("dual-active", "--bfd-ms", "0"),
    ("dual-active", "--dci-bw", "-10"), ("firewall", "--sessions", "0"),
    ("firewall", "--sessions", "-2"), ("firewall", "--remedies", "none,magic"),
    ("multi-active", "--sites", "1"), ("multi-active", "--sites", "99"),
    ("compare-designs", "--sites", "0"), ("compare-designs", "--designs", "dual-active,x"),
    ("gslb", "--ttls", "1,-5"), ("gslb", "--ttls", "0"), ("gslb", "--ttls", "1,,5"),
    ("gslb", "--cache-extra", "-1"), ("primary-backup", "--probe-rate", "-1"),
]


@pytest.mark.parametrize("command,option,value", BAD_OPTIONS)
def test_every_numeric_option_is_checked_and_the_error_names_it(tmp_path, command, option, value):
    proc = run_cli(command, option, value, "--out", str(tmp_path))
    one_line_error(proc, option)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command,option", [
    ("firewall", "--vip-policy"), ("gslb", "--pings"), ("primary-backup", "--vip-policy"),
    ("multi-active", "--vip-policy"), ("compare-designs", "--topology"),
    ("compare-designs", "--vip-policy"), ("three-site", "--vip-policy")])
def test_an_experiment_offers_only_the_options_it_honours(command, option):
    one_line_error(run_cli(command, option, "x"), option)


@pytest.mark.parametrize("faults,words", [
    ("3s cut dci-z", ["--faults", "dci-z"]),
    ("30s cut dci-a", ["--faults", "--duration"]),
    ("3s explode dci-a", ["--faults", "explode"]),
    ("soon cut dci-a", ["--faults", "soon"]),
])
def test_a_bad_fault_timeline_is_rejected_before_the_run_folder_exists(tmp_path, faults, words):
    proc = run_cli("dual-active", "--quick", "--faults", faults, "--out", str(tmp_path))
    one_line_error(proc, *words)
    assert list(tmp_path.iterdir()) == []


def test_a_negative_duration_blames_the_duration_not_the_faults(tmp_path):
    proc = run_cli("dual-active", "--duration", "-5", "--out", str(tmp_path))
    one_line_error(proc, "--duration")
    assert "--faults" not in proc.stderr


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x01binary", b"sites:\n  dc1: \xe9t\xe9\n",
                                     b"\x00\x00\x00", b"- just\n- a list\n", b"42\n"])
def test_a_binary_or_non_utf8_topology_is_one_line(tmp_path, content):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content)
    proc = run_cli("dual-active", "--topology", str(bad), "--out", str(tmp_path / "out"))
    one_line_error(proc, "bad.yaml")
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_or_under_proc_is_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line_error(run_cli("dual-active", "--out", str(afile)), "--out", "afile")
    one_line_error(run_cli("dual-active", "--out", str(afile / "below")), "--out")
    one_line_error(run_cli("dual-active", "--out", "/proc/activelab-results"), "--out", "proc")
    one_line_error(run_cli("dual-active", "--out", "/sys/kernel"), "--out")
    assert afile.read_text() == "x"


def test_exit_codes_are_in_the_help():
    proc = run_cli("dual-active", "--help")
    assert proc.returncode == 0
    assert "3 ran to the end but a verdict failed" in proc.stdout
    assert "1 could not run" in proc.stdout


def test_gslb_quick_shortens_the_traffic_after_the_fault():
    from experiments import gslb
    opts = gslb.GslbOptions.parse
    assert [v[0] for v in gslb.variants(opts({"quick": True}))] == [
        "anycast", "gslb ttl 1", "gslb ttl 5", "gslb ttl 1 +8s cache", "haproxy",
        "haproxy app-down"]
    assert gslb.variants(opts({"haproxy": "off"}))[-1] == ("gslb ttl 1 +8s cache", 1, 8.0)
    assert (gslb.variant_duration(opts({"quick": True}), 5, 0)
            == gslb.variant_duration(opts({}), 5, 0) - 2)
    assert gslb.variants(opts({"ttls": [2, 7], "cache_extra": 0.0, "haproxy": "off"}))[-1] \
        == ("gslb ttl 2 +0s cache", 2, 0.0)


def test_compare_designs_honours_the_dci_overrides():
    from experiments import designs
    topo = designs.design_topology("dual-active", {"dci_delay": "7ms", "dci_bw": 30.0})
    assert {l.delay_ms for l in topo.dci_links} == {7.0}
    assert {l.bw for l in topo.dci_links} == {30.0}


def test_fail_and_heal_say_so_when_the_controller_did_not_see_the_change():
    from types import SimpleNamespace
    from lab.cli import interactive
    from lab.model.topology import load_topology
    topo = load_topology("dual-active")
    link = topo.link("dci-a")
    ends = [(topo.switch(e).dpid, topo.port_to(e, "dci-a").number) for e in link.ends]
    stale = {"links": [[ends[0][0], ends[0][1], ends[1][0], ends[1][1], True]]}
    lab = SimpleNamespace(topo=topo, controller_status=lambda: stale)
    seen = interactive.wait_link_seen(lab, "dci-a", up=False, timeout=0.1)
    assert seen is False
    assert "did NOT see it down within 0.1 s" in interactive.link_report("dci-a", False, seen, 0.1)
    assert interactive.wait_link_seen(lab, "dci-a", up=True, timeout=0.1) is True
    assert interactive.link_report("dci-a", True, True, 5) == "dci-a restored; the controller sees it up"


def test_analyse_and_plot_rebuild_an_old_run_folder_from_its_files(tmp_path):
    """`analyse` recomputes metrics.json from the raw files and exits as the run would have
    (3: a verdict failed); `plot` redraws figures, summary.txt and report.html from them; a
    missing file is one line naming it."""
    import json
    from tests.unit.test_gslb import gslb_run_folder
    gslb_run_folder(tmp_path)
    (tmp_path / "platform.json").write_text(json.dumps({"accelerator": "tcg"}))
    proc = run_cli("analyse", str(tmp_path))
    assert proc.returncode == 3, proc.stderr
    assert "never reached a live server" in proc.stdout and "verdict: FAILED" in proc.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [v["failover_s"] for v in metrics["variants"]] == [0.5, 0.5, None]
    for name in ("gslb.png", "summary.txt", "report.html"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "ActiveLab gslb on two-region" in (tmp_path / "report.html").read_text()
    (tmp_path / "summary.txt").unlink()
    proc = run_cli("plot", str(tmp_path))
    assert proc.returncode == 0 and str(tmp_path / "summary.txt") in proc.stdout
    assert "never reached a live server" in (tmp_path / "summary.txt").read_text()
    (tmp_path / "anycast" / "variant.json").unlink()
    proc = run_cli("analyse", str(tmp_path))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "variant.json is missing" in proc.stderr and "Traceback" not in proc.stderr


def test_a_topology_warning_is_one_line_before_the_run(tmp_path):
    """An even Galera membership without a witness is legal: the run goes on (here it stops at
    a bad --faults, before building anything) after one warning line that explains quorum."""
    topo = tmp_path / "even.yaml"
    topo.write_text("sites:\n  dc1: {subnet: 10.1.0.0/24, servers: 2}\n"
                    "  dc2: {subnet: 10.2.0.0/24, servers: 2}\n"
                    "edges:\n  edge: {subnet: 10.100.0.0/24, clients: 1}\n"
                    "links:\n  dci-a: {between: [dc1, dc2], delay: 2ms}\n"
                    "  edge-dc1: {between: [edge, dc1], delay: 1ms}\n"
                    "services:\n  web: {vip: 10.200.0.10}\n"
                    "data: {engine: galera, nodes: [dc1-srv2, dc2-srv2]}\n")
    out = tmp_path / "out"
    proc = run_cli("dual-active", "--topology", str(topo), "--faults", "99s cut dci-a",
                   "--out", str(out))
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1 and len(lines) == 2, proc.stderr
    assert lines[0].startswith("warning: ") and "even.yaml" in lines[0]
    assert "no side with a majority" in lines[0] and "--faults" in lines[1]
    assert not out.exists()
