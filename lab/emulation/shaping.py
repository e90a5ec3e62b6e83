"""Link shaping as data: the tc, ethtool and delay-line command lines for a topology link.

Every link is shaped on the egress of both switch-side interfaces, so each direction carries
`bw` (HTB) and `delay`/`jitter`/`loss` (netem where the kernel has it, else the userspace delay
line, see lab/agents/delayline.py). `queue` is the bottleneck buffer in packets in both methods: with
netem the limit is raised by the packets in flight so the delay itself never drops.
"""

import math

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


def egress_cmds(intf, link, method):
    """tc commands shaping one switch-side interface of `link`.

    Args:
        intf: interface name (the egress being shaped).
        link: lab.model.topology.Link.
        method: 'netem' (delay in this qdisc) or 'delayline' (delay elsewhere; shape only).
    Returns:
        A list of argv lists, to run in order.
    """
    delay_here = method == "netem" and link.impaired
    cmds = [["tc", "qdisc", "del", "dev", intf, "root"]]        # may fail: nothing there yet
    if link.bw:
        rate = f"{link.bw:g}mbit"
        cmds += [
            ["tc", "qdisc", "add", "dev", intf, "root", "handle", "1:", "htb", "default", "1"],
            ["tc", "class", "add", "dev", intf, "parent", "1:", "classid", "1:1", "htb",
             "rate", rate, "ceil", rate, "quantum", "1514"],
        ]
        if delay_here:
            cmds.append(["tc", "qdisc", "add", "dev", intf, "parent", "1:1", "handle", "10:",
                         "netem"] + netem_args(link))
        else:
            cmds.append(["tc", "qdisc", "add", "dev", intf, "parent", "1:1", "handle", "10:",
                         "pfifo", "limit", str(link.queue)])
    elif delay_here:
        cmds.append(["tc", "qdisc", "add", "dev", intf, "root", "handle", "10:", "netem"]
                    + netem_args(link))
    return cmds


def element_cmd(intf, link):
    """One tc command that swaps, in place and at once, the delay/loss element egress_cmds
    set up on `intf` for what `link` now says (its delay, jitter, loss: a gray failure is
    loss 100 %): `tc qdisc replace` of the HTB class's leaf (or the root), the HTB untouched.
    No handle on purpose: with none the kernel changes a leaf of the same kind in place and
    grafts a new one of another kind (pfifo <-> netem) in one step (sch_api.c,
    tc_modify_qdisc); with the leaf's handle it refuses a kind change. Rebuilding the whole
    tree instead (delete, then add) left the port unshaped meanwhile and, on an emulated CPU,
    took seconds (a gray failure took 17 s to apply). Netem method only (the delay line
    changes by signal)."""
    parent = ["parent", "1:1"] if link.bw else ["root"]
    if link.impaired:
        return ["tc", "qdisc", "replace", "dev", intf, *parent, "netem"] + netem_args(link)
    if link.bw:
        return ["tc", "qdisc", "replace", "dev", intf, *parent, "pfifo", "limit",
                str(link.queue)]
    return ["tc", "qdisc", "del", "dev", intf, "root"]


def offload_cmds(intf):
    """Turn off transmit checksum offload (and so TSO): the userspace datapath forwards the
    frame as the kernel left it, so a deferred checksum would reach the receiver unfinished."""
    return [["ethtool", "-K", intf, "tx", "off"]]


def delayline_argv(link, intf_a, intf_b, seed, stats_path, control_path=None, python=None):
    """The userspace delay line's command line for `link` between two interfaces."""
    return delayline.line_argv(intf_a, intf_b, link.delay_ms, link.jitter_ms, link.loss,
                               link.queue + in_flight_packets(link), seed, stats_path,
                               control_path, python=python)


def compensated_delay(delay_ms, compensation_ms):
    """The delay to configure so the path (whose own one-way cost is `compensation_ms`) adds up
    to `delay_ms`: never below zero (a link faster than the emulator's floor stays at it)."""
    return max(0.0, delay_ms - compensation_ms)
