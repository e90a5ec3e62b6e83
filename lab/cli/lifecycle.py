"""A lab that stays up between commands: up, status, faults at the prompt, exec, down.

    sudo python lab/run.py up dual-active          # builds it, returns with it running
    sudo python lab/run.py status [--json]         # nodes, links, controller, VIPs, backups
    sudo python lab/run.py fail|heal|gray|ungray LINK
    sudo python lab/run.py power-off|power-on SITE
    sudo python lab/run.py move HOST SITE
    sudo python lab/run.py exec NODE -- CMD...
    sudo python lab/run.py cli                     # a prompt on the running lab
    sudo python lab/run.py down                    # exact teardown

`up` starts a supervisor: a process of its own session (python -m lab.cli.lifecycle serve
SPEC) that builds the lab with the same code as every experiment (network.running_lab: the run
lock, the ledger under /run/activelab, exact teardown), hands it to the controller and then
serves requests, one JSON line each way, on a Unix socket only root can open
(/run/activelab/lab.sock). The session file beside it (lab.json) names the supervisor (PID and
start time), the topology and the run folder. `down` asks the supervisor to stop and waits
until it has torn the lab down; a supervisor that died is cleaned up from its ledger (as
`lab/run.py clean` does). While a lab is up every experiment refuses to start (the run lock
is held) and says how to stop it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lab.emulation import state
from lab.errors import LabError

REQUEST_TIMEOUT_S = 120.0  # a request's answer (a power-off waits for the controller)
UP_TIMEOUT_S = 300.0       # build + controller ready (a 16-site lab under load: minutes)
DOWN_TIMEOUT_S = 120.0     # teardown of a big lab
LINK_DEADLINE_S = 5.0      # how long fail/heal wait for the controller to see the change
MOVE_REACH_S = 10.0        # how long a move waits for a client to reach the moved host


def session_path():
    return state.state_dir() / "lab.json"


def socket_path():
    return state.state_dir() / "lab.sock"


class Session:
    """The session file of the lab that is up (None from load() when none is)."""

    def __init__(self, data):
        self.data = data

    @classmethod
    def load(cls):
        try:
            data = json.loads(session_path().read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(f"{session_path()}: unreadable session file ({exc}); take the lab "
                           "down with: sudo python lab/run.py down") from None
        return cls(data)

    def save(self):
        path = session_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, path)

    def alive(self):
        """The supervisor that wrote it still runs (PID and start time match)."""
        pid = self.data.get("pid")
        return bool(pid) and state.proc_start_time(pid) == self.data.get("start_time")

    def describe(self):
        return (f"{self.data.get('topology')} (supervisor pid {self.data.get('pid')}, up since "
                f"{self.data.get('started')}, run folder {self.data.get('run_dir')})")


def running_session():
    """The session of the lab that is up, or None (a dead supervisor's file is not one)."""
    session = Session.load()
    return session if session is not None and session.alive() else None


def refuse_while_up(what):
    """Raise the one-line error an experiment (or a second `up`) gets while a lab is up."""
    session = running_session()
    if session is not None:
        raise LabError(f"a lab is up: {session.describe()}; {what}: take it down first with: "
                       "sudo python lab/run.py down")


# ---------------------------------------------------------------------------- the client


def request(cmd, timeout=REQUEST_TIMEOUT_S, **args):
    """Send one request to the supervisor; its answer ({ok, out, data, error})."""
    session = running_session()
    if session is None:
        raise LabError("no lab is up; start one with: sudo python lab/run.py up TOPOLOGY")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(session.data["socket"]))
            sock.sendall((json.dumps({"cmd": cmd, "args": args}) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            raise LabError(f"the lab's supervisor (pid {session.data['pid']}) did not answer "
                           f"'{cmd}' within {timeout:g} s; see "
                           f"{session.data.get('run_dir')}/supervisor.log") from None
        except OSError as exc:
            raise LabError(f"cannot reach the lab's supervisor at {session.data['socket']} "
                           f"({exc.strerror or exc}); take the lab down with: "
                           "sudo python lab/run.py down") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise LabError(f"the lab's supervisor answered '{cmd}' with no reply; see "
                       f"{session.data.get('run_dir')}/supervisor.log") from None
    if not answer.get("ok"):
        raise LabError(answer.get("error") or f"'{cmd}' failed")
    return answer


def up(spec, log=print):
    """Start the supervisor with `spec` (topology, options, run folder) and wait until it has
    the lab up with the controller ready; returns the session. On failure the supervisor has
    torn down what it built: one line says why (exit 1)."""
    refuse_while_up("a second lab cannot go up")
    run_dir = Path(spec["run_dir"])
    spec_file = run_dir / "lab-spec.json"
    spec_file.write_text(json.dumps(spec, indent=1))
    log_file = run_dir / "supervisor.log"
    repo = Path(__file__).resolve().parent.parent.parent
    with open(log_file, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lab.cli.lifecycle", "serve", str(spec_file)],
                                cwd=repo, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    deadline = time.monotonic() + UP_TIMEOUT_S
    shown = 0
    try:
        while True:
            shown = follow(log_file, shown, log)
            code = proc.poll()
            session = Session.load()
            if (session is not None and session.data.get("pid") == proc.pid
                    and session.data.get("state") == "ready"):
                follow(log_file, shown, log)
                return session
            if code is not None:
                follow(log_file, shown, log)
                raise LabError(f"the lab did not come up: {last_error(log_file)} "
                               f"(the supervisor exited {code}; its log: {log_file})")
            if time.monotonic() > deadline:
                stop_child(proc)
                raise LabError(f"the lab was not up within {UP_TIMEOUT_S:g} s; it was torn "
                               f"down; see {log_file}")
            time.sleep(0.1)
    except (KeyboardInterrupt, SystemExit, BaseException) as exc:
        if not isinstance(exc, LabError) and proc.poll() is None:
            stop_child(proc)                     # interrupted: the supervisor tears down
        raise


def stop_child(proc, timeout=DOWN_TIMEOUT_S):
    """SIGTERM the supervisor `up` started (its child: waited for, so no zombie remains)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass


def follow(path, shown, log):
    """Print the progress lines the supervisor wrote since `shown` bytes; the new offset."""
    try:
        with open(path, "rb") as fh:
            fh.seek(shown)
            data = fh.read()
    except OSError:
        return shown
    end = data.rfind(b"\n") + 1
    for line in data[:end].decode(errors="replace").splitlines():
        if line.startswith("[") or line.startswith("warning:"):
            log(line)
    return shown + end


def last_error(log_file):
    try:
        lines = [l for l in Path(log_file).read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return "(no log)"
    errors = [l for l in lines if l.startswith("error:")]
    return (errors[-1][len("error:"):].strip() if errors else lines[-1] if lines else "(empty log)")


def stop_supervisor(pid, start_time, timeout=DOWN_TIMEOUT_S):
    """SIGTERM the supervisor (it tears the lab down) and wait for it; True when it exited."""
    if start_time is None or state.proc_start_time(pid) != start_time:
        return True
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while state.proc_start_time(pid) == start_time:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def down(log=print):
    """Take the lab down: ask the supervisor, wait until it is gone; or, when it died, remove
    what its ledger holds. Returns the problems (empty: nothing left)."""
    session = Session.load()
    if session is None:
        raise LabError("no lab is up (nothing to take down); start one with: "
                       "sudo python lab/run.py up TOPOLOGY")
    pid, start_time = session.data.get("pid"), session.data.get("start_time")
    if session.alive():
        log(f"taking down {session.describe()}")
        try:
            request("down", timeout=10.0)
        except LabError:
            pass                                 # not answering: SIGTERM does the same
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while session.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if session.alive() and not stop_supervisor(pid, start_time):
            raise LabError(f"the supervisor (pid {pid}) did not stop within "
                           f"{DOWN_TIMEOUT_S:g} s; see {session.data.get('run_dir')}/supervisor.log")
    else:
        log(f"the lab's supervisor (pid {pid}) is gone: removing what its ledger holds")
    problems = []
    ledger = state.Ledger.load()
    if ledger is not None and not ledger.owner_alive():
        lock = state.RunLock().acquire()
        try:
            problems = state.teardown(ledger, log=log)
        finally:
            lock.release()
    for path in (session_path(), socket_path()):
        path.unlink(missing_ok=True)
    return problems


def exec_argv(node, argv):
    """The argv that runs `argv` inside lab node `node` of the lab that is up."""
    answer = request("node", name=node)
    return ["mnexec", "-a", str(answer["data"]["pid"])] + list(argv)


# ------------------------------------------------------------------------- the supervisor


class Terminated(BaseException):
    """SIGTERM/SIGHUP/SIGINT in the supervisor: leave the serve loop, tear down."""


def serve(spec_file):
    """The supervisor's life: build the lab, hand it to the controller, serve requests until
    `down` or a signal; the lab is torn down exactly on every way out."""
    from lab.emulation.controller import intent_for
    from lab.experiment import Options, Progress, RunContext
    from lab.emulation.probe import choose_platform
    from lab.model.topology import load_topology, with_dci

    def on_signal(signum, frame):
        raise Terminated(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    spec = json.loads(Path(spec_file).read_text())
    run_dir = Path(spec["run_dir"])
    log = Progress()
    session = None
    server = None
    try:
        topo = load_topology(spec["topology"])
        if spec.get("dci_delay") or spec.get("dci_bw"):
            topo = with_dci(topo, delay=spec.get("dci_delay"), bw=spec.get("dci_bw"))
        platform = choose_platform(spec.get("datapath", "auto"), spec.get("delay_method", "auto"))
        opts = Options.parse({k: spec.get(k) for k in ("mode", "vip_policy", "bfd_ms")})
        ctx = RunContext(experiment="up", topo=topo, platform=platform, run_dir=run_dir,
                         options=spec, opts=opts, log=log)
        with ctx.open_lab() as lab:
            ready = lab.attach_controller(intent_for(topo, opts.mode, opts.vip_policy),
                                          bfd_ms=opts.bfd_ms)
            log(f"controller ready in {ready:.1f}s")
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            socket_path().unlink(missing_ok=True)
            server.bind(str(socket_path()))
            os.chmod(socket_path(), 0o600)
            server.listen(4)
            server.settimeout(0.5)
            session = Session({"pid": os.getpid(), "start_time": state.proc_start_time(os.getpid()),
                               "topology": topo.name, "run_dir": str(run_dir),
                               "socket": str(socket_path()), "state": "ready",
                               "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "mode": opts.mode, "vip_policy": opts.vip_policy,
                               "bfd_ms": opts.bfd_ms, "datapath": platform.datapath,
                               "delay_method": platform.delay_method})
            session.save()
            log(f"the lab is up ({topo.name}); take it down with: sudo python lab/run.py down")
            Supervisor(lab, opts).loop(server)
            log("taking the lab down")
        log("the lab is down, nothing is left")
        return 0
    except Terminated:
        print("[supervisor] terminated: the lab was torn down", flush=True)
        return 143
    except LabError as exc:
        print(f"error: {exc}", flush=True)
        return 1
    except Exception as exc:           # a bug: the traceback in the log, one line for `up`
        import traceback
        traceback.print_exc()
        print(f"error: internal error in the supervisor ({type(exc).__name__}: {exc})", flush=True)
        return 1
    finally:
        if server is not None:
            server.close()
        mine = Session.load()
        if mine is not None and mine.data.get("pid") == os.getpid():
            session_path().unlink(missing_ok=True)
            socket_path().unlink(missing_ok=True)


class Supervisor:
    """Requests on the running lab: each a method `do_<cmd>(**args)` returning (text, data)."""

    def __init__(self, lab, opts):
        self.lab = lab
        self.opts = opts
        self.links = {l.name: "up" for l in lab.topo.links}       # up | cut | gray
        self.sites = {s.name: "on" for s in lab.topo.sites}       # on | off
        self.stopping = False

    def loop(self, server):
        while not self.stopping:
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(10.0)
                try:
                    line = b""
                    while not line.endswith(b"\n"):
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        line += chunk
                    answer = self.handle(json.loads(line))
                except (OSError, ValueError) as exc:
                    answer = {"ok": False, "error": f"bad request ({exc})"}
                try:
                    conn.settimeout(REQUEST_TIMEOUT_S)
                    conn.sendall((json.dumps(answer, default=str) + "\n").encode())
                except OSError:
                    pass

    def handle(self, req):
        cmd = str(req.get("cmd", "")).replace("-", "_")
        method = getattr(self, f"do_{cmd}", None)
        if method is None:
            return {"ok": False, "error": f"unknown request {req.get('cmd')!r}"}
        try:
            text, data = method(**req.get("args", {}))
        except LabError as exc:
            return {"ok": False, "error": str(exc)}
        except TypeError as exc:
            return {"ok": False, "error": f"bad request {req.get('cmd')!r} ({exc})"}
        print(f"[supervisor] {req.get('cmd')} {json.dumps(req.get('args', {}))}: {text}",
              flush=True)
        return {"ok": True, "out": text, "data": data}

    # ------------------------------------------------------------------ names, checked

    def link(self, name):
        if name not in self.links:
            raise LabError(f"unknown link {name!r}; the links are: {', '.join(self.links)}")
        return name

    def site(self, name):
        if name not in self.sites:
            raise LabError(f"unknown site {name!r}; the sites are: {', '.join(self.sites)}")
        return name

    def host(self, name):
        hosts = [h.name for h in self.lab.topo.hosts]
        if name not in hosts:
            raise LabError(f"unknown host {name!r}; the hosts are: {', '.join(hosts)}")
        return name

    # ---------------------------------------------------------------------- requests

    def do_status(self):
        data = status_of(self.lab, self.links, self.sites)
        return format_status(data), data

    def do_node(self, name):
        names = [h.name for h in self.lab.topo.hosts] + [s.name for s in self.lab.topo.switches]
        if name not in names:
            raise LabError(f"unknown node {name!r}; exec runs in a host or switch: "
                           f"{', '.join(names)}")
        return f"{name} is pid {self.lab.node_pid(name)}", {"pid": self.lab.node_pid(name)}

    def do_fail(self, link):
        return self.set_link(self.link(link), up=False)

    def do_heal(self, link):
        return self.set_link(self.link(link), up=True)

    def set_link(self, name, up):
        from lab.cli.interactive import link_report, wait_link_seen
        if self.links[name] == "gray":
            raise LabError(f"link {name} is gray; ungray it first (lab/run.py ungray {name})")
        self.lab.faults.set_link(name, up=up)
        self.links[name] = "up" if up else "cut"
        seen = wait_link_seen(self.lab, name, up, LINK_DEADLINE_S)
        return link_report(name, up, seen, LINK_DEADLINE_S), {"link": name, "state": self.links[name],
                                                              "controller_saw_it": seen}

    def do_gray(self, link):
        return self.gray(self.link(link), on=True)

    def do_ungray(self, link):
        return self.gray(self.link(link), on=False)

    def gray(self, name, on):
        if self.links[name] == "cut":
            raise LabError(f"link {name} is cut; heal it first (lab/run.py heal {name})")
        self.lab.faults.gray_link(name, on=on)
        self.links[name] = "gray" if on else "up"
        what = ("drops every frame; its carrier stays up (BFD finds it)" if on
                else "forwards again")
        return f"{name} {what}", {"link": name, "state": self.links[name]}

    def do_power_off(self, site):
        return self.power(self.site(site), on=False)

    def do_power_on(self, site):
        return self.power(self.site(site), on=True)

    def power(self, name, on):
        want = "on" if on else "off"
        if self.sites[name] == want:
            return f"{name} is already powered {want}", {"site": name, "power": want}
        self.lab.faults.power_site(name, on=on)
        self.sites[name] = want
        return f"{name} powered {want}", {"site": name, "power": want}

    def do_move(self, host, site):
        self.host(host)
        switches = [s.name for s in self.lab.topo.switches]
        if site not in switches:
            raise LabError(f"unknown site {site!r}; move a host to one of: {', '.join(switches)}")
        if self.lab.current_switch(host) == site:
            raise LabError(f"{host} is already at {site}")
        if self.sites.get(site) == "off":
            raise LabError(f"{site} is powered off; power it on first")
        self.moved_from = self.lab.current_switch(host)
        moved = self.lab.faults.move_host(host, site)
        client, back_ms = self.reached_again(host, moved["t_unlinked"])
        after = (f"; {client} reaches it again: its ping answered {back_ms:.0f} ms after "
                 f"{host} left {self.moved_from} (the ping's own start included)"
                 if back_ms is not None else
                 f"; {client} could NOT reach it within {MOVE_REACH_S:g} s (see controller.log)"
                 if client else "")
        return (f"{host} moved to {site} (port {moved['port']}); it announced itself with a "
                f"gratuitous ARP{after}", {"host": host, "site": site, "port": moved["port"],
                                           "client": client, "reached_again_ms": back_ms})

    def reached_again(self, host, t_unlinked):
        """(client, ms from unlinking until a client's ping was answered) after a move; the
        ms is None when no client reached it within MOVE_REACH_S (client None: no client)."""
        clients = [h.name for h in self.lab.topo.clients
                   if self.sites.get(self.lab.current_switch(h.name)) != "off"]
        if not clients:
            return None, None
        ip = str(self.lab.topo.host(host).ip.ip)
        deadline = time.monotonic() + MOVE_REACH_S
        while time.monotonic() < deadline:
            if self.lab.node_run(clients[0], ["ping", "-c1", "-W1", ip],
                                 check=False).returncode == 0:
                return clients[0], 1000 * (time.monotonic() - t_unlinked)
        return clients[0], None

    def do_paths(self, src, dst):
        from lab.cli.interactive import describe_paths
        lines = describe_paths(self.lab, src, dst)
        return "\n".join(lines), {"lines": lines}

    def do_down(self):
        self.stopping = True
        return "taking the lab down", {}


def status_of(lab, links, sites):
    """The running lab as a dict (status --json): nodes, links with state and shaping, the
    controller, VIP placement, backup coverage."""
    from lab.emulation import traffic
    topo = lab.topo
    ctl = lab.controller_status() or {}
    servers = ctl.get("servers", {})
    dpid = {s.name: s.dpid for s in topo.switches}
    live = {}
    for a, pa, b, pb, is_live in ctl.get("links", []):
        live[frozenset([(a, pa), (b, pb)])] = is_live
    hosts = []
    for h in topo.hosts:
        at = lab.current_switch(h.name)
        hosts.append({"name": h.name, "role": h.role, "site": at, "ip": str(h.ip.ip),
                      "mac": h.mac, "health": (None if h.name not in servers
                                               else "up" if servers[h.name] else "down")})
    link_rows = []
    for l in topo.links:
        ends = frozenset((dpid[e], topo.port_to(e, l.name).number) for e in l.ends)
        state_now = links.get(l.name, "up")
        if state_now == "up" and any(sites.get(e) == "off" for e in l.ends):
            state_now = "down (site off)"
        link_rows.append({"name": l.name, "kind": l.kind, "ends": list(l.ends), "state": state_now,
                          "bw_mbit": lab.bws.get(l.name, l.bw),
                          "delay_ms": l.delay_ms,
                          "jitter_ms": l.jitter_ms, "loss_pct": l.loss,
                          "controller": ("live" if live.get(ends) else "down"
                                         if ends in live else "unknown")})
    vips = []
    for service in topo.services:
        for client in topo.clients:
            if sites.get(lab.current_switch(client.name)) == "off":
                answer = ""
            else:
                answer = traffic.vip_answer(lab, client.name, service.vip, service.port)
            vips.append({"service": service.name, "vip": str(service.vip), "client": client.name,
                         "server": answer or None,
                         "site": lab.current_switch(answer) if answer else None})
    return {
        "topology": topo.name,
        "platform": {"datapath": lab.platform.datapath, "delay": lab.platform.delay_method},
        "run_dir": str(lab.run_dir),
        "sites": [{"name": s.name, "power": sites.get(s.name, "on")} for s in topo.sites],
        "switches": [{"name": s.name, "kind": s.kind, "dpid": s.dpid,
                      "connected": s.dpid in ctl.get("switches", [])} for s in topo.switches],
        "hosts": hosts,
        "nodes": [{"name": h["name"], "kind": "host", "role": h["role"], "site": h["site"]}
                  for h in hosts] + [{"name": s.name, "kind": "switch", "role": s.kind,
                                      "site": s.name} for s in topo.switches],
        "links": link_rows,
        "controller": {"running": lab.controller.running, "pid": lab.controller.pid,
                       "mode": ctl.get("mode"),
                       "switches_connected": len(ctl.get("switches", [])),
                       "log": str(lab.controller.log)},
        "vip_placement": vips,
        "backup_coverage": ctl.get("backup_coverage"),
    }


def format_status(data):
    from lab.analysis.results import format_table
    lines = [f"lab {data['topology']} ({data['platform']['datapath']} datapath, delay by "
             f"{data['platform']['delay']}); run folder {data['run_dir']}",
             "sites: " + ", ".join(f"{s['name']} {s['power']}" for s in data["sites"]), ""]
    lines.append(format_table(
        ["link", "kind", "ends", "state", "controller", "bw Mbit/s", "delay ms", "loss %"],
        [(l["name"], l["kind"], "-".join(l["ends"]), l["state"], l["controller"],
          fmt(l["bw_mbit"]), fmt(l["delay_ms"]), fmt(l["loss_pct"])) for l in data["links"]]))
    lines.append("")
    lines.append(format_table(["host", "role", "site", "ip", "health"],
                              [(h["name"], h["role"], h["site"], h["ip"], h["health"] or "-")
                               for h in data["hosts"]]))
    ctl = data["controller"]
    lines += ["", f"controller: {'running' if ctl['running'] else 'NOT RUNNING'} "
                  f"(pid {ctl['pid']}, {ctl['mode']} mode), {ctl['switches_connected']}/"
                  f"{len(data['switches'])} switches connected; log {ctl['log']}"]
    if data["vip_placement"]:
        lines.append(format_table(["client", "service", "vip", "served by", "site"],
                                  [(v["client"], v["service"], v["vip"], v["server"] or "NO ANSWER",
                                    v["site"] or "-") for v in data["vip_placement"]]))
    cover = data.get("backup_coverage")
    if cover:
        lines.append(f"backup coverage: {cover.get('covered')}/{cover.get('pairs')} site pairs "
                     "have a loop-free alternate in the switches"
                     if isinstance(cover, dict) else f"backup coverage: {cover}")
    return "\n".join(lines)


def fmt(value):
    if value is None or value == "":
        return "-"
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def main(argv):
    if len(argv) == 2 and argv[0] == "serve":
        return serve(argv[1])
    sys.stderr.write("usage: python -m lab.cli.lifecycle serve SPEC_JSON (started by "
                     "lab/run.py up)\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
