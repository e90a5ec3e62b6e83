"""The interactive lab: the Mininet CLI on a running topology with the controller attached.

    sudo python lab/run.py cli dual-active

Hosts, switches and links have the topology's names (`client1 ping 10.200.0.10`,
`dc1-srv1 ip route`). Extras: `pingall` (between lab hosts, not the delay-line nodes), `vip`
(which server answers each client), `sites`, `paths SRC DST` (current and backup path, by the
controller's own decision code), `fail LINK` / `heal LINK`, `gray LINK` / `ungray LINK`,
`power-off SITE` / `power-on SITE`, `move HOST SITE`, `flows SWITCH` (a readable flow and
group dump). Leaving the CLI (exit, Ctrl-D) tears the lab down. (With a lab that is up,
`lab/run.py cli` attaches to it instead: lab/cli/attached.py.)
"""

import re
import time

from mininet.cli import CLI
from mininet.log import setLogLevel

from controllers.intent import Intent
from controllers.logic import ControllerLogic
from lab import sh
from lab.emulation import traffic
from lab.emulation.controller import intent_for
from lab.errors import LabError


LINK_DEADLINE_S = 5.0      # how long fail/heal wait for the controller (BFD after a heal: ~1-2 s)


def wait_link_seen(lab, name, up, timeout):
    """True once the controller's status shows link `name` live (up) or not; False at timeout."""
    link = lab.topo.link(name)
    dpids = {s.name: s.dpid for s in lab.topo.switches}
    ends = {(dpids[e], lab.topo.port_to(e, name).number) for e in link.ends}
    deadline = time.monotonic() + timeout
    while True:
        status = lab.controller_status() or {"links": []}
        if any({(a, pa), (b, pb)} == ends and live == up for a, pa, b, pb, live in status["links"]):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def link_report(name, up, seen, timeout):
    """What fail/heal print: whether the controller saw the change before the deadline."""
    done = "restored" if up else "cut"
    if seen:
        return f"{name} {done}; the controller sees it {'up' if up else 'down'}"
    return (f"{name} {done}; the controller did NOT see it {'up' if up else 'down'} within "
            f"{timeout:g} s (see controller.log in the run folder)")


class LabCLI(CLI):
    """Mininet's CLI, aware of which nodes are lab hosts and which services exist."""

    prompt = "activelab> "

    def __init__(self, lab, opts=None, **kwargs):
        from lab.cli.lifecycle import Supervisor
        self.lab = lab
        self.faults = Supervisor(lab, opts)      # the same fault verbs as lab/run.py fail ...
        super().__init__(lab.net, **kwargs)

    def precmd(self, line):
        from lab.cli.attached import translate
        return translate(super().precmd(line))

    def _verb(self, verb, line, n, usage, keys):
        args = line.split()
        if len(args) != n:
            print(f"usage: {usage}")
            return
        try:
            text, _ = getattr(self.faults, f"do_{verb}")(**dict(zip(keys, args)))
        except LabError as exc:
            print(f"error: {exc}")
            return
        print(text)

    def do_gray(self, line):
        """gray LINK: the link drops every frame but keeps its carrier (BFD finds it)."""
        self._verb("gray", line, 1, "gray LINK", ("link",))

    def do_ungray(self, line):
        """ungray LINK: end a gray failure."""
        self._verb("ungray", line, 1, "ungray LINK", ("link",))

    def do_power_off(self, line):
        """power-off SITE: the site's switch, hosts and links go dark at once."""
        self._verb("power_off", line, 1, "power-off SITE", ("site",))

    def do_power_on(self, line):
        """power-on SITE: power a site back on."""
        self._verb("power_on", line, 1, "power-on SITE", ("site",))

    def do_move(self, line):
        """move HOST SITE: re-link a host to another site (it keeps its IP and MAC)."""
        self._verb("move", line, 2, "move HOST SITE", ("host", "site"))

    def do_pingall(self, line):
        """Ping between every pair of lab hosts (delay-line nodes are not hosts)."""
        self.mn.ping(hosts=[self.lab.nodes[h.name] for h in self.lab.topo.hosts])

    def do_vip(self, line):
        """Show which server answers each client on each service VIP."""
        for service in self.lab.topo.services:
            for client in self.lab.topo.clients:
                server = traffic.vip_answer(self.lab, client.name, service.vip, service.port)
                print(f"{client.name} -> {service.name} {service.vip}:{service.port}: "
                      f"{server or 'no answer'}")


    def do_sites(self, line):
        """Sites and client edges: subnet, hosts, and what the controller knows of them."""
        status = self.lab.controller_status() or {}
        servers = status.get("servers", {})
        for switch in self.lab.topo.switches:
            hosts = [h.name for h in self.lab.topo.hosts if self.lab.current_switch(h.name) == switch.name]
            health = [f"{h} {'up' if servers.get(h) else 'DOWN' if h in servers else ''}".strip()
                      for h in hosts]
            print(f"{switch.name:6} {switch.kind:4} {str(switch.subnet):15} gateway {switch.gateway}  "
                  f"{', '.join(health)}")

    def do_paths(self, line):
        """paths SRC DST: the current path between two switches or hosts, and the backup."""
        args = line.split()
        if len(args) != 2:
            print("usage: paths SRC DST (switch or host names)")
            return
        try:
            print("\n".join(describe_paths(self.lab, *args)))
        except LabError as exc:
            print(f"error: {exc}")

    def do_fail(self, line):
        """fail LINK: cut a link (both switch ports down)."""
        self._link(line, up=False)

    def do_heal(self, line):
        """heal LINK: restore a cut link."""
        self._link(line, up=True)

    def _link(self, line, up):
        names = [l.name for l in self.lab.topo.links]
        if line.strip() not in names:
            print(f"usage: {'heal' if up else 'fail'} LINK, one of: {', '.join(names)}")
            return
        self._verb("heal" if up else "fail", line, 1, "", ("link",))

    def do_flows(self, line):
        """flows SWITCH: the switch's flows and groups, without counters and durations."""
        switch = line.strip()
        if switch not in [s.name for s in self.lab.topo.switches]:
            print(f"usage: flows SWITCH, one of: {', '.join(s.name for s in self.lab.topo.switches)}")
            return
        print("\n".join(readable_flows(switch)))


