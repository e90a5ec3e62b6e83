"""The data tier of a running lab (lab.data): the distribution's databases, started in the
topology's hosts, with exact teardown.

  galera      MariaDB with Galera (multi-master), one node per site, and garbd, Galera's
              arbitrator (a vote, no data), as the witness in a third site;
  postgresql  a primary and streaming standbys, each sync (in synchronous_standby_names: a
              commit waits for it) or async.

No systemd and no system configuration: every server is started by the lab inside its host's
namespace with every setting on its command line (`--no-defaults`), its data directory, socket
and log in the run's scratch space (lab/emulation/state.scratch_root(), recorded in the ledger
before it is created and removed at teardown), and is stopped by its PID (its whole process
group: the servers fork workers and state-transfer helpers). The lab talks to each server over
its Unix socket, a file: reachable from outside the host's namespace.

The builders below are pure (argv lists, tested without root); DataTier runs them.
"""

import concurrent.futures
import glob
import os
import shutil
import sys
import time
from pathlib import Path

from lab import sh
from lab.emulation import probe
from lab.errors import LabError

CLUSTER = "activelab"
MYSQL_PORT, GCOMM_PORT, PG_PORT = 3306, 4567, 5432
ETCD_CLIENT_PORT, ETCD_PEER_PORT, PATRONI_PORT = 2379, 2380, 8008
# Patroni's timing (its dynamic configuration): the leader lease lasts PATRONI_TTL_S (20 s is
# the least Patroni 3 accepts), renewed every loop (1 s); DCS and PostgreSQL operations are
# retried for 3 s (loop_wait + 2 x retry_timeout <= ttl). A primary that cannot renew its
# lease demotes itself before the lease can pass to another node: that is its fencing.
PATRONI_TTL_S, PATRONI_LOOP_S, PATRONI_RETRY_S = 20, 1, 3
# How fast Galera notices a lost peer: keepalives every 200 ms, a peer silent for 1 s is
# suspected, gone after 3 s. The partition's RTO on the witness's side is bounded by the
# suspect timeout plus the new view's installation (issue target: <= 2 x suspect timeout).
SUSPECT_S = 1.0
GALERA_OPTIONS = ";".join([
    "evs.keepalive_period=PT0.2S", "evs.inactive_check_period=PT0.2S",
    # while a new membership is negotiated (GATHER) a node repeats its join message every
    # join_retrans_period (default 1 s): as long as the suspect timeout, a peer that is only
    # slow to re-announce itself got suspected too (garbd dropped dc1 when dc2 was cut off)
    "evs.join_retrans_period=PT0.25S",
    # how many messages a node may have in flight unacknowledged (defaults 4 and 2, meant for
    # a LAN); Galera's advice for a WAN is to raise them (it made no difference measurable
    # here at 200 writes/s, and keeps several commits per round trip possible)
    "evs.send_window=512", "evs.user_send_window=512",
    f"evs.suspect_timeout=PT{SUSPECT_S:g}S", "evs.inactive_timeout=PT3S",
    "evs.install_timeout=PT2S", "gmcast.peer_timeout=PT3S"])
GALERA_PROVIDER = "/usr/lib/galera/libgalera_smm.so"
PG_PEER_TIMEOUT_S = 2
READY_S = 60.0                 # a server's start (stretched by the platform's patience)
PROMOTE_AFTER_S = 2.0          # the DR runbook: promote once the primary is unreachable this long


NODE_MB, WITNESS_MB = 200, 10   # scratch space a database node / garbd needs, roughly
ETCD_MB = 80                    # an etcd member (it preallocates a 64 MB WAL file)


def check_space(spec):
    """Refuse a data tier the scratch space cannot hold, before anything starts: one line
    naming the folder, what is free and the fix."""
    from lab.emulation import state
    root = state.scratch_root()
    need = (NODE_MB * len(spec.nodes) + (WITNESS_MB if spec.witness else 0)
            + ETCD_MB * len(spec.consensus))
    probe_at = root
    while not probe_at.exists() and probe_at != probe_at.parent:
        probe_at = probe_at.parent                # the folder is made later: ask its disk
    free = shutil.disk_usage(probe_at).free // (1 << 20)
    if free < need:
        raise LabError(f"{root}: {free} MB free, the data tier needs about {need} MB; free "
                       "the disk or set ACTIVELAB_SCRATCH to a folder on a larger one")


