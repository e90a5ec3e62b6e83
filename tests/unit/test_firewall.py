"""Firewall configuration as data: the nftables ruleset, node settings, conntrackd config."""

import subprocess

import pytest

from experiments.firewall import picked_up, sync_lags
from lab.agents import fwprobes
from lab.emulation import firewall
from lab.model.topology import load_topology


@pytest.fixture
def topo():
    return load_topology("dual-active-fw")


def test_topology_puts_one_firewall_on_each_sites_client_edge_link(topo):
    assert [(name, link.name) for name, link in topo.firewalls] == [("dc1-fw", "edge-dc1"),
                                                                    ("dc2-fw", "edge-dc2")]
    assert topo.firewall.tcp == (80, 443) and topo.firewall.udp == (7000,)


def test_ruleset_allows_exactly_the_policy_from_clients_and_is_stateful(topo):
    rules = firewall.ruleset(topo, "dc1-fw-eth0")
    assert "policy drop;" in rules
    assert "elements = { 10.1.0.0/24, 10.2.0.0/24, 10.200.0.10/32 }" in rules
    assert "elements = { 10.100.0.0/24 }" in rules
    assert "tcp dport { 80, 443 } ct state new" in rules
    assert "tcp flags & (syn | ack) == syn" in rules          # only a SYN opens a session
    assert "udp dport { 7000 }" in rules
    assert "ct state invalid counter name invalid drop" in rules
    assert rules.index("ct state established,related accept") < rules.index("counter name denied drop")
    # the side a packet came in on is marked in the bridge family (iifname is the bridge here)
    assert 'iifname "dc1-fw-eth0" meta mark set 0x1' in rules
    assert rules.index("counter name spoofed drop") < rules.index("ct state established")
    assert "meta mark != 0x1 ip saddr @protected ct state new" in rules


def test_bfd_passes_only_as_open_vswitch_sends_it_and_after_anti_spoofing(topo):
    rules = firewall.ruleset(topo, "dc1-fw-eth0")
    bfd = next(line for line in rules.splitlines() if "3784" in line)
    assert ("ip saddr 169.254.1.1 ip daddr 169.254.1.0 ip ttl 255 udp sport 49152-65535 "
            "udp dport 3784 accept") in bfd
    assert "4784" not in rules
    assert rules.index("counter name spoofed drop") < rules.index("udp dport 3784")
    assert not any("udp dport {" in line and "3784" in line for line in rules.splitlines())


def test_the_positive_control_firewall_accepts_everything(topo):
    rules = firewall.ruleset(topo, "dc1-fw-eth0", accept_all=True)
    assert "policy accept;" in rules and " drop" not in rules


def test_loose_midstream_pickup_drops_the_syn_only_condition(topo):
    strict, loose = firewall.ruleset(topo, "x"), firewall.ruleset(topo, "x", midstream=True)
    assert "tcp flags & (syn | ack) == syn" in strict and "tcp flags" not in loose
    assert ["sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_loose=1"] in \
        firewall.node_setup_cmds("a", "b", strict=False)


def test_outside_is_the_interface_toward_the_client_edge(topo):
    (name, link), _ = topo.firewalls
    assert (link.a, link.b) == ("edge", "dc1") and firewall.outside_intf(name, link) == "dc1-fw-eth0"


@pytest.mark.parametrize("variant", [{}, {"midstream": True}, {"accept_all": True}])
def test_ruleset_is_valid_nftables(topo, tmp_path, variant):
    path = tmp_path / "rules.nft"
    path.write_text(firewall.ruleset(topo, "dc1-fw-eth0", **variant))
    proc = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert proc.returncode == 0, proc.stderr


def test_firewall_node_is_a_strict_bridge_that_forwards_lldp():
    cmds = firewall.node_setup_cmds("a", "b")
    assert ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"] in cmds
    assert ["sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_loose=0"] in cmds
    add = next(c for c in cmds if c[:3] == ["ip", "link", "add"])
    assert add[add.index("group_fwd_mask") + 1] == "0x4000"


def test_conntrackd_config_syncs_ftfw_straight_into_the_kernel_table(tmp_path):
    runs, scratch = tmp_path / "a run folder on any file system", tmp_path / "s"
    conf = firewall.conntrackd_conf("dc1-fw", 1, 2, runs, scratch)
    assert "Mode FTFW" in conf and "DisableExternalCache On" in conf
    assert "IPv4_address 169.254.77.1" in conf and "IPv4_Destination_Address 169.254.77.2" in conf
    assert "Interface dc1-fw-sync" in conf
    assert f"LockFile {scratch}/conntrackd-dc1-fw.lock" in conf          # one per instance
    # the log stays with the results; the control socket goes to the scratch space (a unix
    # socket could not be made in a 9p-shared run folder: conntrackd did not start in the VM)
    assert f"LogFile {runs}/conntrackd-dc1-fw.log" in conf
    assert f"Path {firewall.conntrackd_ctl(scratch, 'dc1-fw')}" in conf
    assert str(runs) not in conf.split("UNIX")[1].split("}")[0]
    assert conf.count("{") == conf.count("}")


