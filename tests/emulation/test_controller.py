"""The controller on real switches: anycast gateway, VIPs, failover in both modes, mobility."""

import subprocess
import time
from pathlib import Path

import pytest

from lab.emulation import fabric, probe, traffic
from lab.emulation.controller import intent_for
from lab.experiment import Progress
from lab.emulation.network import running_lab
from lab.model.topology import load_topology
from tests.emulation.conftest import patience, timing_bound


@pytest.fixture(scope="module", params=["protection", "restoration"])
def lab(request, tmp_path_factory):
    topo = load_topology("dual-active")
    platform = probe.choose_platform()
    run_dir = tmp_path_factory.mktemp(f"controller-{request.param}")
    with running_lab(topo, platform, run_dir, "test-controller", log=Progress(quiet=True)) as lab:
        lab.ready_s = lab.attach_controller(intent_for(topo, request.param))
        lab.mode = request.param
        yield lab


def vip_answer(lab, client, service):
    return traffic.vip_answer(lab, client, service.vip, service.port)


def test_every_host_reaches_every_other_through_the_anycast_gateway(lab):
    hosts = lab.topo.hosts
    for src in hosts:
        for dst in hosts:
            if src is not dst:
                sent, received, _ = traffic.ping(lab, src.name, dst.ip.ip, count=1, wait=2)
                assert received == 1, f"{src.name} -> {dst.name}"


def test_gateway_is_the_same_virtual_mac_at_every_site(lab):
    macs = set()
    for host in lab.topo.hosts:
        gateway = lab.topo.switch(host.switch).gateway
        traffic.ping(lab, host.name, gateway, count=1)
        neigh = lab.node_run(host.name, ["ip", "neigh", "show", str(gateway)]).stdout.split()
        macs.add(neigh[neigh.index("lladdr") + 1])
    assert macs == {"02:00:00:00:00:fe"}


def test_routed_ttl_is_decremented_once(lab):
    out = lab.node_run("dc1-srv1", ["ping", "-c", "1", "-W", "2", "10.2.0.11"]).stdout
    assert "ttl=63" in out


def test_client_vip_traffic_lands_on_the_nearest_site(lab):
    (service,) = lab.topo.services
    for client in lab.topo.clients:
        expected = fabric.nearest_site(lab.topo, client.switch,
                                       [lab.topo.host(s).switch for s in service.servers])
        answer = vip_answer(lab, client.name, service)
        assert answer in service.servers, answer
        assert lab.topo.host(answer).switch == expected, (client.name, answer)


def sent_on(lab, links):
    """Frames sent so far on each link (both switch ports' transmit counters): {link: n}."""
    out = {}
    for name in links:
        out[name] = sum(int(Path(f"/sys/class/net/{lab.topo.port_to(end, name).intf}"
                                 "/statistics/tx_packets").read_text())
                        for end in lab.topo.link(name).ends)
    return out


def path_of(lab, src, dst_ip, links, count=50):
    """Which of `links` carried `count` pings from host src to dst_ip and their answers (by the
    ports' counters, not by RTT: under QEMU TCG the userspace path's RTTs are 2-5x the
    configured ones). Returns (links that carried them all, answers received)."""
    before = sent_on(lab, links)
    received = traffic.ping(lab, src, dst_ip, count, 0.01, wait=patience(1))[1]
    after = sent_on(lab, links)
    # each carrying link sent every request one way and every answer the other; BFD, LLDP and
    # health checks add far fewer in the half second this takes
    return [n for n in links if after[n] - before[n] >= count + received], received


def test_cutting_the_primary_dci_keeps_cross_site_traffic_flowing(lab):
    src, dst = lab.topo.host("dc1-srv1"), lab.topo.host("dc2-srv1")
    used, received = path_of(lab, src.name, dst.ip.ip, ["dci-a", "dci-b"])
    assert received > 0 and used == ["dci-a"], used           # the 2 ms link, not the 5 ms
    stream = lab.popen(src.name, traffic.ping_argv(dst.ip.ip, 60, 0.02, 1), "ping stream",
                       stdout=subprocess.PIPE)
    time.sleep(0.4)
    lab.faults.set_link("dci-a", up=False)
    out, _ = stream.communicate(timeout=30)
    sent, received, samples = traffic.parse_ping(out)
    deadline = time.monotonic() + patience(5)        # restoration waits for the controller
    used, answered = [], 0
    while not (used and answered) and time.monotonic() < deadline:
        used, answered = path_of(lab, src.name, dst.ip.ip, ["dci-a", "dci-b"])
    lab.faults.set_link("dci-a", up=True)
    lab.wait_links_live()
    lost = sent - received
    print(f"{lab.mode}: {lost} of {sent} pings lost at 20 ms spacing during the dci-a cut")
    assert sent == 60 and received > 0, out
    assert used == ["dci-b"] and answered > 0, used          # now over dci-b
    reactions = [r for r in lab.controller_status()["reactions"] if r["event"] == "port_down"]
    assert reactions, "the controller never saw the ports go down"
    timing_bound(lost <= 5, f"{lost} of {sent} pings lost at 20 ms spacing (at most 5: 100 ms)")


