"""A topology drawn as a picture: sites, client edges, hosts, and every link with bw and delay.

    python lab/run.py draw dual-active [--out dual-active.png]
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402


def draw(topo, out):
    """Write a PNG of `topo` to `out`; returns out."""
    graph = nx.MultiGraph()
    for switch in topo.switches:
        graph.add_node(switch.name, kind=switch.kind)
    for link in topo.links:
        graph.add_edge(link.a, link.b, key=link.name, link=link)
    pos = nx.spring_layout(nx.Graph(graph), seed=7, weight=None)
    hosts = {}
    for switch in topo.switches:
        members = topo.hosts_at(switch.name)
        x, y = pos[switch.name]
        for i, host in enumerate(members):
            offset = (i - (len(members) - 1) / 2) * 0.18
            hosts[host.name] = (x + offset, y - 0.32 if switch.kind == "site" else y + 0.32)
    fig, ax = plt.subplots(figsize=(10, 7))
    for a, b, key, data in graph.edges(keys=True, data=True):
        link = data["link"]
        siblings = [k for u, v, k in graph.edges(keys=True) if {u, v} == {a, b}]
        bend = 0.25 * (siblings.index(key) - (len(siblings) - 1) / 2)
        (xa, ya), (xb, yb) = pos[a], pos[b]
        mx, my = (xa + xb) / 2 - bend * (yb - ya), (ya + yb) / 2 + bend * (xb - xa)
        style = {"dci": ("tab:blue", 3.0), "edge": ("tab:gray", 1.5)}.get(link.kind, ("k", 1))
        ax.plot([xa, mx, xb], [ya, my, yb], color=style[0], linewidth=style[1], zorder=1)
        label = f"{link.name}\n{link.bw:g} Mbit, {link.delay_ms:g} ms" if link.bw else \
            f"{link.name}\n{link.delay_ms:g} ms"
        if link.firewall:
            label += f"\nfirewall {link.firewall_node}"
        ax.text(mx, my, label, fontsize=7, ha="center", va="center",
                bbox={"boxstyle": "round", "fc": "white", "ec": style[0], "alpha": 0.9}, zorder=3)
    for host in topo.hosts:
        x, y = hosts[host.name]
        sx, sy = pos[host.switch]
        ax.plot([sx, x], [sy, y], color="lightgray", linewidth=0.8, zorder=0)
        ax.scatter([x], [y], s=60, color="tab:green" if host.role == "server" else "tab:orange",
                   zorder=2)
        ax.text(x, y - 0.06 if host.role == "server" else y + 0.06,
                f"{host.name}\n{host.ip.ip}", fontsize=6, ha="center",
                va="top" if host.role == "server" else "bottom")
    for switch in topo.switches:
        x, y = pos[switch.name]
        ax.scatter([x], [y], s=900, marker="s" if switch.kind == "site" else "D",
                   color="tab:blue" if switch.kind == "site" else "tab:purple", zorder=2)
        ax.text(x, y, switch.name, color="white", fontsize=8, ha="center", va="center",
                fontweight="bold", zorder=4)
        ax.text(x + 0.08, y + 0.08, f"{switch.subnet}" + (f"\n{switch.location}" if switch.location else ""),
                fontsize=6, color="dimgray")
    services = ", ".join(f"{v.name} {v.vip}:{v.port}" for v in topo.services)
    ax.set_title(f"{topo.name}: {topo.description}" + (f"\nservices: {services}" if services else ""),
                 fontsize=9)
    ax.axis("off")
    ax.margins(0.15)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
