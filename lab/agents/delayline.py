"""Userspace delay line: wires between pairs of interfaces that delay, jitter and drop frames.

Used where the kernel has no sch_netem. Each link with a delay element has a Mininet node named
after it (e.g. ``dci-a``) holding its two interfaces; a wire copies every frame received on one
to the other after ``delay`` (+ uniform jitter), dropping ``loss`` percent at random and
tail-dropping when more than ``limit`` frames wait in one direction. Bandwidth is not its job:
HTB on the switch ports shapes the link before the frames reach it. One process serves one or
many wires (the lab gives each link its own process up to a few links, then shares them: a
16-site mesh has 152 links): it opens each wire's sockets in that link's network namespace
(setns) and serves all of them from one select loop.

Unlike netem, jitter never reorders frames (a frame leaves no earlier than the one before it),
which keeps TCP measurements meaningful.

Timing: a frame's clock starts at its kernel receive timestamp (SO_TIMESTAMPNS), not when
Python gets to it, and the line wakes up early by its own measured wake-up lateness (a moving
average), so the delay it adds is the configured one rather than that plus the scheduler's.

    python -m lab.agents.delayline --link dci-a:dci-a-eth0:dci-a-eth1:2:0:0:100:1 \
        [--link NAME:A:B:DELAY_MS:JITTER_MS:LOSS:LIMIT:SEED:/proc/PID/ns/net ...] --stats-dir DIR

It prints ``ready`` once every socket is open, and writes each wire's counters to
DIR/NAME.json when it stops (SIGTERM or SIGINT). Control lines on its standard input, each
answered on its standard output once in force: ``gray NAME on`` (the link stays up, every frame
is dropped: a gray failure) / ``gray NAME off``; ``delay NAME MS`` (a new one-way delay for the
frames received from then on; the lab calibrates the emulation's own path cost out this way).
"""

import argparse
import collections
import ctypes
import fcntl
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

from lab.sh import python_module

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4          # a frame we sent ourselves, seen again by the packet socket
RCVBUF = 4 << 20
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
CMSG_LEN = socket.CMSG_SPACE(16)
PR_SET_TIMERSLACK = 29
SEND_EARLY = 50e-6           # send a frame this close to its due time rather than sleep again
MAX_LATENESS = 2e-3          # never aim earlier than this


class Direction:
    """Frames travelling one way: received on `rx`, sent on `tx` once due."""

    def __init__(self, name, rx, tx):
        self.name, self.rx, self.tx = name, rx, tx
        self.queue = collections.deque()
        self.last_due = 0.0
        self.counters = collections.Counter()


SOL_PACKET, PACKET_STATISTICS = 263, 6


def kernel_drops(sock):
    """Frames the kernel dropped for this packet socket since the last reading (its receive
    buffer was full: the line did not keep up), from PACKET_STATISTICS; None if unreadable."""
    try:
        _, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    except OSError:
        return None
    return drops


def open_socket(intf):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind((intf, ETH_P_ALL))
    sock.setblocking(False)
    return sock


def kernel_time(ancdata, default):
    """The frame's kernel receive time (CLOCK_REALTIME seconds) from its ancillary data."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec + nsec * 1e-9
    return default


def tight_timers():
    """Ask for 1 ns timer slack (default 50 us): our sleeps end when asked."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def due_time(now, delay, jitter, rng, last_due):
    """When a frame received at `now` leaves: delay ± uniform jitter, never before the last."""
    due = now + delay
    if jitter:
        due += rng.uniform(-jitter, jitter)
    return max(due, now, last_due)


