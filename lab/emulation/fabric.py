"""The standalone L2 fabric the lab runs before a controller takes over.

The switches do plain MAC learning (OpenFlow NORMAL), but a topology has loops (two DCI links,
a client edge homed to both sites), so the fabric forwards over a spanning tree of the links
and both ends of every other link drop what they receive. Choosing the tree chooses which link
carries traffic: that is how the lab measures each DCI link on its own.

Pure code: given the topology and the links to prefer, it returns the tree and the flows.
"""

import ipaddress

from controllers import routing


def spanning_tree(topo, prefer=()):
    """Links forming a spanning tree of the switches: `prefer` first, then by lowest delay.

    Args:
        topo: lab.model.topology.Topology.
        prefer: names of links to put in the tree if they fit (no loop).
    Returns:
        A frozenset of link names.
    """
    parent = {s.name: s.name for s in topo.switches}

    def root(node):
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    order = sorted(topo.links, key=lambda l: (l.name not in prefer, l.delay_ms, l.name))
    tree = set()
    for link in order:
        ra, rb = root(link.a), root(link.b)
        if ra != rb:
            parent[ra] = rb
            tree.add(link.name)
    return frozenset(tree)


def blocked_ports(topo, tree):
    """{switch: [port numbers]} of the links outside the tree."""
    blocked = {s.name: [] for s in topo.switches}
    for link in topo.links:
        if link.name not in tree:
            for end in link.ends:
                blocked[end].append(topo.port_to(end, link.name).number)
    return blocked


def flows(topo, tree):
    """{switch: [ovs-ofctl flow strings]}: drop on blocked ports, learn and forward elsewhere."""
    return {switch: [f"priority=100,in_port={port},actions=drop" for port in sorted(ports)]
            + ["priority=0,actions=NORMAL"]
            for switch, ports in blocked_ports(topo, tree).items()}


def path(topo, tree, src, dst):
    """The links a frame takes over the tree from switch src to switch dst (BFS)."""
    adjacency = {s.name: [] for s in topo.switches}
    for link in topo.links:
        if link.name in tree:
            adjacency[link.a].append((link.b, link.name))
            adjacency[link.b].append((link.a, link.name))
    previous = {src: None}
    todo = [src]
    while todo:
        node = todo.pop(0)
        for nxt, name in adjacency[node]:
            if nxt not in previous:
                previous[nxt] = (node, name)
                todo.append(nxt)
    if dst not in previous:
        return None
    hops = []
    while previous[dst]:
        dst, name = previous[dst]
        hops.append(name)
    return list(reversed(hops))


def latencies(topo, src):
    """Path cost (ms) from switch `src` to every switch, with client edges as stubs (never
    transit): the controller's own rule (controllers.routing: declared latency plus a hop cost
    per link), so the lab expects what the controller chooses."""
    stubs = frozenset(s.name for s in topo.switches if s.kind == "edge")
    return routing.path_costs([(l.a, l.b, routing.link_cost(l.delay_ms)) for l in topo.links],
                              src, stubs)


def nearest_site(topo, switch, candidates):
    """The candidate site nearest to `switch` by path cost (ties: by name, as the controller)."""
    return routing.nearest(latencies(topo, switch), candidates)


def gateway_routes(topo, intf, gateway):
    """A host's routes once the anycast gateway exists: the lab's own prefixes (every site and
    edge subnet, every VIP) via the gateway, and everything else unreachable, so nothing a
    host sends leaves the lab's addresses and a lookup of the machine's DNS server fails at
    once (an rsync daemon's reverse lookup took 10 s per connection waiting on one)."""
    prefixes = [str(s.subnet) for s in topo.switches] + [f"{v.vip}/32" for v in topo.services]
    return ([["ip", "route", "replace", p, "via", str(gateway), "dev", intf]
             for p in prefixes
             if ipaddress.ip_address(str(gateway)) not in ipaddress.ip_network(p)]
            + [["ip", "route", "replace", "unreachable", "default"]])
