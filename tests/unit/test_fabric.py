"""The standalone fabric forwards loop-free over the chosen tree (simulated flooding)."""

import pytest

from lab.emulation import fabric
from lab.model.topology import load_topology


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
    from_dc1 = fabric.latencies(topo, "dc1")
    assert from_dc1["dc2"] == 2.0 and from_dc1["edge"] == 1.0
    from_edge = fabric.latencies(topo, "edge")
    assert from_edge == {"edge": 0.0, "dc1": 1.0, "dc2": 3.0}
    assert fabric.nearest_site(topo, "edge", ["dc1", "dc2"]) == "dc1"
    assert fabric.nearest_site(topo, "edge", ["dc2"]) == "dc2"
