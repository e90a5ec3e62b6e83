"""A DNS-based global load balancer (GSLB) inside the lab, and the clients that use it.

The server (dnslib) is authoritative for one name. It health-checks each site's service
address (TCP connect every 0.5 s; down after 3 misses, up after 2 answers) and answers each
client with the nearest healthy site by the client's subnet, with a configurable TTL:

    python -m lab.agents.gslb serve --name web.lab --ttl 5 --sites dc1=10.1.0.11,dc2=10.2.0.11 \\
        --proximity 10.100.0.0/24=dc1,dc2 --proximity 10.101.0.0/24=dc2,dc1 --log gslb.jsonl

The client resolves (keeping the answer for its TTL, plus --cache-extra seconds for clients
that cache beyond it), connects every --interval and records who answered. With --vip it skips
DNS and connects to an anycast VIP, for the comparison:

    python -m lab.agents.gslb client --server 10.2.0.12 --name web.lab --duration 10 --out c.json
"""

import argparse
import ipaddress
import json
import signal
import socket
import sys
import threading
import time
from lab.sh import python_module


def check(address, port, timeout=0.3):
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


class Health:
    """Site health by consecutive TCP checks, with the moments it changed."""

    def __init__(self, sites, port, log, interval=0.5, fail_after=3, recover_after=2):
        self.sites, self.port, self.log = sites, port, log
        self.interval, self.fail_after, self.recover_after = interval, fail_after, recover_after
        self.up = {site: None for site in sites}
        self.streak = {site: 0 for site in sites}

    def verdict(self, site, ok):
        """Update a site's state from one check; return True when it changed."""
        if ok != (self.streak[site] > 0):
            self.streak[site] = 0
        self.streak[site] += 1 if ok else -1
        before = self.up[site]
        if ok and (before is None or (not before and self.streak[site] >= self.recover_after)):
            self.up[site] = True
        elif not ok and before is not False and -self.streak[site] >= self.fail_after:
            self.up[site] = False
        return self.up[site] != before

    def run(self, stop):
        while not stop.is_set():
            for site, address in self.sites.items():
                if self.verdict(site, check(address, self.port)):
                    self.log({"t": time.time(), "site": site, "up": self.up[site]})
            stop.wait(self.interval)


def choose(proximity, up, client):
    """The first healthy site in the proximity order of the client's subnet (None: none)."""
    ip = ipaddress.IPv4Address(client)
    for subnet, order in proximity:
        if ip in subnet:
            return next((site for site in order if up.get(site)), None)
    return next((site for site, ok in up.items() if ok), None)