def tmpdir_of(datadir):
    """A node's own temporary folder, beside its data directory. Never the shared /tmp: a
    starting mariadbd deletes every '#sql*' file in its tmpdir (leftovers of its own crash,
    it assumes), so installs side by side removed each other's temporary tables ('Unknown
    table mysql.tmp_user_sys', 1 in 3 compare-designs runs here)."""
    return Path(f"{datadir}.tmp")


def galera_install_argv(datadir):
    """mariadb-install-db: a fresh, empty data directory (system tables, root without a
    password on the socket), owned by the mysql user."""
    return ["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=mysql",
            "--auth-root-authentication-method=normal", "--skip-test-db",
            "--innodb-log-file-size=8M", f"--tmpdir={tmpdir_of(datadir)}"]


def galera_argv(name, ip, datadir, members, bootstrap=False, quorum=True, log=None):
    """mariadbd as one Galera node. members: every node's IP (the gcomm:// address);
    bootstrap: the first node, which starts the cluster; quorum=False: pc.ignore_quorum, a
    node that keeps taking writes without a majority (the split-brain variant)."""
    options = GALERA_OPTIONS + ("" if quorum else ";pc.ignore_quorum=true;pc.ignore_sb=true")
    argv = ["/usr/sbin/mariadbd", "--no-defaults", "--user=mysql", f"--datadir={datadir}",
            f"--socket={datadir}/mysqld.sock", f"--pid-file={datadir}/mysqld.pid",
            f"--tmpdir={tmpdir_of(datadir)}", f"--port={MYSQL_PORT}", f"--bind-address={ip}",
            f"--log-error={log or Path(datadir) / 'error.log'}", "--skip-name-resolve",
            "--binlog-format=ROW", "--default-storage-engine=InnoDB",
            "--innodb-autoinc-lock-mode=2", "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=8M", "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=100", "--performance-schema=OFF",
            "--wsrep-on=ON", f"--wsrep-provider={GALERA_PROVIDER}",
            f"--wsrep-provider-options={options}", f"--wsrep-cluster-name={CLUSTER}",
            "--wsrep-cluster-address=gcomm://" + ",".join(members),
            f"--wsrep-node-address={ip}", f"--wsrep-node-name={name}",
            "--wsrep-sst-method=rsync"]
    return argv + (["--wsrep-new-cluster"] if bootstrap else [])


def garbd_argv(members, log):
    """garbd, the arbitrator: a member that votes and stores nothing (foreground, so the
    lab holds its PID)."""
    return ["garbd", "--address", "gcomm://" + ",".join(f"{ip}:{GCOMM_PORT}" for ip in members),
            "--group", CLUSTER, "--options", GALERA_OPTIONS, "--log", str(log)]


def mariadb_argv(socket, statement):
    """The mariadb client on a node's socket: tab-separated rows, no header."""
    return ["mariadb", f"--socket={socket}", "--user=root", "--batch", "--skip-column-names",
            "--connect-timeout=2", "-e", statement]


def postgres_bindir():
    """The newest PostgreSQL server installed (/usr/lib/postgresql/VERSION/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        raise LabError("PostgreSQL is not installed: run bash install.sh (it installs the "
                       "distribution's postgresql)")
    return Path(found[-1]).parent


def as_postgres(argv):
    """argv run as the postgres user (it refuses root); setpriv execs, so the PID is the
    server's own."""
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + argv


def pg_initdb_argv(bindir, datadir):
    return as_postgres([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                        "--auth=trust", "--no-sync", "--no-instructions"])


PG_HBA = ("# the lab's own hosts, inside their namespaces only\n"
          "local all all trust\nhost all all 0.0.0.0/0 trust\n"
          "host replication all 0.0.0.0/0 trust\n")


# every PostgreSQL server's settings (a runbook-managed one's on its command line, a Patroni
# one's in Patroni's configuration)
PG_PARAMETERS = {
    "shared_buffers": "16MB", "max_connections": 100, "wal_level": "replica",
    "max_wal_senders": 8, "hot_standby": "on", "wal_receiver_status_interval": "1s",
    # a lost peer is noticed in seconds, not the default minute: a primary whose synchronous
    # standby is gone stops counting it (the app then fails at once)
    "wal_sender_timeout": f"{PG_PEER_TIMEOUT_S}s",
    "wal_receiver_timeout": f"{PG_PEER_TIMEOUT_S}s", "logging_collector": "off"}


