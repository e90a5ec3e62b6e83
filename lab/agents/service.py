"""A tiny anycast service run on each VIP server, and its client.

The server answers on one port, TCP and UDP, with its own name, so a client can tell which
site served it:

    python -m lab.agents.service serve --name dc1-srv1 --port 80
    python -m lab.agents.service query --ip 10.200.0.10 --port 80      # prints e.g. dc1-srv1

With --http it is an HTTP/1.1 server instead (keep-alive, every GET answered with the name):
the app servers behind a load balancer (HAProxy), which checks them with GET / and reuses its
connections to them.
"""

import argparse
import socket
import socketserver
import sys
import threading
from lab.sh import python_module


def serve(name, port):
    reply = f"{name}\n".encode()

    class Tcp(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(reply)

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            sock.sendto(reply.rstrip() + b" " + data, self.client_address)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    tcp = socketserver.ThreadingTCPServer(("0.0.0.0", port), Tcp)
    udp = socketserver.UDPServer(("0.0.0.0", port), Udp)
    threading.Thread(target=udp.serve_forever, daemon=True).start()
    print("ready", flush=True)
    tcp.serve_forever()


def serve_http(name, port):
    """HTTP/1.1 with keep-alive: every GET gets the server's name as its body."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    body = f"{name}\n".encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # the headers and the body are two writes: with Nagle the body would wait for the
        # ACK of the headers, a round trip more on every request over a reused connection
        disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):       # quiet: a request every 100 ms per client
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


def query(ip, port, timeout=2.0):
    """The name of the server that answers on ip:port (TCP), or '' when none does."""
    try:
        with socket.create_connection((ip, port), timeout=timeout) as sock:
            return sock.recv(256).decode().strip()
    except OSError:
        return ""


def parser():
    """The command line (the argv builders below write it)."""
    parser = argparse.ArgumentParser(prog="python -m lab.agents.service")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--port", type=int, default=80)
    s.add_argument("--http", action="store_true", help="an HTTP/1.1 server (keep-alive)")
    q = sub.add_parser("query")
    q.add_argument("--ip", required=True)
    q.add_argument("--port", type=int, default=80)
    q.add_argument("--timeout", type=float, default=2.0)
    return parser


def serve_argv(name, port=80, http=False):
    return python_module(__name__, "serve", name=name, port=port, http=http)


def query_argv(ip, port=80, timeout=2.0):
    return python_module(__name__, "query", ip=ip, port=port, timeout=float(timeout))


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command == "serve":
        (serve_http if args.http else serve)(args.name, args.port)
        return 0
    answer = query(args.ip, args.port, args.timeout)
    print(answer)
    return 0 if answer else 1


if __name__ == "__main__":
    sys.exit(main())
