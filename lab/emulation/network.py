"""The network builder: a topology brought up on Mininet and Open vSwitch, and torn down exactly.

This is the only module that talks to Mininet. Switches are Open vSwitch bridges named after the
sites (kernel datapath where the module exists, else userspace ``netdev``); hosts are Mininet
hosts named after the topology; every shaped link is HTB on both switch ports plus netem, or,
without sch_netem, a userspace delay line in a namespace of its own named after the link::

    netem:      dc1-eth3 ==================================== dc2-eth3      (htb + netem)
    delayline:  dc1-eth3 ---- dci-a-eth0 [dci-a] dci-a-eth1 ---- dc2-eth3   (htb | delay line)

Nothing is attached to the machine's real interfaces. Everything created is recorded in the
run's Ledger before it is created (see lab/emulation/state.py).
"""

import contextlib
import dataclasses
import os
import re
import select
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab import REPO, sh
from lab.agents import dataapp, service
from lab.emulation import (controller, databases, fabric, faults, firewall, firewalls, probe,
                           shaping, state, traffic)
from lab.errors import LabError

REPO_ROOT = REPO
OVS_RUNDIR = Path(os.environ.get("OVS_RUNDIR", "/var/run/openvswitch"))
CALIBRATION_MS = 1.0        # one-way delay of the link the base RTT is measured over
AGENT_READY_S = 60.0         # how long an agent may take to say 'ready' (Python + scapy imports),
#                              stretched by the platform's patience (5x on an emulated CPU, where
#                              four probe senders took 110 s)


def read_line(stream, timeout):
    """One line from a child's piped stdout, stripped; '' at its end, None after `timeout` s."""
    if timeout > 0:
        ready, _, _ = select.select([stream], [], [], timeout)
        if not ready:
            return None
    elif not select.select([stream], [], [], 0)[0]:
        return None
    return stream.readline().strip()


def wait_agents(procs, timeout=None):
    """Wait until every agent in `procs` said 'ready'; LabError naming the first that did
    not (it exited, said something else, or was silent for `timeout` s: by default
    AGENT_READY_S with the platform's patience) and its log."""
    timeout = probe.patience(AGENT_READY_S) if timeout is None else timeout
    deadline = time.monotonic() + timeout
    for proc in procs:
        what, log = proc.agent
        line = read_line(proc.stdout, deadline - time.monotonic())
        if line == "ready":
            continue
        if line:
            reason = f"said {line[:80]!r} instead of 'ready'"
        elif line is None:
            reason = f"said nothing within {timeout:g}s"
        else:                                      # its output ended: it exited
            try:
                reason = f"exited with code {proc.wait(5)}"
            except subprocess.TimeoutExpired:
                reason = "closed its output"
        last = tail_line(log)
        raise LabError(f"{what} did not start: it {reason}"
                       + (f" ({last[:160]})" if last else "") + f"; see {log}")


def go(procs):
    """Start agents that wait for 'go' (their --wait-go; started with stdin=PIPE) together:
    returns the instant (CLOCK_REALTIME) just before the first was told."""
    t = time.time()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.close()
    return t


