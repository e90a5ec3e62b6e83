"""The controller's decisions, judged by forwarding in a fake OpenFlow network (Faucet-style)."""

import pytest

from controllers.logic import ControllerLogic
from lab.emulation.controller import GATEWAY_MAC, intent_for
from lab.model.topology import load_topology
from tests.unit.fake_openflow import FakeNetwork

GW = GATEWAY_MAC


def network(mode="protection", policy="anycast", routing="shortest", symmetric=False):
    topo = load_topology("dual-active")
    net = FakeNetwork(topo, intent_for(topo, mode, policy, routing=routing, symmetric=symmetric))
    net.start()
    for host in topo.hosts:                      # hosts boot and ARP for their gateway
        net.arp(host.name, topo.switch(host.switch).gateway)
    run_health(net, 2)                           # servers answer health checks: up
    return net


@pytest.fixture(params=["protection", "restoration"])
def net(request):
    return network(request.param)


def test_lldp_discovers_every_link(net):
    status = net.logic.status()
    assert len(status["links"]) == 4 and all(link[4] for link in status["links"])
    assert len(status["hosts"]) == 6


def test_gateway_arp_is_answered_locally_with_the_virtual_mac_and_not_flooded(net):
    for host in net.received:
        net.received[host] = []
    net.arp("dc1-srv1", "10.1.0.1")
    replies = net.received["dc1-srv1"]
    assert len(replies) == 1 and replies[0]["arp_op"] == 2 and replies[0]["arp_sha"] == GW
    assert replies[0]["arp_spa"] == "10.1.0.1"
    assert all(not pkts for host, pkts in net.received.items() if host != "dc1-srv1")


def test_arp_for_a_remote_host_is_proxied_by_the_gateway(net):
    net.received["dc1-srv1"] = []
    net.arp("dc1-srv1", "10.2.0.11")
    (reply,) = net.received["dc1-srv1"]
    assert (reply["arp_sha"], reply["arp_spa"]) == (GW, "10.2.0.11")


def test_routing_between_subnets_rewrites_macs_and_decrements_ttl_once(net):
    got = net.send_ip("dc1-srv1", "10.2.0.12")
    assert list(got) == ["dc2-srv2"]
    pkt = got["dc2-srv2"]
    assert pkt["eth_src"] == GW and pkt["eth_dst"] == "02:00:0a:02:00:0c"
    assert pkt["ttl"] == 63


def test_every_host_reaches_every_other(net):
    hosts = [h.name for h in net.topo.hosts]
    for src in hosts:
        for dst in hosts:
            if src != dst:
                assert list(net.send_ip(src, net.topo.host(dst).ip.ip)) == [dst], (src, dst)


def test_gateway_answers_ping(net):
    got = net.send_ip("client1", "10.100.0.1", proto=1)
    assert got["client1"]["icmpv4_type"] == 0 and got["client1"]["ipv4_src"] == "10.100.0.1"


def test_paths_take_the_lowest_latency_and_backups_are_loop_free():
    fabric = network().logic
    routes = fabric.routes()
    dc1, dc2, edge = 1, 2, 0x101
    assert routes[(dc1, dc2)] == (3, 4)              # dci-a (2 ms), backup dci-b (5 ms):
    #                                                  the client edge is never a transit
    assert routes[(dc2, dc1)] == (3, 4)
    assert routes[(edge, dc1)][0] == 3               # edge-dc1 direct (1 ms)
    assert routes[(edge, dc2)][0] == 4               # edge-dc2 direct (3 ms) beats 1 + 2 + a hop


def test_protection_installs_fast_failover_groups_with_primary_then_backup():
    fabric = network("protection").logic
    gid = fabric.group_id(2)
    buckets = fabric.groups[(1, gid)]
    assert [watch for watch, _ in buckets] == [3, 4]
    assert buckets[0][1] == (("output", 3),)


@pytest.mark.parametrize("mode", ["protection", "restoration"])
def test_cutting_the_primary_dci_keeps_cross_site_traffic_flowing(mode):
    net = network(mode)
    net.set_link("dci-a", up=False)
    assert list(net.send_ip("dc1-srv1", "10.2.0.11")) == ["dc2-srv1"]
    assert list(net.send_ip("dc2-srv2", "10.1.0.12")) == ["dc1-srv2"]
    net.set_link("dci-a", up=True)
    assert net.logic.routes()[(1, 2)][0] == 3       # back on the primary


