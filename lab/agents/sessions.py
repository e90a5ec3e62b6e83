"""Long-lived TCP sessions: an echo server, and a client that keeps N sessions talking.

    python -m lab.agents.sessions serve --port 443
    python -m lab.agents.sessions run --dst 10.2.0.11 --port 443 --count 10 --duration 20 --out s.json

Every session sends a small message every --interval seconds and waits for its echo; a session
is dead once an echo is more than --timeout late or the connection fails. The client writes,
per session: whether it was established (and how long that took), when it last heard back,
and when and why it died.
"""

import argparse
import json
import selectors
import signal
import socket
import socketserver
import sys
import time
from lab.sh import python_module


def serve(port):
    class Echo(socketserver.BaseRequestHandler):
        def handle(self):
            while True:
                data = self.request.recv(64)
                if not data:
                    return
                self.request.sendall(data)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    server = socketserver.ThreadingTCPServer(("0.0.0.0", port), Echo)
    print("ready", flush=True)
    server.serve_forever()


def run(args):
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(now=True))
    sessions = []
    start = time.time()
    for i in range(args.count):
        sock = socket.socket()
        sock.settimeout(args.connect_timeout)
        t = time.time()
        entry = {"id": i, "established": False, "connect_s": None, "last_ok": None,
                 "died": None, "reason": None}
        try:
            sock.connect((args.dst, args.port))
            entry.update(established=True, connect_s=round(time.time() - t, 4))
            sock.setblocking(False)
            entry["sock"] = sock
        except OSError as exc:
            entry.update(died=time.time(), reason=f"connect: {exc.strerror or exc}")
            sock.close()
        sessions.append(entry)
    print("ready", flush=True)
    if args.wait_go:              # every agent of a phase runs the same window: on "go" from
        sys.stdin.readline()      # the lab, once all are ready (a slow CPU starts them seconds
        start = time.time()       # apart, and a session must not end before the fault)
    selector = selectors.DefaultSelector()
    live = [s for s in sessions if "sock" in s]
    for s in live:
        selector.register(s["sock"], selectors.EVENT_READ, s)
        s["waiting_since"] = None
    end = start + args.duration
    next_send = time.time()
    while not stop["now"] and time.time() < end:
        now = time.time()
        if now >= next_send:
            for s in live:
                if s["died"] is None and s["waiting_since"] is None:
                    try:
                        s["sock"].send(b"ping")
                        s["waiting_since"] = now
                    except OSError as exc:
                        s.update(died=now, reason=f"send: {exc.strerror or exc}")
            next_send = now + args.interval
        for key, _ in selector.select(timeout=0.02):
            s = key.data
            try:
                data = s["sock"].recv(64)
            except OSError as exc:
                data, s["reason"] = b"", f"recv: {exc.strerror or exc}"
            if data:
                s["last_ok"], s["waiting_since"] = time.time(), None
            elif s["died"] is None:
                s["died"] = time.time()
                s["reason"] = s["reason"] or "closed by peer"
                selector.unregister(s["sock"])
        now = time.time()
        for s in live:
            if s["died"] is None and s["waiting_since"] and now - s["waiting_since"] > args.timeout:
                s.update(died=now, reason=f"no echo for {args.timeout:g}s")
    for s in sessions:
        sock = s.pop("sock", None)
        s.pop("waiting_since", None)
        if sock:
            sock.close()
    with open(args.out, "w") as fh:
        json.dump({"start": start, "end": time.time(), "sessions": sessions}, fh)
    return 0


def parser():
    """The command line (the argv builders below write it)."""
    parser = argparse.ArgumentParser(prog="python -m lab.agents.sessions")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=443)
    r = sub.add_parser("run")
    r.add_argument("--dst", required=True)
    r.add_argument("--port", type=int, default=443)
    r.add_argument("--count", type=int, default=10)
    r.add_argument("--interval", type=float, default=0.1)
    r.add_argument("--timeout", type=float, default=2.0)
    r.add_argument("--connect-timeout", type=float, default=3.0)
    r.add_argument("--duration", type=float, required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--wait-go", action="store_true",
                   help="after 'ready', wait for a line on stdin before the --duration starts")
    return parser


def serve_argv(port=443):
    return python_module(__name__, "serve", port=port)


def run_argv(dst, port, count, duration, out, connect_timeout=None, wait_go=False):
    return python_module(__name__, "run", dst=dst, port=port, count=count,
                         duration=float(duration), out=out,
                         connect_timeout=None if connect_timeout is None else float(connect_timeout),
                         wait_go=wait_go)


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command == "serve":
        serve(args.port)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
