"""The stateful application of a site, and the clients that write to it.

    python -m lab.agents.dataapp serve --name dc1-srv1 --site dc1 --port 80 \\
        --engine galera --db 10.1.0.12
    python -m lab.agents.dataapp write --dst 10.200.0.10 --port 80 --client client1 \\
        --rate 50 --duration 10 --out writes-client1.json

serve: the VIP service of a site backed by the data tier. A client sends one line per write,
``W CLIENT SEQ``; the app commits it in one transaction (one row: client, seq, server, time)
on its database and answers ``OK SEQ SERVER COMMIT_MS`` once the commit returned, or
``ERR SEQ SERVER REASON`` at once when it failed; requests of a connection run side by side
(replies come as they finish). ``R CLIENT`` reads how many writes of the client it has.

The app takes requests only while its database can take writes (Galera: the node is in the
primary component and ready; PostgreSQL: it reaches the primary and, where commits
wait for a synchronous standby, one streams from it): checked every
HEALTH_INTERVAL_S. While it cannot, the app closes its listening socket, so a new connection
(and the controller's health check, a TCP SYN) is refused at once and anycast moves the
clients; requests already on a connection get ERR, never a hang: every statement has a
timeout. A PostgreSQL commit that waited for a synchronous standby and was cancelled has
committed locally only (the server's WARNING says so): it is answered ERR, not acknowledged.

probe: unloaded commit times on a node, replicated and local only (the baseline a
replicated commit is compared with). lag: a PostgreSQL standby's replication lag, sampled.

write: one client's steady stream of writes (--rate per second, each with its own sequence
number), pipelined on one connection; a broken connection is replaced by a new one (anycast
may take it to another site). Its ledger (--out) has every write: when it was sent, when and by
whom it was acknowledged (or the error), and the commit time the app measured.
"""

import argparse
import concurrent.futures
import json
import os
import select
import signal
import socket
import socketserver
import sys
import threading
import time

from lab.sh import python_module

HEALTH_INTERVAL_S = 0.2
STATEMENT_TIMEOUT_S = 2.0
DATABASE = "lab"
APP_USER = "app"
# One row per write: independent inserts, so a client's writes in flight commit side by side
# (a per-client counter row would serialise them on its row lock for a whole replicated commit).
# What a client has is the count of its rows (``R``).
SCHEMA = {
    "galera": ["CREATE TABLE IF NOT EXISTS lab.writes (client VARCHAR(32) NOT NULL, seq INT NOT "
               "NULL, server VARCHAR(32) NOT NULL, t DOUBLE NOT NULL, doc MEDIUMBLOB, "
               "PRIMARY KEY (client, seq))"],
    "postgresql": ["CREATE TABLE IF NOT EXISTS writes (client TEXT NOT NULL, seq INT NOT NULL, "
                   "server TEXT NOT NULL, t DOUBLE PRECISION NOT NULL, doc BYTEA, "
                   "PRIMARY KEY (client, seq))"],
}
INSERT = {"galera": "INSERT INTO lab.writes VALUES (%s, %s, %s, %s, %s)",
          "postgresql": "INSERT INTO writes VALUES (%s, %s, %s, %s, %s)"}
# a PostgreSQL primary can commit when it is not in recovery and, if it must wait for
# synchronous standbys, one of them is streaming (else every commit would hang until the
# statement timeout: the app says so at once instead, and its health check fails)
PG_WRITABLE = ("select not pg_is_in_recovery() and (current_setting('synchronous_standby_names')"
               " = '' or exists (select 1 from pg_stat_replication where sync_state in "
               "('sync', 'quorum')))")
READ = {"galera": "SELECT COUNT(*) FROM lab.writes WHERE client = %s",
        "postgresql": "SELECT COUNT(*) FROM writes WHERE client = %s"}
WORKERS = 16                   # requests of one connection in progress at once


# ---------------------------------------------------------------------------- protocol

