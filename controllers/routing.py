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
    inf = float("inf")
    table = {}
    for src in graph:
        # every link out of src as (neighbour's name, port, neighbour, link cost, key), in
        # tie-break order; client edges are usable only as the destination itself
        hops = sorted((names.get(n, str(n)), data["ends"][src], n, data["weight"], key)
                      for n in graph[src] for key, data in graph[src][n].items())
        transit = [h for h in hops if kinds.get(h[2]) != "edge"]
        dsrc = dist[src]
        for dst in graph:
            if src == dst or dst not in dsrc:
                continue
            ddst = dist[dst]
            usable = transit if kinds.get(dst) != "edge" else transit + [
                h for h in hops if h[2] == dst]
            best = best_key = None
            best_total = inf
            for hop in usable:
                d = ddst.get(hop[2])
                if d is not None and hop[3] + d < best_total - 1e-9:
                    best_total, best, best_key = hop[3] + d, hop[1], hop[4]
            if best is None:
                continue
            hot = hot_potato_hop(view, graph, src, dst)
            if hot is not None:
                best, _, best_key = hot
            own = ddst[src]
            backup, backup_total = None, inf
            for _, port, n, cost, key in usable:
                if key == best_key or n not in ddst:
                    continue
                if (n == dst or ddst[n] < dsrc[n] + own - 1e-9) \
                        and cost + ddst[n] < backup_total - 1e-9:
                    backup, backup_total = port, cost + ddst[n]
            table[(src, dst)] = (best, backup)
    return table


@functools.lru_cache(maxsize=1024)
def distances(view, src):
    """Path cost from switch `src` to every switch it reaches (client edges never transit)."""
    if src not in view.graph:
        return {}
    stubs = frozenset(d for d, kind in view.kinds.items() if kind == "edge")
    return path_costs([(a[0], b[0], cost) for a, b, cost in view.links], src, stubs)


@functools.lru_cache(maxsize=128)
def reach_labels(view):
    """Who reaches whom, cheaply (one pass over the live links, no path costs): {switch:
    frozenset of component labels}. Switches that are not client edges are joined by the live
    links between them; a client edge (never transit) carries the labels of the components it
    has a live link into. See reaches()."""
    parent = {dpid: dpid for dpid, _, _ in view.switches}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    kinds = view.kinds
    for a, b, _ in view.links:
        if kinds.get(a[0]) != "edge" and kinds.get(b[0]) != "edge":
            parent[find(a[0])] = find(b[0])
    labels = {d: {find(d)} for d in parent if kinds.get(d) != "edge"}
    for d in parent:
        if kinds.get(d) == "edge":
            labels[d] = set()
    for a, b, _ in view.links:
        for edge, other in ((a[0], b[0]), (b[0], a[0])):
            if kinds.get(edge) == "edge" and kinds.get(other) != "edge":
                labels[edge].add(find(other))
    return {d: frozenset(ls) for d, ls in labels.items()}


def reaches(view, a, b):
    """Whether switch a reaches switch b over live links (client edges never transit): what
    distances(view, a) tells by containing b, at the cost of one pass per view."""
    if a == b:
        return a in view.kinds
    labels = reach_labels(view)
    if labels.get(a, frozenset()) & labels.get(b, frozenset()):
        return True
    return any({x[0], y[0]} == {a, b} for x, y, _ in view.links)       # two adjacent edges


def backup_coverage(view):
    """Which ordered pairs of site switches have a loop-free alternate to fall back on.

    Returns {pairs, covered, uncovered: [[from site, to site], ...]}: protection fails over
    in the switch only for covered pairs; the others wait for the controller."""
    table = routes(view)
    sites = {d: name for d, name, kind in view.switches if kind == "site"}
    pairs = [(a, b) for a in sorted(sites) for b in sorted(sites) if a != b and (a, b) in table]
    uncovered = [[sites[a], sites[b]] for a, b in pairs if table[(a, b)][1] is None]
    return {"pairs": len(pairs), "covered": len(pairs) - len(uncovered), "uncovered": uncovered}
