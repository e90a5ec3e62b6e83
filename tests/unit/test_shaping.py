import pytest

from lab.emulation.shaping import (class_stats, classes_on, delayline_argv, delayline_groups,
                                   delayline_spec, egress_cmds, element_cmds, in_flight_packets,
                                   marking_ruleset, netem_args, offload_cmds)
from lab.model.topology import Link, parse_topology


def element_cmd(intf, lnk):
    """The one swap of a link without QoS classes."""
    swap, = element_cmds(intf, lnk)
    return swap


def link(**kw):
    base = dict(name="dci-a", a="dc1", b="dc2", kind="dci", bw=100.0, delay_ms=2.0, queue=100)
    base.update(kw)
    return Link(**base)


def qdiscs(cmds):
    """The qdisc kinds the commands install, in order (root first)."""
    kinds = []
    for argv in cmds:
        if argv[:3] == ["tc", "qdisc", "add"]:
            kinds.append(argv[argv.index("handle") + 2])
    return kinds


def test_netem_method_puts_delay_under_htb_with_room_for_packets_in_flight():
    cmds = egress_cmds("dc1-eth3", link(), "netem")
    assert qdiscs(cmds) == ["htb", "netem"]
    rate = next(a for a in cmds if a[:3] == ["tc", "class", "add"])
    assert rate[rate.index("rate") + 1] == "100mbit"
    netem = cmds[-1]
    # 100 Mbit/s for 2 ms holds 17 full frames: the limit is the queue plus those
    assert netem[netem.index("limit") + 1] == str(100 + 17)
    assert netem[netem.index("delay") + 1] == "2ms"


def test_delayline_method_only_shapes_with_the_queue_as_bottleneck_buffer():
    cmds = egress_cmds("dc1-eth3", link(), "delayline")
    assert qdiscs(cmds) == ["htb", "pfifo"]
    assert cmds[-1][-2:] == ["limit", "100"]
    assert not any("netem" in argv for argv in cmds)


def test_unshaped_link_with_delay_gets_netem_at_the_root():
    cmds = egress_cmds("x", link(bw=None, delay_ms=1.0, loss=0.5, jitter_ms=0.2), "netem")
    assert qdiscs(cmds) == ["netem"]
    assert netem_args(link(bw=None, delay_ms=1.0, loss=0.5, jitter_ms=0.2)) == [
        "delay", "1ms", "0.2ms", "loss", "0.5%", "limit", "100"]


def test_unimpaired_unshaped_link_only_clears_the_root_qdisc():
    cmds = egress_cmds("x", link(bw=None, delay_ms=0.0), "netem")
    assert cmds == [["tc", "qdisc", "del", "dev", "x", "root"]]


def test_in_flight_packets_grows_with_rate_and_delay():
    assert in_flight_packets(link(bw=None)) == 0
    assert in_flight_packets(link(bw=50, delay_ms=5)) == 21
    assert in_flight_packets(link(bw=100, delay_ms=10)) > in_flight_packets(link(bw=100, delay_ms=2))


def test_delayline_argv_carries_the_link_parameters():
    spec = delayline_spec(link(jitter_ms=0.5, loss=1.0), "a0", "a1", 7)
    argv = delayline_argv([spec, delayline_spec(link(), "b0", "b1", 8, "/proc/9/ns/net")],
                          "/tmp/d", python="py")
    assert argv[:3] == ["py", "-m", "lab.agents.delayline"]
    assert argv[3:] == ["--link", f"{link().name}:a0:a1:2:0.5:1:{100 + 21}:7",
                        "--link", f"{link().name}:b0:b1:2:0:0:{100 + 17}:8:/proc/9/ns/net",
                        "--stats-dir", "/tmp/d"]


@pytest.mark.parametrize("count, sizes", [(0, []), (1, [1]), (4, [1, 1, 1, 1]), (8, [1] * 8),
                                          (9, [2] + [1] * 7), (152, [19] * 8)])
def test_links_get_their_own_delay_line_up_to_a_few_then_share_evenly(count, sizes):
    links = [f"l{i}" for i in range(count)]
    groups = delayline_groups(links)
    assert [len(g) for g in groups] == sizes
    assert sorted(sum(groups, [])) == sorted(links)            # every link once


def test_offload_is_turned_off_for_transmit():
    assert offload_cmds("h-eth0") == [["ethtool", "-K", "h-eth0", "tx", "off"]]