def serve(args):
    from dnslib import A, QTYPE, RCODE, RR
    from dnslib.server import BaseResolver, DNSServer

    sites = dict(item.split("=") for item in args.sites.split(","))
    proximity = [(ipaddress.IPv4Network(p.split("=")[0]), p.split("=")[1].split(","))
                 for p in args.proximity]
    log_file = open(args.log, "a") if args.log else None

    def log(event):
        if log_file:
            log_file.write(json.dumps(event) + "\n")
            log_file.flush()

    health = Health(sites, args.check_port, log)
    name = args.name.rstrip(".") + "."

    class Resolver(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            qname = str(request.q.qname)
            if qname.lower() != name.lower() or request.q.qtype not in (QTYPE.A, QTYPE.ANY):
                reply.header.rcode = RCODE.NXDOMAIN if qname.lower() != name.lower() else RCODE.NOERROR
                return reply
            site = choose(proximity, health.up, handler.client_address[0])
            if site is None:
                reply.header.rcode = RCODE.SERVFAIL
            else:
                reply.add_answer(RR(qname, QTYPE.A, rdata=A(sites[site]), ttl=args.ttl))
            return reply

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    server = DNSServer(Resolver(), port=args.port, address="0.0.0.0", logger=_Quiet())
    server.start_thread()
    threading.Thread(target=health.run, args=(stop,), daemon=True).start()
    print("ready", flush=True)
    stop.wait()
    server.stop()
    return 0


class _Quiet:
    """dnslib logs every query to stdout by default: keep the lab's output clean."""

    def __getattr__(self, _):
        return lambda *a, **k: None


def resolve(server, name, timeout=0.5):
    """(address, ttl) from the GSLB, or (None, 0)."""
    from dnslib import DNSRecord
    try:
        reply = DNSRecord.parse(DNSRecord.question(name).send(server, 53, timeout=timeout))
    except (OSError, socket.timeout):
        return None, 0
    for rr in reply.rr:
        return str(rr.rdata), rr.ttl
    return None, 0


def ask(address, port, timeout=0.3):
    """One request to a server that speaks first: its name ('' when none answered in time)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(256).decode().strip()
    except OSError:
        return ""


class HttpAsker:
    """GET / over one kept-alive HTTP/1.1 connection (to a load balancer), opened again after
    any failure: the request time is then the request's own, not a TCP handshake's. The
    answer is the body's last line; '' for a failure or a status other than 200 (HAProxy's
    503 when it has no server left)."""

    def __init__(self, timeout=0.3):
        self.timeout, self.conn, self.address = timeout, None, None

    def __call__(self, address, port):
        import http.client
        if self.conn is None or self.address != (address, port):
            self.close()
            self.conn = http.client.HTTPConnection(address, port, timeout=self.timeout)
            self.address = (address, port)
        try:
            self.conn.request("GET", "/", headers={"Host": "web"})
            response = self.conn.getresponse()
            body = response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException):
            self.close()
            return ""
        if response.status != 200:
            return ""
        lines = body.strip().splitlines()
        return lines[-1].strip() if lines else ""

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def client(args):
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(now=True))
    attempts, address, expires = [], None, 0.0
    asker = HttpAsker() if args.http else None
    print("ready", flush=True)
    end = time.time() + args.duration
    while not stop["now"] and time.time() < end:
        now = time.time()
        if args.vip:
            address = args.vip
        elif address is None or now >= expires:
            found, ttl = resolve(args.server, args.name)
            if found:
                address, expires = found, now + ttl + args.cache_extra
        answer, took = "", None
        if address:
            answer = asker(address, args.port) if asker else ask(address, args.port)
            took = round(1000 * (time.time() - now), 3) if answer else None
        attempts.append([now, address, answer, took])
        time.sleep(max(0.0, args.interval - (time.time() - now)))
    with open(args.out, "w") as fh:
        json.dump(attempts, fh)
    return 0


def failover(attempts, t_fault, failed_hosts):
    """Seconds from the fault until a non-failed server answers again (None: never), the
    attempts that failed meanwhile, whether this client was served by a failed host, and the
    request time (ms, median of answered attempts) before the fault and once it was served
    again (None for attempts without one: older runs)."""
    before = [a for a in attempts if a[0] < t_fault and a[2]]
    hit = bool(before) and before[-1][2] in failed_hosts
    after = [a for a in attempts if a[0] >= t_fault]
    ok = next((a for a in after if a[2] and a[2] not in failed_hosts), None)
    failed = sum(1 for a in after if not a[2] and (ok is None or a[0] < ok[0]))
    served = [a for a in after if ok and a[0] >= ok[0] and a[2] and a[2] not in failed_hosts]
    return {"hit": hit, "failover_s": round(ok[0] - t_fault, 3) if ok else None,
            "failed_attempts": failed, "latency_ms_before": median_took(before),
            "latency_ms_after": median_took(served[1:]),    # the first may have waited
            "latency_ci_ms_before": median_ci_ms(before),
            "latency_ci_ms_after": median_ci_ms(served[1:])}


def _took(attempts):
    return sorted(a[3] for a in attempts if len(a) > 3 and a[3] is not None)


def median_took(attempts):
    took = _took(attempts)
    return took[(len(took) - 1) // 2] if took else None


def median_ci_ms(attempts):
    """How precisely the median request time is known: the half-width of its ~95 % confidence
    interval, 1.58 x IQR / sqrt(n) (McGill, Tukey and Larsen, the notches of a box plot); None
    with fewer than 4 timed requests."""
    took = _took(attempts)
    n = len(took)
    if n < 4:
        return None
    iqr = took[(3 * (n - 1)) // 4] - took[(n - 1) // 4]
    return round(1.58 * iqr / n ** 0.5, 3)


def parser():
    """The command line (the argv builders below write it)."""
    parser = argparse.ArgumentParser(prog="python -m lab.agents.gslb")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--ttl", type=int, default=5)
    s.add_argument("--sites", required=True, help="site=address,...")
    s.add_argument("--proximity", action="append", default=[], help="subnet=site,site,...")
    s.add_argument("--check-port", type=int, default=80)
    s.add_argument("--port", type=int, default=53)
    s.add_argument("--log")
    c = sub.add_parser("client")
    c.add_argument("--server")
    c.add_argument("--name", default="web.lab")
    c.add_argument("--vip", help="skip DNS: connect to this (anycast) address")
    c.add_argument("--port", type=int, default=80)
    c.add_argument("--interval", type=float, default=0.1)
    c.add_argument("--cache-extra", type=float, default=0.0)
    c.add_argument("--http", action="store_true",
                   help="ask with HTTP GET over a kept-alive connection (a load balancer)")
    c.add_argument("--duration", type=float, required=True)
    c.add_argument("--out", required=True)
    return parser


def serve_argv(name, ttl, sites, proximity, check_port, log=None):
    """sites: {site: address}; proximity: {subnet: [site, ...]} (nearest first)."""
    return python_module(__name__, "serve", name=name, ttl=ttl,
                         sites=",".join(f"{s}={a}" for s, a in sites.items()),
                         proximity=[f"{net}={','.join(order)}" for net, order in proximity.items()],
                         check_port=check_port, log=log)


def client_argv(port, duration, out, vip=None, server=None, name=None, cache_extra=None,
                http=False):
    """Either vip (anycast: no DNS) or server + name (resolve through the GSLB); http: ask
    with HTTP GET."""
    return python_module(__name__, "client", vip=vip, server=server, name=name,
                         cache_extra=None if cache_extra is None else float(cache_extra),
                         port=port, duration=float(duration), out=out, http=http)


def main(argv=None):
    args = parser().parse_args(argv)
    return serve(args) if args.command == "serve" else client(args)


if __name__ == "__main__":
    sys.exit(main())
