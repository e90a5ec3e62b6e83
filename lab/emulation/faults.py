"""Faults carried out on a running lab, and the one timeline runner every experiment and bench
uses. What a fault *is* (its data, its parsing, which hosts it takes down) is in
lab/model/faults.py; this is what it *does*: which interfaces go down, which delay element
drops everything, which process stops.
"""

import dataclasses
import time

from lab import sh
from lab.emulation import fabric, shaping
from lab.errors import LabError
from lab.model.faults import isolation_links


class FaultInjector:
    """The faults of lab/model/faults.py on one LabNetwork (lab.faults)."""

    def __init__(self, lab):
        self.lab = lab
        self.spread_ms = None     # how long the last power-off's batch of ports took, ms

    def inject(self, fault):
        """Carry out one Fault."""
        action, target = fault.action, fault.target
        if action in ("cut", "heal"):
            self.set_link(target, up=action == "heal")
        elif action in ("gray", "ungray"):
            self.gray_link(target, on=action == "gray")
        elif action in ("power-off", "power-on"):
            self.power_site(target, on=action == "power-on")
        elif action in ("isolate", "rejoin"):
            self.isolate_site(target, isolated=action == "isolate")
        elif action in ("server-down", "server-up"):
            self.host_link(target, up=action == "server-up")
        elif action == "controller-stop":
            self.lab.controller.stop()       # the switches keep their flows: fail mode secure
        elif action == "controller-start":
            self.lab.controller.restart()    # a new process, the same intent and port
        else:
            raise LabError(f"unknown fault action {action!r}")

    def set_link(self, name, up):
        """Cut (both switch ports down: carrier loss, seen at once) or restore a link."""
        self.set_links([name], up)

    def set_links(self, names, up):
        """Cut or restore several links in one instant (one `ip -batch`: a partition is not
        a sequence of cuts, whose intermediate states a quorum protocol would act on)."""
        topo = self.lab.topo
        set_down(ports_of_links(topo, names), up)

    def gray_link(self, name, on):
        """A gray failure: the link stays up (no carrier loss) but drops every frame."""
        lab = self.lab
        link = lab.topo.link(name)
        if name in lab.delaylines:
            lab.delayline_command(name, f"gray {name} {'on' if on else 'off'}")
        elif lab.platform.delay_method == "netem":
            shaped = dataclasses.replace(link, loss=100.0) if on else link
            shaped = dataclasses.replace(shaped, delay_ms=lab.delays.get(name, link.delay_ms))
            for end in link.ends:                    # in-place swaps per end (per class)
                for argv in shaping.element_cmds(lab.topo.port_to(end, name).intf, shaped,
                                                 lab.qos):
                    sh.run(argv, check=shaped.impaired or bool(shaped.bw))
        else:
            raise LabError(f"link {name} has no delay element to gray (the userspace delay line "
                           "runs only on links with delay, jitter or loss); give it a delay")

    def isolate_site(self, name, isolated):
        """Cut (or restore) every link between site `name` and the other sites, at once."""
        self.set_links(isolation_links(self.lab.topo, name), up=not isolated)

    def power_site(self, name, on):
        """Power a site off or on: every port of its switch, every host interface in it, and
        the far end of each of its links: a neighbour loses carrier when the light stops
        arriving, one propagation delay (the link's delay) after the site went dark, so what
        was already on the wire still arrives (as on a real link; the kernel path's veths
        would drop the carrier at once)."""
        lab = self.lab
        # one batch, links to other sites first, then to clients, then the hosts: a batch
        # takes ~1-2 ms per port, and what must not slip through in that spread is data
        # leaving for another site after the site is gone (a real power loss is one instant;
        # an acknowledgement racing out to a client a ms later is the smaller error)
        topo = lab.topo
        sites = {s.name for s in topo.sites}
        ranked, far = [], {}
        for port in topo.ports(name):
            if port.peer_kind != "link":
                ranked.append((2, port.intf))
                continue
            link = topo.link(port.peer)
            ranked.append((0 if set(link.ends) <= sites else 1, port.intf))
            delay = lab.delays.get(link.name, link.delay_ms) or 0.0
            far.setdefault(delay, []).extend(topo.port_to(end, link.name).intf
                                             for end in link.ends if end != name)
        switch_side = ([intf for _, intf in sorted(ranked, key=lambda r: r[0])]
                       + [f"{name}-eth{number}" for number in lab.extra_ports.get(name, [])])
        if not on:                 # the power goes: every port of the site at once, first
            t = time.monotonic()
            set_down(switch_side, up=False)
            self.spread_ms = round(1000 * (time.monotonic() - t), 2)
            for delay in sorted(far):          # then each neighbour, as the light stops
                time.sleep(max(0.0, t + delay / 1000 - time.monotonic()))
                set_down(far[delay], up=False)
        for host in lab.topo.hosts:
            if lab.current_switch(host.name) == name:
                self.host_link(host.name, up=on)
        if on:
            set_down(switch_side + [i for group in far.values() for i in group], up=True)

    def host_link(self, name, up):
        """A server (or client) goes down or comes back: its interface."""
        self.lab.node_run(name, ["ip", "link", "set", self.lab.topo.host(name).intf,
                                 "up" if up else "down"])
        if up:                    # the kernel dropped its routes through the interface
            for argv in self.lab.host_routes(name):
                self.lab.node_run(name, argv)

    # a host moving is not a fault, but it is done to a running lab the same way (VM mobility)

    def move_host(self, name, to_switch):
        """Re-link host `name` to switch `to_switch` on a new port; it keeps its IP and MAC.

        The host sends a gratuitous ARP once linked. Returns {port, t_unlinked, t_linked}
        (monotonic seconds: when the old link went, and when the gratuitous ARP was sent)."""
        lab = self.lab
        host = lab.topo.host(name)
        t_unlinked = time.monotonic()
        number = lab.relink(name, to_switch)
        gateway = lab.topo.switch(host.switch).gateway
        for argv in ([["ip", "link", "set", host.intf, "address", host.mac],
                      ["ip", "addr", "replace", str(host.ip), "dev", host.intf],
                      ["ip", "link", "set", host.intf, "up"]]
                     + fabric.gateway_routes(lab.topo, host.intf, gateway)
                     + (shaping.offload_cmds(host.intf) if lab.platform.datapath == "user" else [])):
            lab.node_run(name, argv)
        # arping sends at once but lingers a second for replies: do not wait for it
        lab.popen(name, ["arping", "-U", "-c", "1", "-I", host.intf, str(host.ip.ip)],
                  f"gratuitous arp of {name}")
        return {"port": number, "t_unlinked": t_unlinked, "t_linked": time.monotonic()}