def parse_request(line):
    """('W', client, seq) | ('R', client, None) | None for a line that is neither."""
    parts = line.split()
    if len(parts) == 3 and parts[0] == "W" and parts[2].isdigit():
        return "W", parts[1], int(parts[2])
    if len(parts) == 2 and parts[0] == "R":
        return "R", parts[1], None
    return None


def parse_reply(line):
    """{'ok', 'seq', 'server', 'commit_ms' | 'reason'} of a reply line, or None."""
    parts = line.split(" ", 3)
    if len(parts) >= 3 and parts[0] in ("OK", "ERR") and parts[1].isdigit():
        reply = {"ok": parts[0] == "OK", "seq": int(parts[1]), "server": parts[2]}
        if reply["ok"]:
            try:
                reply["commit_ms"] = float(parts[3]) if len(parts) > 3 else None
            except ValueError:
                return None
        else:
            reply["reason"] = parts[3] if len(parts) > 3 else ""
        return reply
    return None


# ------------------------------------------------------------------------------ server

class Database:
    """Connections to the site's database for one engine (the drivers are the
    distribution's: python3-pymysql, python3-psycopg2)."""

    def __init__(self, engine, addresses, payload=0):
        self.engine, self.addresses = engine, list(addresses)
        self.payload = payload       # bytes of document stored with each write (random)

    def connect(self):
        if self.engine == "galera":
            import pymysql
            return pymysql.connect(host=self.addresses[0], user=APP_USER, password="",
                                   connect_timeout=1, read_timeout=STATEMENT_TIMEOUT_S,
                                   write_timeout=STATEMENT_TIMEOUT_S, autocommit=False)
        import psycopg2
        last = None
        for address in self.addresses:          # the primary: the one not in recovery
            try:
                conn = psycopg2.connect(host=address, user="postgres", dbname="postgres",
                                        connect_timeout=1,
                                        options=f"-c statement_timeout="
                                                f"{int(STATEMENT_TIMEOUT_S * 1000)}")
            except psycopg2.Error as exc:
                last = exc
                continue
            with conn.cursor() as cur:
                cur.execute("select pg_is_in_recovery()")
                if not cur.fetchone()[0]:
                    # the primary is asked first next time (libpq waits at least 2 s for an
                    # address that does not answer: a dead old primary would slow every check)
                    self.addresses.remove(address)
                    self.addresses.insert(0, address)
                    return conn
            conn.close()
        raise ConnectionError(f"no primary among {', '.join(self.addresses)}"
                              + (f" ({last})" if last else ""))

    def writable(self, conn):
        """Can this connection's server take writes now?"""
        with conn.cursor() as cur:
            if self.engine == "galera":
                cur.execute("SHOW STATUS WHERE Variable_name IN ('wsrep_ready', "
                            "'wsrep_cluster_status')")
                status = dict(cur.fetchall())
                conn.commit()
                return (status.get("wsrep_ready") == "ON"
                        and status.get("wsrep_cluster_status") == "Primary")
            cur.execute(PG_WRITABLE)
            ok = cur.fetchone()[0]
            conn.commit()
            return ok

    def write(self, conn, client, seq, server):
        """Commit one write; returns the commit's duration in ms. Raises on failure."""
        with conn.cursor() as cur:
            doc = os.urandom(self.payload) if self.payload else None
            cur.execute(INSERT[self.engine], (client, seq, server, time.time(), doc))
        if self.engine == "postgresql":
            del conn.notices[:]
        t = time.perf_counter()
        conn.commit()
        commit_ms = 1000 * (time.perf_counter() - t)
        if self.engine == "postgresql" and any("synchronous replication" in n
                                               for n in conn.notices):
            raise RuntimeError("committed locally only: the synchronous standby did not "
                               "confirm")
        return commit_ms

    def read(self, conn, client):
        with conn.cursor() as cur:
            cur.execute(READ[self.engine], (client,))
            row = cur.fetchone()
        conn.commit()
        return row[0] if row else 0


