"""Link shaping as data: the tc, ethtool and delay-line command lines for a topology link.

Every link is shaped on the egress of both switch-side interfaces, so each direction carries
`bw` (HTB) and `delay`/`jitter`/`loss` (netem where the kernel has it, else the userspace delay
line, see lab/agents/delayline.py). `queue` is the bottleneck buffer in packets in both methods: with
netem the limit is raised by the packets in flight so the delay itself never drops.
"""

import math
import re

from lab.agents import delayline

MTU_BITS = 1514 * 8


def in_flight_packets(link):
    """Full-size packets the delay holds at line rate (0 when unshaped or undelayed)."""
    if not link.bw:
        return 0
    delay_s = (link.delay_ms + link.jitter_ms) / 1000.0
    return math.ceil(link.bw * 1e6 * delay_s / MTU_BITS)


def netem_args(link):
    """netem's arguments for a link's delay, jitter and loss, with a limit that fits the queue."""
    args = ["delay", f"{link.delay_ms:g}ms"]
    if link.jitter_ms:
        args += [f"{link.jitter_ms:g}ms"]
    if link.loss:
        args += ["loss", f"{link.loss:g}%"]
    return args + ["limit", str(link.queue + in_flight_packets(link))]


def classes_on(link, qos):
    """The QoS classes shaping `link`'s egress, as (class, HTB minor, rate Mbit/s), in the
    policy's order; [] when the link has none (not a DCI link, no bw, QoS off or absent)."""
    if qos is None or not qos.enabled or link.kind != "dci" or not link.bw:
        return []
    return [(c, 0x10 + i, c.rate_on(link.bw)) for i, c in enumerate(qos.classes)]


def leaves(link, qos):
    """The HTB classes under which the link's queue/delay element sits: ['1:1'] without QoS,
    one per QoS class with it."""
    classes = classes_on(link, qos)
    return [f"1:{minor:x}" for _, minor, _ in classes] if classes else ["1:1"]


def egress_cmds(intf, link, method, qos=None):
    """tc commands shaping one switch-side interface of `link`.

    Args:
        intf: interface name (the egress being shaped).
        link: lab.model.topology.Link.
        method: 'netem' (delay in this qdisc) or 'delayline' (delay elsewhere; shape only).
        qos: the topology's QosPolicy (None: one class). On a DCI link with QoS enabled, the
            link's HTB class 1:1 gets a child per QoS class (its guaranteed rate, ceil the
            whole link, its priority, a queue and delay element of its own), and u32 filters
            send each DSCP to its class, OVS's BFD (UDP 3784) and ARP to control, the rest
            to the default class.
    Returns:
        A list of argv lists, to run in order.
    """
    delay_here = method == "netem" and link.impaired
    cmds = [["tc", "qdisc", "del", "dev", intf, "root"]]        # may fail: nothing there yet
    classes = classes_on(link, qos)
    if link.bw:
        rate = f"{link.bw:g}mbit"
        default = next((minor for c, minor, _ in classes if c.name == qos.default), 1)
        cmds += [
            ["tc", "qdisc", "add", "dev", intf, "root", "handle", "1:", "htb", "default",
             f"{default:x}"],
            ["tc", "class", "add", "dev", intf, "parent", "1:", "classid", "1:1", "htb",
             "rate", rate, "ceil", rate, "quantum", "1514"],
        ]
        for c, minor, guaranteed in classes:
            cmds.append(["tc", "class", "add", "dev", intf, "parent", "1:1", "classid",
                         f"1:{minor:x}", "htb", "rate", f"{guaranteed * 1000:.0f}kbit", "ceil",
                         rate, "prio", str(c.priority), "quantum", "1514"])
        for n, parent in enumerate(leaves(link, qos)):
            handle = f"{0x10 + n:x}:"
            if delay_here:
                cmds.append(["tc", "qdisc", "add", "dev", intf, "parent", parent, "handle",
                             handle, "netem"] + netem_args(link))
            else:
                cmds.append(["tc", "qdisc", "add", "dev", intf, "parent", parent, "handle",
                             handle, "pfifo", "limit", str(link.queue)])
        cmds += filter_cmds(intf, classes, qos)
    elif delay_here:
        cmds.append(["tc", "qdisc", "add", "dev", intf, "root", "handle", "10:", "netem"]
                    + netem_args(link))
    return cmds


def filter_cmds(intf, classes, qos):
    """u32 filters on the root HTB: each class's DSCP (the top six bits of the TOS byte), then
    BFD (UDP 3784, sent by OVS itself) and ARP to the control class."""
    cmds = []
    for c, minor, _ in classes:
        cmds.append(["tc", "filter", "add", "dev", intf, "parent", "1:", "protocol", "ip",
                     "prio", "1", "u32", "match", "ip", "dsfield", f"0x{c.dscp << 2:02x}", "0xfc",
                     "flowid", f"1:{minor:x}"])
    control = next((minor for c, minor, _ in classes if c.name == "control"), None)
    if control is not None:
        cmds.append(["tc", "filter", "add", "dev", intf, "parent", "1:", "protocol", "ip",
                     "prio", "2", "u32", "match", "ip", "protocol", "17", "0xff", "match", "ip",
                     "dport", "3784", "0xffff", "flowid", f"1:{control:x}"])
        cmds.append(["tc", "filter", "add", "dev", intf, "parent", "1:", "protocol", "arp",
                     "prio", "3", "u32", "match", "u32", "0", "0", "flowid", f"1:{control:x}"])
    return cmds


