"""The sites' stateful firewalls as data: nftables rulesets and the node's settings.

A firewall is a transparent bridge in its own namespace on a site's client-edge link
(``edge ... [dc1-fw] ... dc1``). Bridged IPv4 goes through the inet family's forward hook
(br_netfilter), so conntrack sees every session that crosses it. LLDP is forwarded (the
controller still discovers the link through it) and BFD passes statelessly, but only BFD as
Open vSwitch sends it (from 169.254.1.1 to 169.254.1.0, TTL 255, UDP from an ephemeral port to
3784) and only after the anti-spoofing rule.
"""

import dataclasses
from pathlib import Path

BRIDGE = "fw-br"
TABLE = "activelab_fw"
LLDP_FORWARD_MASK = "0x4000"        # bridge group_fwd_mask bit for 01:80:c2:00:00:0e
BFD_PORT = 3784                     # single-hop BFD (RFC 5881); OVS sends no multihop (4784)
BFD_SRC, BFD_DST = "169.254.1.1", "169.254.1.0"     # Open vSwitch's defaults (bfd_src_ip/dst_ip)


def protected_addresses(topo):
    """What the firewalls protect: every site subnet and every service VIP."""
    return [str(s.subnet) for s in topo.sites] + [f"{v.vip}/32" for v in topo.services]


def client_addresses(topo):
    return [str(s.subnet) for s in topo.switches if s.kind == "edge"]


OUTSIDE_MARK = "0x1"


def outside_intf(name, link):
    """The firewall node's interface toward the client edge (eth0 faces link end a)."""
    return f"{name}-eth0" if link.firewall == link.b else f"{name}-eth1"


def inside_intf(name, link):
    """The firewall node's interface toward its site: what passes the firewall leaves here."""
    return f"{name}-eth1" if link.firewall == link.b else f"{name}-eth0"


def ruleset(topo, outside, midstream=False, accept_all=False):
    """The nftables ruleset (text for `nft -f -`) of one site firewall.

    Args:
        outside: the node's interface toward the client edge. A bridge-family rule marks what
            enters there, so the inet rules know a packet's side (with br_netfilter, iifname
            is only the bridge): site addresses arriving from outside are spoofed.
        midstream: accept TCP sessions a firewall did not see start (loose pickup: any new
            TCP packet to an allowed port, not only a SYN). It keeps sessions alive through a
            failover without sync, and lets out-of-state packets through: the probe suite
            names them.
        accept_all: a firewall that lets everything through (counters only): the probe suite's
            positive control, in which every probe must arrive.
    """
    policy = topo.firewall
    syn_only = "" if midstream else "tcp flags & (syn | ack) == syn "
    lines = [
        f"table bridge {TABLE}_side {{",
        "  chain prerouting {",
        "    type filter hook prerouting priority -300; policy accept;",
        f"    iifname \"{outside}\" meta mark set {OUTSIDE_MARK}",
        "  }",
        "}",
        f"table inet {TABLE} {{",
        f"  set protected {{ type ipv4_addr; flags interval; elements = {{ "
        f"{', '.join(protected_addresses(topo))} }} }}",
        f"  set clients {{ type ipv4_addr; flags interval; elements = {{ "
        f"{', '.join(client_addresses(topo))} }} }}",
        "  counter allowed_new { }",
        "  counter denied { }",
        "  counter invalid { }",
        "  counter spoofed { }",
        "  chain forward {",
    ]
    if accept_all:           # still tracking connections, as a permit-any firewall does
        return "\n".join(lines + ["    type filter hook forward priority filter; policy accept;",
                                  "    ct state new counter name allowed_new accept",
                                  "    accept", "  }", "}", ""])
    lines += [
        "    type filter hook forward priority filter; policy drop;",
        f"    meta mark {OUTSIDE_MARK} ip saddr @protected counter name spoofed drop "
        "comment \"a site address arriving from the client side\"",
        f"    ip saddr {BFD_SRC} ip daddr {BFD_DST} ip ttl 255 udp sport 49152-65535 "
        f"udp dport {BFD_PORT} accept comment \"BFD between the switches, as Open vSwitch "
        "sends it\"",
        "    ct state established,related accept",
        "    ct state invalid counter name invalid drop comment \"no state for it: dropped\"",
        f"    meta mark != {OUTSIDE_MARK} ip saddr @protected ct state new counter name allowed_new "
        "accept comment \"the sites open connections out\"",
    ]
    inbound = f"    meta mark {OUTSIDE_MARK} ip saddr @clients ip daddr @protected"
    if policy.tcp:
        lines.append(f"{inbound} {syn_only}tcp dport {{ {', '.join(map(str, policy.tcp))} }} "
                     "ct state new counter name allowed_new accept")
    if policy.udp:
        lines.append(f"{inbound} udp dport {{ {', '.join(map(str, policy.udp))} }} "
                     "counter name allowed_new accept")
    if policy.icmp:
        lines.append(f"{inbound} icmp type echo-request ct state new counter name allowed_new "
                     "accept")
    lines += ["    counter name denied drop comment \"not in the policy\"", "  }", "}", ""]
    return "\n".join(lines)