def test_protection_fails_over_in_the_switch_before_the_controller_reacts():
    net = network("protection")
    a, b = net.link_ends["dci-a"]
    for dpid, port in (a, b):                        # ports die; the controller hears nothing yet
        net.switches[dpid].live[port] = False
    assert list(net.send_ip("dc1-srv1", "10.2.0.11")) == ["dc2-srv1"]


def test_restoration_without_the_controller_loses_traffic_until_it_reacts():
    net = network("restoration")
    a, b = net.link_ends["dci-a"]
    for dpid, port in (a, b):
        net.switches[dpid].live[port] = False
    assert net.send_ip("dc1-srv1", "10.2.0.11") == {}
    for dpid, port in (a, b):
        net.send(net.logic.port_changed(dpid, port, False, net.now))
    assert list(net.send_ip("dc1-srv1", "10.2.0.11")) == ["dc2-srv1"]


def test_client_vip_traffic_lands_on_the_nearest_site(net):
    for client in ("client1", "client2"):
        got = net.send_ip(client, "10.200.0.10", proto=6, sport=40000, dport=80)
        (server,) = got
        assert server.startswith("dc1-"), got       # edge-dc1 is 1 ms, edge-dc2 3 ms
        assert got[server]["ipv4_dst"] == "10.200.0.10" and got[server]["ttl"] == 63


def test_established_flows_keep_their_site_when_costs_change(net):
    first = list(net.send_ip("client1", "10.200.0.10", proto=6, sport=40001, dport=80))
    net.set_link("edge-dc1", up=False)               # dc2 is nearer now
    net.set_link("edge-dc1", up=True)                # and dc1 again
    net.set_link("dci-a", up=False)
    again = list(net.send_ip("client1", "10.200.0.10", proto=6, sport=40001, dport=80))
    assert again == first


def health_answers(net, server, up):
    """Make `server` answer health checks (SYN-ACK) or refuse them (RST) from now on."""
    net.service_up = getattr(net, "service_up", {})
    net.service_up[server] = up


def run_health(net, rounds):
    """Advance time; servers answer the controller's SYNs as their service state says."""
    for _ in range(rounds):
        for host in net.received:
            net.received[host] = []
        net.tick(0.5)
        answer_checks(net)


def answer_checks(net):
    """Every server answers the health checks it received, as its service state says."""
    for server, pkts in list(net.received.items()):
        for pkt in pkts:
            if pkt.get("tcp_flags") == 0x02 and pkt["ipv4_dst"] == "10.200.0.10":
                if server in getattr(net, "silent", ()):
                    continue                 # powered off: no answer at all
                up = getattr(net, "service_up", {}).get(server, True)
                reply = {"eth_src": net.topo.host(server).mac, "eth_dst": GW,
                         "eth_type": 0x0800, "ipv4_src": "10.200.0.10",
                         "ipv4_dst": pkt["ipv4_src"], "ip_proto": 6, "ttl": 64,
                         "tcp_src": pkt["tcp_dst"], "tcp_dst": pkt["tcp_src"],
                         "tcp_flags": 0x12 if up else 0x14, "tcp_seq": 1,
                         "tcp_ack": pkt["tcp_seq"] + 1}
                net.host_sends(server, reply)


def test_health_checks_mark_servers_up(net):
    assert all(net.logic.status()["servers"].values())


def test_a_site_whose_servers_fail_is_withdrawn_and_its_clients_move(net):
    run_health(net, 2)
    before = list(net.send_ip("client1", "10.200.0.10", proto=6, sport=40002, dport=80))
    assert before[0].startswith("dc1-")
    for server in ("dc1-srv1", "dc1-srv2"):
        health_answers(net, server, False)
    run_health(net, 3)                               # fail_after = 3
    assert net.logic.status()["servers"]["dc1-srv1"] is False
    after = list(net.send_ip("client1", "10.200.0.10", proto=6, sport=40002, dport=80))
    assert after[0].startswith("dc2-"), after        # the same flow moved: its site failed
    for server in ("dc1-srv1", "dc1-srv2"):
        health_answers(net, server, True)
    run_health(net, 2)                               # recover_after = 2
    new = list(net.send_ip("client1", "10.200.0.10", proto=6, sport=40003, dport=80))
    assert new[0].startswith("dc1-")
    kept = list(net.send_ip("client1", "10.200.0.10", proto=6, sport=40002, dport=80))
    assert kept == after                             # no failback of an established flow