def tail_line(path):
    """The last non-empty line of a (log) file, '' when there is none."""
    try:
        lines = [l.strip() for l in Path(path).read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    return next((l for l in reversed(lines) if l), "")


def ovs_pids():
    """{daemon: pid} of Open vSwitch's daemons (ovs-vswitchd, ovsdb-server), from their pid files."""
    pids = {}
    for daemon in ("ovs-vswitchd", "ovsdb-server"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids[daemon] = int((OVS_RUNDIR / f"{daemon}.pid").read_text().split()[0])
    return pids


def in_node(pid, argv):
    """argv run inside the network namespace of the node whose shell has `pid`."""
    return ["mnexec", "-a", str(pid)] + [str(a) for a in argv]


class LabNetwork:
    """A running topology. Use through :func:`running_lab`, which guarantees teardown."""

    def __init__(self, topo, platform, ledger, run_dir, log=print, seed=1):
        self.topo = topo
        self.platform = platform
        self.ledger = ledger
        self.run_dir = Path(run_dir)
        self.log = log
        self.seed = seed
        self.net = None
        self.nodes = {}
        self.delaylines = {}          # link name -> Popen
        self.agent_logs = []          # agents' stderr files: the empty ones go at stop
        self.processes = []           # Popen handles of everything else we started
        self.tree = frozenset()
        self.controller = controller.ControllerProcess(self.run_dir, self.popen_root,
                                                       self.stop_process)
        self.extra_ports = {}         # switch -> port numbers added after the build (moves)
        self.services = {}            # (server, port) -> Popen of its service
        self.via_gateway = False      # hosts route through the anycast gateway (controller)
        self.bfd_ms = None            # BFD interval on the inter-switch ports, once started
        self.moved = {}               # host -> the switch it was moved to
        self.delays = {}              # link -> the one-way delay its delay element adds now
        self.bws = {}                 # link -> its rate now, Mbit/s (set_link_bw)
        self.sync_link = firewall.sync_link(topo)
        self.firewalls = firewalls.Firewalls(self)
        self.scratch = None           # this run's scratch folder (scratch_folder)
        self.qos = topo.qos           # the QoS classes on the DCI now (set_qos turns them off)
        self.data = databases.DataTier(self)
        self.faults = faults.FaultInjector(self)

    # ------------------------------------------------------------------------------ build

    def delay_node_links(self):
        """Links that get a delay-line node (only with the userspace delay line)."""
        if self.platform.delay_method != "delayline":
            return []
        links = [l for l in self.topo.links if l.impaired]
        if self.sync_link is not None and self.sync_link.impaired:
            links.append(self.sync_link)
        return links

    def root_interfaces(self):
        """Interfaces the build creates in the root namespace: the switch ports."""
        return [p.intf for s in self.topo.switches for p in self.topo.ports(s.name)]

    def check_free(self):
        """Refuse to build over bridges or interfaces that exist and are not ours."""
        for switch in self.topo.switches:
            if state.bridge_exists(switch.name) or state.interface_exists(switch.name):
                raise LabError(f"{self.topo.source}: {switch.kind} {switch.name}: an OVS bridge or "
                               f"interface named {switch.name} already exists and is not this "
                               f"lab's; rename the {switch.kind} or remove that bridge")
        for intf in self.root_interfaces():
            if state.interface_exists(intf):
                raise LabError(f"interface {intf} already exists and is not this lab's; "
                               f"remove it (ip link del {intf}) or rename the switch")

    def start(self):
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import Node, OVSSwitch
        from mininet.link import Link

        setLogLevel("warning")
        self.check_free()
        if self.platform.datapath == "user":
            probe.load_modules("tun")                # the netdev bridges' own ports are taps
            if not Path("/dev/net/tun").exists():
                raise LabError("the userspace datapath needs /dev/net/tun: modprobe tun (or "
                               "use --datapath kernel)")
        topo, ledger = self.topo, self.ledger
        self.net = net = Mininet(controller=None, switch=OVSSwitch, build=False,
                                 autoSetMacs=False, autoStaticArp=False, waitConnected=False)
        for switch in topo.switches:
            ledger.add_bridge(switch.name)
            self.nodes[switch.name] = net.addSwitch(
                switch.name, cls=OVSSwitch, dpid=f"{switch.dpid:016x}",
                datapath=self.platform.datapath, failMode="secure", protocols="OpenFlow13")
        for host in topo.hosts:
            node = net.addHost(host.name, ip=str(host.ip), mac=host.mac)
            ledger.add_process(node.pid, f"host {host.name}", group=True)
            self.nodes[host.name] = node
        for link in self.delay_node_links():
            node = net.addHost(link.name, cls=Node, ip=None)
            ledger.add_process(node.pid, f"link node {link.name}", group=True)
            self.nodes[link.name] = node
        for name, link in topo.firewalls:
            node = net.addHost(name, cls=Node, ip=None)
            ledger.add_process(node.pid, f"firewall {name}", group=True)
            self.nodes[name] = node

        for host in topo.hosts:
            port = topo.port_to(host.switch, host.name)
            ledger.add_interfaces(host.intf, port.intf)
            net.addLink(self.nodes[host.name], self.nodes[host.switch], cls=Link,
                        port1=0, port2=port.number, intfName1=host.intf, intfName2=port.intf)
        for link in topo.links:
            self.build_link(link)
        if self.sync_link is not None:               # conntrackd's link, as over the DCI
            sync = self.sync_link
            ends = [(self.nodes[sync.a], firewall.sync_intf(sync.a), 2)]
            if sync.name in self.nodes:              # its delay line node
                mid = self.nodes[sync.name]
                ends += [(mid, f"{sync.name}-eth0", 0), (mid, f"{sync.name}-eth1", 1)]
            ends.append((self.nodes[sync.b], firewall.sync_intf(sync.b), 2))
            for (n1, i1, p1), (n2, i2, p2) in zip(ends[::2], ends[1::2]):
                ledger.add_interfaces(i1, i2)
                net.addLink(n1, n2, cls=Link, port1=p1, port2=p2, intfName1=i1, intfName2=i2)

        net.build()
        self.quiet_switch_ports()
        net.start()
        self.firewalls.start()
        self.configure_hosts()
        self.start_delaylines()
        self.shape_links()
        self.use_links(())
        self.calibrate_delays()

    def switch_ports(self):
        """The switches' port interfaces (in the root namespace), by the names the lab made."""
        return [str(intf) for switch in self.topo.switches
                for intf in self.nodes[switch.name].intfList() if str(intf) != "lo"]

    def quiet_switch_ports(self):
        """No IPv6 on the switch ports: they live in the root namespace, where IPv6 is on, and
        their kernel side would send router solicitations into the lab for as long as it runs
        (a firewall counts each one as denied traffic)."""
        for name in self.switch_ports():
            knob = Path("/proc/sys/net/ipv6/conf", name, "disable_ipv6")
            if knob.exists():
                knob.write_text("1\n")

    def calibrate_delays(self, pings=40, interval=0.005):
        """Take the emulation's own path cost off every link's delay element.

        Once per run: one link's delay element is set to CALIBRATION_MS, the round trip
        between a host behind each of its ends is measured, and twice that delay is taken off:
        the base RTT of the switch path (switches, veths, hosts). Not zero delay: a delay
        element absorbs its own processing time into a delay (it times frames from their
        kernel receive stamp) but adds it to a zero delay, which would overstate the base.
        Every delay element then adds its configured one-way delay less half the base, so the
        RTT a user measures across a link is twice its configured delay. Sets self.base_rtt = {link, rtt_ms, compensation_ms} (None when no
        link has a delay element with hosts at both ends)."""
        self.base_rtt = None
        candidates = sorted((l for l in self.topo.links if l.impaired and l.delay_ms > 0
                             and self.topo.hosts_at(l.a) and self.topo.hosts_at(l.b)),
                            key=lambda l: (bool(l.jitter_ms or l.loss), l.kind != "dci", l.name))
        if not candidates:
            return None
        link = candidates[0]
        self.set_link_delay(link.name, CALIBRATION_MS)
        try:
            tree = self.use_links({link.name})
            if fabric.path(self.topo, tree, link.a, link.b) != [link.name]:
                return None
            src, dst = self.topo.hosts_at(link.a)[0], self.topo.hosts_at(link.b)[0]
            if traffic.wait_reachable(self, src.name, dst.ip.ip) is None:
                raise LabError(f"{src.name} cannot reach {dst.name} over link {link.name} on the "
                               "static fabric; the lab did not come up")
            rtts = [r for _, r in traffic.ping(self, src.name, dst.ip.ip, pings, interval)[2]]
        finally:
            self.set_link_delay(link.name, link.delay_ms)
            self.use_links(())
        if not rtts:
            return None
        rtts.sort()
        base = max(0.0, rtts[len(rtts) // 2] - 2 * CALIBRATION_MS)
        for other in self.topo.links:
            if other.impaired:
                self.set_link_delay(other.name, shaping.compensated_delay(other.delay_ms, base / 2))
        self.base_rtt = {"link": link.name, "rtt_ms": round(base, 3),
                         "compensation_ms": round(base / 2, 3)}
        return self.base_rtt

    def middle_nodes(self, link):
        """Nodes a link passes through from end a to end b: firewall and/or delay line."""
        middles = [link.firewall_node] if link.firewall == link.a else []
        if link.name in {l.name for l in self.delay_node_links()}:
            middles.append(link.name)
        if link.firewall == link.b:
            middles.append(link.firewall_node)
        return middles

    def build_link(self, link):
        """Veth pairs from switch a through the link's middle nodes (eth0 toward a, eth1
        toward b) to switch b; every interface recorded before it is created."""
        from mininet.link import Link
        pa, pb = self.topo.port_to(link.a, link.name), self.topo.port_to(link.b, link.name)
        prev = (self.nodes[link.a], pa.intf, pa.number)
        hops = [(self.nodes[m], f"{m}-eth0", 0, f"{m}-eth1", 1) for m in self.middle_nodes(link)]
        for node, intf_in, port_in, intf_out, port_out in hops:
            self.ledger.add_interfaces(prev[1], intf_in)
            self.net.addLink(prev[0], node, cls=Link, port1=prev[2], port2=port_in,
                             intfName1=prev[1], intfName2=intf_in)
            prev = (node, intf_out, port_out)
        self.ledger.add_interfaces(prev[1], pb.intf)
        self.net.addLink(prev[0], self.nodes[link.b], cls=Link, port1=prev[2], port2=pb.number,
                         intfName1=prev[1], intfName2=pb.intf)

    def configure_hosts(self):
        """Quiet, correct hosts: no IPv6 chatter, checksums done in software for the userspace
        datapath, and on-link routes to the other subnets (one L2 fabric until a gateway exists)."""
        for host in self.topo.hosts:
            self.node_run_all(host.name, [["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]]
                              + (shaping.offload_cmds(host.intf)
                                 if self.platform.datapath == "user" else [])
                              + self.host_routes(host.name))
        self.mark_traffic()

    def start_delaylines(self):
        """One delay-line process per link, or shared ones beyond a few links
        (shaping.delayline_groups): each opens its links' sockets in their own nodes."""
        logs = self.run_dir / "delayline"
        links = self.delay_node_links()
        seeds = {link.name: self.seed + n for n, link in enumerate(links)}
        procs = []
        for group in shaping.delayline_groups(links):
            logs.mkdir(parents=True, exist_ok=True)
            specs = []
            for link in group:                      # the line brings its interfaces up itself
                ia, ib = f"{link.name}-eth0", f"{link.name}-eth1"
                netns = None if link is group[0] else f"/proc/{self.node_pid(link.name)}/ns/net"
                specs.append(shaping.delayline_spec(link, ia, ib, seeds[link.name], netns))
            name = group[0].name if len(group) == 1 else f"{group[0].name}+{len(group) - 1}"
            proc = self.start_agent(group[0].name, shaping.delayline_argv(specs, logs),
                                    f"delay line {name}", log=logs / f"{name}.log",
                                    stdin=subprocess.PIPE, wait=False)
            proc.log_name = f"{name}.log"
            for link in group:
                self.delaylines[link.name] = proc
            procs.append(proc)
        self.wait_agents(procs)                   # 'ready': every socket is open

    def delayline_command(self, name, command):
        """Tell link `name`'s delay line `command` (see lab/agents/delayline.py) and wait for its
        answer: the change is in force when this returns."""
        proc = self.delaylines[name]
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        line = read_line(proc.stdout, probe.patience(5.0))
        if line != command:
            raise LabError(f"delay line of link {name} did not take {command!r} "
                           f"(it said {line!r}): see {self.run_dir / 'delayline' / proc.log_name}")

    def shape_links(self, links=None):
        clear, build = [], []
        for link in links or self.topo.links:
            shaped = dataclasses.replace(link, bw=self.bws.get(link.name, link.bw))
            if self.platform.delay_method == "netem":   # else the delay is not in the qdisc
                shaped = dataclasses.replace(shaped, delay_ms=self.delays.get(link.name,
                                                                              link.delay_ms))
            for end in link.ends:
                intf = self.topo.port_to(end, link.name).intf
                first, *rest = shaping.egress_cmds(intf, shaped, self.platform.delay_method,
                                                   self.qos)
                clear.append(first)                      # delete whatever qdisc was there
                build += rest
        sh.run_all(clear, check=False)
        sh.run_all(build)

    def set_link_bw(self, name, bw):
        """Change a link's rate (HTB on both ends; QoS classes' shares scale with it) by
        rebuilding its tc trees: a moment unshaped, so between measurements."""
        self.bws[name] = float(bw)
        self.shape_links([self.topo.link(name)])

    def set_qos(self, on):
        """Turn the topology's QoS classes on or off on every DCI egress (both ends), by
        rebuilding each DCI port's tc tree: a moment unshaped, so between measurements.
        The hosts keep marking; off, the DCI ignores the marks (one queue)."""
        if self.topo.qos is None:
            raise LabError(f"{self.topo.source}: qos: the topology declares no QoS classes; "
                           "add a qos: section (see topologies/dci-qos.yaml)")
        self.qos = dataclasses.replace(self.topo.qos, enabled=bool(on))
        self.shape_links(self.topo.dci_links)

    def mark_traffic(self):
        """Every host marks its own traffic with its QoS class's DSCP (nftables, by port)."""
        ruleset = shaping.marking_ruleset(self.topo.qos)
        if not ruleset:
            return
        for host in self.topo.hosts:
            self.node_run(host.name, ["nft", "-f", "-"], stdin=ruleset)

    def bfd_flap_counts(self, links):
        """OVS's BFD `flap_count` on both switch ports of each link, now: {interface: n}
        (0 where BFD is off or has not flapped)."""
        out = {}
        for name in links:
            for end in self.topo.link(name).ends:
                intf = self.topo.port_to(end, name).intf
                text = sh.run(["ovs-vsctl", "--timeout=5", "get", "Interface", intf,
                               "bfd_status"], check=False).stdout
                match = re.search(r'flap_count="?(\d+)', text)
                out[intf] = int(match.group(1)) if match else 0
        return out

    def qos_stats(self):
        """Bytes and packets sent and dropped per QoS class on every DCI egress, now:
        {link: {end switch: {class: {"bytes", "packets", "drops"}}}} (its leaf queue's, tc -s qdisc);
        {} with QoS off."""
        out = {}
        for link in self.topo.dci_links:
            classes = shaping.classes_on(link, self.qos)
            if not classes:
                continue
            for end in link.ends:
                intf = self.topo.port_to(end, link.name).intf
                stats = shaping.class_stats(sh.run(["tc", "-s", "qdisc", "show", "dev",
                                                    intf]).stdout, classes)
                out.setdefault(link.name, {})[end] = stats
        return out

    def set_link_delay(self, name, delay_ms):
        """Change the one-way delay a link's delay element adds (both directions), at once."""
        link = self.topo.link(name)
        if name in self.delaylines:
            self.delayline_command(name, f"delay {name} {float(delay_ms):g}")
        elif self.platform.delay_method == "netem" and link.impaired:
            shaped = dataclasses.replace(link, delay_ms=delay_ms)
            for end in link.ends:
                for argv in shaping.element_cmds(self.topo.port_to(end, name).intf, shaped,
                                                 self.qos):
                    sh.run(argv)
        self.delays[name] = delay_ms

    # --------------------------------------------------------------------------- fabric

    def use_links(self, prefer):
        """Forward over a spanning tree that contains `prefer` (link names) where it can."""
        tree = fabric.spanning_tree(self.topo, prefer)
        for switch, flows in fabric.flows(self.topo, tree).items():
            sh.run(["ovs-ofctl", "-O", "OpenFlow13", "replace-flows", switch, "-"],
                   stdin="\n".join(flows) + "\n")
            sh.run(["ovs-appctl", "fdb/flush", switch])
        self.tree = tree
        return tree

    # ----------------------------------------------------------------------- controller

    def start_bfd(self, bfd_ms):
        """BFD on every inter-switch port every `bfd_ms` (paced on an emulated CPU); returns
        the interval that runs. A session needs 1-2 s to come up (RFC 5880: while it is down a
        side transmits once a second), so an experiment that attaches the controller later
        starts BFD early and finds the links live when it does; until then BFD changes no
        forwarding (the static fabric's flows name ports, not groups). Idempotent."""
        paced = probe.paced_bfd_ms(bfd_ms)
        if paced == self.bfd_ms:
            return paced
        if paced != bfd_ms:
            self.log(f"BFD paced to {paced} ms (asked {bfd_ms} ms): on an emulated CPU "
                     f"({probe.accelerator()}) a faster BFD flaps and links never stay live")
        sh.run(controller.bfd_cmd([self.topo.port_to(end, link.name).intf
                                   for link in self.topo.links for end in link.ends], paced))
        self.bfd_ms = paced
        return paced

    def attach_controller(self, intent, bfd_ms=100, timeout=30.0, serving=None):
        """Hand the switches to the controller and wait until it has the whole network.

        Starts the controller process (127.0.0.1 only), enables BFD on every inter-switch
        port, points the bridges at it, routes hosts via the anycast gateway, starts the VIP
        service on the servers, and waits until every switch, link, host and VIP server is
        known to the controller. Returns seconds from the controller's start to ready.
        serving: the VIP servers that run the service from the start (default: all of them;
        a cold standby's servers start it later, when promoted).
        """
        start = time.monotonic()
        timeout = probe.patience(timeout)
        port = self.controller.start(intent)
        self.start_bfd(bfd_ms)
        sh.run(controller.set_controller_cmd([s.name for s in self.topo.switches], port))
        self.route_via_gateway()
        self.start_services(serving)
        self.controller.wait(lambda s: controller.all_up(self.topo, s),
                             "every switch connected and every link live", timeout)
        for host in self.topo.hosts:              # hosts speak: ARP for and ping their gateway
            gateway = self.topo.switch(host.switch).gateway
            if traffic.wait_reachable(self, host.name, gateway,
                                      timeout=probe.patience(5)) is None:
                raise LabError(f"{host.name} cannot reach its gateway {gateway} through the "
                               f"controller; see {self.controller.log}")
        self.controller.wait(lambda s: controller.all_learned(self.topo, s, serving),
                             "every host located and every VIP server healthy", timeout)
        return time.monotonic() - start

    def route_via_gateway(self):
        """Hosts now route through the anycast gateway (no more on-link subnets, fresh ARP)."""
        self.via_gateway = True

        def reroute(host):
            own = self.topo.switch(host.switch)
            self.node_run_all(host.name, [["ip", "route", "del", str(s.subnet)]
                                          for s in self.topo.switches if s.subnet != own.subnet],
                              check=False)
            self.node_run_all(host.name, [["ip", "neigh", "flush", "dev", host.intf]]
                              + self.host_routes(host.name))

        with ThreadPoolExecutor(4) as pool:      # hosts are independent: a few at once
            list(pool.map(reroute, self.topo.hosts))

    def host_routes(self, name):
        """A host's routes beyond its own subnet, as argv (the kernel drops routes through an
        interface that goes down: a host whose link or site comes back needs them again)."""
        host = self.topo.host(name)
        if self.via_gateway:
            return fabric.gateway_routes(self.topo, host.intf,
                                         self.topo.switch(host.switch).gateway)
        own = self.topo.switch(host.switch).subnet
        return [["ip", "route", "replace", str(s.subnet), "dev", host.intf]
                for s in self.topo.switches if s.subnet != own]

    def start_services(self, serving=None):
        """The VIP on each server's loopback, and the service answering with the server's name
        (on `serving` only, when given)."""
        ports = {}
        for vip in self.topo.services:
            for name in vip.servers:
                self.node_run(name, ["ip", "addr", "replace", f"{vip.vip}/32", "dev", "lo"])
                if serving is None or name in serving:
                    ports.setdefault(name, set()).add(vip.port)
        started = [self.start_service(name, number, wait=False)
                   for name, numbers in sorted(ports.items()) for number in sorted(numbers)]
        self.wait_agents(started)                # all start at once, then each said ready

    def start_data_tier(self, quorum=True, timeout=30.0, payload=0, serving=None):
        """The topology's databases (lab.data), then the VIP services as the stateful app on
        them; after attach_controller(..., serving=[]), so the databases replicate over the
        controller's paths from the start. serving: the servers whose app starts now (default
        all; a cold standby's starts when promoted: service_argv). Waits until the controller
        sees every serving app healthy; returns the seconds the databases took to start."""
        took = self.data.start(quorum=quorum)
        self.data.payload = payload
        self.start_services(serving)
        self.controller.wait(lambda s: controller.all_learned(self.topo, s, serving),
                             "every data app healthy", probe.patience(timeout))
        return took

    def restart_data_tier(self, spec, log_dir, quorum=True, timeout=30.0, payload=0):
        """Replace the running data tier (and its apps) with a fresh one of `spec` (an
        experiment's next variant in the same lab); returns the seconds the databases took."""
        for key in list(self.services):
            self.stop_service(*key)
        self.data.stop()
        self.data = databases.DataTier(self, spec, log_dir)
        return self.start_data_tier(quorum=quorum, timeout=timeout, payload=payload)

    def service_argv(self, name, port):
        """The VIP service's command line on one server: with a running data tier the site's
        stateful app (lab/agents/dataapp.py, on its site's database), else the name-answering
        service."""
        if self.data.started:
            return dataapp.serve_argv(name, port, self.data.spec.engine,
                                      self.data.app_addresses(name), self.data.payload)
        return service.serve_argv(name, port)

    def start_service(self, name, port, wait=True):
        """Start the VIP service (service_argv) on one server and (wait) wait for its ready
        line."""
        what = "data app" if self.data.started else "service"
        proc = self.start_agent(name, self.service_argv(name, port), f"{what} {name}:{port}",
                                wait=wait)
        self.services[(name, port)] = proc
        return proc

    def stop_service(self, name, port):
        """Stop a server's service (the server stays up): its health checks start failing."""
        self.stop_process(self.services.pop((name, port)))

    def scratch_folder(self, name):
        """A folder `name` in this run's scratch space (state.scratch_root()/RUN-PID: a local
        disk and a short path, for what must not live in the run folder: databases, unix
        sockets, lock files), recorded in the ledger before it is made and removed at
        teardown. One line naming the folder and the fix when it cannot be made."""
        if self.scratch is None:
            root = state.scratch_root()
            self.scratch = self.ledger.add_path(root / f"{self.run_dir.name}-{os.getpid()}")
            try:
                root.mkdir(mode=0o755, parents=True, exist_ok=True)
                os.chmod(root, 0o755)            # the database users must traverse it
                self.scratch.mkdir(mode=0o755)
            except OSError as exc:
                raise LabError(f"{self.scratch}: cannot create the run's scratch space "
                               f"({exc.strerror}); free the disk or set ACTIVELAB_SCRATCH")
        path = self.scratch / name
        try:
            path.mkdir(mode=0o755)
        except OSError as exc:
            raise LabError(f"{path}: cannot create ({exc.strerror}); free the disk or set "
                           "ACTIVELAB_SCRATCH") from None
        return path

    def memory_mb(self):
        """What the running lab holds in memory, RSS in MB per part (state.memory_mb): its data
        tier (servers and workers, Patroni's detached PostgreSQL), the controller, Open
        vSwitch's daemons (ovs-vswitchd, ovsdb-server, from their pid files: the lab's switches
        live there), and the run with its hosts and agents; and the total."""
        data = [node["proc"].pid for node in self.data.nodes.values() if node.get("proc")]
        data += [p["pid"] for p in map(state.pidfile_process, self.ledger.data.get("pidfiles", []))
                 if p]
        ovs = list(ovs_pids().values())
        return state.memory_mb({"data tier": data, "controller": [self.controller.pid],
                                "open vswitch": ovs, "run, hosts and agents": [os.getpid()]})

    def cpu_seconds(self):
        """CPU time used so far (user + system, s) by the controller, by ovs-vswitchd and by
        the userspace delay lines (all of them): {"controller": s, "ovs-vswitchd": s,
        "delay lines": s} (a part whose processes are gone or absent is left out)."""
        pids = {"controller": [self.controller.pid],
                "ovs-vswitchd": [ovs_pids().get("ovs-vswitchd")],
                "delay lines": sorted({p.pid for p in self.delaylines.values()})}
        out = {}
        for part, group in pids.items():
            seconds = [state.cpu_seconds(pid) for pid in group if pid]
            if seconds and None not in seconds:
                out[part] = sum(seconds)
        return out

    def controller_status(self):
        return self.controller.status()

    def wait_links_live(self, timeout=20.0):
        """Wait until the controller sees every link live again (after a repair BFD needs ~2 s)."""
        return self.controller.wait(lambda s: controller.all_up(self.topo, s),
                                    "every link live", timeout)

    def relink(self, name, to_switch):
        """Unlink host `name` from its switch and link it to `to_switch` on a new port (the
        Mininet half of a move: lab.faults.move_host addresses it). Returns the port number."""
        from mininet.link import Link
        host = self.topo.host(name)
        node, old = self.nodes[name], self.nodes[self.current_switch(name)]
        intf = node.intf(host.intf)
        old_intf = intf.link.intf2 if intf.link.intf1 is intf else intf.link.intf1
        old.detach(old_intf)
        self.net.delLinkBetween(node, old)
        switch = self.nodes[to_switch]
        number = len(self.topo.ports(to_switch)) + len(self.extra_ports.get(to_switch, [])) + 1
        self.extra_ports.setdefault(to_switch, []).append(number)
        port_intf = f"{to_switch}-eth{number}"
        self.ledger.add_interfaces(port_intf)
        self.net.addLink(node, switch, cls=Link, port1=0, port2=number, intfName1=host.intf,
                         intfName2=port_intf)
        switch.attach(port_intf)
        self.moved[name] = to_switch
        return number

    def current_switch(self, name):
        return self.moved.get(name, self.topo.host(name).switch)

    # ------------------------------------------------------------------------ processes

    def node_pid(self, name):
        try:
            return self.nodes[name].pid
        except KeyError:
            raise LabError(f"no node named {name} in topology {self.topo.name}") from None

    def node_run_all(self, name, argvs, timeout=60, check=True):
        """Run many commands inside node `name`'s namespace as one process (sh.run_all)."""
        pid = self.node_pid(name)
        return sh.run_all(argvs, timeout=timeout, check=check, wrap=lambda a: in_node(pid, a))

    def node_run(self, name, argv, timeout=30, check=True, stdin=None):
        """Run argv inside node `name`'s namespace and wait; returns CompletedProcess."""
        return sh.run(in_node(self.node_pid(name), argv), timeout=timeout, check=check,
                      stdin=stdin)

    # ------------------------------------------------------------------------- agents

    def start_agent(self, name, argv, what, log=None, stdin=None, wait=True):
        """Start an agent (an in-host program of ours that prints 'ready' when it is) in node
        `name`; its stdout is piped to us, its stderr goes to `log` (default
        RUN_DIR/agents/WHAT.log). wait: return only once it said 'ready' (else call
        wait_agents with it: start many, then wait for all). Returns the Popen."""
        if log is None:
            log = self.run_dir / "agents" / ("".join(c if c.isalnum() or c in "-_." else "-"
                                                     for c in what) + ".log")
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        proc = self.popen(name, argv, what, stdout=subprocess.PIPE, stderr=Path(log),
                          stdin=stdin)
        proc.agent = (what, Path(log))
        self.agent_logs.append(Path(log))
        if wait:
            self.wait_agents([proc])
        return proc

    def wait_agents(self, procs, timeout=None):
        wait_agents(procs, timeout)

    def popen(self, name, argv, what, group=False, **kwargs):
        """Start argv inside node `name` (own session), recorded for teardown; returns Popen.

        stdout/stderr may be a Path: the output goes to that file. group: stop its whole
        process group (a server that forks workers: a database), not only the process. cwd:
        where a process that writes into its working directory (garbd) writes; the checkout
        otherwise."""
        return self._spawn(["mnexec", "-da", str(self.node_pid(name))] + list(argv), what,
                           kwargs, group)

    def popen_root(self, argv, what, **kwargs):
        """Start argv in the root namespace (the controller), recorded for teardown; in a
        session of its own (`setsid`), so a Ctrl-C at the terminal reaches only the lab."""
        return self._spawn(["setsid"] + list(argv), what, kwargs)

    def _spawn(self, argv, what, kwargs, group=False):
        files = []
        mode = "a" if kwargs.pop("append", False) else "w"   # append: several writers, one file
        for stream in ("stdout", "stderr"):
            target = kwargs.get(stream, subprocess.DEVNULL)
            if isinstance(target, Path):
                target = open(target, mode)
                files.append(target)
            kwargs[stream] = target
        kwargs.setdefault("cwd", REPO_ROOT)

        def start():
            # not start_new_session: `mnexec -d` forks (and its parent exits) when it already
            # leads a process group, which would orphan the process whose PID we record
            proc = subprocess.Popen([str(a) for a in argv], text=True, **kwargs)
            self.ledger.add_process(proc.pid, what, group=group)
            proc.group = group
            self.processes.append(proc)
            return proc

        try:
            # a Ctrl-C or SIGTERM while the program starts lands once its PID is recorded:
            # raised inside Popen (after the fork) it left a running database nobody stopped
            if threading.current_thread() is threading.main_thread():
                return shielded(start)
            return start()
        finally:
            for fh in files:                      # the child has its own copy of the descriptor
                fh.close()

    def stop_process(self, proc, grace=2.0):
        """Stop one process we started (SIGTERM, then SIGKILL; to its process group when it
        was started as one) and reap it."""
        if getattr(proc, "group", False):
            state.stop_process({"pid": proc.pid, "group": True,
                                "start_time": state.proc_start_time(proc.pid)}, grace)
            proc.poll()
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(2)

    def stop_processes(self, procs, grace=2.0):
        """Stop several processes we started at once: SIGTERM to all, then reap each (SIGKILL
        after `grace`); as stop_process, without each one's exit waiting for the last's."""
        for proc in procs:
            if not getattr(proc, "group", False) and proc.poll() is None:
                proc.terminate()
        for proc in procs:
            self.stop_process(proc, grace)

    def stop(self):
        """Stop what we started, then let Mininet remove links, switches and hosts.

        Programs stop all at once, unless a process group (a database) is among them: then one
        at a time, the last started first (a database leaves its cluster over the lab's links,
        so the delay lines it needs stop after it)."""
        procs = list(reversed(self.processes))
        if any(getattr(proc, "group", False) for proc in procs):
            for proc in procs:
                self.stop_process(proc)
        else:
            self.stop_processes(procs)
        for log in self.agent_logs:              # an agent that said nothing leaves no file
            with contextlib.suppress(OSError):
                if log.stat().st_size == 0:
                    log.unlink()
        with contextlib.suppress(OSError):       # and no empty folder
            (self.run_dir / "agents").rmdir()
        if self.net is not None:
            self.net.stop()
            self.net = None


def shielded(work):
    """Run work() to its end whatever SIGINT, SIGTERM or SIGHUP arrive meanwhile.

    While it runs those signals are only noted (not blocked: a blocked mask would be inherited
    by every command teardown starts). Afterwards the previous handlers come back and the first
    noted signal is raised again, so an interrupted run still ends as interrupted, after an
    exact teardown. Returns work()'s result."""
    noted = []
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {}
    while True:                    # a signal may land between two of these calls: retry
        try:
            for sig in watched:
                if sig not in previous:
                    previous[sig] = signal.getsignal(sig)
                signal.signal(sig, lambda signum, frame: noted.append(signum))
            break
        except BaseException:      # noqa: B036 (the handler a signal raised before ours)
            continue
    try:
        return work()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if noted:
            signal.raise_signal(noted[0])


def recover_crashed(log=print):
    """Remove what a crashed earlier run recorded (its lock is free, its state file remains)."""
    ledger = state.Ledger.load()
    if ledger is None:
        return
    log(f"cleaning up after a run that did not finish: {ledger.summary()}")
    problems = state.teardown(ledger, log=log)
    if problems:
        raise LabError("could not remove what a crashed run left (see above); "
                       "fix that, then run: python lab/run.py clean")


@contextlib.contextmanager
def running_lab(topo, platform, run_dir, experiment, log=print, seed=1):
    """Bring `topo` up and yield the LabNetwork; always tear down exactly what was created.

    Holds the run lock for its whole life; removes a crashed run's leftovers first."""
    lock = state.RunLock().acquire()
    try:
        recover_crashed(log)
        ledger = state.Ledger.create(experiment, run_dir)
        lab = LabNetwork(topo, platform, ledger, run_dir, log=log, seed=seed)
        try:
            lab.start()
            yield lab
        finally:
            def teardown():
                try:
                    lab.stop()
                except Exception as exc:  # the ledger sweep below still removes everything
                    log(f"teardown: Mininet stop failed ({exc}); removing recorded resources")
                return state.teardown(ledger, log=log)

            problems = shielded(teardown)
            if problems:
                raise LabError("teardown left " + "; ".join(problems)
                               + ": remove it with: sudo python lab/run.py clean")
    finally:
        lock.release()
