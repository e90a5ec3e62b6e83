"""The lab's side of the controller: the intent it is given, and its process.

The controller runs as its own process (``python -m controllers.main``) listening on
127.0.0.1 only, logging into the run folder. The lab writes its intent (sites, subnets,
gateway, VIPs, declared link latencies) and waits until it has connected every switch and
discovered every link; everything else the controller finds out by itself.
"""

import json
import socket
import time

from controllers.main import controller_argv
from lab.emulation import traffic
from lab.errors import LabError

from controllers.intent import (DEFAULT_MODE, DEFAULT_POLICY, GATEWAY_MAC, Intent,
                                LinkIntent, ServiceIntent, SwitchIntent)


def intent_for(topo, mode=DEFAULT_MODE, policy=DEFAULT_POLICY, health_interval=0.5,
               routing="shortest", symmetric=False):
    """The controller's intent for a topology (an ``Intent``; ``to_dict`` is its JSON form).

    routing 'hot-potato' makes traffic enter the sites at the client edge's nearest site and
    leave each site by its own edge link (a common multi-site design, and the source of
    asymmetric paths through stateful firewalls); symmetric pins each client session's return
    path to the site (and firewall) it entered by."""
    dpid = {s.name: s.dpid for s in topo.switches}

    def end(switch, link):
        return dpid[switch], topo.port_to(switch, link.name).number

    intent = Intent(
        mode=mode, gateway_mac=GATEWAY_MAC,
        switches=tuple(SwitchIntent(s.name, s.dpid, s.kind, s.subnet, s.gateway)
                       for s in topo.switches),
        links=tuple(LinkIntent(l.name, end(l.a, l), end(l.b, l), float(l.delay_ms), l.kind)
                    for l in topo.links),
        services=tuple(ServiceIntent(v.name, v.vip, v.port,
                                     tuple((n, topo.host(n).ip.ip) for n in v.servers),
                                     v.primary, policy) for v in topo.services),
        health_interval=health_interval, routing=routing, symmetric=symmetric,
        host_names=tuple((str(h.ip.ip), h.name) for h in topo.hosts))
    # the controller's own check of its document, before any process starts
    return Intent.from_dict(intent.to_dict())


START_S = 90.0       # how long the controller may take to listen (a cold start compiles every
#                      module it imports: on Debian 13 under QEMU TCG that took over 15 s)


class ControllerProcess:
    """The controller as one process of the lab: its intent, log and status file in the run
    folder, listening on 127.0.0.1 only, started and stopped by its PID, restarted with the
    same intent and port, read through its status file.

    spawn(argv, what) starts a process recorded for teardown (LabNetwork.popen_root);
    stop(proc) stops one by its PID (LabNetwork.stop_process)."""

    def __init__(self, run_dir, spawn, stop):
        self.config = run_dir / "controller-intent.json"
        self.log = run_dir / "controller.log"
        self.status_path = run_dir / "controller-status.json"
        self._spawn, self._stop = spawn, stop
        self.argv = None
        self.proc = None
        self.intent = None            # what the running process was started with

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, intent):
        """Write the intent and start the process on a free port, without waiting for it (it
        loads os-ken meanwhile; start() waits). Switches connect only when pointed at it."""
        intent.save(self.config)
        self.status_path.unlink(missing_ok=True)
        self.port = free_port()
        self.argv = controller_argv(self.config, self.port, self.log, self.status_path)
        self.proc = self._spawn(self.argv, "controller")
        self.intent = intent

    def start(self, intent, timeout=START_S):
        """Start the process (unless spawn() started it with this intent) and wait until it
        listens; returns its port."""
        if not (self.running and self.intent == intent):
            if self.running:
                raise LabError("controller: spawned with another intent")
            self.spawn(intent)
        return self.wait_listening(timeout)

    def wait_listening(self, timeout=START_S):
        """Wait until the spawned process listens; returns its port."""
        try:
            traffic.wait_root_listening(self.port, timeout=timeout, proc=self.proc)
        except LabError as exc:
            raise LabError(f"controller: {exc}: see {self.log}") from None
        return self.port

    def stop(self):
        """Stop the process (the switches keep their flows: fail mode secure)."""
        if self.proc is not None:
            self._stop(self.proc)
            self.proc = None

    def restart(self):
        """A new process with the same intent and port (the switches reconnect by themselves)."""
        if self.proc is None and self.argv is not None:
            self.proc = self._spawn(self.argv, "controller")

    def status(self):
        return read_status(self.status_path)

    def wait(self, condition, what, timeout):
        """Poll the status file until condition(status) holds (LabError naming the log)."""
        return wait_status(self.status_path, condition, what, timeout, self.proc)


def free_port():
    """A free TCP port on 127.0.0.1 for the controller to listen on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_status(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def wait_status(path, condition, what, timeout=20.0, proc=None):
    """Poll the controller's status file until condition(status) holds."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LabError(f"the controller exited (code {proc.returncode}) while waiting for "
                           f"{what}; see {path.parent / 'controller.log'}")
        status = read_status(path)
        if status is not None and condition(status):
            return status
        time.sleep(0.05)
    raise LabError(f"the controller did not reach '{what}' within {timeout:g}s "
                   f"(last status: {json.dumps(status)[:300]}); see {path.parent / 'controller.log'}")


def bfd_cmd(intfs, interval_ms):
    """Enable BFD on switch ports (one ovs-vsctl transaction for all): detection after 3
    missed intervals (RFC 5880 multiplier)."""
    argv = ["ovs-vsctl"]
    for intf in intfs:
        argv += ["--", "set", "interface", intf, "bfd:enable=true", f"bfd:min_tx={interval_ms}",
                 f"bfd:min_rx={interval_ms}", "bfd:decay_min_rx=0"]
    return argv


def set_controller_cmd(bridges, port):
    """Point bridges at the controller on 127.0.0.1 (reconnect within 1 s, not OVS's 8 s),
    one Controller record each, in one ovs-vsctl transaction."""
    argv = ["ovs-vsctl"]
    for n, bridge in enumerate(bridges):
        argv += ["--", f"--id=@c{n}", "create", "Controller",
                 f"target=\"tcp:127.0.0.1:{port}\"", "max_backoff=1000",
                 "--", "set", "Bridge", bridge, f"controller=@c{n}"]
    return argv


def all_up(topo, status):
    """Every switch connected and every link discovered and live."""
    return (status is not None
            and sorted(status["connected"]) == sorted(s.dpid for s in topo.switches)
            and len(status["links"]) == len(topo.links) and all(l[4] for l in status["links"]))


def all_learned(topo, status, serving=None):
    """Every host located and every (serving) VIP server answering its health check."""
    wanted = {n for v in topo.services for n in v.servers}
    if serving is not None:
        wanted &= set(serving)
    return (len(status["hosts"]) >= len(topo.hosts)
            and all(status["servers"].get(n) for n in wanted))
