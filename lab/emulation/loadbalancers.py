"""L4-L7 load balancing: the distribution's HAProxy in each site, in front of the app servers.

Each site's load balancer (a host of the site, serving the VIP: anycast brings each client to
its nearest one) sends requests to its own site's app servers and, only when none of them
passes its health check, to the other sites' as `backup`: the "trombone" path, client ->
local LB -> across the DCI -> remote server. HTTP mode, so the LB keeps its connections to
the servers open and reuses them (`http-reuse always`): a request served across the DCI costs
one DCI round trip more, not a new TCP handshake each time.

Health checks: `GET /` every CHECK_INTER_MS, a server is down after FALL failed checks (a check
connects within min(timeout connect, inter) and reads within CHECK_TIMEOUT_MS) and back after
RISE good ones. Requests check too (`observe layer4`, `on-error mark-down`): a request that
cannot connect to a server within CONNECT_MS marks it down at once and is sent again
(`retries`, `option redispatch`), to a backup when no local server is left, so a client's
request that meets the failure is answered late rather than failed. HAProxy runs in the foreground (-db) so
the lab holds its PID (recorded in the ledger, stopped at teardown); its config and stats
socket live in the run's scratch space, its log output in RUN_DIR/haproxy/.
"""

from pathlib import Path

from lab import sh
from lab.agents import service
from lab.emulation import traffic
from lab.errors import LabError

CHECK_INTER_MS = 200
CHECK_TIMEOUT_MS = 150
CONNECT_MS = 100            # a server across the lab's DCIs answers a SYN within ~20 ms
FALL, RISE = 2, 2
BACKEND_PORT = 8080


def haproxy_config(port, local, remote, stats_socket, backend_port=BACKEND_PORT):
    """HAProxy's configuration text: a frontend on every address at `port`, a backend of the
    `local` servers with the `remote` ones as backups. local/remote: [(name, ip)]."""
    lines = [
        "global",
        "    maxconn 2000",
        f"    stats socket {stats_socket} mode 600 level admin",
        "",
        "defaults",
        "    mode http",
        f"    timeout connect {CONNECT_MS}ms",
        "    timeout client 10s",
        "    timeout server 5s",
        f"    timeout check {CHECK_TIMEOUT_MS}ms",
        "    retries 2",
        "    option redispatch",
        "",
        "frontend web",
        f"    bind :{port}",
        "    default_backend app",
        "",
        "backend app",
        "    balance roundrobin",
        "    http-reuse always",
        "    option httpchk GET /",
        f"    default-server inter {CHECK_INTER_MS}ms fall {FALL} rise {RISE} "
        "observe layer4 error-limit 1 on-error mark-down",
    ]
    lines += [f"    server {name} {ip}:{backend_port} check" for name, ip in local]
    lines += [f"    server {name} {ip}:{backend_port} check backup" for name, ip in remote]
    return "\n".join(lines) + "\n"


def haproxy_argv(config):
    """HAProxy in the foreground (-db: the lab holds its PID and stops it by it)."""
    return ["haproxy", "-db", "-f", str(config)]


def check_argv(config):
    """HAProxy's own check of a configuration (-c)."""
    return ["haproxy", "-c", "-q", "-f", str(config)]


def plan(topo):
    """Per site: (its load balancer host, its app servers) from a topology's service: the
    last server of each site balances, the others serve (a site needs two servers)."""
    service = topo.services[0]
    out = {}
    for site in topo.sites:
        servers = [h.name for h in topo.hosts_at(site.name) if h.role == "server"]
        if len(servers) < 2:
            continue
        out[site.name] = (servers[-1], servers[:-1])
    return out


class LoadBalancers:
    """An HAProxy per site in a running lab, in front of its app servers (start/stop)."""

    def __init__(self, lab, run_dir):
        self.lab = lab
        self.log_dir = Path(run_dir) / "haproxy"
        self.procs = {}           # site -> Popen
        self.apps = {}            # app server -> Popen

    def start(self, port):
        """The app servers (HTTP, BACKEND_PORT) and an HAProxy per site on `port`; waits
        until each HAProxy listens and counts its local servers up."""
        lab, topo = self.lab, self.lab.topo
        sites = plan(topo)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for site, (_, apps) in sites.items():
            for app in apps:
                self.apps[app] = lab.start_agent(
                    app, service.serve_argv(app, BACKEND_PORT, http=True), f"app {app}",
                    log=self.log_dir / f"app-{app}.log", wait=False)
        lab.wait_agents(list(self.apps.values()))
        scratch = lab.scratch_folder("haproxy")
        for site, (lb, apps) in sites.items():
            local = [(a, str(topo.host(a).ip.ip)) for a in apps]
            remote = [(a, str(topo.host(a).ip.ip)) for other, (_, others) in sites.items()
                      if other != site for a in others]
            sock = scratch / f"{site}.sock"
            config = scratch / f"{site}.cfg"
            config.write_text(haproxy_config(port, local, remote, sock))
            checked = sh.run(check_argv(config), check=False)
            if checked.returncode != 0:
                said = (checked.stderr or checked.stdout).strip().splitlines()
                raise LabError(f"{config}: HAProxy refused the configuration of {site} ("
                               f"{said[-1] if said else 'no message'}); see haproxy -c -f "
                               f"{config}")
            log = self.log_dir / f"{site}.log"
            self.procs[site] = lab.popen(lb, haproxy_argv(config), f"haproxy {site} on {lb}",
                                         stdout=log, stderr=log)
        for site, (lb, _) in sites.items():
            try:
                traffic.wait_listening(lab, lb, port, timeout=10)
            except LabError:
                raise LabError(f"HAProxy of {site} on {lb} did not listen on port {port}; "
                               f"see {self.log_dir / (site + '.log')}") from None
        return sites

    def stop(self):
        for proc in list(self.procs.values()) + list(self.apps.values()):
            self.lab.stop_process(proc)
        self.procs, self.apps = {}, {}