def readable_flows(switch):
    """`ovs-ofctl dump-flows` and `dump-groups` with the noise removed."""
    flows = sh.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", switch]).stdout
    groups = sh.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", switch]).stdout
    noise = re.compile(r"\s*(cookie|duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?")
    lines = [noise.sub("", l).strip() for l in flows.splitlines() if "actions=" in l]
    lines.sort(key=lambda l: (int(re.search(r"table=(\d+)", l).group(1)) if "table=" in l else 0,
                              -int(re.search(r"priority=(\d+)", l).group(1)) if "priority=" in l else 0))
    return lines + [g.strip() for g in groups.splitlines() if "group_id" in g]


def describe_paths(lab, src, dst):
    """Lines naming the links of the current and backup paths, from the controller's status
    and its own route computation (controllers.logic)."""
    status = lab.controller_status()
    if not status:
        raise LabError("the controller has no status yet")
    topo = lab.topo
    names = {s.name: s.dpid for s in topo.switches}

    def switch_of(name):
        if name in names:
            return names[name]
        if name in {h.name for h in topo.hosts}:
            return names[lab.current_switch(name)]
        raise LabError(f"unknown switch or host {name!r}")

    logic = ControllerLogic.from_links(Intent.load(lab.run_dir / "controller-intent.json"),
                                       status["links"])
    link_of = {}
    for link in topo.links:
        for end in link.ends:
            link_of[(names[end], topo.port_to(end, link.name).number)] = link.name
    routes = logic.routes()
    by_dpid = {v: k for k, v in names.items()}
    here, goal, hops, lines = switch_of(src), switch_of(dst), [], []
    while here != goal and len(hops) < 16:
        hop = routes.get((here, goal))
        if hop is None:
            return [f"{src} -> {dst}: no path"]
        primary, backup = hop
        hops.append(link_of.get((here, primary), f"port {primary}"))
        if backup is not None:
            lines.append(f"  backup at {by_dpid[here]}: {link_of.get((here, backup), backup)}"
                         + (" (fast-failover group)" if logic.intent.mode == "protection" else ""))
        here = logic.peer[(here, primary)][0]
    return [f"{src} -> {dst}: {' -> '.join(hops) or 'same switch'}"] + lines


def banner(topo, opts):
    services = ", ".join(f"{v.name} {v.vip}:{v.port}" for v in topo.services) or "none"
    return (f"\nActiveLab {topo.name}: controller in {opts.mode} mode, VIP policy "
            f"{opts.vip_policy}.\n"
            f"hosts: {', '.join(h.name for h in topo.hosts)}\n"
            f"services: {services}\n"
            "try: pingall | vip | sites | paths client1 dc2-srv1 | fail dci-a | gray dci-a | "
            "power-off dc1 | move dc1-srv1 dc2 | flows dc1 | client1 ping -c3 10.200.0.10 | "
            "exit\n")


def run_cli(ctx):
    """Bring the lab up, attach the controller, and hand the terminal to the CLI."""
    with ctx.open_lab() as lab:
        ready = lab.attach_controller(intent_for(ctx.topo, ctx.opts.mode, ctx.opts.vip_policy),
                                      bfd_ms=ctx.opts.bfd_ms)
        ctx.log(f"controller ready in {ready:.1f}s")
        print(banner(ctx.topo, ctx.opts), flush=True)
        setLogLevel("output")              # command output and pingall results, not build chatter
        LabCLI(lab, ctx.opts)
        setLogLevel("warning")
        ctx.log("leaving the CLI: tearing down")
