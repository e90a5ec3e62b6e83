"""A topology drawn: a PNG (sites, client edges, hosts, every link with bw and delay), and the
same graph as Graphviz dot and Mermaid text for slides and Markdown.

    python lab/run.py draw dual-active            # dual-active.png, .dot, .mmd here
    python lab/run.py draw my-sites.yaml --out pics/my-sites.png

Outputs are named after the file (my-sites.yaml -> my-sites.*), never after the `name:` inside
it (a copied topology keeps its original's name). The layout is fixed, not random: site
switches on a circle, client edges outside the sites they attach to, each site's hosts fanned
outward; then labels that still overlap are pushed apart (label_overlaps() is what the tests
check on every shipped topology).
"""

import math
from pathlib import Path

from lab.analysis.mpl import plt

LINK_STYLE = {"dci": ("tab:blue", 3.0), "edge": ("tab:gray", 1.5)}


def outputs(source, out=None):
    """{png, dot, mmd} paths for a topology given as `source` (name or file): named after the
    file's stem, here or in the folder `out`; `out` a .png path names them itself."""
    stem = Path(Path(str(source)).stem)
    if out is None:
        base = stem
    elif Path(out).suffix == "" or Path(out).is_dir():       # a folder: named after the file
        base = Path(out) / stem
    else:
        base = Path(out).with_suffix("")
    return {"png": base.with_suffix(".png"), "dot": base.with_suffix(".dot"),
            "mmd": base.with_suffix(".mmd")}


def draw_all(topo, source, out=None):
    """Write the PNG, dot and Mermaid files of `topo`; returns their paths."""
    paths = outputs(source, out)
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    draw(topo, paths["png"])
    paths["dot"].write_text(to_dot(topo))
    paths["mmd"].write_text(to_mermaid(topo))
    return list(paths.values())


def link_label(link):
    label = f"{link.bw:g} Mbit, {link.delay_ms:g} ms" if link.bw else f"{link.delay_ms:g} ms"
    if link.firewall:
        label += f", firewall {link.firewall_node}"
    return label