def element_cmds(intf, link, qos=None):
    """The tc commands that swap, in place and at once, the delay/loss element egress_cmds
    set up on `intf` for what `link` now says (its delay, jitter, loss: a gray failure is
    loss 100 %): `tc qdisc replace` of each HTB leaf (or the root), the HTB untouched.
    No handle on purpose: with none the kernel changes a leaf of the same kind in place and
    grafts a new one of another kind (pfifo <-> netem) in one step (sch_api.c,
    tc_modify_qdisc); with the leaf's handle it refuses a kind change. Rebuilding the whole
    tree instead (delete, then add) left the port unshaped meanwhile and, on an emulated CPU,
    took seconds (a gray failure took 17 s to apply). Netem method only (the delay line
    changes by signal)."""
    parents = [["parent", leaf] for leaf in leaves(link, qos)] if link.bw else [["root"]]
    if link.impaired:
        return [["tc", "qdisc", "replace", "dev", intf, *parent, "netem"] + netem_args(link)
                for parent in parents]
    if link.bw:
        return [["tc", "qdisc", "replace", "dev", intf, *parent, "pfifo", "limit",
                 str(link.queue)] for parent in parents]
    return [["tc", "qdisc", "del", "dev", intf, "root"]]


LEAF_RE = re.compile(r"^qdisc \S+ \S+ parent (\S+) .*?\n\s*Sent (\d+) bytes (\d+) pkt "
                     r"\(dropped (\d+)", re.MULTILINE)


def class_stats(tc_output, classes):
    """Per QoS class, {"bytes", "packets", "drops"} of its leaf queue, from `tc -s qdisc show
    dev X`'s output (the leaf counts what its queue dropped; the HTB class's own 'dropped'
    does not); a class tc did not list counts zero."""
    by_parent = {}
    for parent, sent, packets, drops in LEAF_RE.findall(tc_output or ""):
        by_parent[parent] = {"bytes": int(sent), "packets": int(packets), "drops": int(drops)}
    zero = {"bytes": 0, "packets": 0, "drops": 0}
    return {c.name: by_parent.get(f"1:{minor:x}", dict(zero)) for c, minor, _ in classes}


def marking_ruleset(qos):
    """nftables ruleset (text for `nft -f -`) that marks a host's own traffic with its QoS
    class's DSCP, by port in either direction (a reply carries its request's class); '' when
    there is nothing to mark. Loaded into every host: the source marks, the DCI classifies."""
    if qos is None:
        return ""
    rules = []
    for c in qos.classes:
        for proto, ports in (("tcp", c.tcp), ("udp", c.udp)):
            if ports:
                group = "{ " + ", ".join(map(str, ports)) + " }"
                for side in ("dport", "sport"):
                    rules.append(f"    {proto} {side} {group} ip dscp set {c.dscp}")
    if not rules:
        return ""
    return ("table ip activelab_qos {\n  chain dscp_out {\n"
            "    type filter hook output priority mangle; policy accept;\n"
            + "\n".join(rules) + "\n  }\n}\n")


def offload_cmds(intf):
    """Turn off transmit checksum offload (and so TSO): the userspace datapath forwards the
    frame as the kernel left it, so a deferred checksum would reach the receiver unfinished."""
    return [["ethtool", "-K", intf, "tx", "off"]]


LINE_PROCESSES_MAX = 8       # delay-line processes at most: beyond, links share them


def delayline_groups(links):
    """Links (with their delay-line node) divided among delay-line processes: one each while
    there are at most LINE_PROCESSES_MAX (the links run in parallel, as before), else
    LINE_PROCESSES_MAX even shares in link order (a 16-site mesh has 152 links; a process each
    would cost ~3 GB of memory)."""
    links = list(links)
    count = min(len(links), LINE_PROCESSES_MAX)
    return [links[i::count] for i in range(count)] if count else []


def delayline_spec(link, intf_a, intf_b, seed, netns=None):
    """One link's --link value for the userspace delay line."""
    return delayline.link_spec(link.name, intf_a, intf_b, link.delay_ms, link.jitter_ms,
                               link.loss, link.queue + in_flight_packets(link), seed, netns)


def delayline_argv(specs, stats_dir, python=None):
    """The command line of one delay-line process serving `specs` (delayline_spec values)."""
    return delayline.line_argv(specs, stats_dir, python=python)


def compensated_delay(delay_ms, compensation_ms):
    """The delay to configure so the path (whose own one-way cost is `compensation_ms`) adds up
    to `delay_ms`: never below zero (a link faster than the emulator's floor stays at it)."""
    return max(0.0, delay_ms - compensation_ms)
