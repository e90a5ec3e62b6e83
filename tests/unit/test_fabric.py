"""The standalone fabric forwards loop-free over the chosen tree (simulated flooding)."""

import pytest

from controllers import routing

from lab.emulation import fabric
from lab.model.topology import load_topology, multi_active


@pytest.fixture
def topo():
    return load_topology("dual-active")


def flood(topo, flows, src_host):
    """Deliver a broadcast from src_host through switches applying the fabric's flows.

    Returns {host: copies received}; raises if a frame would loop forever."""
    drops = {sw: {int(f.split("in_port=")[1].split(",")[0]) for f in fl if "actions=drop" in f}
             for sw, fl in flows.items()}
    received = {h.name: 0 for h in topo.hosts}
    start = topo.host(src_host)
    frames = [(start.switch, topo.port_to(start.switch, src_host).number)]
    hops = 0
    while frames:
        hops += 1
        assert hops < 1000, "broadcast loops"
        switch, in_port = frames.pop()
        if in_port in drops[switch]:
            continue
        for port in topo.ports(switch):
            if port.number == in_port:
                continue
            if port.peer_kind == "host":
                received[port.peer] += 1
            else:
                link = topo.link(port.peer)
                other = link.b if link.a == switch else link.a
                frames.append((other, topo.port_to(other, link.name).number))
    return received


@pytest.mark.parametrize("prefer", [(), ("dci-a",), ("dci-b",), ("edge-dc2",), ("dci-b", "edge-dc2")])
def test_every_host_gets_a_broadcast_exactly_once(topo, prefer):
    tree = fabric.spanning_tree(topo, prefer)
    flows = fabric.flows(topo, tree)
    for host in topo.hosts:
        received = flood(topo, flows, host.name)
        assert received.pop(host.name) == 0
        assert set(received.values()) == {1}, (prefer, host.name, received)


def test_preferred_link_carries_traffic_between_its_ends(topo):
    for link in topo.links:
        tree = fabric.spanning_tree(topo, {link.name})
        assert fabric.path(topo, tree, link.a, link.b) == [link.name]


def test_default_tree_prefers_low_delay(topo):
    tree = fabric.spanning_tree(topo)
    assert tree == {"edge-dc1", "dci-a"}
    assert fabric.path(topo, tree, "edge", "dc2") == ["edge-dc1", "dci-a"]


def test_blocked_ports_are_both_ends_of_links_outside_the_tree(topo):
    tree = fabric.spanning_tree(topo, {"dci-b"})
    blocked = fabric.blocked_ports(topo, tree)
    outside = [l for l in topo.links if l.name not in tree]
    assert sum(len(p) for p in blocked.values()) == 2 * len(outside)
    assert topo.port_to("dc1", "dci-a").number in blocked["dc1"]


def test_latencies_never_transit_a_client_edge(topo):
    hop = routing.HOP_COST_MS
    from_dc1 = fabric.latencies(topo, "dc1")
    assert from_dc1["dc2"] == pytest.approx(2.0 + hop) and from_dc1["edge"] == pytest.approx(1.0 + hop)
    from_edge = fabric.latencies(topo, "edge")
    assert from_edge == pytest.approx({"edge": 0.0, "dc1": 1.0 + hop, "dc2": 3.0 + hop})
    assert fabric.nearest_site(topo, "edge", ["dc1", "dc2"]) == "dc1"
    assert fabric.nearest_site(topo, "edge", ["dc2"]) == "dc2"


@pytest.mark.parametrize("make", [lambda: load_topology("dual-active"),
                                  lambda: load_topology("two-region"),
                                  lambda: load_topology("three-site"),
                                  lambda: multi_active(4, "ring"),
                                  lambda: multi_active(8, "mesh")],
                         ids=["dual-active", "two-region", "three-site", "ring4", "mesh8"])
def test_the_lab_and_the_controller_share_one_path_latency_rule(make):
    """The lab's expectation (nearest site) is the controller's choice, ties included."""
    from tests.unit.fake_openflow import FakeNetwork
    from lab.emulation.controller import intent_for
    topo = make()
    net = FakeNetwork(topo, intent_for(topo))
    net.start()
    logic = net.logic
    name = {s.dpid: s.name for s in topo.switches}
    sites = [s.name for s in topo.sites]
    for switch in topo.switches:
        lab_costs = fabric.latencies(topo, switch.name)
        ctl_costs = {name[d]: c for d, c in logic.distances_from(switch.dpid).items()}
        assert ctl_costs == pytest.approx(lab_costs)
        by_dpid = logic.distances_from(switch.dpid)
        chosen = routing.nearest(by_dpid, [s.dpid for s in topo.sites], name=name.get)
        assert name[chosen] == fabric.nearest_site(topo, switch.name, sites)


def test_equal_costs_go_to_the_name_that_sorts_first():
    costs = {"dc10": 2.0, "dc2": 2.0, "dc3": 1.0}
    assert routing.nearest(costs, ["dc10", "dc2"]) == "dc10"
    assert routing.nearest(costs, ["dc10", "dc2", "dc3"]) == "dc3"
    assert routing.nearest(costs, ["dc9"]) is None


def test_routes_are_computed_once_per_view():
    from tests.unit.fake_openflow import FakeNetwork
    from lab.emulation.controller import intent_for
    topo = load_topology("dual-active")
    net = FakeNetwork(topo, intent_for(topo))
    net.start()
    routing.routes.cache_clear()
    for _ in range(50):
        net.logic.routes()
        net.logic.distances_from(1)
    assert routing.routes.cache_info().misses == 1
    net.logic.port_changed(1, topo.port_to("dc1", "dci-a").number, False, 1.0)
    net.logic.routes()
    assert routing.routes.cache_info().misses == 2                      # a change: once more


def test_hosts_route_only_the_labs_prefixes_and_nothing_else():
    """Via the gateway: every other subnet and every VIP; anything else unreachable (the
    machine's DNS server included: a lookup fails at once instead of timing out)."""
    from lab.emulation.fabric import gateway_routes
    topo = load_topology("dual-active")
    routes = gateway_routes(topo, "client1-eth0", "10.100.0.1")
    assert ["ip", "route", "replace", "10.1.0.0/24", "via", "10.100.0.1",
            "dev", "client1-eth0"] in routes
    assert ["ip", "route", "replace", "10.200.0.10/32", "via", "10.100.0.1",
            "dev", "client1-eth0"] in routes
    assert not any("10.100.0.0/24" in r for r in routes)            # its own subnet: on-link
    assert routes[-1] == ["ip", "route", "replace", "unreachable", "default"]
    assert len(routes) == 2 + 1 + 1                                  # dc1, dc2, VIP, default
