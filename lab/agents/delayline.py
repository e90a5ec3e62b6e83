"""Userspace delay line: a wire between two interfaces that delays, jitters and drops frames.

Used where the kernel has no sch_netem. It runs inside the link's own network namespace
(a Mininet node named after the link, e.g. ``dci-a``) and copies every frame received on one
interface to the other after ``delay`` (+ uniform jitter), dropping ``loss`` percent at random
and tail-dropping when more than ``limit`` frames wait in one direction. Bandwidth is not its
job: HTB on the switch ports shapes the link before the frames reach it.

Unlike netem, jitter never reorders frames (a frame leaves no earlier than the one before it),
which keeps TCP measurements meaningful.

Timing: a frame's clock starts at its kernel receive timestamp (SO_TIMESTAMPNS), not when
Python gets to it, and the line wakes up early by its own measured wake-up lateness (a moving
average), so the delay it adds is the configured one rather than that plus the scheduler's.

    python -m lab.agents.delayline --a dci-a-eth0 --b dci-a-eth1 --delay-ms 2 --stats stats.json

It prints ``ready`` once both interfaces are open, and writes its counters to --stats as JSON
when it stops (SIGTERM or SIGINT). SIGUSR1 makes it a gray failure (the link stays up, every
frame is dropped); SIGUSR2 ends that. SIGHUP makes it read a new one-way delay (ms) from the
--control file and print ``delay MS`` once it applies to the frames received from then on
(the lab calibrates the emulation's own path cost out of the delay this way).
"""

import argparse
import collections
import ctypes
import json
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


class DelayLine:
    def __init__(self, intf_a, intf_b, delay_ms, jitter_ms=0.0, loss=0.0, limit=1000, seed=1):
        self.delay = delay_ms / 1000.0
        self.jitter = jitter_ms / 1000.0
        self.loss = loss / 100.0
        self.limit = limit
        self.rng = random.Random(seed)
        self.sock_a, self.sock_b = open_socket(intf_a), open_socket(intf_b)
        self.directions = {
            self.sock_a: Direction(f"{intf_a}>{intf_b}", self.sock_a, self.sock_b),
            self.sock_b: Direction(f"{intf_b}>{intf_a}", self.sock_b, self.sock_a),
        }
        self.running = True
        self.gray = False            # drop everything (a gray failure) while True
        self.lateness = 0.0          # moving average of how late a timed wake-up comes

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

    def send_due(self, direction, now):
        queue = direction.queue
        while queue and queue[0][0] <= now:
            _, frame = queue.popleft()
            try:
                direction.tx.send(frame)
                direction.counters["sent"] += 1
            except OSError:
                direction.counters["send_errors"] += 1

    def run(self):
        sockets = list(self.directions)
        while self.running:
            now = time.time()
            heads = [d.queue[0][0] for d in self.directions.values() if d.queue]
            target = min(heads) - self.lateness if heads else None
            timeout = max(0.0, target - now) if heads else 0.5
            readable, _, _ = select.select(sockets, [], [], timeout)
            now = time.time()
            if not readable and heads and timeout > 0:
                late = min(max(now - target, 0.0), MAX_LATENESS)
                self.lateness += 0.1 * (late - self.lateness)
            for sock in readable:
                self.receive(self.directions[sock])
            for direction in self.directions.values():
                self.send_due(direction, now + SEND_EARLY)

    def stats(self):
        stats = {d.name: dict(d.counters, queued=len(d.queue),
                              kernel_drops=kernel_drops(d.rx))
                 for d in self.directions.values()}
        stats["wakeup_lateness_us"] = round(self.lateness * 1e6, 1)
        return stats


def parser():
    """The command line (line_argv writes it)."""
    parser = argparse.ArgumentParser(prog="python -m lab.agents.delayline", description=__doc__.split("\n")[0])
    parser.add_argument("--a", required=True, help="first interface")
    parser.add_argument("--b", required=True, help="second interface")
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay, ms")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="uniform jitter, ± ms")
    parser.add_argument("--loss", type=float, default=0.0, help="random loss, percent")
    parser.add_argument("--limit", type=int, default=1000, help="frames waiting per direction")
    parser.add_argument("--seed", type=int, default=1, help="random seed for jitter and loss")
    parser.add_argument("--stats", help="write counters here as JSON on exit")
    parser.add_argument("--control", help="file holding a new one-way delay in ms, read on SIGHUP")
    return parser


def line_argv(intf_a, intf_b, delay_ms, jitter_ms, loss, limit, seed, stats=None, control=None,
              python=None):
    return python_module(__name__, a=intf_a, b=intf_b, delay_ms=float(delay_ms),
                         jitter_ms=float(jitter_ms), loss=float(loss), limit=limit, seed=seed,
                         stats=stats, control=control, python=python)


def main(argv=None):
    args = parser().parse_args(argv)

    line = DelayLine(args.a, args.b, args.delay_ms, args.jitter_ms, args.loss, args.limit, args.seed)

    def stop(signum, frame):
        line.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGUSR1, lambda s, f: setattr(line, "gray", True))
    signal.signal(signal.SIGUSR2, lambda s, f: setattr(line, "gray", False))

    def reload(signum, frame):
        try:
            with open(args.control) as fh:
                line.delay = max(0.0, float(fh.read().strip())) / 1000.0
        except (OSError, TypeError, ValueError) as exc:
            print(f"control file unreadable: {exc}", flush=True)
            return
        print(f"delay {1000 * line.delay:g}", flush=True)

    signal.signal(signal.SIGHUP, reload)
    tight_timers()
    print("ready", flush=True)
    line.run()
    if args.stats:
        with open(args.stats, "w") as fh:
            json.dump(line.stats(), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
