"""Grading of the guided labs on good and bad lab states."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.cli import grading

REPO = Path(__file__).resolve().parents[2]


def with_dc3(tmp_path, delay="10ms", bw=20):
    text = (REPO / "topologies" / "dual-active.yaml").read_text()
    text = text.replace("edges:", "  dc3:\n    subnet: 10.3.0.0/24\n    servers: 2\nedges:", 1)
    text = text.replace("services:", f"  dci-c: {{between: [dc1, dc3], bw: {bw}, delay: {delay}}}\n"
                                     "services:", 1)
    path = tmp_path / "my-sites.yaml"
    path.write_text(text)
    return path


def dual_active_run(root, ok=True, delay=10.0, name="r1"):
    run = root / "dual-active" / name
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"experiment": "dual-active", "topology": {
        "links": [{"name": "dci-c", "between": ["dc1", "dc3"], "delay_ms": delay}]}}))
    (run / "metrics.json").write_text(json.dumps({"fidelity": [
        {"link": "dci-c", "metric": "rtt_ms", "measured": 20.1 if ok else 31.0, "expected": 20.0,
         "ok": ok},
        {"link": "dci-c", "metric": "throughput_mbit", "measured": 18.9, "expected": 19.1,
         "ok": True}]}))


def test_lab1_done(tmp_path):
    assert grading.check_lab1(with_dc3(tmp_path), results=False) == []
    problems = grading.check_lab1(with_dc3(tmp_path), tmp_path)
    assert "no dual-active run on your topology" in problems[0]
    dual_active_run(tmp_path, delay=5.0, name="r0")          # another topology: not counted
    assert "no dual-active run" in grading.check_lab1(with_dc3(tmp_path), tmp_path)[0]
    dual_active_run(tmp_path, ok=False)
    assert "rtt_ms 31.0 vs 20.0" in grading.check_lab1(with_dc3(tmp_path), tmp_path)[0]


def test_lab1_done_with_a_run_that_measured_the_link(tmp_path):
    dual_active_run(tmp_path)
    assert grading.check_lab1(with_dc3(tmp_path), tmp_path) == []


def test_lab1_wrong_or_missing(tmp_path):
    assert "delay 5 ms" in grading.check_lab1(with_dc3(tmp_path, delay="5ms"))[0]
    assert "bw 30" in grading.check_lab1(with_dc3(tmp_path, bw=30))[0]
    assert grading.check_lab1(REPO / "topologies" / "dual-active.yaml") == [
        "no site dc3: add it under sites:"]
    broken = tmp_path / "broken.yaml"
    broken.write_text("sites: {dc1: {subnet: 10.1.0.0/24, colour: red}}\n")
    assert "does not load" in grading.check_lab1(broken)[0]
    assert grading.check_lab1(None) == ["give your topology file: --file FILE"]


QUICK = ["cut dci-a", "heal dci-a", "gray dci-a", "ungray dci-a"]


def write_run(root, name, mode, finished=True, experiment="dual-active", topology="dual-active",
              faults=QUICK, recovered=True, metrics_mode=None, samples=True, options=None):
    run = root / "dual-active" / name
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({
        "experiment": experiment, "options": dict({"mode": mode, "faults": None}, **(options or {})),
        "topology": {"name": topology}}))
    metrics = {"topology": topology, "controller": {"mode": metrics_mode or mode},
               "faults": [{"fault": f, "recovered": recovered} for f in faults]}
    (run / "metrics.json").write_text(json.dumps(metrics if finished else {}))
    if samples:
        (run / "probes.csv").write_text("stream,seq,sent,received,host\n1,0,1.0,1.002,dc1-srv1\n")
    return run


def test_lab3_needs_a_finished_run_in_each_mode(tmp_path):
    write_run(tmp_path, "a", "protection")
    write_run(tmp_path, "b", "restoration", finished=False)
    problems = grading.check_lab3(results=tmp_path)
    assert len(problems) == 1 and problems[0].startswith(
        f"no finished dual-active run with --mode restoration in {tmp_path / 'dual-active'}")
    write_run(tmp_path, "c", "restoration")
    assert grading.check_lab3(results=tmp_path) == []


@pytest.mark.parametrize("bad, why", [
    ({"faults": ["cut dci-a"]}, "fault timeline"),
    ({"options": {"faults": "2s cut dci-a; 4s heal dci-a; 7s gray dci-a; 9s ungray dci-a"}},
     "fault timeline"),
    ({"recovered": False}, "did not recover"),
    ({"metrics_mode": "protection"}, "mode"),
    ({"topology": "two-region"}, "topology"),
    ({"experiment": "gslb"}, "dual-active run"),
    ({"samples": False}, "probes.csv"),
    ({"faults": []}, "fault timeline"),
])
def test_lab3_counts_only_the_labs_own_runs(tmp_path, bad, why):
    write_run(tmp_path, "a", "protection")
    write_run(tmp_path, "b", "restoration", **bad)
    problems = grading.check_lab3(results=tmp_path)
    assert len(problems) == 1 and "restoration" in problems[0] and why in problems[0], problems


def test_lab3_accepts_the_full_default_timeline_too(tmp_path):
    full = ["cut dci-a", "heal dci-a", "gray dci-a", "ungray dci-a", "power-off dc1", "power-on dc1"]
    write_run(tmp_path, "a", "protection", faults=full)
    write_run(tmp_path, "b", "restoration")
    assert grading.check_lab3(results=tmp_path) == []


def firewall_run(root, tcp, udp, through=("tcp/80", "tcp/443", "tcp/8443"), name="r1"):
    run = root / "firewall" / name
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"experiment": "firewall", "topology": {
        "firewall": {"tcp": tcp, "udp": udp}}}))
    ports = [("tcp", p) for p in (22, 80, 443, 8443)] + [("udp", 7000)]
    (run / "metrics.json").write_text(json.dumps({"policy": {"firewall": "dc1-fw", "ports": [
        {"proto": proto, "port": port, "open": port in (tcp if proto == "tcp" else udp),
         "reached": f"{proto}/{port}" in through, "control_reached": True}
        for proto, port in ports]}}))
    return run


def test_lab4_the_policys_effect_from_the_run(tmp_path):
    text = (REPO / "topologies" / "dual-active-fw.yaml").read_text()
    good = tmp_path / "good.yaml"
    good.write_text(text.replace("tcp: [80, 443]", "tcp: [80, 443, 8443]").replace(
        "udp: [7000]", "udp: []"))
    # a run on the file whose firewall did not do what the file says (8443 blocked, 7000 let
    # through), and a run on another policy that would pass: neither counts
    firewall_run(tmp_path, tcp=[80, 443, 8443], udp=[], name="r1",
                 through=("tcp/80", "tcp/443", "udp/7000"))
    firewall_run(tmp_path, tcp=[80, 443], udp=[7000], name="r0")
    problems = grading.check_lab4(good, tmp_path)
    assert any("blocked tcp/8443" in p for p in problems)
    assert any("let through udp/7000" in p for p in problems)


def test_lab4_policy(tmp_path):
    text = (REPO / "topologies" / "dual-active-fw.yaml").read_text()
    good = tmp_path / "good.yaml"
    good.write_text(text.replace("tcp: [80, 443]", "tcp: [80, 443, 8443]").replace(
        "udp: [7000]", "udp: []"))
    assert "no firewall run on your policy" in grading.check_lab4(good, tmp_path)[0]
    firewall_run(tmp_path, tcp=[80, 443, 8443], udp=[])
    assert grading.check_lab4(good, tmp_path) == []
    assert grading.check_lab4(REPO / "topologies" / "dual-active-fw.yaml") == [
        "the policy does not open TCP 8443: firewall.tcp",
        "the policy still opens UDP 7000: remove it from firewall.udp"]
    assert "no firewall" in grading.check_lab4(REPO / "topologies" / "dual-active.yaml")[0]


def test_check_command_exits_0_when_done_and_1_with_what_is_missing(tmp_path):
    run = [sys.executable, str(REPO / "lab" / "run.py"), "check", "lab1", "--file"]
    dual_active_run(tmp_path)
    ok = subprocess.run(run + [str(with_dc3(tmp_path)), "--results", str(tmp_path)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "lab1: done" in ok.stdout
    bad = subprocess.run(run + [str(REPO / "topologies" / "dual-active.yaml")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "lab1: missing: no site dc3" in bad.stdout


def replication_run(root, name, variants=("pg-async", "pg-sync", "galera"), delays=(1, 20),
                    recovered=True):
    run = root / "replication" / name
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"experiment": "replication"}))
    (run / "metrics.json").write_text(json.dumps({"variants": {
        v: {"sweep": [{"delay_ms": d} for d in delays],
            "faults": {"power-off": {"rto_ms": 2000.0 if recovered else None}}}
        for v in variants}}))


def split_run(root, name, variants=("no-witness", "witness", "quorum-off")):
    run = root / "split-brain" / name
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"experiment": "split-brain"}))
    (run / "metrics.json").write_text(json.dumps({"variants": {v: {} for v in variants}}))


def test_lab7_needs_a_full_replication_run_and_a_split_brain_with_and_without_witness(tmp_path):
    problems = grading.check_lab7(results=tmp_path)
    assert len(problems) == 2 and "no finished replication run" in problems[0]
    assert "no finished split-brain run" in problems[1]
    replication_run(tmp_path, "20260101-000001", delays=(10,))            # --quick: one delay
    split_run(tmp_path, "20260101-000002", variants=("quorum-off",))
    problems = grading.check_lab7(results=tmp_path)
    assert "fewer than two delays" in problems[0] and "no finished split-brain" in problems[1]
    replication_run(tmp_path, "20260101-000003", variants=("pg-async", "galera"))
    assert "lacks the variant(s) pg-sync" in grading.check_lab7(results=tmp_path)[0]
    replication_run(tmp_path, "20260101-000004", recovered=False)
    assert "no finished power-off" in grading.check_lab7(results=tmp_path)[0]
    replication_run(tmp_path, "20260101-000005")
    split_run(tmp_path, "20260101-000006")
    assert grading.check_lab7(results=tmp_path) == []


QOS = """qos:
  control: {share: 5, priority: 0}
  replication: {share: 30, priority: 1}
  client: {share: 25, priority: 2}
  bulk: {share: 40, priority: 3}