def to_dot(topo):
    """Graphviz dot (undirected): switches as boxes, hosts as ellipses, links labelled."""
    q = lambda s: '"' + str(s).replace('"', r'\"') + '"'   # noqa: E731
    lines = [f"graph {q(topo.name)} {{", "  layout=neato; overlap=false; splines=true;",
             f"  label={q(topo.description)}; fontsize=10;",
             "  node [fontsize=10]; edge [fontsize=8];"]
    for s in topo.switches:
        shape = "box" if s.kind == "site" else "diamond"
        color = "steelblue" if s.kind == "site" else "mediumpurple"
        lines.append(f"  {q(s.name)} [shape={shape}, style=filled, fillcolor={color}, "
                     f"fontcolor=white, label={q(s.name + chr(10) + str(s.subnet))}];")
    for h in topo.hosts:
        color = "palegreen" if h.role == "server" else "orange"
        lines.append(f"  {q(h.name)} [shape=ellipse, style=filled, fillcolor={color}, "
                     f"label={q(h.name + chr(10) + str(h.ip.ip))}];")
        lines.append(f"  {q(h.name)} -- {q(h.switch)} [color=gray];")
    for link in topo.links:
        color, width = LINK_STYLE.get(link.kind, ("black", 1.0))
        lines.append(f"  {q(link.a)} -- {q(link.b)} [label={q(link.name + chr(10) + link_label(link))}, "
                     f"color={q(color.replace('tab:', ''))}, penwidth={width:g}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(topo):
    """Mermaid flowchart text (GitHub and most Markdown renderers draw it)."""
    ident = lambda s: "n_" + str(s).replace("-", "_")   # noqa: E731
    lines = ["flowchart TB", f"  %% {topo.name}: {topo.description}"]
    for s in topo.switches:
        shape = ('["', '"]') if s.kind == "site" else ('{"', '"}')
        lines.append(f"  {ident(s.name)}{shape[0]}{s.name}<br/>{s.subnet}{shape[1]}")
    for h in topo.hosts:
        lines.append(f"  {ident(h.name)}([\"{h.name}<br/>{h.ip.ip}\"])")
        lines.append(f"  {ident(h.name)} --- {ident(h.switch)}")
    for link in topo.links:
        arrow = "===" if link.kind == "dci" else "---"
        lines.append(f"  {ident(link.a)} {arrow}|\"{link.name}: {link_label(link)}\"| {ident(link.b)}")
    return "\n".join(lines) + "\n"


def layout(topo):
    """{switch or host name: (x, y)}: sites on a circle (a row of two), client edges outside
    the sites they link to, each switch's hosts fanned outward from the centre."""
    sites = [s.name for s in topo.switches if s.kind == "site"]
    edges = [s.name for s in topo.switches if s.kind != "site"]
    pos = {}
    n = len(sites)
    radius = 1.0 if n > 2 else 0.9
    for i, name in enumerate(sites):
        if n == 1:
            pos[name] = (0.0, 0.0)
        elif n == 2:
            pos[name] = (-radius + 2 * radius * i, 0.0)
        else:
            angle = math.pi / 2 + math.pi / n - 2 * math.pi * i / n
            pos[name] = (radius * math.cos(angle), -radius * math.sin(angle))
    for j, name in enumerate(edges):
        peers = [l.b if l.a == name else l.a for l in topo.links if name in (l.a, l.b)]
        peers = [p for p in peers if p in pos] or sites
        cx = sum(pos[p][0] for p in peers) / len(peers)
        cy = sum(pos[p][1] for p in peers) / len(peers)
        norm = math.hypot(cx, cy)
        if norm < 1e-6:                      # between opposite sites: above the picture
            ux, uy = (0.0, 1.0)
        else:
            ux, uy = cx / norm, cy / norm
        dist = max(norm, 0.6) + 0.9 + 0.35 * j
        pos[name] = (ux * dist, uy * dist if norm >= 1e-6 else 1.1 + 0.35 * j)
    for switch in topo.switches:
        members = topo.hosts_at(switch.name)
        x, y = pos[switch.name]
        norm = math.hypot(x, y)
        out = math.atan2(y, x) if norm > 1e-6 else -math.pi / 2
        if switch.kind == "site" and n == 2:
            out = -math.pi / 2                 # two sites in a row: hosts below each
        spread = min(math.pi / 2.2, 0.42 * max(len(members) - 1, 1))
        turn = -1 if math.sin(out) > 0.3 else 1        # left to right in reading order
        for i, host in enumerate(members):
            a = out + turn * (spread * (i / (len(members) - 1) - 0.5) if len(members) > 1 else 0.0)
            pos[host.name] = (x + 0.62 * math.cos(a), y + 0.62 * math.sin(a))
    return pos


def draw(topo, out):
    """Write a PNG of `topo` to `out`; returns out."""
    fig, _ = figure(topo)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def figure(topo):
    """The drawing as a matplotlib figure, labels already pushed apart; (fig, labels)."""
    pos = layout(topo)
    fig, ax = plt.subplots(figsize=(11, 8))
    labels = []
    pairs = {}
    for link in topo.links:
        pairs.setdefault(frozenset((link.a, link.b)), []).append(link.name)
    for link in topo.links:
        siblings = pairs[frozenset((link.a, link.b))]
        bend = 0.3 * (siblings.index(link.name) - (len(siblings) - 1) / 2)
        (xa, ya), (xb, yb) = pos[link.a], pos[link.b]
        mx, my = (xa + xb) / 2 - bend * (yb - ya), (ya + yb) / 2 + bend * (xb - xa)
        color, width = LINK_STYLE.get(link.kind, ("k", 1.0))
        ax.plot([xa, mx, xb], [ya, my, yb], color=color, linewidth=width, zorder=1)
        labels.append(ax.text(mx, my, f"{link.name}\n{link_label(link)}", fontsize=7,
                              ha="center", va="center", zorder=3,
                              bbox={"boxstyle": "round", "fc": "white", "ec": color,
                                    "alpha": 0.9}))
    for host in topo.hosts:
        x, y = pos[host.name]
        sx, sy = pos[host.switch]
        ax.plot([sx, x], [sy, y], color="lightgray", linewidth=0.8, zorder=0)
        ax.scatter([x], [y], s=60, zorder=2,
                   color="tab:green" if host.role == "server" else "tab:orange")
        below = y <= sy
        labels.append(ax.text(x, y + (-0.07 if below else 0.07), f"{host.name}\n{host.ip.ip}",
                              fontsize=6.5, ha="center", va="top" if below else "bottom",
                              zorder=3))
    for switch in topo.switches:
        x, y = pos[switch.name]
        ax.scatter([x], [y], s=1000, marker="s" if switch.kind == "site" else "D", zorder=2,
                   color="tab:blue" if switch.kind == "site" else "tab:purple")
        ax.text(x, y, switch.name, color="white", fontsize=8, ha="center", va="center",
                fontweight="bold", zorder=4)
        labels.append(ax.text(x + 0.1, y + 0.1, f"{switch.subnet}" + (
            f"\n{switch.location}" if switch.location else ""), fontsize=6.5, color="dimgray",
            zorder=3))
    services = ", ".join(f"{v.name} {v.vip}:{v.port}" for v in topo.services)
    ax.set_title(f"{topo.name}: {topo.description}" + (f"\nservices: {services}" if services else ""),
                 fontsize=9)
    ax.axis("off")
    ax.set_aspect("equal", adjustable="datalim")
    ax.margins(0.12)
    fig.tight_layout()
    separate(fig, ax, labels, obstacles=[(*pos[s.name], 24) for s in topo.switches]
             + [(*pos[h.name], 6) for h in topo.hosts])
    return fig, labels


def boxes(fig, labels):
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer).expanded(1.04, 1.08) for t in labels]


