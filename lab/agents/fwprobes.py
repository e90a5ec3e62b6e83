"""Firewall probe suite (scapy): packets a stateful firewall must stop, and a watcher behind it.

Sent from a client toward a protected server; the watcher on the server records every probe
that arrives (each carries its own IP ID), so a leak is a probe the server saw.

    python -m lab.agents.fwprobes watch --intf dc1-srv1-eth0 --out leaks.json     # in the server
    python -m lab.agents.fwprobes send --intf client1-eth0 --src-mac .. --src-ip .. --gw-mac .. \\
        --dst-ip 10.1.0.11 --open-port 443 --spoof-ip 10.2.0.99             # in the client
    python -m lab.agents.fwprobes policy ... --tcp 80,443,8443 --udp 7000   # the policy's ports
"""

import argparse
import json
import signal
import socket
import struct
import sys
import threading
import time
from lab.sh import python_module

MARKER = 0xF100
PROBES = (
    ("syn-denied-port", "unsolicited SYN to a port the policy does not open"),
    ("udp-denied-port", "UDP to a port the policy does not open"),
    ("ack-out-of-state", "ACK for no session (to an open port)"),
    ("rst-out-of-state", "RST for no session"),
    ("fin-out-of-state", "FIN for no session"),
    ("xmas", "FIN+PSH+URG scan"),
    ("null", "TCP with no flags"),
    ("synack-unsolicited", "SYN+ACK nobody asked for"),
    ("spoofed-site-source", "SYN from a site address, arriving from the client side"),
    ("icmp-timestamp", "ICMP timestamp request"),
    ("icmp-echo-reply", "unsolicited ICMP echo reply"),
    ("bfd-port-from-client", "UDP from a client to the BFD port 3784 of a server"),
    ("bfd-multihop-port", "UDP from a client to the multihop BFD port 4784 of a server"),
    ("bfd-imitation-to-server", "a packet shaped like Open vSwitch's BFD (169.254.1.1, TTL 255, "
                                "to port 3784) but addressed to a server"),
    ("midstream-out-of-window", "data injected into a live session, sequence number 50 MB "
                                "outside its window"),
)


def marker(name):
    return MARKER + [p[0] for p in PROBES].index(name)


def watch(args):
    # ETH_P_ALL: frames a bridge sends out of this interface are only given to such taps
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((args.intf, 0x0003))
    sock.settimeout(0.2)
    seen, arriving, stop = set(), set(), {"now": False}
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(now=True))
    print("ready", flush=True)
    while not stop["now"]:
        try:
            frame, address = sock.recvfrom(2048)
        except (socket.timeout, InterruptedError):
            continue
        name = probe_of(frame)
        if name is None:
            continue
        # a leak is a frame the firewall sends out here; one arriving from the site's side
        # (flooded back by a switch) was not let through by it
        (seen if address[2] == socket.PACKET_OUTGOING else arriving).add(name)
    if arriving - seen:
        print(f"arrived from the site side, not forwarded by the firewall: "
              f"{', '.join(sorted(arriving - seen))}", file=sys.stderr, flush=True)
    with open(args.out, "w") as fh:
        json.dump(sorted(seen), fh)
    return 0


POLICY_MARKER = 0xF200      # the policy probes' IPv4 ident: one SYN or datagram per port


def probe_of(frame):
    """The probe an Ethernet frame carries (its IPv4 ident is the probe's marker), or None.
    A policy probe is named by what it tried: 'tcp/8443', 'udp/7000'."""
    if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
        ident = struct.unpack("!H", frame[18:20])[0]
        if MARKER <= ident < MARKER + len(PROBES):
            return PROBES[ident - MARKER][0]
        if ident == POLICY_MARKER:
            proto = {6: "tcp", 17: "udp"}.get(frame[23])
            ihl = (frame[14] & 0x0F) * 4
            if proto and len(frame) >= 14 + ihl + 4:
                dport = struct.unpack("!H", frame[14 + ihl + 2:14 + ihl + 4])[0]
                return f"{proto}/{dport}"
    return None


def handshake_numbers(intf, dst_ip, port, timeout=3.0):
    """Open a real TCP session to dst_ip:port and read its initial sequence numbers off the
    wire. Returns (socket, local port, our next seq, their next seq)."""
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    cap.bind((intf, 0))                  # ETH_P_ALL: our own outgoing SYN is seen only so
    cap.settimeout(0.1)
    found, done = {}, threading.Event()

    def sniff():
        deadline = time.time() + timeout
        while time.time() < deadline and not done.is_set():
            try:
                frame = cap.recv(2048)
            except socket.timeout:
                continue
            if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue
            ihl = (frame[14] & 0x0F) * 4
            tcp = 14 + ihl
            sport, dport, seq = struct.unpack("!HHI", frame[tcp:tcp + 8])
            flags = frame[tcp + 13]
            if flags & 0x12 == 0x02 and dport == port:
                found["syn"] = (sport, seq)
            elif flags & 0x12 == 0x12 and sport == port:
                found["synack"] = seq
            if "syn" in found and "synack" in found:
                done.set()

    thread = threading.Thread(target=sniff)
    thread.start()
    time.sleep(0.05)
    conn = socket.create_connection((dst_ip, port), timeout=timeout)
    done.wait(timeout)
    thread.join()
    cap.close()
    if "syn" not in found or "synack" not in found:
        raise RuntimeError("could not see the handshake")
    sport, seq = found["syn"]
    return conn, sport, seq + 1, found["synack"] + 1