@pytest.mark.parametrize("shape", [dict(), dict(loss=100.0), dict(delay_ms=0.0),
                                   dict(bw=None, delay_ms=1.0), dict(bw=None, loss=100.0)],
                         ids=["bw+delay", "gray", "bw only", "delay only", "gray, no bw"])
def test_the_element_swap_is_the_build_s_last_command_done_in_place(shape):
    """A gray failure or a delay change swaps one qdisc in place: the same qdisc (parent,
    handle, arguments) that building the link added last."""
    lnk = link(**shape)
    swap = element_cmd("dc1-eth3", lnk)
    built = egress_cmds("dc1-eth3", lnk, "netem")[-1]
    assert swap[:3] == ["tc", "qdisc", "replace"] and built[:3] == ["tc", "qdisc", "add"]
    handle = built.index("handle")
    assert swap[3:] == built[3:handle] + built[handle + 2:]     # no handle: graft or change


def test_ungraying_an_unshaped_undelayed_link_clears_its_root():
    assert element_cmd("x", link(bw=None, delay_ms=0.0)) == ["tc", "qdisc", "del", "dev", "x",
                                                              "root"]
    gray = element_cmd("x", link(bw=None, delay_ms=0.0, loss=100.0))
    assert gray[:7] == ["tc", "qdisc", "replace", "dev", "x", "root", "netem"] and "100%" in gray


# ------------------------------------------------------------------------------ QoS

QOS_TOPO = """
sites:
  dc1: {subnet: 10.1.0.0/24}
  dc2: {subnet: 10.2.0.0/24}
edges:
  edge: {subnet: 10.100.0.0/24}
links:
  dci-a: {between: [dc1, dc2], bw: 100, delay: 2ms, queue: 100}
  edge-dc1: {between: [edge, dc1], bw: 100}
services:
  web: {vip: 10.200.0.10, port: 8080}
qos:
  control: {share: 5, priority: 0}
  replication: {rate: 30, priority: 1}
  client: {share: 25, priority: 2}
  bulk: {share: 10, priority: 3}
"""


def qos_topo(extra=""):
    return parse_topology(QOS_TOPO + extra)


@pytest.mark.parametrize("method", ["netem", "delayline"])
def test_qos_gives_each_class_its_guaranteed_rate_and_a_queue_of_its_own(method):
    topo = qos_topo()
    dci = topo.link("dci-a")
    cmds = egress_cmds("dc1-eth2", dci, method, topo.qos)
    classes = [a for a in cmds if a[:3] == ["tc", "class", "add"]]
    assert classes[0][classes[0].index("classid") + 1] == "1:1"        # the link itself
    got = {a[a.index("classid") + 1]: (a[a.index("rate") + 1], a[a.index("ceil") + 1],
                                       a[a.index("prio") + 1]) for a in classes[1:]}
    assert got == {"1:10": ("5000kbit", "100mbit", "0"), "1:11": ("30000kbit", "100mbit", "1"),
                   "1:12": ("25000kbit", "100mbit", "2"), "1:13": ("10000kbit", "100mbit", "3")}
    leaf = "netem" if method == "netem" else "pfifo"
    assert qdiscs(cmds) == ["htb"] + [leaf] * 4
    root = next(a for a in cmds if a[:3] == ["tc", "qdisc", "add"])
    assert root[-2:] == ["default", "13"]          # unmarked traffic: bulk
    parents = [a[a.index("parent") + 1] for a in cmds if a[:3] == ["tc", "qdisc", "add"]
               and "parent" in a]
    assert parents == ["1:10", "1:11", "1:12", "1:13"]


def test_qos_filters_send_each_dscp_and_ovs_bfd_and_arp_to_their_class():
    topo = qos_topo()
    cmds = egress_cmds("dc1-eth2", topo.link("dci-a"), "netem", topo.qos)
    filters = [a for a in cmds if a[:3] == ["tc", "filter", "add"]]
    dsfield = {a[a.index("dsfield") + 1]: a[-1] for a in filters if "dsfield" in a}
    # DSCP sits in the top six bits of the TOS byte: CS6 48 -> 0xc0, AF41 34 -> 0x88
    assert dsfield == {"0xc0": "1:10", "0x88": "1:11", "0x48": "1:12", "0x20": "1:13"}
    bfd = next(a for a in filters if "dport" in a)
    assert bfd[bfd.index("dport") + 1] == "3784" and bfd[-1] == "1:10"
    arp = next(a for a in filters if "arp" in a)
    assert arp[-1] == "1:10"


def test_qos_applies_only_to_dci_links_and_only_when_enabled():
    topo = qos_topo()
    edge = topo.link("edge-dc1")
    assert classes_on(edge, topo.qos) == []
    assert qdiscs(egress_cmds("dc1-eth1", edge, "netem", topo.qos)) == ["htb", "pfifo"]
    off = qos_topo("  enabled: false\n")
    assert classes_on(off.link("dci-a"), off.qos) == []
    assert egress_cmds("x", off.link("dci-a"), "netem", off.qos) == \
        egress_cmds("x", off.link("dci-a"), "netem")


def test_a_gray_failure_with_qos_swaps_every_class_leaf_in_place():
    import dataclasses
    topo = qos_topo()
    gray = dataclasses.replace(topo.link("dci-a"), loss=100.0)
    swaps = element_cmds("dc1-eth2", gray, topo.qos)
    assert [a[a.index("parent") + 1] for a in swaps] == ["1:10", "1:11", "1:12", "1:13"]
    assert all(a[:3] == ["tc", "qdisc", "replace"] and "100%" in a for a in swaps)
    built = [a for a in egress_cmds("dc1-eth2", gray, "netem", topo.qos)
             if a[:3] == ["tc", "qdisc", "add"] and "netem" in a]
    for swap, add in zip(swaps, built):
        handle = add.index("handle")
        assert swap[3:] == add[3:handle] + add[handle + 2:]


def test_hosts_mark_by_port_both_ways_with_their_class_dscp():
    topo = qos_topo()
    ruleset = marking_ruleset(topo.qos)
    assert "hook output priority mangle" in ruleset
    assert "tcp dport { 4444, 4567, 4568, 5432, 8008 } ip dscp set 34" in ruleset
    assert "tcp sport { 4444, 4567, 4568, 5432, 8008 } ip dscp set 34" in ruleset
    assert "tcp dport { 8080 } ip dscp set 18" in ruleset          # the service's port
    assert "tcp dport { 5201, 5301 } ip dscp set 8" in ruleset
    assert marking_ruleset(None) == ""


def test_class_stats_read_each_class_leaf_queue_and_count_a_missing_one_as_zero():
    topo = qos_topo()
    classes = classes_on(topo.link("dci-a"), topo.qos)
    text = ("qdisc htb 1: root refcnt 3 r2q 10 default 0x13 direct_packets_stat 0\n"
            " Sent 99999 bytes 900 pkt (dropped 7, overlimits 1 requeues 0) \n"
            " backlog 0b 0p requeues 0\n"
            "qdisc pfifo 10: parent 1:10 limit 100p\n"
            " Sent 1200 bytes 12 pkt (dropped 1, overlimits 0 requeues 0) \n"
            " backlog 0b 0p requeues 0\n"
            "qdisc netem 13: parent 1:13 limit 117 delay 2ms\n"
            " Sent 5 bytes 1 pkt (dropped 6, overlimits 0 requeues 0) \n")
    stats = class_stats(text, classes)
    assert stats["control"] == {"bytes": 1200, "packets": 12, "drops": 1}
    assert stats["replication"] == {"bytes": 0, "packets": 0, "drops": 0}
    assert stats["bulk"] == {"bytes": 5, "packets": 1, "drops": 6}
    assert set(stats) == {"control", "replication", "client", "bulk"}


def test_many_commands_run_as_one_script_with_ip_and_tc_batched(tmp_path):
    from lab import sh
    from lab.errors import LabError
    text = sh.script([["sysctl", "-q", "-w", "x=1"], ["ip", "route", "replace", "10.1.0.0/24",
                      "dev", "h1-eth0"], ["ip", "route", "replace", "10.2.0.0/24", "dev", "h1-eth0"],
                      ["tc", "qdisc", "del", "dev", "x", "root"]])
    assert text.count("ip -batch -") == 1 and "route replace 10.2.0.0/24 dev h1-eth0" in text
    assert "tc qdisc del dev x root </dev/null" in text        # a single command: as it is
    # really run: the first failure stops the script and is named, with its error
    marker = tmp_path / "ran"
    with pytest.raises(LabError, match=r"command failed: ip -batch \(2 commands.*Command failed -:2"):
        sh.run_all([["true"], ["ip", "link", "show", "lo"], ["ip", "link", "show", "nosuch0"],
                    ["touch", str(marker)]])
    assert not marker.exists()
    sh.run_all([["ip", "link", "show", "nosuch0"], ["touch", str(marker)]], check=False)
    assert marker.exists()                                     # control: without check, all run
    with pytest.raises(LabError, match="command failed: false"):
        sh.run_all([["false"]])