def reason_of(exc):
    return " ".join(str(exc).split())[:120] or type(exc).__name__


def serve(args):
    db = Database(args.engine, args.db, args.payload)
    state = {"writable": False, "server": None, "stop": False}
    lock = threading.Lock()

    class Handler(socketserver.StreamRequestHandler):
        """One client connection: its requests run on WORKERS threads, each with its own
        database connection (a real app serves many requests at once; one at a time, a
        replicated commit of 30 ms would cap a client at 33 writes/s); replies go back as
        each finishes (the client matches them by sequence number)."""

        def handle(self):
            local = threading.local()
            send = threading.Lock()
            conns = []

            def answer(kind, client, seq):
                try:
                    if not state["writable"]:
                        raise RuntimeError("the database cannot take writes")
                    if getattr(local, "conn", None) is None:
                        local.conn = db.connect()
                        conns.append(local.conn)
                    if kind == "W":
                        commit_ms = db.write(local.conn, client, seq, args.name)
                        reply = f"OK {seq} {args.name} {commit_ms:.3f}"
                    else:
                        reply = f"OK 0 {args.name} {db.read(local.conn, client)}"
                except Exception as exc:          # the database's errors, whatever the driver
                    reply = f"ERR {seq or 0} {args.name} {reason_of(exc)}"
                    if getattr(local, "conn", None) is not None:
                        try:
                            local.conn.close()
                        except Exception:
                            pass
                        local.conn = None
                with send:
                    try:
                        self.wfile.write((reply + "\n").encode())
                        self.wfile.flush()
                    except OSError:               # the client went away
                        pass

            with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
                for raw in self.rfile:
                    request = parse_request(raw.decode(errors="replace"))
                    if request is not None:
                        pool.submit(answer, *request)
            for conn in conns:
                try:
                    conn.close()
                except Exception:
                    pass

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    def open_listener():
        server = Server(("0.0.0.0", args.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def close_listener(server):
        server.shutdown()
        server.server_close()               # new SYNs get a RST: health checks fail now

    signal.signal(signal.SIGTERM, lambda s, f: state.update(stop=True))
    monitor, first = None, True
    while not state["stop"]:
        try:
            if monitor is None:
                monitor = db.connect()
            ok = db.writable(monitor)
        except Exception as exc:
            ok = False
            if monitor is not None:
                try:
                    monitor.close()
                except Exception:
                    pass
            monitor = None
            last_error = reason_of(exc)
        else:
            last_error = ""
        with lock:
            if ok and state["server"] is None:
                state["server"] = open_listener()
                print(f"{time.time():.3f} open: the database takes writes", file=sys.stderr,
                      flush=True)
            elif not ok and state["server"] is not None:
                close_listener(state["server"])
                state["server"] = None
                why = last_error or "the database cannot take writes"
                print(f"{time.time():.3f} closed: {why}", file=sys.stderr, flush=True)
            state["writable"] = ok
        if first and ok:
            print("ready", flush=True)
            first = False
        time.sleep(HEALTH_INTERVAL_S)
    if state["server"] is not None:
        close_listener(state["server"])
    return 0


# ------------------------------------------------------------------------------ writer

def write(args):
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(now=True))
    ledger = {}                    # seq -> entry
    sock, buffer, connects = None, b"", 0

    def connect():
        nonlocal sock, buffer, connects
        try:
            sock = socket.create_connection((args.dst, args.port), timeout=0.5)
            sock.setblocking(False)
            buffer, connects = b"", connects + 1
        except OSError:
            sock = None

    connect()
    print("ready", flush=True)
    if args.wait_go:
        sys.stdin.readline()
    start = time.time()
    end, interval, seq = start + args.duration, 1.0 / args.rate, 0
    next_send = start
    while not stop["now"]:
        now = time.time()
        if now >= end and all(e["t_ack"] or e["error"] for e in ledger.values()
                              if e["t_sent"] > now - args.timeout):
            break
        if now >= end + args.timeout:
            break
        if now >= next_send and now < end:
            seq += 1
            entry = {"seq": seq, "t_sent": now, "t_ack": None, "server": None,
                     "commit_ms": None, "error": None, "connection": connects}
            ledger[seq] = entry
            if sock is None:
                connect()
            if sock is None:
                entry["error"] = "connect: refused or unreachable"
            else:
                try:
                    sock.sendall(f"W {args.client} {seq}\n".encode())
                except OSError as exc:
                    entry["error"] = f"send: {exc.strerror or exc}"
                    sock.close()
                    sock = None
            next_send += interval
            if next_send < now - 1.0:            # fell behind by more than a second: skip
                next_send = now
        if sock is not None:
            ready, _, _ = select.select([sock], [], [], min(0.005, max(0.0, next_send - now)))
            if ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:                      # the connection broke: a new one next
                    sock.close()
                    sock = None
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                t = time.time()
                for line in lines:
                    reply = parse_reply(line.decode(errors="replace"))
                    entry = ledger.get(reply["seq"]) if reply else None
                    if entry is None:
                        continue
                    entry["server"] = reply["server"]
                    if reply["ok"]:
                        entry["t_ack"], entry["commit_ms"] = t, reply["commit_ms"]
                    else:
                        entry["error"] = reply["reason"]
        else:
            time.sleep(min(0.005, max(0.0, next_send - time.time())))
    if sock is not None:
        sock.close()
    with open(args.out, "w") as fh:
        json.dump({"client": args.client, "start": start, "end": time.time(),
                   "rate": args.rate, "connections": connects,
                   "writes": [ledger[k] for k in sorted(ledger)]}, fh)
    return 0


# ------------------------------------------------------------------ probe and lag

def local_connection(engine, socket_path):
    """A superuser connection through a node's own socket (probe and lag run beside it)."""
    if engine == "galera":
        import pymysql
        return pymysql.connect(unix_socket=socket_path, user="root", password="",
                               autocommit=False, connect_timeout=2)
    import psycopg2
    return psycopg2.connect(host=socket_path, user="postgres", dbname="postgres",
                            connect_timeout=2)


# what "local only" means per engine: the same commit, not waiting for any other site
LOCAL_ONLY = {"galera": "SET SESSION wsrep_on = OFF",          # not replicated at all
              "postgresql": "SET synchronous_commit = local"}  # not waiting for a standby
PROBE_TABLE = {"galera": "lab.probe", "postgresql": "probe"}


def probe(args):
    """Unloaded commit time: --count commits one after another as the app commits them
    (replicated), then as many local only; one JSON object {replicated: [ms], local: [ms]}.
    The writes go to a table of their own (never counted as the app's writes)."""
    conn = local_connection(args.engine, args.socket)
    table = PROBE_TABLE[args.engine]
    out = {}
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (k INT PRIMARY KEY, v INT NOT NULL)")
        conn.commit()
        for kind in ("replicated", "local"):
            if kind == "local":
                cur.execute(LOCAL_ONLY[args.engine])
                conn.commit()
            times = []
            for i in range(args.count):
                key = i + (0 if kind == "replicated" else args.count)
                cur.execute(f"DELETE FROM {table} WHERE k = %s", (key,))
                cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (key, i))
                t = time.perf_counter()
                conn.commit()
                times.append(round(1000 * (time.perf_counter() - t), 3))
                time.sleep(args.gap)
            out[kind] = times
    conn.close()
    print(json.dumps(out), flush=True)
    return 0