def label_overlaps(fig, labels):
    """Pairs of label texts whose boxes overlap (on the figure as drawn)."""
    b = boxes(fig, labels)
    return [(labels[i].get_text(), labels[j].get_text())
            for i in range(len(b)) for j in range(i + 1, len(b)) if b[i].overlaps(b[j])]


def separate(fig, ax, labels, obstacles=(), rounds=200):
    """Push overlapping labels apart (in screen space, a few pixels a round) until none
    overlap or `rounds` ran out; labels are also pushed off the markers in `obstacles`
    ((x, y, radius in pixels): switches and hosts)."""
    from matplotlib.transforms import Bbox
    to_data = ax.transData.inverted()
    marks = []
    for x, y, r in obstacles:
        px, py = ax.transData.transform((x, y))
        marks.append((px, py, Bbox.from_extents(px - r, py - r, px + r, py + r)))
    for _ in range(rounds):
        b = boxes(fig, labels)
        moved = False
        for px, py, mark in marks:
            for i, text in enumerate(labels):
                if not b[i].overlaps(mark):
                    continue
                dx = (b[i].x0 + b[i].x1) / 2 - px
                dy = (b[i].y0 + b[i].y1) / 2 - py
                norm = math.hypot(dx, dy) or 1.0
                x, y = ax.transData.transform(text.get_position())
                text.set_position(to_data.transform((x + 3 * dx / norm, y + 3 * dy / norm)))
                moved = True
        for i in range(len(b)):
            for j in range(i + 1, len(b)):
                if not b[i].overlaps(b[j]):
                    continue
                dx = (b[i].x0 + b[i].x1 - b[j].x0 - b[j].x1) / 2
                dy = (b[i].y0 + b[i].y1 - b[j].y0 - b[j].y1) / 2
                if abs(dx) < 1e-3 and abs(dy) < 1e-3:
                    dx, dy = 0.0, 1.0
                norm = math.hypot(dx, dy)
                step = 4.0
                for text, sign in ((labels[i], 1), (labels[j], -1)):
                    x, y = ax.transData.transform(text.get_position())
                    text.set_position(to_data.transform(
                        (x + sign * step * dx / norm, y + sign * step * dy / norm)))
                moved = True
        if not moved:
            return