def test_primary_backup_serves_from_the_primary_until_it_fails():
    net = network(policy="primary-backup")
    run_health(net, 2)
    # client traffic enters at the edge, dc1 is primary
    assert list(net.send_ip("client2", "10.200.0.10", proto=6, sport=41000, dport=80))[0].startswith("dc1-")
    # even from dc2's own servers the primary serves
    assert list(net.send_ip("dc2-srv1", "10.200.0.10", proto=6, sport=41001, dport=80))[0].startswith("dc1-")
    for server in ("dc1-srv1", "dc1-srv2"):
        health_answers(net, server, False)
    run_health(net, 3)
    assert list(net.send_ip("client2", "10.200.0.10", proto=6, sport=41002, dport=80))[0].startswith("dc2-")


def test_a_moved_host_is_reachable_again_after_its_gratuitous_arp(net):
    assert list(net.send_ip("client1", "10.1.0.11")) == ["dc1-srv1"]
    net.move_host("dc1-srv1", "dc2", 6)
    assert net.send_ip("client1", "10.1.0.11") == {}          # gone until it speaks
    net.arp("dc1-srv1", None, gratuitous=True)
    got = net.send_ip("client1", "10.1.0.11")
    assert list(got) == ["dc1-srv1"] and got["dc1-srv1"]["eth_src"] == GW
    assert net.logic.hosts["10.1.0.11"].dpid == 2


def test_unknown_address_in_a_lab_subnet_is_searched_for_with_arp():
    net = network()
    del net.logic.hosts["10.2.0.12"]
    net.send(net.logic.sync())
    for host in net.received:
        net.received[host] = []
    net.send_ip("dc1-srv1", "10.2.0.12")
    asked = [h for h, pkts in net.received.items()
             if any(p.get("arp_tpa") == "10.2.0.12" for p in pkts)]
    assert set(asked) == {h.name for h in net.topo.hosts}     # every edge port, once
    net.arp("dc2-srv2", "10.2.0.1")                            # it answers / speaks
    assert list(net.send_ip("dc1-srv1", "10.2.0.12")) == ["dc2-srv2"]


def test_the_logic_is_pure():
    """Decisions take `now` and return messages: no sockets, no clock, no files."""
    from controllers import health, logic, routing, vips
    for module in (logic, health, vips, routing):
        source = open(module.__file__).read()
        for forbidden in ("import socket", "import time", "open(", "os_ken.controller"):
            assert forbidden not in source, (module.__name__, forbidden)
    assert ControllerLogic


def reply(net, server, client, sport, dport):
    """The server's reply to a client's TCP session (ports swapped)."""
    return net.send_ip(server, net.topo.host(client).ip.ip, proto=6, sport=dport, dport=sport,
                       flags=0x12)


@pytest.mark.parametrize("mode", ["protection", "restoration"])
def test_hot_potato_routing_makes_sessions_to_the_far_site_asymmetric(mode):
    net = network(mode, routing="hot-potato")
    assert list(net.send_ip("client1", "10.2.0.11", proto=6, sport=42000, dport=80)) == ["dc2-srv1"]
    assert net.links_taken() == ["edge-dc1", "dci-a"]          # in by the nearest site, dc1
    assert list(reply(net, "dc2-srv1", "client1", 42000, 80)) == ["client1"]
    assert net.links_taken() == ["edge-dc2"]                   # out by dc2's own exit


@pytest.mark.parametrize("mode", ["protection", "restoration"])
def test_symmetric_remedy_returns_each_session_through_its_entry_site(mode):
    net = network(mode, routing="hot-potato", symmetric=True)
    assert list(net.send_ip("client1", "10.2.0.11", proto=6, sport=42001, dport=80)) == ["dc2-srv1"]
    assert net.links_taken() == ["edge-dc1", "dci-a"]
    got = reply(net, "dc2-srv1", "client1", 42001, 80)
    assert list(got) == ["client1"] and got["client1"]["ttl"] == 63
    assert net.links_taken() == ["dci-a", "edge-dc1"]          # back the way it came
    # VIP sessions too
    assert list(net.send_ip("client2", "10.200.0.10", proto=6, sport=42002, dport=80))[0].startswith("dc1-")


