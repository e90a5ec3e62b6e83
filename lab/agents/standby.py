"""A standby site's promotion agent (what keepalived or a cluster manager does in a real DR site).

It watches the primary's servers on the service port; after --fail-after missed checks in a
row it waits --promotion-s (the standby's warm-up: mounting storage, starting the application)
and then starts the service here. The controller finds the new server healthy by itself.

    python -m lab.agents.standby --name dc2-srv1 --watch 10.1.0.11,10.1.0.12 --port 80 --promotion-s 2

After `--` a command to run instead of the name-answering service (the site's stateful app,
lab/agents/dataapp.py, when the lab has a data tier): the agent becomes that program (exec),
so stopping the agent's PID stops the application it started.
"""

import argparse
import os
import socket
import sys
import time

from lab.agents import service
from lab.sh import python_module


def alive(ip, port, timeout=0.15):
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def parser():
    """The command line (the argv builders below write it)."""
    parser = argparse.ArgumentParser(prog="python -m lab.agents.standby")
    parser.add_argument("--name", required=True, help="this server's name (what it answers)")
    parser.add_argument("--watch", required=True, help="primary servers' addresses, comma-separated")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--interval", type=float, default=0.3)
    parser.add_argument("--fail-after", type=int, default=3)
    parser.add_argument("--promotion-s", type=float, default=2.0)
    parser.add_argument("then", nargs="*", metavar="-- COMMAND",
                        help="what to start when promoted (default: the name-answering service)")
    return parser


def standby_argv(name, watch, port, promotion_s, then=None):
    """then: the argv to run when promoted (default: the name-answering service)."""
    argv = python_module(__name__, name=name, watch=",".join(str(w) for w in watch), port=port,
                         promotion_s=float(promotion_s))
    return argv + ["--", *[str(a) for a in then]] if then else argv


def main(argv=None):
    args = parser().parse_args(argv)
    primaries = args.watch.split(",")
    print("ready", flush=True)
    misses = 0
    while misses < args.fail_after:
        time.sleep(args.interval)
        misses = 0 if any(alive(ip, args.port) for ip in primaries) else misses + 1
    print(f"primary down: promoting in {args.promotion_s:g}s", flush=True)
    time.sleep(args.promotion_s)
    if args.then:
        os.execvp(args.then[0], args.then)
    service.serve(args.name, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
