"""Scapy-crafted TCP sessions: handshakes and data written packet by packet, no client socket.

The client's own kernel would reset sessions it does not know, so an nftables table in the
client's namespace drops its outgoing RSTs from the crafted port range (the namespace, and the
table with it, goes when the lab stops). Each session sends 4 bytes every --interval and
counts the server's echo (lab/agents/sessions.py serve) as proof it is alive. Same report as
lab.agents.sessions:

    python -m lab.agents.craftsessions --intf client1-eth0 --src-mac .. --src-ip .. --gw-mac .. \\
        --dst 10.2.0.11 --port 443 --count 3 --duration 5 --out crafted.json
"""

import argparse
import json
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from lab.sh import python_module

RTO_S = 0.2         # first retransmission timeout of unanswered data (doubles, like TCP's)

PORT_BASE = 62000


def suppress_resets(port_base, count):
    rules = (f"table inet activelab_craft {{\n chain out {{\n"
             f"  type filter hook output priority 0;\n"
             f"  tcp sport {port_base}-{port_base + count - 1} tcp flags & rst == rst drop\n"
             " }\n}\n")
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)


def parser():
    """The command line (the argv builders below write it)."""
    parser = argparse.ArgumentParser(prog="python -m lab.agents.craftsessions")
    for name in ("intf", "src-mac", "src-ip", "gw-mac", "dst", "out"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--connect-timeout", type=float, default=1.5)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--wait-go", action="store_true",
                        help="after 'ready', wait for a line on stdin before the --duration starts")
    return parser


def run_argv(intf, src_mac, src_ip, gw_mac, dst, port, count, duration, out, wait_go=False):
    return python_module(__name__, intf=intf, src_mac=src_mac, src_ip=src_ip, gw_mac=gw_mac,
                         dst=dst, port=port, count=count, duration=float(duration), out=out,
                         wait_go=wait_go)


def main(argv=None):
    args = parser().parse_args(argv)

    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    suppress_resets(PORT_BASE, args.count)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sock.bind((args.intf, 0))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(now=True))
    rng = random.Random()

    def segment(s, flags, payload=b""):
        frame = Ether(src=args.src_mac, dst=args.gw_mac) / IP(src=args.src_ip, dst=args.dst) / \
            TCP(sport=s["sport"], dport=args.port, flags=flags, seq=s["snd"], ack=s["rcv"],
                window=65535)
        sock.send(bytes(frame / payload) if payload else bytes(frame))

    def incoming(timeout):
        """(sport, flags, seq, ack, payload length) of TCP segments from the server."""
        out = []
        end = time.time() + timeout
        while True:
            ready, _, _ = select.select([sock], [], [], max(0.0, end - time.time()))
            if not ready:
                return out
            frame = sock.recv(2048)
            if len(frame) < 54 or frame[23] != 6:
                continue
            ihl = (frame[14] & 0x0F) * 4
            total = struct.unpack("!H", frame[16:18])[0]
            t = 14 + ihl
            sport, dport, seq, ack = struct.unpack("!HHII", frame[t:t + 12])
            if sport != args.port or not PORT_BASE <= dport < PORT_BASE + args.count:
                continue
            data_off = (frame[t + 12] >> 4) * 4
            out.append((dport, frame[t + 13], seq, ack, total - ihl - data_off))
            end = time.time()                      # drain what is there, then return

    sessions = {}
    start = time.time()
    for i in range(args.count):
        s = {"id": i, "sport": PORT_BASE + i, "snd": rng.randrange(1 << 31), "rcv": 0,
             "established": False, "connect_s": None, "last_ok": None, "died": None,
             "reason": None, "waiting_since": None}
        sessions[s["sport"]] = s
        t0 = time.time()
        segment(s, "S")
        deadline, resent = t0 + args.connect_timeout, False
        while time.time() < deadline and not s["established"]:
            for sport, flags, seq, ack, _ in incoming(0.05):
                if sport == s["sport"] and flags & 0x12 == 0x12 and ack == (s["snd"] + 1) % (1 << 32):
                    s["snd"], s["rcv"] = ack, (seq + 1) % (1 << 32)
                    segment(s, "A")
                    s.update(established=True, connect_s=round(time.time() - t0, 4))
            if not resent and time.time() - t0 > 1.0 and not s["established"]:
                segment(s, "S")                        # the SYN retransmission a kernel does
                resent = True
        if not s["established"]:
            s.update(died=time.time(), reason="connect: no SYN-ACK")
    print("ready", flush=True)
    if args.wait_go:              # the same window as every other agent of the phase
        sys.stdin.readline()
        start = time.time()
    end, next_send = start + args.duration, time.time()
    live = [s for s in sessions.values() if s["established"]]
    while not stop["now"] and time.time() < end:
        now = time.time()
        if now >= next_send:
            for s in live:
                if s["died"] is None and s["waiting_since"] is None:
                    segment(s, "PA", b"ping")
                    s["snd"] = (s["snd"] + 4) % (1 << 32)
                    s["waiting_since"] = s["sent_at"] = now
                    s["rto"] = RTO_S
            next_send = now + args.interval
        for s in live:                # retransmit unanswered data as a kernel would (a segment
            if s["died"] is None and s["waiting_since"] and now - s["sent_at"] > s["rto"]:
                s["snd"] = (s["snd"] - 4) % (1 << 32)      # in flight at a failover is lost)
                segment(s, "PA", b"ping")
                s["snd"] = (s["snd"] + 4) % (1 << 32)
                s["sent_at"], s["rto"] = now, 2 * s["rto"]
        for sport, flags, seq, ack, length in incoming(0.02):
            s = sessions.get(sport)
            if s is None or s["died"] is not None:
                continue
            if flags & 0x04:
                s.update(died=time.time(), reason="reset by peer")
            elif length > 0 and seq == s["rcv"]:
                s["rcv"] = (seq + length) % (1 << 32)
                segment(s, "A")
                s["last_ok"], s["waiting_since"] = time.time(), None
            elif length > 0:
                segment(s, "A")                        # an echo we had: acknowledge it again
        now = time.time()
        for s in live:
            if s["died"] is None and s["waiting_since"] and now - s["waiting_since"] > args.timeout:
                s.update(died=now, reason=f"no echo for {args.timeout:g}s")
    for s in live:
        if s["died"] is None:
            segment(s, "RA")                           # close the crafted session
    report = [{k: v for k, v in s.items()
               if k not in ("snd", "rcv", "sport", "waiting_since", "sent_at", "rto")}
              for s in sessions.values()]
    with open(args.out, "w") as fh:
        json.dump({"start": start, "end": time.time(), "sessions": report}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