def pg_common(datadir, ip, sockdir):
    argv = ["-D", str(datadir), "-c", f"listen_addresses={ip}", "-c", f"port={PG_PORT}",
            "-c", f"unix_socket_directories={sockdir}"]
    for key, value in PG_PARAMETERS.items():
        argv += ["-c", f"{key}={value}"]
    return argv


def etcd_argv(name, ip, datadir, members):
    """etcd as one member of the lab's consensus store. members: {name: ip} of every member.
    Heartbeat 100 ms, election after 1 s (etcd's defaults, written out)."""
    return ["etcd", "--name", name, "--data-dir", str(datadir),
            "--listen-peer-urls", f"http://{ip}:{ETCD_PEER_PORT}",
            "--initial-advertise-peer-urls", f"http://{ip}:{ETCD_PEER_PORT}",
            "--listen-client-urls", f"http://{ip}:{ETCD_CLIENT_PORT}",
            "--advertise-client-urls", f"http://{ip}:{ETCD_CLIENT_PORT}",
            "--initial-cluster", ",".join(f"{n}=http://{a}:{ETCD_PEER_PORT}"
                                          for n, a in members.items()),
            "--initial-cluster-state", "new", "--initial-cluster-token", CLUSTER,
            "--heartbeat-interval", "100", "--election-timeout", "1000",
            "--log-outputs", "stderr"]


def patroni_config(name, ip, datadir, sockdir, etcd_ips, bindir, sync, pgpass):
    """Patroni's configuration of one node (a dict, written as YAML): its PostgreSQL, its
    REST API, etcd (v3 API) and the cluster's bootstrap. Trust authentication inside the lab's
    namespaces (no passwords anywhere); every node's name is its host's (application_name)."""
    return {
        "scope": CLUSTER, "name": name,
        "restapi": {"listen": f"{ip}:{PATRONI_PORT}", "connect_address": f"{ip}:{PATRONI_PORT}"},
        "etcd3": {"hosts": [f"{a}:{ETCD_CLIENT_PORT}" for a in etcd_ips]},
        "bootstrap": {
            "dcs": {"ttl": PATRONI_TTL_S, "loop_wait": PATRONI_LOOP_S,
                    "retry_timeout": PATRONI_RETRY_S,
                    "maximum_lag_on_failover": 1 << 30,     # measure the loss, do not refuse
                    "synchronous_mode": bool(sync),
                    "postgresql": {"use_pg_rewind": False, "use_slots": False,
                                   "parameters": PG_PARAMETERS}},
            "initdb": [{"encoding": "UTF8"}, "no-sync"],
            "pg_hba": PG_HBA.strip().splitlines()[1:]},
        "postgresql": {
            "listen": f"{ip}:{PG_PORT}", "connect_address": f"{ip}:{PG_PORT}",
            "data_dir": str(datadir), "bin_dir": str(bindir), "pgpass": str(pgpass),
            "authentication": {"superuser": {"username": "postgres"},
                               "replication": {"username": "postgres"}},
            "parameters": {"unix_socket_directories": str(sockdir)},
            "pg_hba": PG_HBA.strip().splitlines()[1:]},
        "tags": {"nofailover": False, "noloadbalance": False},
    }


def patroni_argv(config):
    """Patroni (the distribution's) with its configuration file, as the postgres user."""
    return as_postgres(["patroni", str(config)])


def sync_names(standbys):
    """synchronous_standby_names for {host: sync|async}: every sync standby must confirm."""
    sync = [name for name, mode in standbys if mode == "sync"]
    return f"FIRST {len(sync)} (" + ", ".join(f'"{n}"' for n in sync) + ")" if sync else ""


def pg_primary_argv(bindir, datadir, ip, sockdir, standbys):
    return as_postgres([str(bindir / "postgres"), *pg_common(datadir, ip, sockdir),
                        "-c", f"synchronous_standby_names={sync_names(standbys)}"])


def pg_basebackup_argv(bindir, primary_ip, datadir):
    """The standby's copy of the primary (streaming its WAL meanwhile)."""
    return as_postgres([str(bindir / "pg_basebackup"), "-h", str(primary_ip), "-p", str(PG_PORT),
                        "-U", "postgres", "-D", str(datadir), "-X", "stream",
                        "--checkpoint=fast", "--no-sync"])


