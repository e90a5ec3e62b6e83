"""The controller's decisions, as pure code: events and `now` in, OpenFlow messages out.

Pipeline on every switch (see ofmsg for the message types)::

    table 0  classify   LLDP, ARP -> controller; IPv4 to the gateway MAC -> table 1;
                        other IPv4 (already routed upstream) -> table 2; rest dropped
    table 1  route      per-flow VIP pins; VIP, gateway and unknown-host packets -> controller;
                        host /32 routes: eth_src := gateway MAC, eth_dst := host MAC, TTL - 1
    table 2  forward    by destination host MAC: the host port, or toward the host's switch
                        (protection: a fast-failover group with a loop-free backup;
                        restoration: a plain output the controller recomputes on events)

The anycast gateway: every switch answers ARP for every lab address with the same virtual MAC
(so nothing is flooded, across the DCI or anywhere) and routes at the first hop. Hosts are
learned from their ARP (a moved host is found again by its gratuitous ARP). Links are learned
by LLDP; their cost is the declared latency. VIP flows go to the nearest site with a healthy
server and stay there while that server is healthy.
"""

import ipaddress
from dataclasses import dataclass

from controllers import packets, routing
from controllers.health import HealthChecker
from controllers.vips import VipManager
from controllers.ofmsg import CONTROLLER, T_CLASSIFY, T_FORWARD, T_ROUTE, Flow, Group, PacketOut

ETH_IP, ETH_ARP, ETH_LLDP = 0x0800, 0x0806, 0x88CC
GLEAN_INTERVAL = 1.0           # seconds between ARP searches for the same unknown address
BATCH_MAX_S = 0.02             # the longest a change of the facts waits for the events behind it
PROOF_S = 0.25                 # how long LLDP across a link proves it (see proven)
PROBE_S = 0.05                 # LLDP on ports with carrier but without BFD, this often
HOST_FLOWS_KEPT = 200_000      # host flows remembered for reuse (see host_flow) before a reset

P_LLDP, P_ARP, P_ROUTED, P_TRANSIT = 1000, 900, 100, 50
P_VIP, P_GATEWAY, P_SESSION, P_HOST, P_GLEAN = 2000, 1500, 1200, 1000, 10


@dataclass
class HostEntry:
    ip: ipaddress.IPv4Address
    mac: str
    dpid: int
    port: int
    since: float


