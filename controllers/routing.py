"""Routing as pure, cached functions: the one path-latency rule of the lab and the controller.

A network view is a hashable ``View`` (switches, live links with their cost, which switches
are client edges, the routing policy). Everything here is a function of a view alone and is
cached on it, so a controller recomputes routes once per change of the live links, not on
every event or packet-in.

The path-latency rule (also what the lab's static fabric and GSLB use to say which site is
"nearest", lab/emulation/fabric.py): a path costs the sum of its links' declared one-way
latencies plus HOP_COST_MS per link (ties go to fewer hops); a link without a declared
latency costs DEFAULT_LINK_MS; client edges are stubs, never transit; among equally near
sites the one whose name sorts first wins.
"""

import functools
import heapq
from dataclasses import dataclass

import networkx as nx

HOP_COST_MS = 0.001            # breaks latency ties toward fewer hops
DEFAULT_LINK_MS = 1.0          # the cost of a link whose latency was not declared


def link_cost(delay_ms):
    """What one link adds to a path's cost (ms)."""
    return (DEFAULT_LINK_MS if delay_ms is None else float(delay_ms)) + HOP_COST_MS


def path_costs(links, src, stubs=frozenset()):
    """{node: cost of the cheapest path from src} over links [(a, b, cost)], undirected;
    `stubs` (client edges) are reached but never crossed (src itself may be one)."""
    adjacency = {}
    for a, b, cost in links:
        adjacency.setdefault(a, []).append((b, cost))
        adjacency.setdefault(b, []).append((a, cost))
    dist, heap = {src: 0.0}, [(0.0, str(src), src)]
    while heap:
        d, _, node = heapq.heappop(heap)
        if d > dist.get(node, float("inf")) or (node in stubs and node != src):
            continue
        for other, cost in adjacency.get(node, ()):
            if d + cost < dist.get(other, float("inf")):
                dist[other] = d + cost
                heapq.heappush(heap, (d + cost, str(other), other))
    return dist


def nearest(dist, candidates, name=str):
    """The candidate with the cheapest path in `dist` (ties: by name(candidate)), or None."""
    reachable = [c for c in candidates if c in dist]
    return min(reachable, key=lambda c: (round(dist[c], 9), name(c))) if reachable else None


@dataclass(frozen=True)
class View:
    """What routes depend on: switches (dpid -> (name, kind)), live links
    ((a dpid, a port), (b dpid, b port), cost) with a < b, and the routing policy."""
    switches: tuple               # ((dpid, name, kind), ...), sorted
    links: tuple                  # (((a, pa), (b, pb), cost), ...), sorted
    hot_potato: bool = False

    @functools.cached_property
    def kinds(self):
        return {dpid: kind for dpid, _, kind in self.switches}

    @functools.cached_property
    def names(self):
        return {dpid: name for dpid, name, _ in self.switches}

    @functools.cached_property
    def graph(self):
        graph = nx.MultiGraph()
        graph.add_nodes_from(dpid for dpid, _, _ in self.switches)
        for a, b, cost in self.links:
            graph.add_edge(a[0], b[0], key=(a, b), ends={a[0]: a[1], b[0]: b[1]}, weight=cost)
        return graph

    def transit(self, src, dst):
        """The graph a path from src to dst may use: client edges are stubs, never transit."""
        edges = {d for d, kind in self.kinds.items() if kind == "edge"} - {src, dst}
        return self.graph.subgraph([n for n in self.graph if n not in edges])


def first_hop(graph, src, dst):
    """(port, neighbour, edge key) of the shortest path's first link, or None."""
    try:
        path = nx.dijkstra_path(graph, src, dst, weight="weight")
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return None
    neighbour = path[1]
    key, data = min(graph[src][neighbour].items(), key=lambda kv: (kv[1]["weight"], kv[0]))
    return data["ends"][src], neighbour, key


def hot_potato_hop(view, graph, src, dst):
    """With hot-potato routing, the first hop across the client-edge/site boundary: a site
    leaves by its own link to the edge; an edge enters the sites at its nearest site.
    None when the rule does not apply (then: shortest path)."""
    if not view.hot_potato or src not in graph:
        return None
    kinds = (view.kinds.get(src), view.kinds.get(dst))
    if kinds == ("site", "edge"):
        candidates = [n for n in graph[src] if n == dst]
    elif kinds == ("edge", "site"):
        candidates = [n for n in graph[src] if view.kinds.get(n) == "site"]
    else:
        return None
    hops = [(data["weight"], key, n, data["ends"][src]) for n in candidates
            for key, data in graph[src][n].items()]
    if not hops:
        return None
    _, key, neighbour, port = min(hops)
    return port, neighbour, key


@functools.lru_cache(maxsize=128)
def routes(view):
    """{(switch, destination switch): (primary port, backup port or None)} for a view.

    Per destination, one shortest-path tree serves every source at once (the distances of
    `distances`, client edges never transit). A switch's primary is the link on a shortest
    path (ties: the cheaper link, then the neighbour's name, then the port); with hot-potato
    routing the client-edge/site boundary is crossed first (hot_potato_hop). The backup is a
    loop-free alternate: a link to a neighbour whose own shortest path to the destination
    does not come back through this switch (dist(n, d) < dist(n, s) + dist(s, d)), the
    cheapest such; None when there is none. Cached per view: computed once per change of
    the live links, whatever number of events or packet-ins read it."""
    graph = view.graph
    dist = {node: distances(view, node) for node in graph}
    kinds, names = view.kinds, view.names
    table = {}
    for src in graph:
        hops = sorted((data["weight"], names.get(n, str(n)), data["ends"][src], n, key)
                      for n in graph[src] for key, data in graph[src][n].items())
        for dst in graph:
            if src == dst or dst not in dist[src]:
                continue
            usable = [h for h in hops if h[3] == dst or kinds.get(h[3]) != "edge"]
            via = [(cost + dist[dst][n], name, port, n, key)
                   for cost, name, port, n, key in usable if n in dist[dst]]
            if not via:
                continue
            hot = hot_potato_hop(view, graph, src, dst)
            if hot is not None:
                port, neighbour, key = hot
            else:
                _, _, port, neighbour, key = min(via, key=lambda v: (round(v[0], 9),) + v[1:3])
            own = dist[dst][src]
            alternates = [v for v in via if v[4] != key and (
                v[3] == dst or dist[dst][v[3]] < dist[src][v[3]] + own - 1e-9)]
            backup = min(alternates, key=lambda v: (round(v[0], 9),) + v[1:3]) \
                if alternates else None
            table[(src, dst)] = (port, backup[2] if backup else None)
    return table


@functools.lru_cache(maxsize=1024)
def distances(view, src):
    """Path cost from switch `src` to every switch it reaches (client edges never transit)."""
    if src not in view.graph:
        return {}
    stubs = frozenset(d for d, kind in view.kinds.items() if kind == "edge")
    return path_costs([(a[0], b[0], cost) for a, b, cost in view.links], src, stubs)


def backup_coverage(view):
    """Which ordered pairs of site switches have a loop-free alternate to fall back on.

    Returns {pairs, covered, uncovered: [[from site, to site], ...]}: protection fails over
    in the switch only for covered pairs; the others wait for the controller."""
    table = routes(view)
    sites = {d: name for d, name, kind in view.switches if kind == "site"}
    pairs = [(a, b) for a in sorted(sites) for b in sorted(sites) if a != b and (a, b) in table]
    uncovered = [[sites[a], sites[b]] for a, b in pairs if table[(a, b)][1] is None]
    return {"pairs": len(pairs), "covered": len(pairs) - len(uncovered), "uncovered": uncovered}