def test_shortest_routing_is_symmetric_without_any_remedy():
    net = network()
    net.send_ip("client1", "10.2.0.11", proto=6, sport=42003, dport=80)
    forward = net.links_taken()
    reply(net, "dc2-srv1", "client1", 42003, 80)
    assert net.links_taken() == list(reversed(forward))


def test_a_site_that_loses_every_link_is_left_at_once_without_waiting_for_health_checks(net):
    first = list(net.send_ip("client1", "10.200.0.10", proto=17, sport=43000, dport=7000))
    assert first[0].startswith("dc1-")
    for link in ("edge-dc1", "dci-a", "dci-b"):                 # dc1 powered off
        net.set_link(link, up=False)
    again = list(net.send_ip("client1", "10.200.0.10", proto=17, sport=43000, dport=7000))
    assert again and again[0].startswith("dc2-")
    assert net.logic.status()["servers"]["dc1-srv1"]          # health checks have not noticed


def test_a_busy_controller_takes_no_health_verdict_and_a_dead_server_is_still_found(net):
    """Replies that wait in the controller's own event queue are not missed checks."""
    assert all(net.logic.health[n].up for n in ("dc1-srv1", "dc2-srv1"))
    for _ in range(3):                          # starved: the timer says backlog, no replies
        net.now += 0.5
        net.send(net.logic.tick(net.now, backlog=True))
    assert all(h.up for h in net.logic.health.values())
    # positive control: the same silence without a backlog is three missed checks: down
    net.service_up = {"dc1-srv1": False}
    for _ in range(6):                          # proof: LLDP sent a round later came back
        net.now += 0.5
        net.send(net.logic.tick(net.now))
    assert net.logic.health["dc1-srv1"].up is False
    # and a backlog that never ends defers checks by at most a few intervals
    net2 = network("protection")
    net2.service_up = {"dc1-srv2": False}
    for _ in range(30):
        net2.now += 0.5
        net2.send(net2.logic.tick(net2.now, backlog=True))
    assert net2.logic.health["dc1-srv2"].up is False


def stalled_rounds(net, rounds):
    """Health rounds in which nothing the controller sends arrives anywhere (its switches'
    upcalls or its own loop starved): no LLDP, no check, no answer comes back."""
    for _ in range(rounds):
        net.now += 0.5
        net.logic.tick(net.now)                 # its messages are lost in the stall


def test_a_stalled_control_path_fails_no_server_and_late_answers_count():
    from controllers.health import HEALTH_SILENT_MAX
    net = network("protection")
    assert all(h.up for h in net.logic.health.values())
    stalled_rounds(net, 8)                       # 4 s of silence: 8 checks each unanswered
    assert all(h.up for h in net.logic.health.values()), net.logic.status()["servers"]
    # the stall ends: the backlog of checks reaches the servers, which answer
    run_health(net, 1)
    assert all(h.up for h in net.logic.health.values())
    assert all(len(h.outstanding) <= 1 for h in net.logic.health.values())
    # positive control: the same silence from the servers while the control path works
    # (LLDP sent a round later comes back) is a failure of every server within a few rounds
    net.service_up = {}
    for _ in range(3 + 3):
        net.tick(0.5)                            # delivered; nobody answers the SYNs
    assert not any(h.up for h in net.logic.health.values())
    # and a path that proves nothing for HEALTH_SILENT_MAX intervals is judged anyway
    net = network("protection")
    stalled_rounds(net, HEALTH_SILENT_MAX + 3)
    assert not any(h.up for h in net.logic.health.values())


def lagging_rounds(net, rounds, lag):
    """Health rounds in which everything the switches send up reaches the controller `lag`
    seconds late, in order (a flood of packet-ins queued ahead of it: the VM smoke's kernel
    run had its port events 18 s late); the servers themselves answer at once."""
    real, queue = net.logic.packet_in, []

    def late(dpid, port, data, now):
        queue.append((now + lag, dpid, port, data))
        return []
    net.logic.packet_in = late
    try:
        for _ in range(rounds):
            for host in net.received:
                net.received[host] = []
            net.tick(0.5)
            answer_checks(net)
            while queue and queue[0][0] <= net.now:
                _, dpid, port, data = queue.pop(0)
                net.send(real(dpid, port, data, net.now))
    finally:
        net.logic.packet_in = real