def send(args):
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.sendrecv import sendp

    def ip(name, src=None):
        return Ether(src=args.src_mac, dst=args.gw_mac) / IP(src=src or args.src_ip,
                                                               dst=args.dst_ip, id=marker(name))

    port = args.open_port
    packets = [
        ip("syn-denied-port") / TCP(sport=61001, dport=args.closed_port, flags="S"),
        ip("udp-denied-port") / UDP(sport=61002, dport=53) / b"probe",
        ip("ack-out-of-state") / TCP(sport=61003, dport=port, flags="A", seq=1000, ack=1000),
        ip("rst-out-of-state") / TCP(sport=61004, dport=port, flags="R", seq=1000),
        ip("fin-out-of-state") / TCP(sport=61005, dport=port, flags="FA", seq=1000, ack=1000),
        ip("xmas") / TCP(sport=61006, dport=port, flags="FPU"),
        ip("null") / TCP(sport=61007, dport=port, flags=""),
        ip("synack-unsolicited") / TCP(sport=61008, dport=port, flags="SA", seq=1, ack=1),
        ip("spoofed-site-source", src=args.spoof_ip) / TCP(sport=61009, dport=port, flags="S"),
        ip("icmp-timestamp") / ICMP(type=13),
        ip("icmp-echo-reply") / ICMP(type=0, id=7, seq=1),
        ip("bfd-port-from-client") / UDP(sport=49200, dport=3784) / b"probe",
        ip("bfd-multihop-port") / UDP(sport=49201, dport=4784) / b"probe",
        (Ether(src=args.src_mac, dst=args.gw_mac)
         / IP(src="169.254.1.1", dst=args.dst_ip, ttl=255, id=marker("bfd-imitation-to-server"))
         / UDP(sport=49202, dport=3784) / (b"\x20\x40\x03\x18" + b"\0" * 20)),
    ]
    conn, sport, ours, theirs = handshake_numbers(args.intf, args.dst_ip, port, args.timeout)
    packets.append(ip("midstream-out-of-window") / TCP(sport=sport, dport=port, flags="PA",
                                                       seq=(ours + 50_000_000) % 2**32, ack=theirs) / (b"X" * 16))
    sendp(packets, iface=args.intf, verbose=False)
    time.sleep(0.3)
    conn.close()
    print(json.dumps([p[0] for p in PROBES]), flush=True)
    return 0


def send_policy(args):
    """One SYN per TCP port and one datagram per UDP port (each twice), marked POLICY_MARKER:
    the watcher behind the firewall names the ports its policy let through."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.sendrecv import sendp

    def ip():
        return Ether(src=args.src_mac, dst=args.gw_mac) / IP(src=args.src_ip, dst=args.dst_ip,
                                                               id=POLICY_MARKER)
    tcp = [int(p) for p in args.tcp.split(",") if p]
    udp = [int(p) for p in args.udp.split(",") if p]
    packets = ([ip() / TCP(sport=62000 + i, dport=port, flags="S") for i, port in enumerate(tcp)]
               + [ip() / UDP(sport=62500 + i, dport=port) / b"policy" for i, port in enumerate(udp)])
    for _ in range(2):
        sendp(packets, iface=args.intf, verbose=False)
        time.sleep(0.2)
    print(json.dumps([f"tcp/{p}" for p in tcp] + [f"udp/{p}" for p in udp]), flush=True)
    return 0


def parser():
    """The command line (the argv builders below write it)."""
    parser = argparse.ArgumentParser(prog="python -m lab.agents.fwprobes")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--intf", required=True)
    w.add_argument("--out", required=True)
    s = sub.add_parser("send")
    for name in ("intf", "src-mac", "src-ip", "gw-mac", "dst-ip", "spoof-ip"):
        s.add_argument(f"--{name}", required=True)
    s.add_argument("--open-port", type=int, default=443)
    s.add_argument("--closed-port", type=int, default=22)
    s.add_argument("--timeout", type=float, default=3.0,
                   help="seconds the TCP handshake may take (the lab stretches it on an "
                        "emulated CPU)")
    p = sub.add_parser("policy")
    for name in ("intf", "src-mac", "src-ip", "gw-mac", "dst-ip"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--tcp", default="", help="TCP ports, comma-separated")
    p.add_argument("--udp", default="", help="UDP ports, comma-separated")
    return parser


def watch_argv(intf, out):
    return python_module(__name__, "watch", intf=intf, out=out)


def send_argv(intf, src_mac, src_ip, gw_mac, dst_ip, spoof_ip, open_port, timeout=3.0):
    return python_module(__name__, "send", intf=intf, src_mac=src_mac, src_ip=src_ip,
                         gw_mac=gw_mac, dst_ip=dst_ip, spoof_ip=spoof_ip, open_port=open_port,
                         timeout=timeout)


def policy_argv(intf, src_mac, src_ip, gw_mac, dst_ip, tcp, udp):
    return python_module(__name__, "policy", intf=intf, src_mac=src_mac, src_ip=src_ip,
                         gw_mac=gw_mac, dst_ip=dst_ip, tcp=",".join(map(str, tcp)),
                         udp=",".join(map(str, udp)))


def main(argv=None):
    args = parser().parse_args(argv)
    return {"watch": watch, "send": send, "policy": send_policy}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