def pg_standby_argv(bindir, datadir, ip, sockdir, primary_ip, name):
    """A standby streaming from the primary; application_name is its host's name (what
    synchronous_standby_names lists)."""
    conninfo = f"host={primary_ip} port={PG_PORT} user=postgres application_name={name}"
    return as_postgres([str(bindir / "postgres"), *pg_common(datadir, ip, sockdir),
                        "-c", f"primary_conninfo={conninfo}"])


def psql_argv(sockdir, statement):
    return ["psql", "-h", str(sockdir), "-p", str(PG_PORT), "-U", "postgres", "-X", "-A", "-t",
            "-q", "-v", "ON_ERROR_STOP=1", "-c", statement]


class DataTier:
    """The topology's data tier on one LabNetwork (lab.data)."""

    def __init__(self, lab, spec=None, log_dir=None):
        """spec: the data tier to run (default: the topology's); log_dir: where the servers'
        logs go (default RUN_DIR/data)."""
        self.lab = lab
        self.spec = spec or lab.topo.data
        self.log_dir = Path(log_dir) if log_dir else None
        self.nodes = {}           # host -> {"dir": scratch folder, "proc": Popen, ...}
        self.witness = None       # garbd's Popen
        self.started = False      # True once every server replicates and the schema exists
        self.payload = 0          # bytes of document the apps store with each write

    def folder(self, name):
        """A scratch folder for `name` (the lab's, recorded in the ledger before it is made)."""
        return self.lab.scratch_folder(name)

    def log_file(self, name, kind, owner=None):
        """RUN_DIR/data/HOST-KIND.log: a server's log stays with the run's results (its
        scratch folder goes at teardown); owner: the user that writes it itself."""
        path = (self.log_dir or self.lab.run_dir / "data") / f"{name}-{kind}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        if owner:
            os.chown(path, *owner)
        return path

    def ip(self, host):
        return str(self.lab.topo.host(host).ip.ip)

    # ------------------------------------------------------------------------- start

    def start(self, quorum=True):
        """Start the topology's data tier and wait until it replicates."""
        if self.spec is None:
            raise LabError(f"topology {self.lab.topo.name} has no data tier; add a data: "
                           "section (see topologies/dual-active-data.yaml)")
        check_space(self.spec)
        t = time.monotonic()
        if self.spec.engine == "galera":
            self.start_galera(quorum)
        else:
            self.start_postgresql()
        self.create_schema()
        self.started = True
        return time.monotonic() - t

    def create_schema(self):
        """The application's tables (lab/agents/dataapp.py) and, for Galera, its user."""
        from lab.agents import dataapp
        first = self.spec.nodes[0]
        if self.spec.engine == "galera":
            self.sql(first, f"CREATE DATABASE IF NOT EXISTS {dataapp.DATABASE}; "
                            f"CREATE USER IF NOT EXISTS '{dataapp.APP_USER}'@'%'; "
                            f"GRANT ALL ON {dataapp.DATABASE}.* TO '{dataapp.APP_USER}'@'%'")
        self.sql(first, "; ".join(dataapp.SCHEMA[self.spec.engine]))

    def app_addresses(self, server):
        """The database addresses the app on `server` uses: Galera, its site's node (the
        nearest, for a multi-master cluster; the first node where its site has none);
        PostgreSQL, every node (the app finds the primary)."""
        if self.spec.engine == "postgresql":
            return [self.ip(n) for n in self.spec.nodes]
        site = self.lab.topo.host(server).switch
        local = [n for n in self.spec.nodes if self.lab.topo.host(n).switch == site]
        return [self.ip((local or list(self.spec.nodes))[0])]

    def start_galera(self, quorum):
        members = [self.ip(n) for n in self.spec.nodes]
        datadirs = {name: self.folder(name) for name in self.spec.nodes}
        for name, datadir in datadirs.items():
            os.chown(datadir, *mysql_ids())
            os.chown(self.folder(tmpdir_of(datadir).name), *mysql_ids())
        # every node's empty data directory at once (a joiner's is replaced by its state
        # transfer, but mariadbd needs one to start)
        with concurrent.futures.ThreadPoolExecutor(len(datadirs)) as pool:
            for done in [pool.submit(self.install_galera, name, d)
                         for name, d in datadirs.items()]:
                done.result()
        for index, name in enumerate(self.spec.nodes):
            datadir = datadirs[name]
            log = self.log_file(name, "mariadb", owner=mysql_ids())
            proc = self.lab.popen(name, galera_argv(name, self.ip(name), datadir, members,
                                                    bootstrap=index == 0, quorum=quorum,
                                                    log=log),
                                  f"galera node {name}", group=True, stdout=log, stderr=log,
                                  append=True)
            self.nodes[name] = {"dir": datadir, "proc": proc, "log": log,
                                "socket": datadir / "mysqld.sock"}
            # one joiner at a time: each takes a full state transfer from a synced node
            self.wait(name, lambda n=name: self.galera_status(n).get(
                "wsrep_local_state_comment") == "Synced", "synced with the cluster")
        if self.spec.witness:
            self.start_witness()

    def start_witness(self):
        """garbd in the witness's host, and wait until the cluster counts it."""
        witness = self.spec.witness
        folder = self.nodes.get(witness, {}).get("dir") or self.folder(witness)
        log = self.log_file(witness, "garbd")
        members = [self.ip(n) for n in self.spec.nodes]
        # cwd: garbd keeps its view of the cluster (gvwstate.dat) in its working directory
        self.witness = self.lab.popen(witness, garbd_argv(members, log), f"garbd on {witness}",
                                      group=True, stdout=log, stderr=log, append=True,
                                      cwd=folder)
        self.nodes[witness] = {"dir": folder, "proc": self.witness, "log": log}
        first = self.spec.nodes[0]
        self.wait(witness, lambda: self.galera_status(first).get(
            "wsrep_cluster_size") == str(len(self.spec.voters)), "a member of the cluster")

    def stop_witness(self):
        """Stop garbd (SIGTERM: it leaves the cluster gracefully, so the nodes keep their
        quorum) and wait until the cluster is the nodes alone."""
        witness = self.spec.witness
        self.lab.stop_process(self.witness, grace=5.0)
        self.witness = None
        first = self.spec.nodes[0]
        self.wait(witness, lambda: self.galera_status(first).get(
            "wsrep_cluster_size") == str(len(self.spec.nodes)), "gone from the cluster",
                  running=False)

    def install_galera(self, name, datadir):
        """mariadb-install-db into a node's empty data directory; its output goes to
        RUN_DIR/data/NODE-install.log, named in the one-line error when it fails."""
        log = self.log_file(name, "install")         # there from the start: a run folder
        proc = sh.run(galera_install_argv(datadir), timeout=probe.patience(120), check=False)
        log.write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "ERROR" in line]
            raise LabError(f"{name}: mariadb-install-db failed ({proc.returncode}): "
                           f"{(errors or ['no error line'])[0].strip()}; see {log}")

    def start_etcd(self):
        """etcd on every consensus host, and wait until it has a leader."""
        members = {host: self.ip(host) for host in self.spec.consensus}
        for host, ip in members.items():
            folder = self.folder(f"{host}.etcd")
            log = self.log_file(host, "etcd")
            proc = self.lab.popen(host, etcd_argv(host, ip, folder / "data", members),
                                  f"etcd {host}", group=True, stdout=log, stderr=log)
            self.nodes[f"{host}.etcd"] = {"dir": folder, "proc": proc, "log": log}
        first = self.spec.consensus[0]
        self.wait(f"{first}.etcd", lambda: self.etcd_healthy(first), "a member of a healthy "
                  "etcd cluster")

    def etcd_healthy(self, host):
        """etcd's own health answer on the host's client URL (it says false without a
        leader)."""
        code = ("import json, sys, urllib.request\n"
                f"r = urllib.request.urlopen('http://{self.ip(host)}:{ETCD_CLIENT_PORT}/health',"
                " timeout=1)\nsys.exit(0 if json.load(r).get('health') == 'true' else 1)\n")
        return self.lab.node_run(host, [sys.executable, "-c", code], check=False,
                                 timeout=5).returncode == 0

    def start_patroni(self):
        """Patroni on every PostgreSQL node, the primary first (it bootstraps the cluster and
        takes the leader lease), then the standbys (each a base backup of it)."""
        import yaml
        bindir = postgres_bindir()
        self.start_etcd()
        etcd_ips = [self.ip(h) for h in self.spec.consensus]
        sync = any(mode == "sync" for _, mode in self.spec.standbys)
        primary = self.spec.primary
        for name in self.spec.nodes:
            folder = self.folder(name)
            os.chown(folder, *postgres_ids())
            datadir, sockdir = folder / "data", folder / "run"
            sockdir.mkdir(mode=0o700)
            os.chown(sockdir, *postgres_ids())
            config = folder / "patroni.yml"
            config.write_text(yaml.safe_dump(patroni_config(
                name, self.ip(name), datadir, sockdir, etcd_ips, bindir, sync,
                folder / "pgpass"), sort_keys=False))
            os.chown(config, *postgres_ids())
            log = self.log_file(name, "patroni", owner=postgres_ids())
            # Patroni detaches the PostgreSQL it starts (a session of its own, so that the
            # database outlives a Patroni crash): its pid file is how teardown finds it
            self.lab.ledger.add_pidfile(datadir / "postmaster.pid", f"postgres of patroni {name}")
            proc = self.lab.popen(name, patroni_argv(config), f"patroni {name}", group=True,
                                  stdout=log, stderr=log)
            self.nodes[name] = {"dir": folder, "proc": proc, "log": log, "socket": sockdir,
                                "data": datadir, "pidfile": datadir / "postmaster.pid"}
            if name == primary:
                self.wait(name, lambda n=name: self.sql(n, "select pg_is_in_recovery()") == "f",
                          "the leader, accepting writes")
            else:
                self.wait(name, lambda n=name: n in self.pg_replicas(), f"streaming from "
                          f"{primary}")
        if sync:
            self.wait(primary, lambda: "sync" in self.pg_replicas().values(),
                      "committing with a synchronous standby")

    def start_postgresql(self):
        if self.spec.failover == "patroni":
            return self.start_patroni()
        bindir = postgres_bindir()
        primary = self.spec.primary
        for name in self.spec.nodes:
            folder = self.folder(name)
            datadir, sockdir = folder / "data", folder / "run"
            for path in (datadir, sockdir):
                path.mkdir(mode=0o700)
                os.chown(path, *postgres_ids())
            if name == primary:
                sh.run(pg_initdb_argv(bindir, datadir), timeout=120)
                (datadir / "pg_hba.conf").write_text(PG_HBA)
                argv = pg_primary_argv(bindir, datadir, self.ip(name), sockdir,
                                       self.spec.standbys)
            else:
                self.lab.node_run(name, pg_basebackup_argv(bindir, self.ip(primary), datadir),
                                  timeout=120)
                (datadir / "standby.signal").touch()
                os.chown(datadir / "standby.signal", *postgres_ids())
                argv = pg_standby_argv(bindir, datadir, self.ip(name), sockdir,
                                       self.ip(primary), name)
            log = self.log_file(name, "postgres")
            proc = self.lab.popen(name, argv, f"postgres {name}", group=True, stdout=log,
                                  stderr=log)
            self.nodes[name] = {"dir": folder, "proc": proc, "log": log, "socket": sockdir,
                                "data": datadir}
            if name == primary:
                self.wait(name, lambda n=name: self.sql(n, "select 1") == "1",
                          "accepting connections")
            else:
                self.wait(name, lambda n=name: n in self.pg_replicas(), "streaming from "
                          f"{primary}")

    def wait(self, name, ready, what, running=True):
        """Wait until ready() (with the platform's patience); LabError naming the server's
        log when it exits (running=False: it is meant to) or does not get there."""
        node = self.nodes[name]
        limit = probe.patience(READY_S)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if running and node["proc"].poll() is not None:
                raise LabError(f"{name}: the database server exited (code "
                               f"{node['proc'].returncode}) before it was {what}; see "
                               f"{node['log']}")
            try:
                if ready():
                    return
            except LabError:
                pass
            time.sleep(0.2)
        raise LabError(f"{name}: the database server was not {what} within {limit:g}s; see "
                       f"{node['log']}")

    def stop(self):
        """Stop every server of this data tier (by the PIDs we started) and remove their
        scratch folders; the lab keeps running (a new DataTier can start in it)."""
        from lab.emulation import state
        for name, node in reversed(list(self.nodes.items())):
            self.lab.stop_process(node["proc"], grace=0.0)    # its data is thrown away
            detached = node.get("pidfile") and state.pidfile_process(
                {"path": str(node["pidfile"]), "what": f"postgres of patroni {name}"})
            if detached:                                      # Patroni's own PostgreSQL
                state.stop_process(detached, grace=0.0)
            shutil.rmtree(node["dir"], ignore_errors=True)
            shutil.rmtree(tmpdir_of(node["dir"]), ignore_errors=True)   # a Galera node's
        self.nodes, self.witness, self.started = {}, None, False

    # ------------------------------------------------------------------------- query

    def sql(self, name, statement, timeout=10):
        """Run one statement on node `name` (through its socket); its output, stripped."""
        node = self.nodes[name]
        argv = (mariadb_argv(node["socket"], statement) if self.spec.engine == "galera"
                else psql_argv(node["socket"], statement))
        proc = sh.run(argv, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise LabError(f"{name}: {statement[:60]!r} failed: "
                           f"{(proc.stderr or proc.stdout).strip()[:200]}")
        return proc.stdout.strip()

    def present(self, name):
        """{(client, seq)} of the app's writes on node `name` (a Galera node outside the primary
        component is read as it is: wsrep_dirty_reads)."""
        statement = ("SET SESSION wsrep_dirty_reads = ON; SELECT client, seq FROM lab.writes"
                     if self.spec.engine == "galera" else "select client, seq from writes")
        out = self.sql(name, statement, timeout=30)
        sep = "\t" if self.spec.engine == "galera" else "|"
        return {(c, int(q)) for c, q in (line.split(sep) for line in out.splitlines()
                                         if sep in line)}

    def record(self, folder, log=print):
        """What each database holds now, as it is, into folder/present-NODE.tsv (a node that
        cannot be read, e.g. powered off, is logged and left out); returns the nodes read."""
        read = []
        for node in self.spec.nodes:
            try:
                rows = self.present(node)
            except LabError as exc:
                log(f"{node}: its writes cannot be read ({exc})")
                continue
            write_present(Path(folder) / f"present-{node}.tsv", rows)
            read.append(node)
        return sorted(read)

    def galera_status(self, name):
        """{wsrep status variable: value} of a Galera node."""
        out = self.sql(name, "SHOW STATUS LIKE 'wsrep_%'")
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def pg_replicas(self):
        """{standby: sync_state} of the standbys streaming from the primary now."""
        out = self.sql(self.spec.primary, "select application_name, sync_state from "
                                          "pg_stat_replication where state = 'streaming'")
        return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)

    def promote(self, name):
        """Promote a PostgreSQL standby to primary (pg_promote: waits until it is)."""
        return self.sql(name, "select pg_promote(true, 30)") == "t"

    def runbook(self, running, log, after_s=PROMOTE_AFTER_S):
        """PostgreSQL's failover as a DR runbook does it: promote the first standby (the
        synchronous one where there is one: it has every acknowledged commit) once the primary
        has been unreachable from the standby's host for `after_s`. It decides on reachability
        alone, as such runbooks do (during a partition both sides are primaries). Checks while
        running() is true; returns the time of the promotion or None."""
        standbys = sorted(self.spec.standbys, key=lambda s: s[1] != "sync")
        primary, standby = self.spec.primary, standbys[0][0]
        down_since = None
        while running():
            now = time.time()
            if reachable(self.lab, standby, self.ip(primary), PG_PORT):
                down_since = None
            else:
                down_since = down_since or now
                if now - down_since >= after_s:
                    t = time.time()
                    self.promote(standby)
                    log(f"[runbook] {primary} unreachable from {standby} for {after_s:g} s: "
                        f"{standby} promoted")
                    return t
            time.sleep(0.2)
        return None

    def rss_kb(self):
        """Resident memory of every data-tier server process and its workers, kB."""
        total = 0
        for node in self.nodes.values():
            pgid = node["proc"].pid
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                    if int(fields[2]) == pgid:          # the process group we started
                        total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
                except (OSError, ValueError, IndexError):
                    continue
        return total


def write_present(path, rows):
    """A database's writes as present-NODE.tsv: client TAB seq per line, sorted
    (lab.analysis.datametrics.read_present reads it)."""
    path.write_text("".join(f"{c}\t{s}\n" for c, s in sorted(rows)))


def reachable(lab, src, ip, port, timeout=0.5):
    """True when host `src` can open a TCP connection to ip:port within `timeout`."""
    code = (f"import socket\ntry:\n socket.create_connection(('{ip}', {port}), {timeout})\n"
            "except OSError:\n raise SystemExit(1)\n")
    return lab.node_run(src, [sys.executable, "-c", code], check=False).returncode == 0


def mysql_ids():
    import pwd
    entry = pwd.getpwnam("mysql")
    return entry.pw_uid, entry.pw_gid


def postgres_ids():
    import pwd
    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid
