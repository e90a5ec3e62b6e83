import pytest

from lab.emulation.shaping import (delayline_argv, egress_cmds, element_cmd, in_flight_packets,
                                   netem_args, offload_cmds)
from lab.model.topology import Link


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
    argv = delayline_argv(link(jitter_ms=0.5, loss=1.0), "a0", "a1", 7, "/tmp/s.json", python="py")
    assert argv[:3] == ["py", "-m", "lab.agents.delayline"]
    opts = dict(zip(argv[3::2], argv[4::2]))
    assert opts == {"--a": "a0", "--b": "a1", "--delay-ms": "2", "--jitter-ms": "0.5",
                    "--loss": "1", "--limit": str(100 + 21), "--seed": "7",
                    "--stats": "/tmp/s.json"}


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
