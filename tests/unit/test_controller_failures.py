"""Double failures and 3-to-5-site meshes and rings on the fake OpenFlow network.

After the controller has been told of every failure, traffic between two servers must arrive
exactly when their sites are still connected by live DCI links, and never loop (the fake network
asserts on a forwarding loop, and drops output to the input port as Open vSwitch does).
"""

import itertools

import networkx as nx
import pytest

from lab.emulation.controller import intent_for
from lab.model.topology import load_topology, multi_active
from tests.unit.fake_openflow import FakeNetwork
from tests.unit.test_controller_logic import run_health


def build(topo, mode):
    net = FakeNetwork(topo, intent_for(topo, mode))
    net.start()
    for host in topo.hosts:
        net.arp(host.name, topo.switch(host.switch).gateway)
    run_health(net, 2)
    return net


def connected_sites(topo, down):
    graph = nx.Graph()
    graph.add_nodes_from(s.name for s in topo.sites)
    graph.add_edges_from((l.a, l.b) for l in topo.dci_links if l.name not in down)
    return graph


def check_delivery(net, topo, down):
    graph = connected_sites(topo, down)
    servers = [topo.hosts_at(s.name)[0] for s in topo.sites]
    for src, dst in itertools.permutations(servers, 2):
        got = net.send_ip(src.name, dst.ip.ip)                   # asserts on a loop
        if nx.has_path(graph, src.switch, dst.switch):
            assert list(got) == [dst.name], (src.name, dst.name, sorted(down))
        else:
            assert got == {}, (src.name, dst.name, sorted(down))


def test_the_fake_switch_drops_output_to_the_input_port():
    from tests.unit.fake_openflow import FakeSwitch
    switch = FakeSwitch(1, [1, 2])
    assert switch.act(("output", 1), {}, in_port=1) == []
    assert switch.act(("output", 2), {}, in_port=1) == [(2, {})]


@pytest.mark.parametrize("mode", ["protection", "restoration"])
def test_both_dcis_of_dual_active_cut_and_healed(mode):
    topo = load_topology("dual-active")
    net = build(topo, mode)
    net.set_link("dci-a", up=False)
    net.set_link("dci-b", up=False)
    check_delivery(net, topo, {"dci-a", "dci-b"})          # the sites are cut apart
    net.set_link("dci-b", up=True)
    check_delivery(net, topo, {"dci-a"})
    net.set_link("dci-a", up=True)
    check_delivery(net, topo, set())


@pytest.mark.parametrize("mode", ["protection", "restoration"])
@pytest.mark.parametrize("sites,layout", [(3, "mesh"), (4, "mesh"), (5, "mesh"), (3, "ring"),
                                          (4, "ring"), (5, "ring")])
def test_every_single_and_double_dci_failure_delivers_where_connected(mode, sites, layout):
    topo = multi_active(sites, layout)
    dcis = [l.name for l in topo.dci_links]
    net = build(topo, mode)
    check_delivery(net, topo, set())
    doubles = list(itertools.combinations(dcis, 2))
    if sites == 5:
        doubles = doubles[::4]          # every fourth double failure: the unit suite stays fast
    for down in [(name,) for name in dcis] + doubles:
        for name in down:
            net.set_link(name, up=False)
        check_delivery(net, topo, set(down))
        for name in down:
            net.set_link(name, up=True)
    check_delivery(net, topo, set())


def test_protection_without_the_controller_never_loops_on_a_single_failure():
    """Ports die and only the switches' fast-failover groups act: no loop, whatever arrives."""
    for sites, layout in ((4, "ring"), (5, "mesh")):
        topo = multi_active(sites, layout)
        net = build(topo, "protection")
        servers = [topo.hosts_at(s.name)[0] for s in topo.sites]
        for link in topo.dci_links:
            for dpid, port in net.link_ends[link.name]:
                net.switches[dpid].live[port] = False
            for src, dst in itertools.permutations(servers, 2):
                net.send_ip(src.name, dst.ip.ip)                 # asserts on a loop
            for dpid, port in net.link_ends[link.name]:
                net.switches[dpid].live[port] = True


def test_backup_coverage_names_the_pairs_without_a_loop_free_alternate():
    dual = build(load_topology("dual-active"), "protection").logic.backup_coverage()
    assert dual == {"pairs": 2, "covered": 2, "uncovered": []}
    ring = build(multi_active(4, "ring"), "protection").logic.backup_coverage()
    assert ring["pairs"] == 12 and ring["covered"] < ring["pairs"]
    # adjacent sites of a ring: the way round the other side comes back through the source
    assert ["dc1", "dc2"] in ring["uncovered"]
    mesh = build(multi_active(4, "mesh"), "protection").logic.backup_coverage()
    assert mesh["covered"] == mesh["pairs"] == 12
    status = build(load_topology("dual-active"), "protection").logic.status()
    assert status["backup_coverage"]["pairs"] == 2


def test_more_sites_than_the_generator_builds_is_one_line():
    from lab.errors import TopologyError
    from lab.model.topology import MAX_SITES
    with pytest.raises(TopologyError, match=f"use 2 to {MAX_SITES} sites"):
        multi_active(MAX_SITES + 1, "ring")