def ports_of_links(topo, names):
    """The switch-side interfaces of links (both ends of each)."""
    return [topo.port_to(end, name).intf for name in names for end in topo.link(name).ends]


def set_down(interfaces, up):
    """Set interfaces (in the root namespace) up or down with one `ip -batch`."""
    if interfaces:
        word = "up" if up else "down"
        sh.run(["ip", "-batch", "-"],
               stdin="".join(f"link set {intf} {word}\n" for intf in interfaces))


def run_timeline(injector, faults, t0, until=None, every=None, announce=None, tick=0.01):
    """Inject each fault (injector.inject, normally lab.faults) at t0 + its time
    (CLOCK_REALTIME), in order; then wait until t0 + until when given. every(now): called
    about once a second meanwhile (progress lines); announce(fault, t): after each fault is
    injected. Returns [(fault, the time it was injected)]: the instant just before the action
    began."""
    done, next_call = [], t0 + 1

    def wait_until(deadline):
        nonlocal next_call
        while True:
            now = time.time()
            if every is not None and now >= next_call:
                every(now)
                next_call += 1
            if now >= deadline:
                return
            time.sleep(min(tick, deadline - now))

    for fault in faults:
        wait_until(t0 + fault.at)
        t = time.time()
        injector.inject(fault)
        done.append((fault, t))
        if announce is not None:
            announce(fault, t)
    if until is not None:
        wait_until(t0 + until)
    return done