class ControllerLogic:
    """The controller: discovery (switches, ports, LLDP), hosts and the anycast gateway (ARP),
    forwarding state (desired flows and groups, synced), and the managers it composes:
    routing (controllers/routing.py), server health (health.py), VIP pins (vips.py). Every
    event method returns messages."""

    def __init__(self, intent):
        self.intent = intent
        self.gw_mac = intent.gateway_mac
        self.names = {s.dpid: s.name for s in intent.switches}
        self.ports = {}            # dpid -> {port: live}
        self.peer = {}             # (dpid, port) -> (dpid, port), from LLDP
        self.hosts = {}            # ip -> HostEntry
        self.installed = {}        # Flow.key() -> Flow
        self.groups = {}           # (dpid, group_id) -> buckets
        self.now = 0.0             # the time of the event being handled
        self.glean_sent = {}       # ip -> time of the last ARP search
        self.last_lldp = None
        self.carrier = {}          # (dpid, port) -> time its carrier came up (absent: no carrier)
        self.crossed = {}          # (from end, to end) -> when our LLDP sent then crossed the link
        self.went_down = {}        # (dpid, port) -> when it last stopped being live
        self.last_probe = -1.0     # when ports with carrier but no BFD were last probed
        self.proven_now = frozenset()   # links in use on LLDP's proof alone (see proven)
        self.batching = False      # set by the adapter while more events are queued (see sync)
        self.owed_since = None     # when a deferred sync was first asked for (see flush)
        self.notes = []            # decisions in words, for the log (take_notes)
        self.host_name = dict(intent.host_names)
        self.port_link = {}
        for link in intent.links:
            self.port_link[tuple(link.a)] = self.port_link[tuple(link.b)] = link.name
        self.last_routes = {}
        self.computed = (None, None)    # (what desired() was computed from, its result)
        self.viewed = (None, None)      # (the instant, the view of it): see view()
        self.synced = None         # the result installed and groups were last made to match
        self.host_flows = {}       # (dpid, table, ip, mac, action) -> Flow (see host_flow)
        self.checker = HealthChecker(intent)
        self.health = self.checker.servers       # name -> ServerHealth
        self.vips = VipManager(intent, self)

    # --------------------------------------------------------------- decisions, in words

    def note(self, text):
        self.notes.append(text)

    def take_notes(self):
        """The decisions taken since the last call, as log lines (names, not datapath ids)."""
        notes, self.notes = self.notes, []
        return notes

    def sw(self, dpid):
        return self.names.get(dpid, f"{dpid:016x}" if isinstance(dpid, int) else str(dpid))

    def who(self, ip):
        name = self.host_name.get(str(ip))
        return f"{name} ({ip})" if name else str(ip)

    def port_name(self, dpid, port):
        link = self.port_link.get((dpid, port))
        return f"{self.sw(dpid)}:{port}" + (f" ({link})" if link else "")

    def path_notes(self, routes):
        """Lines for the site-to-site paths that changed since the last computation."""
        sites = {d for d in self.ports if self.kind(d) == "site"}
        changed = []
        for key in sorted(set(routes) | set(self.last_routes)):
            a, b = key
            if a not in sites or b not in sites or routes.get(key) == self.last_routes.get(key):
                continue
            hop = routes.get(key)
            if hop is None:
                changed.append(f"{self.sw(a)}->{self.sw(b)} unreachable")
                continue
            primary, backup = hop
            via = self.port_link.get((a, primary), f"port {primary}")
            alt = self.port_link.get((a, backup), f"port {backup}") if backup is not None else "none"
            changed.append(f"{self.sw(a)}->{self.sw(b)} via {via} (backup {alt})")
        self.last_routes = dict(routes)
        if changed:
            more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
            self.note("paths: " + ", ".join(changed[:8]) + more)

    # ------------------------------------------------------------------------- switches

    @classmethod
    def from_links(cls, intent, links):
        """The logic's view of a running network from its status links [[a, pa, b, pb, live]]
        (what `lab/run.py cli`'s `paths` asks routes of)."""
        logic = cls(intent)
        for a, pa, b, pb, live in links:
            logic.ports.setdefault(a, {})[pa] = live
            logic.ports.setdefault(b, {})[pb] = live
            logic.peer[(a, pa)], logic.peer[(b, pb)] = (b, pb), (a, pa)
        logic.viewed = (None, None)
        return logic

    def switch_connected(self, dpid, ports, now, carriers=None):
        """A switch (re)connected with {port: live} (and {port: carrier up}, default: the
        same); its tables were just cleared."""
        self.ports[dpid] = dict(ports)
        self.viewed = (None, None)
        for port, up in (carriers if carriers is not None else ports).items():
            self.set_carrier((dpid, port), up, now)
        self.installed = {k: f for k, f in self.installed.items() if f.dpid != dpid}
        self.groups = {k: b for k, b in self.groups.items() if k[0] != dpid}
        self.synced = None
        self.vips.forget_switch(dpid)
        self.now = now
        msgs = [f for f in self.base_flows(dpid)]
        for flow in msgs:
            self.installed[flow.key()] = flow
        msgs += self.lldp_out(dpid, now)
        return msgs + self.sync()

    def switch_disconnected(self, dpid, now):
        self.now = now
        self.ports.pop(dpid, None)
        self.viewed = (None, None)
        self.peer = {a: b for a, b in self.peer.items() if a[0] != dpid and b[0] != dpid}
        self.installed = {k: f for k, f in self.installed.items() if f.dpid != dpid}
        self.groups = {k: b for k, b in self.groups.items() if k[0] != dpid}
        self.synced = None
        return self.sync()

    def port_changed(self, dpid, port, live, now, carrier=None):
        """A port's liveness (carrier, admin state and BFD: what fast-failover watches) or its
        carrier alone changed (carrier None: the same as live).

        A carrier that comes back while BFD is still down (BFD transmits at most once a second
        while its session is down, RFC 5880 6.8.3, so it needs 1-2 s to come up) is probed at
        once with LLDP from this end; see proven()."""
        self.now = now
        if dpid not in self.ports:
            return []
        carrier = live if carrier is None else carrier
        came_back = carrier and (dpid, port) not in self.carrier
        self.set_carrier((dpid, port), carrier, now)
        if self.ports[dpid].get(port) == live and not came_back:
            return []
        if self.ports[dpid].get(port) and not live:
            self.went_down[(dpid, port)] = now
        self.ports[dpid][port] = live
        self.viewed = (None, None)
        probe = [] if live or not came_back else [
            PacketOut(dpid, port, packets.lldp_frame(dpid, port, stamp=now))]
        return probe + self.sync()

    def set_carrier(self, end, up, now):
        self.viewed = (None, None)
        if not up:
            self.carrier.pop(end, None)
        elif end not in self.carrier:
            self.carrier[end] = now

    def proven(self, a, b):
        """A link whose ends are not both live (BFD not up yet) but which LLDP proves: carrier
        at both ends, and our LLDP sent after both carriers came up crossed it both ways
        within PROOF_S. Such a link carries traffic at once (by plain outputs: fast-failover
        would skip a port BFD calls down) until BFD comes up. Ports with carrier but without
        BFD are probed every PROBE_S (tick), so a proof is renewed while the link works and
        runs out within PROOF_S when it goes gray before BFD is up: as fast as BFD would
        have told.
        Only LLDP sent after the link last went down counts: a gray link (carrier up, BFD
        down) is not proven by frames that crossed before it failed."""
        if a not in self.carrier or b not in self.carrier:
            return False
        since = max(self.carrier[a], self.carrier[b], self.went_down.get(a, -1.0),
                    self.went_down.get(b, -1.0))
        return all(since <= self.crossed.get(way, -1.0) and self.now - self.crossed[way] <= PROOF_S
                   for way in ((a, b), (b, a)))

    def link_up(self, a, b):
        """Whether routes may use the link between ends a and b: both live, or proven."""
        return (self.live(a) and self.live(b)) or self.proven(a, b)

    def base_flows(self, dpid):
        to_ctl = (("output", CONTROLLER),)
        flows = [
            Flow(dpid, T_CLASSIFY, P_LLDP, {"eth_type": ETH_LLDP}, to_ctl),
            Flow(dpid, T_CLASSIFY, P_ARP, {"eth_type": ETH_ARP}, to_ctl),
            Flow(dpid, T_CLASSIFY, P_ROUTED, {"eth_type": ETH_IP, "eth_dst": self.gw_mac},
                 goto=T_ROUTE),
            Flow(dpid, T_CLASSIFY, P_TRANSIT, {"eth_type": ETH_IP}, goto=T_FORWARD),
            Flow(dpid, T_CLASSIFY, 0, {}),
            Flow(dpid, T_ROUTE, 0, {}),
            Flow(dpid, T_FORWARD, 0, {}),
        ]
        for service in self.intent.services:
            flows.append(Flow(dpid, T_ROUTE, P_VIP, {"eth_type": ETH_IP,
                                                     "ipv4_dst": str(service.vip)}, to_ctl))
        for gateway in sorted(self.intent.gateways):
            flows.append(Flow(dpid, T_ROUTE, P_GATEWAY, {"eth_type": ETH_IP,
                                                         "ipv4_dst": str(gateway)}, to_ctl))
        switch = self.intent.switch_by_dpid(dpid)
        if self.intent.symmetric and switch is not None and switch.kind == "edge":
            flows.append(Flow(dpid, T_ROUTE, P_SESSION, {"eth_type": ETH_IP, "ipv4_src": (
                str(switch.subnet.network_address), str(switch.subnet.netmask))}, to_ctl))
        for subnet in self.intent.subnets:
            flows.append(Flow(dpid, T_ROUTE, P_GLEAN, {"eth_type": ETH_IP, "ipv4_dst": (
                str(subnet.network_address), str(subnet.netmask))}, to_ctl))
        return flows

    # ---------------------------------------------------------------------- topology

    def edge_ports(self, dpid):
        return sorted(p for p in self.ports.get(dpid, {}) if (dpid, p) not in self.peer)

    def lldp_out(self, dpid, now=None):
        """LLDP out of every port, stamped with the time it was sent (the control path's own
        round trip, which health verdicts wait for: see health_check)."""
        return [PacketOut(dpid, port, packets.lldp_frame(dpid, port, stamp=now))
                for port in sorted(self.ports.get(dpid, {}))]

    def lldp_in(self, dpid, port, info, now):
        origin = packets.lldp_origin(info)
        self.checker.heard(info.get("stamp"), now, dpid)
        if origin is None or origin == (dpid, port) or origin[0] not in self.ports:
            return []
        sent = info.get("stamp")
        self.crossed[(origin, (dpid, port))] = now if sent is None else sent
        self.viewed = (None, None)
        if self.peer.get((dpid, port)) == origin and self.peer.get(origin) == (dpid, port):
            link = tuple(sorted((origin, (dpid, port))))
            if self.proven(*link) and link not in self.proven_now:
                return self.sync()              # a link that came back just proved itself
            return self.answer_probe(origin, (dpid, port), now)
        for end in ((dpid, port), origin):          # a port has one peer: forget stale links
            old = self.peer.pop(end, None)
            if old is not None:
                self.peer.pop(old, None)
        self.peer[(dpid, port)] = origin
        self.peer[origin] = (dpid, port)
        for host in [h for h in self.hosts.values() if (h.dpid, h.port) in self.peer]:
            del self.hosts[str(host.ip)]                # learned on what is really a link
        return self.sync()

    def answer_probe(self, origin, here, now):
        """LLDP crossed a link that is not live (BFD down) into `here`: when the other way has
        not been shown since the link went down, send LLDP back at once (the far end may have
        probed before this end had its carrier: the two ends' events come one by one)."""
        if self.live(origin) and self.live(here):
            return []
        since = max(self.carrier.get(origin, now), self.carrier.get(here, now),
                    self.went_down.get(origin, -1.0), self.went_down.get(here, -1.0))
        if self.crossed.get((here, origin), -1.0) >= since:
            return []
        return [PacketOut(here[0], here[1], packets.lldp_frame(here[0], here[1], stamp=now))]

    def connected(self, dpid):
        """Whether switch dpid has a link to another switch up now (else it is cut off)."""
        return any(a[0] == dpid and self.link_up(a, b) for a, b in self.peer.items())

    def live(self, end):
        return self.ports.get(end[0], {}).get(end[1], False)

    def view(self):
        """The facts routes depend on (switches, live links and their cost, the policy), as a
        hashable routing.View: routes are computed once per distinct view (cached).

        One view per instant while the facts stay: an event asks for it once per VIP pin
        (is its server still reachable?) and again for the routes; at 16 sites with 32 pins
        that was 60 walks over 304 link ends per port event. Every change of ports, peers,
        carriers or LLDP crossings forgets it (and a proof's age depends on the instant)."""
        if self.viewed[0] is not None and self.viewed[0] == self.now:
            return self.viewed[1]
        view = self.compute_view()
        self.viewed = (self.now, view)
        return view

    def compute_view(self):
        links, proven = [], set()
        for a, b in self.peer.items():
            if a < b and self.link_up(a, b):
                links.append((a, b, routing.link_cost(self.intent.link_delay(a, b))))
                if not (self.live(a) and self.live(b)):
                    proven.add((a, b))
        self.proven_now = frozenset(proven)
        switches = tuple(sorted((dpid, self.names.get(dpid, str(dpid)), self.kind(dpid))
                                for dpid in self.ports))
        return routing.View(switches, tuple(sorted(links)),
                            hot_potato=self.intent.routing == "hot-potato")

    def routes(self):
        """{(switch, destination switch): (primary port, backup port or None)} (routing.routes)."""
        return routing.routes(self.view())

    def backup_coverage(self):
        return routing.backup_coverage(self.view())

    def kind(self, dpid):
        switch = self.intent.switch_by_dpid(dpid)
        return switch.kind if switch else None

    def reaches(self, a, b):
        """Whether switch a reaches switch b over live links now (routing.reaches)."""
        return routing.reaches(self.view(), a, b)

    def distances_from(self, dpid):
        """Path cost from a switch to every switch it can reach (edges not transit)."""
        return routing.distances(self.view(), dpid)

    # ---------------------------------------------------------------------- desired state

    def group_id(self, dst_dpid):
        index = self.intent.switch_index.get(dst_dpid)
        return 1 + index if index is not None else 1000 + dst_dpid

    def desired(self):
        """The host routes, forwarding flows and groups the current facts call for.

        Computed once per distinct set of facts (the view: switches, live and proven links;
        where each host is): at 16 sites that is ~3000 flows, and most events of a burst (the
        first end of a link going down, a second report of a known host) change nothing."""
        view = self.view()
        facts = (view, self.proven_now,
                 tuple(sorted((ip, h.mac, h.dpid, h.port) for ip, h in self.hosts.items())))
        if self.computed[0] == facts:
            return self.computed[1]
        result = self.compute_desired(routing.routes(view))
        self.computed = (facts, result)
        return result

    def compute_desired(self, routes):
        flows, groups = [], {}
        self.path_notes(routes)
        protection = self.intent.mode == "protection"
        # ports of links in use on LLDP's proof alone: fast-failover would skip them (BFD is
        # still down there), so routes through them are plain outputs until BFD comes up
        unwatched = {end for link in self.proven_now for end in link}
        flow = self.host_flow
        for host in self.hosts.values():
            for dpid in self.ports:
                flows.append(flow(dpid, T_ROUTE, host, ("route",)))
                if dpid == host.dpid:
                    flows.append(flow(dpid, T_FORWARD, host, ("output", host.port)))
                    continue
                hop = routes.get((dpid, host.dpid))
                if hop is None:
                    continue
                primary, backup = hop
                if protection and (dpid, primary) not in unwatched:
                    gid = self.group_id(host.dpid)
                    buckets = ((primary, (("output", primary),)),)
                    if backup is not None:
                        buckets += ((backup, (("output", backup),)),)
                    groups[(dpid, gid)] = buckets
                    flows.append(flow(dpid, T_FORWARD, host, ("group", gid)))
                else:
                    flows.append(flow(dpid, T_FORWARD, host, ("output", primary)))
        return flows, groups

    def host_flow(self, dpid, table, host, action):
        """A host's flow at a switch: its route (table 1: the gateway's rewrite) or where its
        MAC goes (table 2: action). The same flow is the same object each computation (its key
        computed once; a diff of thousands of them compares identities)."""
        made = (dpid, table, host.ip, host.mac, action)
        flow = self.host_flows.get(made)
        if flow is not None:
            return flow
        if len(self.host_flows) > HOST_FLOWS_KEPT:
            self.host_flows = {}
        if table == T_ROUTE:
            flow = Flow(dpid, T_ROUTE, P_HOST, {"eth_type": ETH_IP, "ipv4_dst": str(host.ip)},
                        (("set", "eth_src", self.gw_mac), ("set", "eth_dst", host.mac),
                         ("dec_ttl",)), goto=T_FORWARD)
        else:
            flow = Flow(dpid, T_FORWARD, P_HOST, {"eth_dst": host.mac}, (action,))
        self.host_flows[made] = flow
        return flow

    def sync(self):
        """Messages that turn what is installed into what is desired (groups before flows).

        While the adapter says more events are queued (`batching`), the work is deferred, for
        at most BATCH_MAX_S: a burst of events (a site's ports going down together, LLDP at
        start) costs one computation and one set of changes, not one per event. The adapter
        collects what is owed with flush(). Not deferred, ever: VIP flows whose server just
        went out of reach move at once (a cheap reachability test per event), so a site
        that loses power hands its clients over on the event that cut it off, not after the
        batch's route computation."""
        urgent = self.vips.unpin_unreachable()
        if self.batching and (self.owed_since is None or self.now - self.owed_since < BATCH_MAX_S):
            if self.owed_since is None:
                self.owed_since = self.now
            return urgent
        return urgent + self.sync_now()

    def owed(self):
        """Whether a deferred sync is still owed (since `owed_since`)."""
        return self.owed_since is not None

    def flush(self):
        """The messages a deferred sync owes (none when nothing is owed)."""
        return self.sync_now() if self.owed() else []

    def sync_now(self):
        self.owed_since = None
        desired = self.desired()
        msgs = self.vips.unpin_unreachable()
        if desired is self.synced:          # the same facts, already installed: nothing to do
            return msgs
        self.synced = desired
        flows, groups = desired
        for key, buckets in sorted(groups.items()):
            if self.groups.get(key) != buckets:
                msgs.append(Group(key[0], key[1], buckets, modify=key in self.groups))
                self.groups[key] = buckets
        wanted = {}
        for flow in flows:
            wanted[flow.key()] = flow
        for key, flow in list(self.installed.items()):
            if flow.priority == P_HOST and flow.table != T_CLASSIFY and key not in wanted:
                msgs.append(Flow(flow.dpid, flow.table, flow.priority, flow.match, delete=True))
                del self.installed[key]
        for key, flow in wanted.items():
            installed = self.installed.get(key)
            if installed is not flow and installed != flow:
                msgs.append(flow)
                self.installed[key] = flow
        return msgs

    # ------------------------------------------------------------------------ packet-in

    def packet_in(self, dpid, in_port, data, now):
        self.now = now
        info = packets.parse(data)
        info["raw"] = data
        kind = info["kind"]
        if kind == "lldp":
            return self.lldp_in(dpid, in_port, info, now)
        if kind == "arp":
            return self.arp_in(dpid, in_port, info, now)
        if kind in ("tcp", "udp", "icmp", "ipv4"):
            dst = ipaddress.IPv4Address(info["ip_dst"])
            if dst in self.intent.gateways:
                return self.to_gateway(dpid, in_port, info, data, now)
            service = next((v for v in self.intent.services if v.vip == dst), None)
            if service is not None:
                return self.vips.vip_flow(dpid, in_port, service, info, now)
            if self.intent.symmetric and self.kind(dpid) == "edge" and str(dst) in self.hosts:
                return self.vips.session_flow(dpid, in_port, info)
            return self.glean(dst, now)
        return []

    def in_lab(self, ip):
        return any(ip in subnet for subnet in self.intent.subnets)

    def arp_in(self, dpid, port, info, now):
        """Learn the sender; answer every lab address with the gateway MAC (never flood)."""
        if (dpid, port) in self.peer:
            return []
        src = ipaddress.IPv4Address(info["src_ip"])
        dst = ipaddress.IPv4Address(info["dst_ip"])
        msgs = []
        if self.in_lab(src) and src not in self.intent.gateways:
            msgs += self.learn(src, info["src_mac"], dpid, port, now)
        if info["op"] == 1 and src != dst and (self.in_lab(dst) or dst in self.intent.gateways):
            msgs.append(PacketOut(dpid, port, packets.arp_reply(self.gw_mac, dst,
                                                                info["src_mac"], src)))
            self.note(f"ARP: {self.who(src)} at {self.sw(dpid)} asked who has {self.who(dst)}: "
                      "answered with the gateway MAC")
        return msgs

    def learn(self, ip, mac, dpid, port, now):
        old = self.hosts.get(str(ip))
        if old and (old.mac, old.dpid, old.port) == (mac, dpid, port):
            return []
        if old is None:
            self.note(f"host {self.who(ip)} located at {self.port_name(dpid, port)}")
        else:
            self.note(f"host {self.who(ip)} moved from {self.port_name(old.dpid, old.port)} to "
                      f"{self.port_name(dpid, port)}")
        self.hosts[str(ip)] = HostEntry(ip, mac, dpid, port, now)
        return self.sync()

    def to_gateway(self, dpid, port, info, data, now):
        """Echo requests to a gateway are answered; health-check answers are read."""
        if info["kind"] == "icmp" and info["icmp_type"] == 8:
            return [PacketOut(dpid, port, packets.icmp_echo_reply(data, self.gw_mac))]
        if info["kind"] == "tcp":
            before = {n: h.up for n, h in self.health.items()}
            msgs, down = self.checker.reply(info, now, self.locate, self.gw_mac, dpid)
            for name, h in self.health.items():
                if h.up and before[name] is False:
                    self.note(f"server {name} passes its health checks again")
            return msgs + self.vips.withdraw(down)
        return []

    def glean(self, ip, now):
        """Traffic for a lab address we do not know: ask for it (ARP) on every edge port."""
        if not self.in_lab(ip) or now - self.glean_sent.get(str(ip), -1e9) < GLEAN_INTERVAL:
            return []
        self.glean_sent[str(ip)] = now
        gateway = self.intent.gateway_for(ip)
        frame = packets.arp_request(self.gw_mac, gateway, ip)
        return [PacketOut(dpid, port, frame) for dpid in sorted(self.ports)
                for port in self.edge_ports(dpid)]

    # ------------------------------------------------------------------------- health

    def locate(self, ip):
        """The host entry of a lab address (where it was last heard), or None."""
        return self.hosts.get(str(ip))

    def health_check(self, now):
        """A round of health checks (controllers/health.py); failed servers' flows move."""
        msgs, down = self.checker.round(now, self.locate, self.gw_mac,
                                        lambda ip: self.glean(ip, now), self.connected)
        return msgs + self.vips.withdraw(down)

    # --------------------------------------------------------------------------- timers

    def tick(self, now, backlog=False):
        """Timer work: LLDP and health checks.

        backlog: the controller has events it has not handled yet, or its timer ran late (it
        was starved of CPU). A health check's answer may then be among the unhandled events,
        so no verdict is taken and no new check sent this round: a server is declared down
        only on its own failed checks, never because the controller was busy. A backlog
        defers checks by at most HEALTH_MAX_DEFER intervals (a dead server is still found)."""
        msgs = []
        self.now = now
        if self.last_lldp is None or now - self.last_lldp >= self.intent.lldp_interval:
            self.last_lldp = now
            for dpid in sorted(self.ports):
                msgs += self.lldp_out(dpid, now)
        if self.checker.due(now, backlog):
            msgs += self.health_check(now)
        if now - self.last_probe >= PROBE_S:
            self.last_probe = now
            # both ends of every link with carrier but not live at both ends (BFD down at
            # either): each end's LLDP renews one way of the proof
            msgs += [PacketOut(d, p, packets.lldp_frame(d, p, stamp=now))
                     for d, p in sorted(self.carrier) if (d, p) in self.peer
                     and self.peer[(d, p)] in self.carrier
                     and not (self.live((d, p)) and self.live(self.peer[(d, p)]))]
        if any(not self.proven(a, b) for a, b in self.proven_now):
            msgs += self.sync()                 # a proof ran out: the link went gray again
        return msgs

    def flow_removed(self, dpid, match):
        """An idle VIP flow expired in the switch."""
        return self.vips.flow_removed(dpid, match)

    # --------------------------------------------------------------------------- status

    def status(self):
        links = sorted({tuple(sorted((a, b))) for a, b in self.peer.items()})
        return {
            "mode": self.intent.mode,
            "switches": sorted(self.ports),
            "links": [[a[0], a[1], b[0], b[1], self.live(a) and self.live(b)] for a, b in links],
            "hosts": {ip: [h.mac, h.dpid, h.port] for ip, h in sorted(self.hosts.items())},
            "servers": self.checker.status(),
            "pinned_flows": len(self.vips.pins),
            "backup_coverage": self.backup_coverage(),
        }