LAG_SQL = {
    # a standby: the WAL it has received (bytes), and its replay lag (the clock minus the
    # commit time of the last transaction it replayed)
    "standby": "select pg_last_wal_receive_lsn() - '0/0', extract(epoch from clock_timestamp() "
               "- pg_last_xact_replay_timestamp()) * 1000, pg_is_in_recovery()",
    # the primary: the WAL it has written (bytes): where the standby's position stands in time
    "primary": "select pg_current_wal_lsn() - '0/0', null, not pg_is_in_recovery()",
}


def lag(args):
    """Replication lag samples every --interval s until SIGTERM, JSON lines. On a standby:
    {t, recv, replay_ms} (received WAL position, replay lag); on the primary: {t, lsn} (its
    WAL position). A standby's receive lag at t is t minus when the primary's WAL reached the
    position the standby has received (lab/analysis/datametrics.py receive_lag). Sampling
    stops once the node changes role (a promoted standby)."""
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(now=True))
    conn = local_connection("postgresql", args.socket)
    conn.autocommit = True
    print("ready", flush=True)
    with open(args.out, "w") as fh, conn.cursor() as cur:
        while not stop["now"]:
            try:
                cur.execute(LAG_SQL[args.role])
                position, replay, in_role = cur.fetchone()
            except Exception:
                break
            if not in_role:
                break
            sample = {"t": round(time.time(), 4)}
            if args.role == "standby":
                sample.update(recv=None if position is None else int(position),
                              replay_ms=None if replay is None else round(float(replay), 3))
            else:
                sample["lsn"] = int(position)
            fh.write(json.dumps(sample) + "\n")
            fh.flush()
            time.sleep(args.interval)
    return 0


