"""Probe streams: a paced UDP sender (scapy-built template) and a receiver with kernel timestamps.

Each probe carries its stream id, sequence number and send time (CLOCK_REALTIME, the clock the
fault injector stamps faults with). The sender builds one frame with scapy, then only patches
the sequence number and time into it and writes it to a packet socket, so 1000 packets/s hold
on a small machine; UDP checksum 0 (allowed for IPv4) keeps the patch cheap.

    python -m lab.agents.probestream send --intf client1-eth0 --src-mac .. --dst-mac .. \\
        --src-ip 10.100.0.11 --dst-ip 10.200.0.10 --port 7000 --stream 1 --rate 1000 \\
        --duration 20 --summary tx-1.json
    python -m lab.agents.probestream receive --port 7000 --host dc1-srv1 --out rx-dc1-srv1.csv

The receiver writes one CSV row per probe: stream, seq, sent, received, host (times in s).
"""

import argparse
import csv
import json
import signal
import socket
import struct
import sys
import time
from lab.sh import python_module

MAGIC = b"ALPB"
HEADER = struct.Struct("!4sIQd")         # magic, stream, seq, send time
PROBE_SIZE = 64                          # payload bytes (header + padding)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ETH_P_ALL = 0x0003


def load_scapy():
    from scapy.layers.inet import IP, UDP  # noqa: F401
    from scapy.layers.l2 import Ether      # noqa: F401


def template(src_mac, dst_mac, src_ip, dst_ip, sport, dport, dscp=0):
    """(frame bytes, payload offset): an Ether/IP/UDP frame built once with scapy, marked
    with `dscp` (a packet socket passes no host firewall: the probe marks itself)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    payload = HEADER.pack(MAGIC, 0, 0, 0.0).ljust(PROBE_SIZE, b"\0")
    frame = Ether(src=src_mac, dst=dst_mac) / IP(src=src_ip, dst=dst_ip, ttl=64, tos=dscp << 2) / \
        UDP(sport=sport, dport=dport, chksum=0) / payload
    raw = bytearray(bytes(frame))
    raw[40:42] = b"\0\0"                  # UDP checksum 0: no checksum (IPv4)
    return raw, len(raw) - PROBE_SIZE


def send(args):
    if args.frame:                # built by the lab (scapy loads once there, not per sender)
        frame = bytearray.fromhex(args.frame)
        offset = len(frame) - PROBE_SIZE
    else:
        frame, offset = template(args.src_mac, args.dst_mac, args.src_ip, args.dst_ip,
                                 args.sport, args.port, args.dscp)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((args.intf, 0))
    interval = 1.0 / args.rate
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(now=True))
    print("ready", flush=True)
    if args.wait_go:              # all senders of a set start together (a slow machine takes
        sys.stdin.readline()      # seconds to start them all): on "go" from the lab
    start = time.time()
    end = start + args.duration
    seq, next_t, errors = 0, start, 0
    while not stop["now"]:
        now = time.time()
        if now >= end:
            break
        if now < next_t:
            time.sleep(next_t - now)
            continue
        sent_at = time.time()
        HEADER.pack_into(frame, offset, MAGIC, args.stream, seq, sent_at)
        try:
            sock.send(frame)
        except OSError:
            errors += 1                   # e.g. our own interface is down (host power-off)
        seq += 1
        next_t += interval
        if now - next_t > 0.5:            # fell far behind (machine stalled): do not burst
            next_t = now
    finished = time.time()
    summary = {"stream": args.stream, "sent": seq, "send_errors": errors, "start": start,
               "end": finished, "target_rate": args.rate,
               "achieved_rate": seq / max(finished - start, 1e-9)}
    with open(args.summary, "w") as fh:
        json.dump(summary, fh)
    return 0


def receive(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind(("0.0.0.0", args.port))
    sock.settimeout(0.2)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(now=True))
    with open(args.out, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["stream", "seq", "sent", "received", "host"])
        print("ready", flush=True)
        last_flush = time.time()
        while not stop["now"]:
            try:
                data, anc, _, _ = sock.recvmsg(256, socket.CMSG_SPACE(16))
            except socket.timeout:
                data = None
            except InterruptedError:
                continue
            now = time.time()
            if data and len(data) >= HEADER.size and data[:4] == MAGIC:
                _, stream, seq, sent = HEADER.unpack_from(data)
                received = now
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", value[:16])
                        received = sec + nsec * 1e-9
                out.writerow([stream, seq, f"{sent:.6f}", f"{received:.6f}", args.host])
            if now - last_flush > 0.5:
                fh.flush()
                last_flush = now
    return 0


def parser():
    """The command line (the argv builders below write it)."""
    parser = argparse.ArgumentParser(prog="python -m lab.agents.probestream")
    sub = parser.add_subparsers(dest="command", required=True)
    tx = sub.add_parser("send")
    for name in ("intf", "src-mac", "dst-mac", "src-ip", "dst-ip", "summary"):
        tx.add_argument(f"--{name}", required=True)
    tx.add_argument("--port", type=int, required=True)
    tx.add_argument("--sport", type=int, default=0)
    tx.add_argument("--stream", type=int, required=True)
    tx.add_argument("--dscp", type=int, default=0, choices=range(64), metavar="0-63",
                    help="DSCP the probes carry (a QoS class)")
    tx.add_argument("--rate", type=float, default=1000.0, help="packets per second")
    tx.add_argument("--duration", type=float, required=True, help="seconds")
    tx.add_argument("--frame", default=None,
                    help="the frame to send, hex (template()'s; default: built here)")
    tx.add_argument("--wait-go", action="store_true",
                    help="after 'ready', wait for a line on stdin before sending")
    rx = sub.add_parser("receive")
    rx.add_argument("--port", type=int, required=True)
    rx.add_argument("--host", required=True)
    rx.add_argument("--out", required=True)
    return parser


def sport_of(stream):
    """The UDP source port of a stream's probes."""
    return 40000 + stream


def send_argv(intf, src_mac, dst_mac, src_ip, dst_ip, port, stream, rate, duration, summary,
              wait_go=True, dscp=0, prebuilt=False):
    """prebuilt: build the frame here (with scapy) and hand it to the sender, which then
    starts without loading scapy (four senders loading it at once take 0.7 s of 2 cores)."""
    frame = (template(src_mac, dst_mac, src_ip, dst_ip, sport_of(stream), port, dscp)[0].hex()
             if prebuilt else None)
    return python_module(__name__, "send", intf=intf, src_mac=src_mac, dst_mac=dst_mac,
                         src_ip=src_ip, dst_ip=dst_ip, port=port, stream=stream,
                         rate=float(rate), duration=float(duration), summary=summary,
                         wait_go=wait_go, frame=frame, **({"dscp": dscp} if dscp else {}))


def receive_argv(port, host, out):
    return python_module(__name__, "receive", port=port, host=host, out=out)


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command == "send":
        args.sport = args.sport or sport_of(args.stream)
        return send(args)
    return receive(args)


if __name__ == "__main__":
    sys.exit(main())