def test_a_lagging_control_path_fails_no_server_and_a_dead_one_is_still_found():
    from controllers.health import HEALTH_SILENT_MAX
    lag = HEALTH_SILENT_MAX * 0.5 + 4                # longer than the silence rule's patience
    net = network("protection")
    lagging_rounds(net, 2 * int(lag / 0.5) + 4, lag)
    assert all(h.up for h in net.logic.health.values()), net.logic.status()["servers"]
    # positive control: a server that stops answering on the same lagging path is found
    net.silent = {"dc2-srv2"}
    lagging_rounds(net, 2 * int(lag / 0.5) + 10, lag)
    assert net.logic.health["dc2-srv2"].up is False
    assert all(h.up for n, h in net.logic.health.items() if n != "dc2-srv2")


def vip_packet_ins(net, client, sport):
    ip = str(net.topo.host(client).ip.ip)
    return [p for _, p in net.packet_ins
            if p.get("ipv4_src") == ip and p.get("ipv4_dst") == "10.200.0.10"
            and p.get("udp_src") == sport]


def test_a_failed_servers_flows_move_in_the_switch_without_going_up_to_the_controller(net):
    first = list(net.send_ip("client1", "10.200.0.10", proto=17, sport=44000, dport=7000))
    assert first[0].startswith("dc1-") and len(vip_packet_ins(net, "client1", 44000)) == 1
    for server in ("dc1-srv1", "dc1-srv2"):
        health_answers(net, server, False)
    run_health(net, 3)
    net.packet_ins = []
    moved = list(net.send_ip("client1", "10.200.0.10", proto=17, sport=44000, dport=7000))
    assert moved and moved[0].startswith("dc2-"), moved
    assert vip_packet_ins(net, "client1", 44000) == []          # moved by the controller at once
    # positive control: a new flow does go up to the controller, once
    assert list(net.send_ip("client1", "10.200.0.10", proto=17, sport=44001, dport=7000))
    assert len(vip_packet_ins(net, "client1", 44001)) == 1


def test_late_packets_of_a_pinned_flow_are_sent_on_to_its_server_without_a_new_choice(net):
    from controllers.vips import PIN_REFRESH
    from controllers.ofmsg import Flow
    from tests.unit.fake_openflow import to_bytes
    first = list(net.send_ip("client1", "10.200.0.10", proto=17, sport=45000, dport=7000))
    assert first[0].startswith("dc1-")
    # a packet of the same flow that was already on its way up when the flow was installed
    late = to_bytes(net.ip_packet("client1", "10.200.0.10", proto=17, sport=45000, dport=7000))
    edge = net.host_at["client1"][0]
    msgs = net.logic.packet_in(edge, net.host_at["client1"][1], late, net.now + 0.1)
    assert not any(isinstance(m, Flow) for m in msgs) and len(msgs) == 1
    for host in net.received:
        net.received[host] = []
    net.send(msgs)
    assert [h for h, p in net.received.items() if p] == [first[0]]
    # positive control: after PIN_REFRESH the flow is sent to the switch again (it may be lost)
    msgs = net.logic.packet_in(edge, net.host_at["client1"][1], late,
                                net.now + PIN_REFRESH + 0.2)
    assert any(isinstance(m, Flow) and m.match.get("udp_src") == 45000 for m in msgs)


def test_one_silent_server_among_answering_ones_is_found_in_fail_after_rounds(net):
    net.silent = {"dc2-srv2"}                    # the others' answers prove the path works
    rounds = 0
    while net.logic.health["dc2-srv2"].up and rounds < 10:
        run_health(net, 1)
        rounds += 1
    assert rounds == 5      # a miss is judged once a later round's answers prove the path
    assert all(h.up for n, h in net.logic.health.items() if n != "dc2-srv2")


def test_lldp_carries_its_send_time_and_ignores_foreign_names():
    from controllers import packets
    info = packets.parse(packets.lldp_frame(1, 3, stamp=1234.5))
    assert info["stamp"] == 1234.5 and packets.lldp_origin(info) == (1, 3)
    assert "stamp" not in packets.parse(packets.lldp_frame(1, 3))