def node_setup_cmds(intf_a, intf_b, strict=True):
    """Commands (run inside the firewall's namespace) that make it a firewalling bridge.

    strict: conntrack does not pick up TCP sessions mid-stream (nf_conntrack_tcp_loose=0), so a
    firewall that did not see a session's start drops it, as a real stateful firewall does."""
    return [
        ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"],
        ["nft", "flush", "ruleset"],
        ["ip", "link", "add", BRIDGE, "type", "bridge", "group_fwd_mask", LLDP_FORWARD_MASK],
        ["ip", "link", "set", intf_a, "master", BRIDGE],
        ["ip", "link", "set", intf_b, "master", BRIDGE],
        # a bump in the wire: it forwards every frame to its other port and never learns MAC
        # addresses (the anycast gateway's MAC is seen on both sides of it)
        ["ip", "link", "set", intf_a, "type", "bridge_slave", "learning", "off"],
        ["ip", "link", "set", intf_b, "type", "bridge_slave", "learning", "off"],
        ["ip", "link", "set", intf_a, "up"],
        ["ip", "link", "set", intf_b, "up"],
        ["ip", "link", "set", BRIDGE, "up"],
        ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"],
        ["sysctl", "-q", "-w", f"net.netfilter.nf_conntrack_tcp_loose={0 if strict else 1}"],
    ]


def expected_settings(strict=True):
    """The kernel settings a firewall node depends on, as `sysctl -n` prints them: read back
    after setting them, since a setting that did not take turns a stateful firewall into one
    that picks up sessions mid-stream without saying so."""
    return {"net.bridge.bridge-nf-call-iptables": "1",
            "net.netfilter.nf_conntrack_tcp_loose": "0" if strict else "1"}


def settings_mismatch(expected, actual):
    """One line per setting that differs, or [] (actual: {key: value as read})."""
    return [f"{key} is {actual.get(key, 'missing')}, set to {value}"
            for key, value in expected.items() if actual.get(key) != value]


def parse_counters(nft_json):
    """{counter name: packets} from `nft -j list counters`."""
    import json
    out = {}
    for item in json.loads(nft_json).get("nftables", []):
        counter = item.get("counter")
        if counter:
            out[counter["name"]] = counter["packets"]
    return out


def sync_link(topo):
    """The conntrackd link between the two firewalls (a Link of kind 'sync', or None), carried
    as over the primary DCI: the lowest DCI delay, so the sync lag is what a real DCI gives."""
    if len(topo.firewalls) != 2:
        return None
    (fw1, _), (fw2, _) = topo.firewalls
    delay = min((l.delay_ms for l in topo.dci_links), default=0.0)
    return dataclasses.replace(topo.links[0], name="fw-sync", a=fw1, b=fw2, kind="sync",
                               bw=None, delay_ms=delay, jitter_ms=0.0, loss=0.0, firewall=None)


SYNC_NET = "169.254.77.{}"           # the firewalls' sync link (dedicated veth), /30
SYNC_PORT = 3780


def sync_intf(name):
    return f"{name}-sync"


UNIX_PATH_MAX = 107                  # bytes of a unix socket's path (sun_path, less the NUL)


def conntrackd_ctl(runtime_dir, name):
    """conntrackd's control socket: in the run's scratch space (a local disk, a short path),
    never the run folder: a unix socket cannot live on every file system (9p, NFS, some FUSE)
    and its path must fit sun_path."""
    return Path(runtime_dir) / f"conntrackd-{name}.ctl"


def conntrackd_conf(name, index, peer_index, log_dir, runtime_dir):
    """conntrackd.conf for firewall `name`: FT-FW over the sync link, states written straight
    into the kernel table (DisableExternalCache), so either firewall can carry any session.
    Its log goes to log_dir (the run folder), its lock file and control socket to
    runtime_dir (conntrackd_ctl)."""
    own, peer = SYNC_NET.format(index), SYNC_NET.format(peer_index)
    return f"""Sync {{
    Mode FTFW {{
        DisableExternalCache On
        ResendQueueSize 131072
    }}
    UDP {{
        IPv4_address {own}
        IPv4_Destination_Address {peer}
        Port {SYNC_PORT}
        Interface {sync_intf(name)}
        SndSocketBuffer 1249280
        RcvSocketBuffer 1249280
        Checksum on
    }}
}}
General {{
    HashSize 8192
    HashLimit 65536
    LogFile {log_dir}/conntrackd-{name}.log
    Syslog off
    LockFile {runtime_dir}/conntrackd-{name}.lock
    UNIX {{
        Path {conntrackd_ctl(runtime_dir, name)}
    }}
    NetlinkBufferSize 2097152
    NetlinkBufferSizeMaxGrowth 8388608
    Filter From Userspace {{
        Protocol Accept {{
            TCP
            UDP
            ICMP
        }}
        Address Ignore {{
            IPv4_address 127.0.0.1
            IPv4_address {own}
            IPv4_address {peer}
        }}
    }}
}}
"""