"""


def lab8_file(tmp_path, qos=QOS):
    path = tmp_path / "my-dci.yaml"
    path.write_text((REPO / "docs" / "labs" / "files" / "lab8-dci.yaml").read_text() + qos)
    return path


def lab8_run(results, source, over, flaps=0, name="20261129-100000", phases=True):
    run = results / "dci-qos" / name
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({
        "experiment": "dci-qos", "topology": {"name": "lab8-dci", "source": str(source)}}))
    variants = {"unloaded": {"bfd_flaps": 0}, "qos-off": {"bfd_flaps": 2}}
    if phases:
        variants["qos-on"] = {"bfd_flaps": flaps}
    (run / "metrics.json").write_text(json.dumps({
        "variants": variants, "target_ms": 1.0,
        "p99_over_unloaded_ms": {"qos-off": {"control": 80.0, "replication": 80.0},
                                 **({"qos-on": over} if phases else {})}}))


def test_lab8_done_with_qos_protecting_control_and_replication(tmp_path):
    path = lab8_file(tmp_path)
    lab8_run(tmp_path / "results", path, {"control": 0.2, "replication": 0.6})
    assert grading.check_lab8(path, tmp_path / "results") == []


def test_lab8_not_done(tmp_path):
    start = REPO / "docs" / "labs" / "files" / "lab8-dci.yaml"
    assert "no QoS enabled" in grading.check_lab8(start, tmp_path)[0]
    no_replication = lab8_file(tmp_path, QOS.replace("  replication: {share: 30, priority: 1}\n",
                                                     ""))
    assert "no replication class" in grading.check_lab8(no_replication, tmp_path)[0]
    path = lab8_file(tmp_path)
    results = tmp_path / "results"
    assert "no finished dci-qos run" in grading.check_lab8(path, results)[0]
    lab8_run(results, path, {"control": 0.2, "replication": 7.5}, name="a")
    problems = grading.check_lab8(path, results)
    assert "replication's p99 was 7.5 ms over" in problems[0], problems
    lab8_run(results, tmp_path / "other.yaml", {"control": 0.1, "replication": 0.1}, name="b")
    assert grading.check_lab8(path, results)                  # another file's run: not yours
    lab8_run(results, path, {"control": 0.1, "replication": 0.1}, flaps=3, name="c")
    assert "BFD flapped 3 times" in " ".join(grading.check_lab8(path, results))
    lab8_run(results, path, {}, name="d", phases=False)
    assert grading.check_lab8(path, results)
    lab8_run(results, path, {"control": 0.1, "replication": 0.4}, name="e")
    assert grading.check_lab8(path, results) == []


# ------------------------------------------------------------------ labs 2, 5 and 6

def lab2_run(tmp_path, move=True, reached=True, logged=True, arp_sites=("dc1", "dc2")):
    run = tmp_path / "up" / "20261129-090000"
    run.mkdir(parents=True)
    sup = ["[   3.1s] the lab is up (dual-active)"]
    if move:
        sup.append('[supervisor] move {"host": "dc1-srv2", "site": "dc2"}: dc1-srv2 moved to dc2 '
                   "(port 6); it announced itself with a gratuitous ARP"
                   + ("; client1 reaches it again: its ping answered 85 ms after dc1-srv2 left dc1"
                      if reached else "; client1 could NOT reach it within 10 s"))
    (run / "supervisor.log").write_text("\n".join(sup) + "\n")
    ctl = [f"09:00:01.000 activelab INFO ARP: dc1-srv1 (10.1.0.11) at {s} asked who has "
           f"10.1.0.1: answered with the gateway MAC" for s in arp_sites]
    if logged:
        ctl.append("09:00:05.000 activelab INFO host dc1-srv2 (10.1.0.12) moved from dc1:2 to "
                   "dc2:6")
    (run / "controller.log").write_text("\n".join(ctl) + "\n")
    return tmp_path


def test_lab2_done_from_the_running_labs_logs(tmp_path):
    assert grading.check_lab2(results=lab2_run(tmp_path)) == []


@pytest.mark.parametrize("kw, text", [
    ({"move": False}, "no host was moved"),
    ({"reached": False}, "reaching the moved host"),
    ({"logged": False}, "never logged dc1-srv2 moving"),
    ({"arp_sites": ("dc1",)}, "no ARP answered at dc2"),
])
def test_lab2_not_done(tmp_path, kw, text):
    problems = grading.check_lab2(results=lab2_run(tmp_path, **kw))
    assert problems and text in problems[0], problems


def test_lab2_without_a_lab(tmp_path):
    assert "no lab brought up" in grading.check_lab2(results=tmp_path)[0]


def designs_run(tmp_path, rto=(48.0, 2100.0), lost=(6, 12)):
    run = tmp_path / "compare-designs" / "20261129-090000"
    run.mkdir(parents=True)
    (run / "params.json").write_text('{"experiment": "compare-designs"}')
    (run / "metrics.json").write_text(json.dumps({"designs": [
        {"design": "dual-active", "rto_ms": rto[0], "sessions": 12, "sessions_lost": lost[0]},
        {"design": "primary-backup", "rto_ms": rto[1], "sessions": 12, "sessions_lost": lost[1]},
    ]}))
    return tmp_path


def answers(tmp_path, name, doc):
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(doc))       # JSON is YAML
    return path


def test_lab5_answers_match_the_students_run(tmp_path):
    root = designs_run(tmp_path)
    good = {"fastest_design": "dual-active", "rto_ms": {"dual-active": 50, "primary-backup": 2000},
            "sessions_lost_pct": {"dual-active": 50, "primary-backup": 100}}
    assert grading.check_lab5(answers(tmp_path, "good", good), root) == []
    bad = dict(good, fastest_design="primary-backup",
               rto_ms={"dual-active": 500, "primary-backup": 2000})
    problems = grading.check_lab5(answers(tmp_path, "bad", bad), root)
    assert any("fastest_design" in p for p in problems)
    assert any("rto_ms.dual-active" in p for p in problems)
    assert not any("primary-backup" in p and "rto_ms" in p for p in problems)
    # the same answers against another run's numbers are wrong: it is the student's run
    other = designs_run(tmp_path / "other", rto=(300.0, 900.0))
    assert grading.check_lab5(answers(tmp_path, "good", good), other)
    assert "--file lab5.yaml" in grading.check_lab5(None, root)[0]
    assert "no finished compare-designs run" in grading.check_lab5(
        answers(tmp_path, "good", good), tmp_path / "empty")[0]


def gslb_run(tmp_path, anycast=0.31, gslb=3.42, failed=(1, 22)):
    run = tmp_path / "gslb" / "20261129-090000"
    run.mkdir(parents=True)
    (run / "params.json").write_text('{"experiment": "gslb"}')
    (run / "metrics.json").write_text(json.dumps({"variants": [
        {"variant": "anycast", "ttl": None, "cache_extra": 0.0, "failover_s": anycast,
         "failed_attempts": failed[0]},
        {"variant": "gslb ttl 10", "ttl": 10, "cache_extra": 0.0, "failover_s": 9.0,
         "failed_attempts": 50},
        {"variant": "gslb ttl 1", "ttl": 1, "cache_extra": 0.0, "failover_s": gslb,
         "failed_attempts": failed[1]},
        {"variant": "gslb ttl 1 +8s cache", "ttl": 1, "cache_extra": 8.0, "failover_s": 6.1,
         "failed_attempts": 40},
    ]}))
    return tmp_path


def test_lab6_answers_match_the_students_run(tmp_path):
    root = gslb_run(tmp_path)
    good = {"anycast_failover_s": 0.3, "gslb_ttl": 1, "gslb_failover_s": 3.5,
            "extra_failed_attempts": 21}
    assert grading.check_lab6(answers(tmp_path, "good", good), root) == []
    problems = grading.check_lab6(answers(tmp_path, "bad", dict(
        good, gslb_ttl=10, gslb_failover_s=9.0, extra_failed_attempts="many")), root)
    assert len(problems) == 3 and all(("gslb_ttl" in p or "gslb_failover_s" in p
                                       or "extra_failed" in p) for p in problems)
    assert len(grading.check_lab6(answers(tmp_path, "empty", {}), root)) == 4
    broken = tmp_path / "broken.yaml"
    broken.write_text("anycast_failover_s: [\n")
    assert "not YAML" in grading.check_lab6(broken, root)[0]