# ------------------------------------------------------------------------------- CLI

def parser():
    """The command line (the argv builders below write it)."""
    parser = argparse.ArgumentParser(prog="python -m lab.agents.dataapp")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--port", type=int, default=80)
    s.add_argument("--engine", choices=tuple(SCHEMA), required=True)
    s.add_argument("--db", action="append", required=True,
                   help="the database's address (PostgreSQL: every node, the primary is found)")
    s.add_argument("--payload", type=int, default=0,
                   help="bytes of (random, incompressible) document stored with each write")
    w = sub.add_parser("write")
    w.add_argument("--dst", required=True)
    w.add_argument("--port", type=int, default=80)
    w.add_argument("--client", required=True)
    w.add_argument("--rate", type=float, default=50.0)
    w.add_argument("--duration", type=float, required=True)
    w.add_argument("--timeout", type=float, default=2.0,
                   help="how long a write may wait for its answer at the end")
    w.add_argument("--out", required=True)
    w.add_argument("--wait-go", action="store_true",
                   help="after 'ready', wait for a line on stdin before writing")
    p = sub.add_parser("probe")
    p.add_argument("--engine", choices=tuple(SCHEMA), required=True)
    p.add_argument("--socket", required=True, help="the node's socket (PostgreSQL: its folder)")
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--gap", type=float, default=0.02, help="seconds between commits")
    g = sub.add_parser("lag")
    g.add_argument("--socket", required=True, help="the node's socket folder")
    g.add_argument("--role", choices=("standby", "primary"), default="standby")
    g.add_argument("--interval", type=float, default=0.01)
    g.add_argument("--out", required=True)
    return parser


def probe_argv(engine, socket_path, count=30):
    return python_module(__name__, "probe", engine=engine, socket=socket_path, count=count)


def lag_argv(socket_path, out, interval=0.01, role="standby"):
    return python_module(__name__, "lag", socket=socket_path, out=out, interval=interval,
                         role=role)


def serve_argv(name, port, engine, addresses, payload=0):
    return python_module(__name__, "serve", name=name, port=port, engine=engine,
                         db=list(addresses), payload=payload or None)


def write_argv(dst, port, client, rate, duration, out, wait_go=True):
    return python_module(__name__, "write", dst=dst, port=port, client=client,
                         rate=float(rate), duration=float(duration), out=out, wait_go=wait_go)


def main(argv=None):
    args = parser().parse_args(argv)
    return {"serve": serve, "write": write, "probe": probe, "lag": lag}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