def test_sync_lag_pairs_the_same_session_on_both_firewalls():
    a = ("[1700000000.100000]\t [NEW] tcp      6 120 SYN_SENT src=10.100.0.11 dst=10.2.0.11 "
         "sport=40000 dport=443 [UNREPLIED] src=10.2.0.11 dst=10.100.0.11 sport=443 dport=40000\n")
    b = a.replace("1700000000.100000", "1700000000.100250")
    other = a.replace("sport=40000", "sport=40001").replace("1700000000.100000", "1700000001.0")
    assert sync_lags(a + other, b) == [0.25]


def event(t, src, dst, sport, dport, state="ESTABLISHED"):
    return (f"[{t:.6f}]\t [NEW] tcp      6 120 {state} src={src} dst={dst} sport={sport} "
            f"dport={dport} src={dst} dst={src} sport={dport} dport={sport}\n")


def test_picked_up_counts_service_sessions_a_firewall_starts_tracking_after_the_failover():
    cut = 1700000010.0
    events = (event(cut - 1, "10.100.0.11", "10.1.0.11", 40000, 443, "SYN_SENT")  # before: no
              + event(cut + 0.5, "10.1.0.11", "10.100.0.11", 443, 40001)   # server's side: yes
              + event(cut + 0.6, "10.1.0.11", "10.100.0.11", 443, 40001)   # the same again
              + event(cut + 0.7, "10.100.0.11", "10.1.0.11", 40002, 443)   # client's side: yes
              + event(cut + 0.8, "10.100.0.11", "10.1.0.11", 40003, 22)    # another port: no
              + "garbage line\n")
    assert picked_up(events, cut, 443) == 2
    assert picked_up("", cut, 443) == 0
    assert picked_up(events, cut + 1, 443) == 0


def test_a_firewall_setting_that_did_not_take_is_named():
    want = firewall.expected_settings(strict=True)
    assert want["net.netfilter.nf_conntrack_tcp_loose"] == "0"
    assert firewall.expected_settings(strict=False)["net.netfilter.nf_conntrack_tcp_loose"] == "1"
    assert firewall.settings_mismatch(want, dict(want)) == []
    wrong = dict(want, **{"net.netfilter.nf_conntrack_tcp_loose": "1"})
    assert firewall.settings_mismatch(want, wrong) == [
        "net.netfilter.nf_conntrack_tcp_loose is 1, set to 0"]
    missing = {"net.netfilter.nf_conntrack_tcp_loose": "0"}
    assert firewall.settings_mismatch(want, missing) == [
        "net.bridge.bridge-nf-call-iptables is missing, set to 1"]


def write_remedy(root, remedy, *, survived, picked=0, control=False, leaks_after=()):
    """A remedy's raw files as one_remedy writes them: 2 clients x (real, crafted) x 2
    sessions per phase; `survived` of the failover sessions per report stay alive."""
    import json
    folder = root / remedy
    folder.mkdir()
    cut = 1700000100.0
    for phase in ("asymmetric", "failover"):
        for client in ("client1", "client-2"):           # a dash in the name, too
            for kind in ("real", "crafted"):
                alive = survived if phase == "failover" else 2
                sessions = [{"id": i, "established": True, "connect_s": 0.01 * (i + 1),
                             "last_ok": cut + 4, "died": None if i < alive else cut + 2,
                             "reason": None if i < alive else "no echo for 2s"}
                            for i in range(2)]
                (folder / f"sessions-{phase}-{client}-{kind}.json").write_text(
                    json.dumps({"sessions": sessions}))
    events = "".join(event(cut + 0.5, "10.1.0.11", "10.100.0.11", 443, 40000 + i)
                     for i in range(picked))
    (folder / "conntrack-events-dc1-fw.txt").write_text(event(cut - 5, "10.100.0.11",
                                                              "10.2.0.11", 40100, 443))
    (folder / "conntrack-events-dc2-fw.txt").write_text(event(cut - 4.999, "10.100.0.11",
                                                              "10.2.0.11", 40100, 443))
    (folder / "conntrack-events-dc2-fw-failover.txt").write_text(events)
    (folder / "leaks-before.json").write_text("[]")
    (folder / "leaks-after.json").write_text(json.dumps(list(leaks_after)))
    if control:
        (folder / "leaks-control.json").write_text(json.dumps(
            [name for name, _ in fwprobes.PROBES if name != "xmas"]))
    (folder / "remedy.json").write_text(json.dumps({
        "remedy": remedy, "firewalls": ["dc1-fw", "dc2-fw"], "control": control, "cut_t": cut,
        "counters": {"dc1-fw": {"invalid": 1, "denied": 2}, "dc2-fw": {"invalid": 115,
                                                                       "denied": 0}},
        "settings": {"dc1-fw": firewall.expected_settings()}}))