def test_stopping_a_sites_vip_servers_moves_its_clients(lab):
    (service,) = lab.topo.services
    client = lab.topo.clients[0]
    first = vip_answer(lab, client.name, service)
    site = lab.topo.host(first).switch
    stopped = [s for s in service.servers if lab.topo.host(s).switch == site]
    for server in stopped:
        lab.stop_service(server, service.port)
    start = time.monotonic()
    answer = first
    while lab.topo.host(answer or first).switch == site and time.monotonic() - start < 10:
        answer = vip_answer(lab, client.name, service) or answer
        time.sleep(0.1)
    moved_s = time.monotonic() - start
    print(f"{lab.mode}: clients moved from {site} after {moved_s:.2f}s")
    assert answer and lab.topo.host(answer).switch != site, answer
    for server in stopped:
        lab.start_service(server, service.port)
    deadline = time.monotonic() + 10
    while not all(lab.controller_status()["servers"].values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(lab.controller_status()["servers"].values())


def test_a_migrated_server_is_reachable_again_with_the_same_ip(lab):
    host = lab.topo.host("dc1-srv2")
    client = "client1"
    assert traffic.ping(lab, client, host.ip.ip, 1)[1] == 1
    moved = lab.faults.move_host(host.name, "dc2")
    downtime = traffic.wait_reachable(lab, client, host.ip.ip, timeout=10)
    assert downtime is not None
    print(f"{lab.mode}: {host.name} moved to dc2 port {moved['port']}; unreachable for "
          f"{(moved['t_linked'] - moved['t_unlinked']) + downtime:.3f}s "
          f"(re-link {moved['t_linked'] - moved['t_unlinked']:.3f}s)")
    # via edge-dc2 now, not edge-dc1 (by the ports' counters: see path_of)
    used, answered = path_of(lab, client, host.ip.ip, ["edge-dc1", "edge-dc2"])
    assert answered > 0 and used == ["edge-dc2"], used
    status = lab.controller_status()
    assert status["hosts"][str(host.ip.ip)][1] == lab.topo.switch("dc2").dpid
    assert lab.node_run(host.name, ["ip", "-4", "-br", "addr", "show", host.intf]).stdout.split()[2] \
        == str(host.ip)


def test_a_healed_dci_carries_traffic_again_before_bfd_is_up(lab):
    """After a heal, BFD needs 1-2 s (it sends once a second while down); the controller's LLDP
    proves the link in milliseconds and routes over it at once (see ControllerLogic.proven)."""
    if lab.mode != "protection":
        pytest.skip("restoration routes on port status: no fast-failover to wait for")
    src, dst = lab.topo.host("dc1-srv1"), lab.topo.host("dc2-srv1")
    lab.faults.set_link("dci-a", up=False)
    deadline = time.monotonic() + patience(5)
    used = []
    while used != ["dci-b"] and time.monotonic() < deadline:
        used, _ = path_of(lab, src.name, dst.ip.ip, ["dci-a", "dci-b"], count=20)
    assert used == ["dci-b"], used
    healed = time.monotonic()
    lab.faults.set_link("dci-a", up=True)
    back = None
    while time.monotonic() - healed < patience(3):
        used, _ = path_of(lab, src.name, dst.ip.ip, ["dci-a", "dci-b"], count=20)
        if used == ["dci-a"]:
            back = time.monotonic() - healed
            break
    lab.wait_links_live()
    events = [r["event"] for r in lab.controller_status()["reactions"]]
    print(f"{lab.mode}: dci-a carries traffic again {back} s after the heal")
    assert back is not None, "traffic never went back to the healed dci-a"
    assert "link_proven" in events             # by LLDP's proof, not by BFD coming up
    timing_bound(back < 1.0, f"back on dci-a after {back:.2f} s (BFD alone needs 1-2 s)")
