"""dual-active for real: reachability, link fidelity, and exact teardown however the run ends."""

import json
import signal

import pytest

from lab.model.topology import load_topology
from tests.emulation.conftest import lab_leftovers


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick dual-active run shared by the assertions below."""
    import subprocess
    import sys
    from tests.emulation.conftest import REPO
    out = tmp_path_factory.mktemp("results")
    proc = subprocess.run([sys.executable, str(REPO / "lab" / "run.py"), "dual-active", "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    run_dir = next((out / "dual-active").iterdir())
    return proc, run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_run_succeeds_and_every_host_reaches_every_other(quick_run):
    proc, run_dir, metrics = quick_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reach = metrics["reachability"]
    assert reach["pairs"] == 30 and reach["reachable"] == 30, reach["unreachable"]


def test_each_dci_link_rtt_is_twice_its_configured_delay(quick_run):
    _, _, metrics = quick_run
    topo = load_topology("dual-active")
    rtts = {m["link"]: m for m in metrics["fidelity"] if m["metric"] == "rtt_ms"}
    assert set(rtts) == {l.name for l in topo.links}
    for link in topo.links:
        m = rtts[link.name]
        expected = 2 * link.delay_ms
        assert m["configured"] == expected
        # the emulation's own path cost is calibrated out: within ±5 % or ±0.2 ms
        assert abs(m["measured"] - expected) <= max(0.05 * expected, 0.2), m
        assert m["ok"] and m["base_ms"] >= 0 and m["raw"] > m["measured"] - 0.2


def test_each_link_delivers_its_configured_bandwidth(quick_run):
    _, _, metrics = quick_run
    topo = load_topology("dual-active")
    tput = {m["link"]: m for m in metrics["fidelity"] if m["metric"] == "throughput_mbit"}
    for link in topo.links:
        goodput = link.bw * 1448 / 1514
        assert abs(tput[link.name]["measured"] - goodput) <= 0.05 * goodput, tput[link.name]


def test_results_folder_holds_parameters_platform_and_samples(quick_run):
    proc, run_dir, _ = quick_run
    platform = json.loads((run_dir / "platform.json").read_text())
    assert platform["datapath"] in ("kernel", "user")
    assert platform["delay_method"] in ("netem", "delayline")
    assert platform["kernel"] and platform["open_vswitch"]
    assert f"{platform['delay_label']}" in proc.stdout          # the summary says which it used
    params = json.loads((run_dir / "params.json").read_text())
    assert params["topology"]["name"] == "dual-active"
    samples = (run_dir / "rtt_samples.csv").read_text().splitlines()
    assert samples[0] == "link,seq,rtt_ms" and len(samples) > 4 * 8
    for link in ("dci-a", "dci-b"):
        report = json.loads((run_dir / f"iperf3-{link}.json").read_text())
        assert report["end"]["sum_received"]["bytes"] > 0


def test_nothing_is_left_after_a_normal_run(quick_run):
    _, run_dir, _ = quick_run
    assert lab_leftovers(run_dir=run_dir) == []


@pytest.mark.parametrize("sig, when, code", [
    (signal.SIGINT, "measuring dci link dci-a", 130),
    (signal.SIGTERM, "building dual-active", 143),
])
def test_interrupted_run_leaves_nothing(lab_process, tmp_path, sig, when, code):
    run = lab_process("dual-active", "--quick", "--out", str(tmp_path))
    run.wait_for(when)
    run.signal(sig)
    rc, out, err = run.finish()
    assert rc == code, out + err
    assert "torn down" in err and "Traceback" not in err
    assert lab_leftovers(run_dir=tmp_path) == []


def test_a_second_lab_is_refused_while_one_runs(lab_process, tmp_path):
    first = lab_process("dual-active", "--quick", "--out", str(tmp_path / "a"))
    first.wait_for("checking all-pairs reachability")
    second = lab_process("dual-active", "--quick", "--out", str(tmp_path / "b"))
    rc, out, err = second.finish()
    assert rc == 1
    assert "another lab is running: dual-active" in err and err.count("\n") == 1
    first.signal(signal.SIGINT)
    assert first.finish()[0] == 130
    assert lab_leftovers(run_dir=tmp_path) == []


def test_clean_removes_what_a_killed_run_left(lab_process, tmp_path):
    run = lab_process("dual-active", "--quick", "--out", str(tmp_path))
    run.wait_for("checking all-pairs reachability")
    run.signal(signal.SIGKILL)
    run.finish()
    left = lab_leftovers(run_dir=tmp_path)
    assert any(item.startswith("bridge") for item in left)     # a crash really leaves things
    clean = lab_process("clean")
    rc, out, err = clean.finish()
    assert rc == 0, out + err
    assert "removing what this run left: dual-active" in out
    assert lab_leftovers(run_dir=tmp_path) == []


def test_controller_phase_routes_every_pair_and_places_vip_traffic_nearest(quick_run):
    _, _, metrics = quick_run
    ctl = metrics["controller"]
    assert ctl["mode"] == "protection" and ctl["seconds_to_ready"] > 0
    assert ctl["reachability"]["reachable"] == ctl["reachability"]["pairs"] == 30
    assert ctl["links_discovered"] == 4 and ctl["hosts_located"] == 6
    assert ctl["vip_placement"] and all(p["ok"] and p["site"] == "dc1" for p in ctl["vip_placement"])


def test_interactive_cli_runs_commands_and_cleans_up(lab_process, tmp_path):
    import subprocess
    import sys
    from tests.emulation.conftest import REPO
    proc = subprocess.run([sys.executable, str(REPO / "lab" / "run.py"), "cli", "dual-active"],
                          input="pingall\nvip\nclient2 ping -c1 10.2.0.12\nsites\n"
                                "paths dc1 dc2\nfail dci-a\npaths dc1 dc2\nheal dci-a\n"
                                "flows dc1\ngray dci-b\nungray dci-b\npower-off dc2\n"
                                "power-on dc2\nmove dc1-srv2 dc2\nmove nobody dc2\n",
                          capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr                  # Mininet prints command output on stderr
    assert proc.returncode == 0, out
    assert "0% dropped (30/30 received)" in out
    assert "client1 -> web 10.200.0.10:80: dc1-srv" in out
    assert "1 received" in out
    assert "dc1    site 10.1.0.0/24" in out and "dc1-srv1 up" in out
    assert "dc1 -> dc2: dci-a\n  backup at dc1: dci-b" in out          # before the cut
    assert "dci-a cut; the controller sees it down" in out
    assert "dc1 -> dc2: dci-b" in out                                    # after it
    assert "group_id=" in out and "type=ff" in out and "table=2, priority=1000" in out
    # the fault verbs of lab/run.py, at the prompt
    assert "dci-b drops every frame" in out and "dci-b forwards again" in out
    assert "dc2 powered off" in out and "dc2 powered on" in out
    assert "dc1-srv2 moved to dc2" in out and "client1 reaches it again" in out
    assert "error: unknown host 'nobody'" in out
    assert lab_leftovers() == []


def test_every_injected_fault_shows_a_positive_finite_outage_and_traffic_recovers(quick_run):
    _, _, metrics = quick_run
    faults = {f["fault"]: f for f in metrics["faults"]}
    assert list(faults) == ["cut dci-a", "heal dci-a", "gray dci-a", "ungray dci-a"]
    for name, fault in faults.items():
        assert fault["outage_ms"] is not None and 0 < fault["outage_ms"] < 5000, (name, fault)
        assert fault["recovered"], name
    east_west = {s["name"] for s in metrics["streams"] if not s["name"].startswith("client")}
    # only BFD can see a gray failure: traffic stops until it declares the link down, after
    # at least two of its intervals without a packet (3 in the spec; the first may be partial)
    gray = faults["gray dci-a"]
    bfd_ms = metrics["controller"]["bfd_ms"]
    assert set(gray["affected"]) >= east_west
    assert 2 * bfd_ms < gray["outage_ms"] < 1000, (bfd_ms, gray)
    # a cut is seen at once (carrier) and the fast-failover group takes the backup link
    assert faults["cut dci-a"]["outage_ms"] < 200


def test_streams_report_their_rate_loss_and_order(quick_run):
    _, _, metrics = quick_run
    assert len(metrics["streams"]) == 4                   # 2 clients to the VIP, 2 east-west
    for stream in metrics["streams"]:
        assert stream["sent"] > 0.8 * 1000 * metrics["timeline"]["duration_s"]
        assert stream["received"] <= stream["sent"]
        assert stream["loss_pct"] < 20


def test_plots_are_drawn_and_can_be_redrawn_from_the_raw_files(quick_run):
    import subprocess
    import sys
    from tests.emulation.conftest import REPO
    _, run_dir, _ = quick_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    closeups = [f"closeup-{i}.png" for i in range(1, len(metrics["faults"]) + 1)]
    pngs = [run_dir / n for n in ["delivery.png", "throughput.png", "site_share.png",
                                  "closeups.png", "topology.png", "topology-faults.png"]
            + closeups]
    report = (run_dir / "report.html").read_text()
    assert report.count("<table>") >= 3                  # fidelity, VIPs, faults: real tables
    assert all(f"src='{p.name}'" in report for p in pngs)
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000
        png.unlink()
    proc = subprocess.run([sys.executable, str(REPO / "lab" / "run.py"), "plot", str(run_dir)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert all(png.stat().st_size > 10000 for png in pngs)


def test_sites_cut_apart_for_good_are_reported_not_recovered_and_fail_the_run(tmp_path):
    import subprocess
    import sys
    from tests.emulation.conftest import REPO
    proc = subprocess.run([sys.executable, str(REPO / "lab" / "run.py"), "dual-active", "--quick",
                           "--faults", "3s cut dci-a; 3s cut dci-b", "--duration", "6",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr         # ran, a verdict failed
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("verdict: FAILED") and "did not recover" in last
    run_dir = next((tmp_path / "dual-active").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    east_west = {s["name"] for s in metrics["streams"] if not s["name"].startswith("client")}
    for fault in metrics["faults"]:                  # both cuts share one window
        assert fault["recovered"] is False and fault["convergence_ms"] is None, fault
        assert set(fault["not_recovered"]) == east_west
        assert fault["lost"] > 1000 and fault["outage_ms"] > 1000
        for name in east_west:
            assert fault["streams"][name]["recovered"] is False
    assert lab_leftovers(run_dir=run_dir) == []