def test_when_no_server_passes_its_checks_the_vip_fails_open(net):
    for server in ("dc1-srv1", "dc1-srv2", "dc2-srv1"):
        health_answers(net, server, False)
    run_health(net, 3)
    # positive control: the one server still passing gets the new flow
    assert list(net.send_ip("client1", "10.200.0.10", proto=6, sport=42000, dport=80)) == ["dc2-srv2"]
    pinned = net.logic.status()["pinned_flows"]
    health_answers(net, "dc2-srv2", False)
    run_health(net, 3)
    assert not any(h.up for h in net.logic.health.values())
    # the flow on the last server moves to where fail-open sends new flows, and stays pinned
    assert net.logic.status()["pinned_flows"] == pinned
    net.packet_ins = []
    moved = list(net.send_ip("client1", "10.200.0.10", proto=6, sport=42000, dport=80))
    assert moved and moved[0].startswith("dc1-") and net.packet_ins == [], moved
    # every verdict says down: more likely the verdicts are wrong; serve the nearest as if up
    got = list(net.send_ip("client1", "10.200.0.10", proto=6, sport=42001, dport=80))
    assert got and got[0].startswith("dc1-"), got


class OnlyVipFacts:
    """The controller logic as the VIP manager may see it: VipFacts and nothing else."""

    ALLOWED = {"health", "hosts", "names", "ports", "peer", "now", "routes", "distances_from",
               "reaches", "note", "who"}

    def __init__(self, logic):
        self._logic, self.read = logic, set()

    def __getattr__(self, name):
        if name not in self.ALLOWED:
            raise AssertionError(f"the VIP manager read {name!r}, which VipFacts does not offer")
        self.read.add(name)
        return getattr(self._logic, name)


def test_the_vip_manager_reads_only_the_facts_it_declares(net):
    from controllers.vips import VipFacts
    assert isinstance(net.logic, VipFacts)
    facts = net.logic.vips.facts = OnlyVipFacts(net.logic)
    first = list(net.send_ip("client1", "10.200.0.10", proto=6, sport=40010, dport=80))
    for server in ("dc1-srv1", "dc1-srv2"):                      # pins move when a site fails
        health_answers(net, server, False)
    run_health(net, 3)
    moved = list(net.send_ip("client1", "10.200.0.10", proto=6, sport=40010, dport=80))
    assert first[0].startswith("dc1-") and moved[0].startswith("dc2-")
    assert {"health", "hosts", "distances_from", "ports", "now"} <= facts.read   # it did read
    with pytest.raises(AssertionError, match="'intent'"):                       # control
        facts.intent


def test_a_healed_link_carries_traffic_before_bfd_comes_up():
    """After a cut, BFD needs 1-2 s to come up (it sends at most once a second while down);
    LLDP sent both ways as the carrier returns proves the link in milliseconds, and routes
    use it by plain outputs (fast-failover would skip a port BFD calls down) until BFD is up."""
    net = network("protection")
    dc1, dc2 = net.topo.switch("dc1").dpid, net.topo.switch("dc2").dpid
    net.set_link("dci-a", up=False)
    net.send_ip("dc1-srv1", "10.2.0.11")
    assert net.links_taken() == ["dci-b"]
    net.now += 0.05
    net.heal_before_bfd("dci-a")                  # carrier back: the controller probes at once
    got = net.send_ip("dc1-srv1", "10.2.0.11")
    assert list(got) == ["dc2-srv1"] and net.links_taken() == ["dci-a"]
    port = net.logic.routes()[(dc1, dc2)][0]
    plain = [f for f in net.switches[dc1].flows.values()
             if f.table == 2 and f.actions == (("output", port),)]
    assert plain                                   # not the group BFD would have skipped
    net.now += 0.5
    net.bfd_up("dci-a")                            # BFD up: fast-failover groups again
    got = net.send_ip("dc1-srv1", "10.2.0.11")
    assert list(got) == ["dc2-srv1"] and net.links_taken() == ["dci-a"]
    assert not [f for f in net.switches[dc1].flows.values()
                if f.table == 2 and f.actions == (("output", port),)]