# ------------------------------------------------------- a run's topology (from params.json)

def topology_from_params(params):
    """A drawable topology from a run's params.json (its `topology`, as Topology.to_dict
    wrote it): the names, kinds, subnets, hosts and links draw() needs."""
    import ipaddress
    from types import SimpleNamespace as NS
    doc = params["topology"]
    switches = tuple(NS(name=s["name"], kind=s["kind"], subnet=s["subnet"],
                        location=s.get("location")) for s in doc["switches"])
    hosts = tuple(NS(name=h["name"], role=h["role"], switch=h["switch"],
                     ip=ipaddress.ip_interface(h["ip"])) for h in doc["hosts"])
    links = tuple(NS(name=l["name"], a=l["between"][0], b=l["between"][1], kind=l["kind"],
                     bw=l.get("bw_mbit"), delay_ms=l.get("delay_ms") or 0.0, firewall=None,
                     firewall_node=None) for l in doc["links"])
    services = tuple(NS(name=v["name"], vip=v["vip"], port=v["port"])
                     for v in doc.get("services") or [])
    topo = NS(name=doc["name"], description=doc.get("description", ""), switches=switches,
              hosts=hosts, links=links, services=services)
    topo.hosts_at = lambda name: tuple(h for h in hosts if h.switch == name)
    return topo


def draw_params_topology(params, out):
    """topology.png of a run folder, from its params.json."""
    return draw(topology_from_params(params), out)


def fault_panels(params, faults, out):
    """topology-faults.png: the topology once per fault, the link or site it hit marked (cut
    red dashed, gray grey dotted, a powered-off or isolated site dark with its links dashed;
    undoing faults in green). faults: [(label, action, target)]. Returns out, or None when
    there is no fault to show."""
    if not faults:
        return None
    topo = topology_from_params(params)
    pos = layout(topo)
    cols = min(3, len(faults))
    rows = (len(faults) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax, (label, action, target) in zip(axes.flat, faults):
        undo = action in ("heal", "ungray", "power-on", "rejoin", "server-up",
                          "controller-start")
        site_hit = target if action in ("power-off", "power-on", "isolate", "rejoin") else None
        for link in topo.links:
            (xa, ya), (xb, yb) = pos[link.a], pos[link.b]
            hit = link.name == target or (site_hit and site_hit in (link.a, link.b)
                                          and not (action in ("isolate", "rejoin")
                                                   and link.kind != "dci"))
            colour, style, width = "lightgray", "-", 1.5
            if hit:
                colour = "tab:green" if undo else {"gray": "dimgray"}.get(action, "tab:red")
                style = ":" if action in ("gray", "ungray") else "--" if not undo else "-"
                width = 3
            ax.plot([xa, xb], [ya, yb], color=colour, linestyle=style, linewidth=width)
        for switch in topo.switches:
            x, y = pos[switch.name]
            dark = site_hit == switch.name and action == "power-off"
            ax.scatter([x], [y], s=260, marker="s" if switch.kind == "site" else "D",
                       color="black" if dark else "tab:blue" if switch.kind == "site"
                       else "tab:purple", zorder=3)
            ax.text(x, y - 0.22, switch.name, ha="center", va="top", fontsize=7)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
        ax.set_aspect("equal", adjustable="datalim")
        ax.margins(0.25)
    for ax in list(axes.flat)[len(faults):]:
        ax.axis("off")
    fig.suptitle(f"{topo.name}: what each fault hit", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