class Wire:
    """One link: two interfaces, frames copied each way after delay (+ jitter), `loss` percent
    dropped at random, tail drop beyond `limit` frames waiting in one direction."""

    def __init__(self, name, sock_a, sock_b, intf_a, intf_b, delay_ms, jitter_ms=0.0, loss=0.0,
                 limit=1000, seed=1):
        self.name = name
        self.delay = delay_ms / 1000.0
        self.jitter = jitter_ms / 1000.0
        self.loss = loss / 100.0
        self.limit = limit
        self.rng = random.Random(seed)
        self.gray = False            # drop everything (a gray failure) while True
        self.directions = [Direction(f"{intf_a}>{intf_b}", sock_a, sock_b),
                           Direction(f"{intf_b}>{intf_a}", sock_b, sock_a)]

    def receive(self, direction):
        """Read every waiting frame of one direction and queue it (or drop it)."""
        fallback = time.time()
        while True:
            try:
                frame, ancdata, _, addr = direction.rx.recvmsg(65535, CMSG_LEN)
            except BlockingIOError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            now = kernel_time(ancdata, fallback)
            direction.counters["received"] += 1
            if self.gray:
                direction.counters["grayed"] += 1
                continue
            if self.loss and self.rng.random() < self.loss:
                direction.counters["lost"] += 1
                continue
            if len(direction.queue) >= self.limit:
                direction.counters["overflow"] += 1
                continue
            due = due_time(now, self.delay, self.jitter, self.rng, direction.last_due)
            direction.last_due = due
            direction.queue.append((due, frame))

    @staticmethod
    def send_due(direction, now):
        queue = direction.queue
        while queue and queue[0][0] <= now:
            _, frame = queue.popleft()
            try:
                direction.tx.send(frame)
                direction.counters["sent"] += 1
            except OSError:
                direction.counters["send_errors"] += 1

    def stats(self):
        return {d.name: dict(d.counters, queued=len(d.queue), kernel_drops=kernel_drops(d.rx))
                for d in self.directions}


CLONE_NEWNET = 0x40000000


def setns(fd):
    """Enter the network namespace open at `fd` (os.setns from Python 3.12, libc before)."""
    if hasattr(os, "setns"):
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def bring_up(intf):
    """Ready an interface of the link's node (in the namespace we are in now): no IPv6 on it
    (its kernel side would send solicitations into the lab), then up. /proc/sys/net is the
    namespace of whoever opens it."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{intf}/disable_ipv6", "w") as fh:
            fh.write("1\n")
    except FileNotFoundError:              # a kernel without IPv6: nothing to quiet
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = struct.pack("16sh", intf.encode()[:15], 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", intf.encode()[:15], flags | IFF_UP))


def open_in(netns, intfs):
    """Bring `intfs` up and open packet sockets on them, in network namespace `netns` (a path
    such as /proc/PID/ns/net; None: our own). A socket stays in the namespace it was made in,
    so one process serves links of many namespaces."""
    if netns is None:
        for intf in intfs:
            bring_up(intf)
        return [open_socket(i) for i in intfs]
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        setns(target)
        try:
            for intf in intfs:
                bring_up(intf)
            return [open_socket(i) for i in intfs]
        finally:
            setns(home)
    finally:
        os.close(target)
        os.close(home)


class DelayLine:
    """Wires served by one process: one select loop over every wire's sockets."""

    def __init__(self, wires):
        self.wires = {w.name: w for w in wires}
        self.by_socket = {d.rx: (w, d) for w in wires for d in w.directions}
        self.running = True
        self.lateness = 0.0          # moving average of how late a timed wake-up comes

    def command(self, line):
        """A control line: `gray NAME on|off` or `delay NAME MS`; returns the answer line."""
        words = line.split()
        if len(words) == 3 and words[0] in ("gray", "delay") and words[1] in self.wires:
            wire = self.wires[words[1]]
            if words[0] == "gray" and words[2] in ("on", "off"):
                wire.gray = words[2] == "on"
                return f"gray {wire.name} {words[2]}"
            if words[0] == "delay":
                try:
                    wire.delay = max(0.0, float(words[2])) / 1000.0
                except ValueError:
                    pass
                else:
                    return f"delay {wire.name} {1000 * wire.delay:g}"
        return f"error: unknown command {line.strip()[:80]!r}; use: gray LINK on|off, delay LINK MS"

    def run(self, control=None):
        """Forward until stopped; `control`: a file descriptor of command lines (stdin)."""
        sockets = list(self.by_socket)
        watched = sockets + ([control] if control is not None else [])
        pending = b""
        directions = [d for w in self.wires.values() for d in w.directions]
        while self.running:
            now = time.time()
            heads = [d.queue[0][0] for d in directions if d.queue]
            target = min(heads) - self.lateness if heads else None
            timeout = max(0.0, target - now) if heads else 0.5
            try:
                readable, _, _ = select.select(watched, [], [], timeout)
            except InterruptedError:
                continue
            now = time.time()
            if not readable and heads and timeout > 0:
                late = min(max(now - target, 0.0), MAX_LATENESS)
                self.lateness += 0.1 * (late - self.lateness)
            for sock in readable:
                if sock is control:
                    data = os.read(control, 4096)
                    if not data:                     # the lab closed our input: keep going
                        watched.remove(control)
                        continue
                    *lines, pending = (pending + data).split(b"\n")
                    for line in lines:
                        print(self.command(line.decode(errors="replace")), flush=True)
                    continue
                wire, direction = self.by_socket[sock]
                wire.receive(direction)
            for direction in directions:
                Wire.send_due(direction, now + SEND_EARLY)

    def stats(self):
        """Counters per wire: {name: {direction: counters}, ...} and the wake-up lateness."""
        stats = {name: wire.stats() for name, wire in self.wires.items()}
        return stats, round(self.lateness * 1e6, 1)