def test_without_the_lldp_proof_a_healed_link_waits_for_bfd():
    """Control: LLDP that cannot cross (the link healed its carrier but drops frames) proves
    nothing; traffic stays on the other link until BFD."""
    net = network("protection")
    net.set_link("dci-a", up=False)
    net.now += 0.05
    net.gray_wire("dci-a", on=True)               # frames do not cross
    for dpid, port in net.link_ends["dci-a"]:
        net.send(net.logic.port_changed(dpid, port, False, net.now, carrier=True))
    net.tick(1.0)                                  # periodic LLDP: lost too
    net.send_ip("dc1-srv1", "10.2.0.11")
    assert net.links_taken() == ["dci-b"]


def test_a_gray_link_is_not_proven_by_lldp_from_before_it_failed():
    net = network("protection")
    net.tick(1.0)                                  # LLDP has crossed dci-a, both ways
    net.now += 0.2
    net.gray_wire("dci-a", on=True)
    net.now += 0.3
    net.bfd_down("dci-a")                          # BFD notices; carrier stays up
    net.send_ip("dc1-srv1", "10.2.0.11")
    assert net.links_taken() == ["dci-b"]          # the old LLDP proves nothing


def test_a_proof_that_is_not_renewed_runs_out():
    net = network("protection")
    net.set_link("dci-a", up=False)
    net.now += 0.05
    net.heal_before_bfd("dci-a")
    net.send_ip("dc1-srv1", "10.2.0.11")
    assert net.links_taken() == ["dci-a"]
    net.gray_wire("dci-a", on=True)                # it fails again before BFD came up
    net.tick(1.0)                                  # LLDP lost; the proof is 1 s old
    net.tick(1.0)                                  # 2 s old: out of date
    got = net.send_ip("dc1-srv1", "10.2.0.11")
    assert list(got) == ["dc2-srv1"] and net.links_taken() == ["dci-b"]


def test_a_proof_is_renewed_both_ways_while_bfd_is_up_at_one_end_only():
    """BFD comes up at one end before the other: the link stays in use, proven by LLDP from
    both ends (the end already live keeps probing too)."""
    net = network("protection")
    net.set_link("dci-a", up=False)
    net.now += 0.05
    net.heal_before_bfd("dci-a")
    (dpid, port), _ = net.link_ends["dci-a"]
    net.switches[dpid].live[port] = True           # BFD up at dc1's end only
    net.send(net.logic.port_changed(dpid, port, True, net.now))
    for _ in range(10):                            # 0.5 s of the controller's 50 ms timer
        net.tick(0.05)
    net.send_ip("dc1-srv1", "10.2.0.11")
    assert net.links_taken() == ["dci-a"]


def test_the_log_names_switches_hosts_and_links_not_datapath_ids():
    """Lab 2's "look in the log": ARP answers, hosts located, paths and VIP choices in names."""
    net = network()
    notes = "\n".join(net.logic.take_notes())
    assert "ARP: client1 (10.100.0.11) at edge asked who has 10.100.0.1: answered" in notes
    assert "host dc1-srv1 (10.1.0.11) located at dc1:1" in notes
    assert "paths: dc1->dc2 via dci-a (backup dci-b)" in notes
    assert list(net.send_ip("client1", "10.200.0.10", proto=17, sport=5000, dport=80))
    assert any(n.startswith("VIP web from client1 (10.100.0.11) udp 5000 at edge -> dc1-srv")
               for n in net.logic.take_notes())
    net.set_link("dci-a", up=False)
    notes = "\n".join(net.logic.take_notes())
    assert "dc1->dc2 via dci-b (backup none)" in notes and "0000000000000001" not in notes
    # positive control: nothing new happened, nothing new is said
    assert net.logic.take_notes() == []


def checks_to(net, server):
    """The health-check SYNs the server has received so far."""
    return [p for p in net.received.get(server, []) if p.get("tcp_flags") == 0x02
            and p["ipv4_dst"] == "10.200.0.10"]


