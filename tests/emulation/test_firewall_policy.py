"""Stateful firewalls for real: the policy as written, on dual-active-fw."""

import sys
from pathlib import Path

import pytest

from lab.agents import sessions
from lab.emulation import probe, traffic
from lab.emulation.controller import intent_for
from lab.experiment import Progress
from lab.emulation.network import running_lab
from lab.model.topology import load_topology


@pytest.fixture(scope="module")
def fw_lab(tmp_path_factory):
    topo = load_topology("dual-active-fw")
    with running_lab(topo, probe.choose_platform(), tmp_path_factory.mktemp("fw"), "test-fw",
                     log=Progress(quiet=True)) as lab:
        lab.attach_controller(intent_for(topo))
        lab.start_agent("dc1-srv1", sessions.serve_argv(443), "session server")
        lab.start_agent("dc1-srv1", sessions.serve_argv(2222), "session server 2222")
        yield lab


def tcp_connects(lab, src, ip, port):
    code = (f"import socket\ntry:\n socket.create_connection(('{ip}', {port}), timeout=1.5)\n"
            " print('open')\nexcept OSError as e:\n print('closed', e)\n")
    return lab.node_run(src, [sys.executable, "-c", code], check=False).stdout.startswith("open")


def test_policy_allows_what_it_says_and_drops_and_counts_the_rest(fw_lab):
    before = fw_lab.firewalls.counters("dc1-fw")
    assert tcp_connects(fw_lab, "client1", "10.1.0.11", 443)          # allowed port
    assert not tcp_connects(fw_lab, "client1", "10.1.0.11", 2222)     # listening, not allowed
    assert traffic.ping(fw_lab, "client1", "10.1.0.11", 1)[1] == 1      # icmp echo allowed
    after = fw_lab.firewalls.counters("dc1-fw")
    assert after["denied"] > before["denied"]
    assert after["allowed_new"] >= before["allowed_new"] + 2


def test_sites_may_open_connections_out(fw_lab):
    proc = fw_lab.start_agent("client2", sessions.serve_argv(2222), "client-side server")
    assert tcp_connects(fw_lab, "dc1-srv1", "10.100.0.12", 2222)
    fw_lab.stop_process(proc)


def test_east_west_traffic_does_not_cross_the_firewalls(fw_lab):
    before = fw_lab.firewalls.counters("dc1-fw")
    assert tcp_connects(fw_lab, "dc2-srv1", "10.1.0.11", 2222)         # not in the client policy
    assert fw_lab.firewalls.counters("dc1-fw") == before




def tracked(lab, fw, port):
    """Connection-tracking entries of firewall `fw` to TCP port `port`."""
    out = lab.node_run(fw, ["conntrack", "-L", "-p", "tcp", "--dport", str(port)],
                       check=False).stdout
    return [line for line in out.splitlines() if f"dport={port}" in line]


def test_a_new_policy_starts_without_the_old_ones_sessions(fw_lab):
    """The firewall experiment's positive control runs accept-all firewalls first: what they
    let in (a session to a port the policy does not open) must not stay let in."""
    try:
        fw_lab.firewalls.start(accept_all=True)
        assert tcp_connects(fw_lab, "client1", "10.1.0.11", 2222)      # accept-all: it opens
        assert tracked(fw_lab, "dc1-fw", 2222)                          # positive control
    finally:
        fw_lab.firewalls.start()
    assert tracked(fw_lab, "dc1-fw", 2222) == []
    assert not tcp_connects(fw_lab, "client1", "10.1.0.11", 2222)


def test_switch_ports_send_nothing_of_their_own_into_the_lab(fw_lab):
    # their kernel side in the root namespace sent IPv6 router solicitations through the
    # firewalls for as long as the lab ran, each counted as denied
    ports = fw_lab.switch_ports()
    assert "dc1-eth1" in ports and len(ports) >= 10
    knobs = {p: (Path("/proc/sys/net/ipv6/conf") / p / "disable_ipv6") for p in ports}
    assert {p: k.read_text().strip() for p, k in knobs.items() if k.exists()} == \
        {p: "1" for p, k in knobs.items() if k.exists()}