def link_spec(name, intf_a, intf_b, delay_ms, jitter_ms=0.0, loss=0.0, limit=1000, seed=1,
              netns=None):
    """One --link value: NAME:A:B:DELAY_MS:JITTER_MS:LOSS:LIMIT:SEED[:NETNS]."""
    fields = [name, intf_a, intf_b, f"{float(delay_ms):g}", f"{float(jitter_ms):g}",
              f"{float(loss):g}", str(int(limit)), str(int(seed))]
    return ":".join(fields + ([str(netns)] if netns else []))


def parse_link(text):
    """A --link value back into its fields (argparse type)."""
    parts = text.split(":")
    if len(parts) not in (8, 9):
        raise argparse.ArgumentTypeError(
            f"--link {text!r}: use NAME:A:B:DELAY_MS:JITTER_MS:LOSS:LIMIT:SEED[:NETNS]")
    try:
        spec = {"name": parts[0], "intf_a": parts[1], "intf_b": parts[2],
                "delay_ms": float(parts[3]), "jitter_ms": float(parts[4]),
                "loss": float(parts[5]), "limit": int(parts[6]), "seed": int(parts[7]),
                "netns": parts[8] if len(parts) == 9 else None}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--link {text!r}: delay, jitter and loss are numbers, "
                                         "limit and seed integers") from None
    if spec["delay_ms"] < 0 or spec["jitter_ms"] < 0 or not 0 <= spec["loss"] <= 100 \
            or spec["limit"] < 1:
        raise argparse.ArgumentTypeError(f"--link {text!r}: delay and jitter >= 0, loss 0-100, "
                                         "limit >= 1")
    return spec


def parser():
    """The command line (line_argv writes it)."""
    parser = argparse.ArgumentParser(prog="python -m lab.agents.delayline",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--link", type=parse_link, action="append", required=True,
                        metavar="NAME:A:B:DELAY_MS:JITTER_MS:LOSS:LIMIT:SEED[:NETNS]",
                        help="a wire between interfaces A and B (in network namespace NETNS, "
                             "a path such as /proc/PID/ns/net; default ours); repeat for more")
    parser.add_argument("--stats-dir", help="write each wire's counters to DIR/NAME.json on exit")
    return parser


def line_argv(links, stats_dir=None, python=None):
    """argv of one delay-line process serving `links` (link_spec strings)."""
    return python_module(__name__, link=list(links), stats_dir=stats_dir, python=python)


def main(argv=None):
    args = parser().parse_args(argv)
    wires = []
    for spec in args.link:
        sock_a, sock_b = open_in(spec["netns"], [spec["intf_a"], spec["intf_b"]])
        wires.append(Wire(spec["name"], sock_a, sock_b, spec["intf_a"], spec["intf_b"],
                          spec["delay_ms"], spec["jitter_ms"], spec["loss"], spec["limit"],
                          spec["seed"]))
    line = DelayLine(wires)

    def stop(signum, frame):
        line.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tight_timers()
    print("ready", flush=True)
    line.run(control=sys.stdin.fileno())
    if args.stats_dir:
        stats, lateness = line.stats()
        for name, counters in stats.items():
            with open(os.path.join(args.stats_dir, f"{name}.json"), "w") as fh:
                json.dump(dict(counters, wakeup_lateness_us=lateness), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