def test_a_late_answer_is_reset_and_checks_rotate_their_source_ports():
    """A SYN-ACK for a check already judged gets a RST (else the server keeps a half-open
    connection and answers the next checks on those ports with ACKs: down for a minute), and
    successive checks come from different source ports."""
    net = network("protection")
    for host in net.received:
        net.received[host] = []
    ports = []
    for _ in range(4):
        net.tick(0.5)
        ports.append(checks_to(net, "dc1-srv1")[-1]["tcp_src"])
    assert len(set(ports)) == 4, ports
    old = checks_to(net, "dc1-srv1")[0]
    checker = net.logic.checker
    checker.servers["dc1-srv1"].outstanding.clear()        # as if judged already
    net.received["dc1-srv1"] = []
    late = {"eth_src": net.topo.host("dc1-srv1").mac, "eth_dst": GW, "eth_type": 0x0800,
            "ipv4_src": "10.200.0.10", "ipv4_dst": old["ipv4_src"], "ip_proto": 6, "ttl": 64,
            "tcp_src": old["tcp_dst"], "tcp_dst": old["tcp_src"], "tcp_flags": 0x12,
            "tcp_seq": 77, "tcp_ack": old["tcp_seq"] + 1}
    net.host_sends("dc1-srv1", late)
    rst = [p for p in net.received["dc1-srv1"] if p.get("tcp_flags") == 0x04]
    assert rst and rst[0]["tcp_dst"] == old["tcp_dst"] and rst[0]["tcp_src"] == old["tcp_src"]
    assert rst[0]["tcp_seq"] == old["tcp_seq"] + 1
    # positive control: a RST from the server is not answered with a RST
    net.received["dc1-srv1"] = []
    net.host_sends("dc1-srv1", dict(late, tcp_flags=0x14))
    assert not [p for p in net.received["dc1-srv1"] if p.get("tcp_flags") == 0x04]


def test_only_proof_through_the_servers_own_switch_judges_its_checks():
    """A site whose switch's answers lag behind the other switches' LLDP is not declared dead:
    the proof must come back through the server's own switch."""
    from controllers.health import HealthChecker
    net = network("protection")
    checker = HealthChecker(net.logic.intent)
    hosts = net.logic.hosts

    def locate(ip):
        return hosts.get(str(ip))
    msgs, down = checker.round(0.0, locate, GW, lambda ip: [])
    assert len(msgs) == 4 and down == []
    dc1 = hosts["10.1.0.11"].dpid
    dc2 = hosts["10.2.0.11"].dpid
    # frames sent later came back through dc2 only: dc1's servers' checks are not judged
    for t in (0.5, 1.0, 1.5, 2.0):
        checker.heard(t, t + 0.01, dpid=dc2)
        msgs, down = checker.round(t + 0.5, locate, GW, lambda ip: [])
    assert checker.servers["dc1-srv1"].up is not False
    assert checker.servers["dc1-srv1"].misses == 0
    assert checker.servers["dc2-srv1"].misses >= 3          # positive control: dc2 was judged
    # proof through dc1 judges dc1's silent servers too
    for t in (2.5, 3.0, 3.5):
        checker.heard(t, t + 0.01, dpid=dc1)
        checker.round(t + 0.5, locate, GW, lambda ip: [])
    assert checker.servers["dc1-srv1"].misses >= 3


def test_a_cut_off_site_whose_servers_are_not_judged_yet_does_not_leave_clients_unserved():
    """dc1 powers off (nothing can come back through dc1: its servers are judged on any
    switch's proof, as a cut-off switch proves nothing) while dc2's servers fail theirs (a
    data tier without quorum closes the app): every server is down, the clients fail open to
    the servers they reach (dc2), not to "no server left"."""
    topo = load_topology("two-region")
    net = FakeNetwork(topo, intent_for(topo))
    net.start()
    for host in topo.hosts:
        net.arp(host.name, topo.switch(host.switch).gateway)
    run_health(net, 2)
    assert list(net.send_ip("client1", "10.200.0.10", proto=17, sport=40001, dport=7000)) \
        == ["dc1-srv1"]
    for link in topo.links:
        if "dc1" in (link.a, link.b):
            net.set_link(link.name, False)
    net.silent = {"dc1-srv1", "dc1-srv2"}
    for server in ("dc2-srv1", "dc2-srv2"):
        health_answers(net, server, False)
    run_health(net, 8)
    assert not any(h.up for h in net.logic.health.values())      # dc1's judged too
    got = list(net.send_ip("client1", "10.200.0.10", proto=17, sport=40001, dport=7000))
    assert got and got[0].startswith("dc2-"), got
    assert list(net.send_ip("client1", "10.200.0.10", proto=17, sport=40009, dport=7000))