def test_firewall_metrics_come_from_the_raw_files_alone(tmp_path):
    import json
    from experiments import firewall as experiment
    (tmp_path / "params.json").write_text(json.dumps({
        "experiment": "firewall", "options": {"remedies": "none,sync,loose", "sessions": 2},
        "topology": {"name": "dual-active-fw"}}))
    write_remedy(tmp_path, "none", survived=0, picked=3, control=True)
    write_remedy(tmp_path, "sync", survived=2)
    write_remedy(tmp_path, "loose", survived=2, picked=8, leaks_after=["ack-out-of-state"])
    metrics = experiment.analyse(tmp_path)
    assert metrics == experiment.analyse(tmp_path)                      # pure
    none, sync, loose = metrics["remedies"]
    assert none["asymmetric"]["established"] == 8 and none["asymmetric"]["alive_at_end"] == 8
    assert none["asymmetric"]["connect_ms_p50"] == 15.0
    assert (none["failover"]["survived"], sync["failover"]["survived"]) == (0, 8)
    assert sync["failover"]["crafted_survived"] == 4
    assert none["failover"]["reasons"] == ["no echo for 2s"]
    assert none["failover"]["picked_up_midstream"] == 3
    assert none["sync_lag_ms"] == [1.0]
    assert metrics["probe_control"]["missing"] == ["xmas"]
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    summary = experiment.summarize(tmp_path)
    assert not summary.ok
    assert any("remedy none: 3 sessions were picked up mid-stream" in p for p in summary.problems)
    assert not any("remedy loose" in p for p in summary.problems)     # loose is allowed both
    assert any("xmas did not arrive" in p for p in summary.problems)
    assert "remedy loose weakens the firewall: lets through ack-out-of-state" in summary.text


def test_a_session_counts_as_surviving_only_with_an_echo_after_the_cut(tmp_path):
    """An agent that started late (an emulated CPU) may end its window before its timeout
    after the cut: alive, but no echo since the cut. That proves nothing: undecided, not
    survived, and a timing verdict (positive control: the same sessions answered after the
    cut do survive)."""
    import json
    from experiments import firewall as experiment
    (tmp_path / "params.json").write_text(json.dumps({
        "experiment": "firewall", "options": {"remedies": "none,sync", "sessions": 2},
        "topology": {"name": "dual-active-fw"}}))
    write_remedy(tmp_path, "none", survived=2, control=True)
    write_remedy(tmp_path, "sync", survived=2)
    for path in (tmp_path / "none").glob("sessions-failover-*.json"):
        report = json.loads(path.read_text())
        for session in report["sessions"]:
            session["last_ok"] = 1700000100.0 - 0.5          # the last echo before the cut
        path.write_text(json.dumps(report))
    metrics = experiment.analyse(tmp_path)
    none, sync = metrics["remedies"]
    assert none["failover"]["survived"] == 0 and none["failover"]["undecided"] == 8
    assert sync["failover"]["survived"] == 8 and sync["failover"]["undecided"] == 0
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    summary = experiment.summarize(tmp_path)
    assert "0/8 (8 undecided)" in summary.text
    assert len(summary.timing) == 1 and "remedy none: 8 failover sessions" in summary.timing[0]


def test_a_sync_remedy_that_keeps_nothing_fails_the_run(tmp_path):
    """conntrackd that never started: the sync remedy established no asymmetric session and
    kept none through the failover; that must fail the run (control: a working sync passes)."""
    import json
    from experiments import firewall as experiment
    (tmp_path / "params.json").write_text(json.dumps({
        "experiment": "firewall", "options": {"remedies": "sync", "sessions": 2},
        "topology": {"name": "dual-active-fw"}}))
    write_remedy(tmp_path, "sync", survived=2, control=True)
    (tmp_path / "metrics.json").write_text(json.dumps(experiment.analyse(tmp_path)))
    good = experiment.summarize(tmp_path)
    assert not any("remedy sync" in p for p in good.problems)
    for path in (tmp_path / "sync").glob("sessions-*.json"):
        report = json.loads(path.read_text())
        for session in report["sessions"]:
            session.update(established=False, died=1700000090.0, reason="connect: timed out")
        path.write_text(json.dumps(report))
    (tmp_path / "metrics.json").write_text(json.dumps(experiment.analyse(tmp_path)))
    bad = experiment.summarize(tmp_path)
    assert not bad.ok
    assert any("remedy sync: 0 of 8 asymmetric sessions established" in p for p in bad.problems)
