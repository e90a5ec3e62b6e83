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
import zlib
from dataclasses import dataclass, field

from controllers import packets, routing
from controllers.ofmsg import (CONTROLLER, T_CLASSIFY, T_FORWARD, T_ROUTE, TABLE, Flow, Group,
                               PacketOut)

ETH_IP, ETH_ARP, ETH_LLDP = 0x0800, 0x0806, 0x88CC
VIP_COOKIE = 0x5650_0000       # cookie of a pinned VIP flow: VIP_COOKIE + server index
HEALTH_MAX_DEFER = 4           # health intervals a busy controller may defer its checks
HEALTH_SILENT_MAX = 20         # health intervals a check may wait for the control path's proof
HEALTH_PORT_BASE = 47000       # source port of the health check of server i: base + i
GLEAN_INTERVAL = 1.0           # seconds between ARP searches for the same unknown address
PIN_REFRESH = 1.0              # seconds before a pinned VIP flow is sent to its switch again

P_LLDP, P_ARP, P_ROUTED, P_TRANSIT = 1000, 900, 100, 50
P_VIP_FLOW, P_VIP, P_GATEWAY, P_SESSION, P_HOST, P_GLEAN = 3000, 2000, 1500, 1200, 1000, 10
SESSION_COOKIE = 0x5345_0000   # cookie of a pinned session (symmetric return path)


@dataclass
class HostEntry:
    ip: ipaddress.IPv4Address
    mac: str
    dpid: int
    port: int
    since: float


@dataclass
class ServerHealth:
    name: str
    ip: ipaddress.IPv4Address
    index: int
    up: bool = None            # None until the first verdict
    misses: int = 0
    oks: int = 0
    seq: int = 1000
    outstanding: dict = field(default_factory=dict)   # unanswered, unjudged checks: seq -> sent


class Fabric:
    """The whole controller state and its decisions. Every event method returns messages."""

    def __init__(self, intent):
        self.intent = intent
        self.gw_mac = intent.gateway_mac
        self.names = {s.dpid: s.name for s in intent.switches}
        self.ports = {}            # dpid -> {port: live}
        self.peer = {}             # (dpid, port) -> (dpid, port), from LLDP
        self.hosts = {}            # ip -> HostEntry
        self.installed = {}        # Flow.key() -> Flow
        self.groups = {}           # (dpid, group_id) -> buckets
        self.pinned = {}           # (dpid, match items) -> server name, VIP flows we installed
        self.pin_sent = {}         # (dpid, match items) -> when its flow was last sent
        self.now = 0.0             # the time of the event being handled
        self.glean_sent = {}       # ip -> time of the last ARP search
        self.last_lldp = None
        self.last_health = None
        self.path_proven = None       # send time of the latest frame of ours that came back
        self.path_progress = None     # when path_proven last moved on (the path is alive)
        self.health = {}
        index = 0
        for service in intent.services:
            for name, ip in service.servers:
                if name not in self.health:
                    self.health[name] = ServerHealth(name, ip, index)
                    index += 1

    # ------------------------------------------------------------------------- switches

    def switch_connected(self, dpid, ports, now):
        """A switch (re)connected with {port: live}; its tables were just cleared."""
        self.ports[dpid] = dict(ports)
        self.installed = {k: f for k, f in self.installed.items() if f.dpid != dpid}
        self.groups = {k: b for k, b in self.groups.items() if k[0] != dpid}
        self.pinned = {k: s for k, s in self.pinned.items() if k[0] != dpid}
        self.pin_sent = {k: t for k, t in self.pin_sent.items() if k[0] != dpid}
        self.now = now
        msgs = [f for f in self.base_flows(dpid)]
        for flow in msgs:
            self.installed[flow.key()] = flow
        msgs += self.lldp_out(dpid, now)
        return msgs + self.sync()

    def switch_disconnected(self, dpid, now):
        self.ports.pop(dpid, None)
        self.peer = {a: b for a, b in self.peer.items() if a[0] != dpid and b[0] != dpid}
        self.installed = {k: f for k, f in self.installed.items() if f.dpid != dpid}
        self.groups = {k: b for k, b in self.groups.items() if k[0] != dpid}
        return self.sync()

    def port_changed(self, dpid, port, live, now):
        """A port's liveness changed (carrier, admin state or BFD)."""
        self.now = now
        if dpid not in self.ports or self.ports[dpid].get(port) == live:
            return []
        self.ports[dpid][port] = live
        return self.sync()

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

    def heard(self, sent, now=None):
        """Something the controller sent at `sent` came back: its own path works since then.

        `now` is when it came back: a path that lags (frames seconds old still arriving, in
        order) is alive, and a check is then waited for, not judged silent."""
        if sent is not None and (self.path_proven is None or sent > self.path_proven):
            self.path_proven = sent
            if now is not None:
                self.path_progress = now

    def lldp_in(self, dpid, port, info, now):
        origin = packets.lldp_origin(info)
        self.heard(info.get("stamp"), now)
        if origin is None or origin == (dpid, port) or origin[0] not in self.ports:
            return []
        if self.peer.get((dpid, port)) == origin and self.peer.get(origin) == (dpid, port):
            return []
        for end in ((dpid, port), origin):          # a port has one peer: forget stale links
            old = self.peer.pop(end, None)
            if old is not None:
                self.peer.pop(old, None)
        self.peer[(dpid, port)] = origin
        self.peer[origin] = (dpid, port)
        for host in [h for h in self.hosts.values() if (h.dpid, h.port) in self.peer]:
            del self.hosts[str(host.ip)]                # learned on what is really a link
        return self.sync()

    def live(self, end):
        return self.ports.get(end[0], {}).get(end[1], False)

    def view(self):
        """The facts routes depend on (switches, live links and their cost, the policy), as a
        hashable routing.View: routes are computed once per distinct view (cached)."""
        links = []
        for a, b in self.peer.items():
            if a < b and self.live(a) and self.live(b):
                links.append((a, b, routing.link_cost(self.intent.link_delay(a, b))))
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

    def distances_from(self, dpid):
        """Path cost from a switch to every switch it can reach (edges not transit)."""
        return routing.distances(self.view(), dpid)

    # ---------------------------------------------------------------------- desired state

    def group_id(self, dst_dpid):
        return 1 + [s.dpid for s in self.intent.switches].index(dst_dpid) \
            if self.intent.switch_by_dpid(dst_dpid) else 1000 + dst_dpid

    def desired(self):
        """The host routes, forwarding flows and groups the current facts call for."""
        flows, groups = [], {}
        routes = self.routes()
        protection = self.intent.mode == "protection"
        for host in self.hosts.values():
            route = {"eth_type": ETH_IP, "ipv4_dst": str(host.ip)}
            rewrite = (("set", "eth_src", self.gw_mac), ("set", "eth_dst", host.mac), ("dec_ttl",))
            for dpid in self.ports:
                flows.append(Flow(dpid, T_ROUTE, P_HOST, route, rewrite, goto=T_FORWARD))
                match = {"eth_dst": host.mac}
                if dpid == host.dpid:
                    flows.append(Flow(dpid, T_FORWARD, P_HOST, match, (("output", host.port),)))
                    continue
                hop = routes.get((dpid, host.dpid))
                if hop is None:
                    continue
                primary, backup = hop
                if protection:
                    gid = self.group_id(host.dpid)
                    buckets = ((primary, (("output", primary),)),)
                    if backup is not None:
                        buckets += ((backup, (("output", backup),)),)
                    groups[(dpid, gid)] = buckets
                    flows.append(Flow(dpid, T_FORWARD, P_HOST, match, (("group", gid),)))
                else:
                    flows.append(Flow(dpid, T_FORWARD, P_HOST, match, (("output", primary),)))
        return flows, groups

    def sync(self):
        """Messages that turn what is installed into what is desired (groups before flows)."""
        flows, groups = self.desired()
        msgs = self.unpin_unreachable()
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
            if self.installed.get(key) != flow:
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
                return self.vip_flow(dpid, in_port, service, info, now)
            if self.intent.symmetric and self.kind(dpid) == "edge" and str(dst) in self.hosts:
                return self.session_flow(dpid, in_port, info)
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
        return msgs

    def learn(self, ip, mac, dpid, port, now):
        old = self.hosts.get(str(ip))
        if old and (old.mac, old.dpid, old.port) == (mac, dpid, port):
            return []
        self.hosts[str(ip)] = HostEntry(ip, mac, dpid, port, now)
        return self.sync()

    def to_gateway(self, dpid, port, info, data, now):
        """Echo requests to a gateway are answered; health-check answers are read."""
        if info["kind"] == "icmp" and info["icmp_type"] == 8:
            return [PacketOut(dpid, port, packets.icmp_echo_reply(data, self.gw_mac))]
        if info["kind"] == "tcp":
            return self.health_reply(dpid, port, info, now)
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

    # ----------------------------------------------------------------------------- VIPs

    def server_site(self, name):
        """The site switch a server sits at now (it may have moved), or None."""
        health = self.health[name]
        host = self.hosts.get(str(health.ip))
        return host.dpid if host else None

    def choose_server(self, service, ingress, flow_key):
        """The server a new flow to `service` entering at switch `ingress` should go to."""
        healthy = [name for name, _ in service.servers
                   if self.health[name].up and self.server_site(name) is not None]
        if not healthy:
            # fail open, as cloud load balancers do: when no server passes its checks, the
            # verdicts are more likely wrong than every server dead; serve as if all were up
            healthy = [name for name, _ in service.servers
                       if self.health[name].up is not None and self.server_site(name) is not None]
        if not healthy:
            return None
        dist = self.distances_from(ingress)
        by_site = {}
        for name in healthy:
            site = self.server_site(name)
            if site in dist:
                by_site.setdefault(site, []).append(name)
        if not by_site:
            return None
        primary = self.intent.switch_by_name(service.primary).dpid
        if service.policy == "primary-backup" and primary in by_site:
            site = primary
        else:
            site = routing.nearest(dist, by_site, name=lambda d: self.names.get(d, str(d)))
        names = sorted(by_site[site])
        return names[zlib.crc32(repr(flow_key).encode()) % len(names)]

    @staticmethod
    def affinity_key(match):
        """What picks the server within a site: the client address, so every connection of a
        client (iperf3's control and data, a browser's parallel ones) reaches the same server."""
        return match["ipv4_src"]

    def vip_flow(self, dpid, port, service, info, now):
        """Pin a new flow to a server and send its first packet on through the tables.

        Packets of a flow already pinned here (they were on their way to the controller
        before its flow reached the switch: at a flow's start every packet of the controller's
        delay comes up) are only sent on: no new choice, and the flow is sent again at most
        every PIN_REFRESH seconds (in case the switch lost it). Each of them costing a
        server choice and a flow change is how a busy controller fell seconds behind."""
        match = self.flow_match(info, service.vip)
        key = (dpid, tuple(sorted(match.items())))
        out = [PacketOut(dpid, TABLE, info.get("raw", b""), in_port=port)]
        server = self.pinned.get(key)
        if server is not None and str(self.health[server].ip) in self.hosts:
            if now - self.pin_sent.get(key, -1e9) < PIN_REFRESH:
                return out
        else:
            server = self.choose_server(service, dpid, self.affinity_key(match))
            if server is None:
                return []
        return self.pin(dpid, match, server, now) + out

    def pin(self, dpid, match, server, now):
        """The messages that pin a VIP flow (match at switch dpid) to a server."""
        host = self.hosts[str(self.health[server].ip)]
        flow = Flow(dpid, T_ROUTE, P_VIP_FLOW, match,
                    (("set", "eth_src", self.gw_mac), ("set", "eth_dst", host.mac), ("dec_ttl",)),
                    goto=T_FORWARD, cookie=VIP_COOKIE + self.health[server].index,
                    idle_timeout=self.intent.flow_idle_timeout)
        key = (dpid, tuple(sorted(match.items())))
        self.pinned[key] = server
        self.pin_sent[key] = now
        msgs = [flow]
        if self.intent.symmetric:
            msgs += self.return_pin(dpid, match, host)
        return msgs

    def repin(self, key, server):
        """A pinned flow's server failed or went out of reach: choose again now and move the
        flow in the switch (its packets never go up to the controller), or remove it when no
        server is left. Deleting it instead sent every packet of every such flow to the
        controller until its next packet-in was handled."""
        dpid, items = key
        match = dict(items)
        service = next((v for v in self.intent.services if str(v.vip) == match["ipv4_dst"]), None)
        choice = None
        if service is not None and dpid in self.ports:
            choice = self.choose_server(service, dpid, self.affinity_key(match))
        if choice == server:          # the same choice (every server failed: fail open)
            return []
        if choice is not None:
            return self.pin(dpid, match, choice, self.now)
        self.pinned.pop(key, None)
        self.pin_sent.pop(key, None)
        return [Flow(dpid, T_ROUTE, P_VIP_FLOW, match, delete=True,
                     cookie=VIP_COOKIE + self.health[server].index)]

    @staticmethod
    def flow_match(info, dst):
        match = {"eth_type": ETH_IP, "ipv4_src": info["ip_src"], "ipv4_dst": str(dst),
                 "ip_proto": info["ip_proto"]}
        if info["kind"] in ("tcp", "udp"):
            match[f"{info['kind']}_src"] = info["src_port"]
            match[f"{info['kind']}_dst"] = info["dst_port"]
        return match

    def session_flow(self, dpid, port, info):
        """Symmetric remedy: pin a new client session here and its return path to its entry."""
        host = self.hosts[info["ip_dst"]]
        match = self.flow_match(info, info["ip_dst"])
        flow = Flow(dpid, T_ROUTE, P_VIP_FLOW, match,
                    (("set", "eth_src", self.gw_mac), ("set", "eth_dst", host.mac), ("dec_ttl",)),
                    goto=T_FORWARD, cookie=SESSION_COOKIE,
                    idle_timeout=self.intent.flow_idle_timeout)
        return [flow] + self.return_pin(dpid, match, host) + [
            PacketOut(dpid, TABLE, info.get("raw", b""), in_port=port)]

    def return_pin(self, ingress, match, server):
        """At the server's switch, send the session's replies back toward the site it entered
        by (the site whose firewall saw its first packet), not out of the nearest exit."""
        routes = self.routes()
        hop = routes.get((ingress, server.dpid))
        if hop is None:
            return []
        entry = self.peer.get((ingress, hop[0]), (server.dpid, None))[0]
        client = self.hosts.get(match["ipv4_src"])
        if client is None:
            return []
        if entry == server.dpid:
            out = routes.get((server.dpid, ingress))
        else:
            out = routes.get((server.dpid, entry))
        if out is None:
            return []
        reverse = {"eth_type": ETH_IP, "ipv4_src": match["ipv4_dst"],
                   "ipv4_dst": match["ipv4_src"], "ip_proto": match["ip_proto"]}
        for proto in ("tcp", "udp"):
            if f"{proto}_src" in match:
                reverse[f"{proto}_src"] = match[f"{proto}_dst"]
                reverse[f"{proto}_dst"] = match[f"{proto}_src"]
        return [Flow(server.dpid, T_ROUTE, P_VIP_FLOW, reverse,
                     (("set", "eth_src", self.gw_mac), ("set", "eth_dst", client.mac),
                      ("dec_ttl",), ("output", out[0])),
                     cookie=SESSION_COOKIE, idle_timeout=self.intent.flow_idle_timeout)]

    def unpin_unreachable(self):
        """VIP flows whose server the ingress switch can no longer reach (a site lost all its
        links, e.g. powered off) choose again at once, without waiting for health checks."""
        msgs, reach = [], {}
        for (dpid, items), server in list(self.pinned.items()):
            host = self.hosts.get(str(self.health[server].ip))
            if dpid not in reach:
                reach[dpid] = self.distances_from(dpid)
            if host is None or host.dpid not in reach[dpid]:
                msgs += self.repin((dpid, items), server)
        return msgs

    # ------------------------------------------------------------------------- health

    def health_check(self, now):
        """One TCP SYN per server to its VIP port, sent from its subnet's gateway address.

        A check not answered by the next round is a miss only once the controller has proof
        that its own path worked after the check was sent: a frame of its own sent at least
        one interval later (another server's answer, or a stamped LLDP frame) came back. Without that proof the
        silence is the controller's (its switches' upcalls or its own event loop starved of
        CPU), not the server's: the check waits, and a late answer still counts. Every server
        failing at once because the machine was busy is what this prevents; a dead server is
        still found one LLDP round trip later. A path that makes no progress at all (nothing
        of ours comes back, not even late) for HEALTH_SILENT_MAX intervals after the check is
        judged anyway; a path that lags (frames of ours arriving seconds late, as when a
        flood of packet-ins queues ahead of them) still makes progress, and is waited for."""
        msgs = []
        interval = self.intent.health_interval
        for service in self.intent.services:
            for name, _ in service.servers:
                health = self.health[name]
                for seq, sent in sorted(health.outstanding.items()):
                    # proof: a frame of ours sent a whole interval after the check came back
                    # (an answer to the check, which had that head start, would have too)
                    proven = self.path_proven is not None and self.path_proven >= sent + interval
                    alive = max(sent, self.path_progress or sent)
                    if proven or now - alive >= HEALTH_SILENT_MAX * interval:
                        del health.outstanding[seq]
                        msgs += self.health_verdict(health, ok=False)
                host = self.hosts.get(str(health.ip))
                if host is None:
                    msgs += self.glean(health.ip, now)      # e.g. after a controller restart
                    continue
                health.seq += 1
                health.outstanding[health.seq] = now
                frame = packets.tcp_segment(self.gw_mac, host.mac, self.intent.gateway_for(host.ip),
                                            service.vip, HEALTH_PORT_BASE + health.index,
                                            service.port, packets.TCP_SYN, seq=health.seq)
                msgs.append(PacketOut(host.dpid, host.port, frame))
        return msgs

    def health_reply(self, dpid, port, info, now):
        health = next((h for h in self.health.values()
                       if info["dst_port"] == HEALTH_PORT_BASE + h.index), None)
        if health is None or info["ack"] - 1 not in health.outstanding:
            return []
        sent = health.outstanding[info["ack"] - 1]
        self.heard(sent, now)
        for seq in [q for q in health.outstanding if q <= info["ack"] - 1]:
            del health.outstanding[seq]               # an answer supersedes older checks
        syn_ack = info["flags"] & packets.TCP_SYN and info["flags"] & packets.TCP_ACK
        msgs = self.health_verdict(health, ok=bool(syn_ack))
        if syn_ack:                                   # close the half-open connection
            host = self.hosts.get(str(health.ip))
            if host:
                msgs.append(PacketOut(host.dpid, host.port, packets.tcp_segment(
                    self.gw_mac, host.mac, info["ip_dst"], info["ip_src"], info["dst_port"],
                    info["src_port"], packets.TCP_RST, seq=info["ack"])))
        return msgs

    def health_verdict(self, health, ok):
        if ok:
            health.oks, health.misses = health.oks + 1, 0
            if health.up is None or (not health.up and health.oks >= self.intent.health_recover_after):
                health.up = True
            return []
        health.misses, health.oks = health.misses + 1, 0
        if health.up is not False and health.misses >= self.intent.health_fail_after:
            health.up = False
            return self.withdraw(health)
        return []

    def withdraw(self, health):
        """A server is down: its flows choose again (see repin)."""
        msgs = []
        for key, server in list(self.pinned.items()):
            if server == health.name:
                msgs += self.repin(key, server)
        return msgs

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
        interval = self.intent.health_interval
        due = self.last_health is None or now - self.last_health >= interval
        deferred_too_long = self.last_health is not None and \
            now - self.last_health >= HEALTH_MAX_DEFER * interval
        if due and (not backlog or deferred_too_long):
            self.last_health = now
            msgs += self.health_check(now)
        return msgs

    def flow_removed(self, dpid, match):
        """An idle VIP flow expired in the switch."""
        key = (dpid, tuple(sorted(match.items())))
        self.pinned.pop(key, None)
        self.pin_sent.pop(key, None)
        return []

    # --------------------------------------------------------------------------- status

    def status(self):
        links = sorted({tuple(sorted((a, b))) for a, b in self.peer.items()})
        return {
            "mode": self.intent.mode,
            "switches": sorted(self.ports),
            "links": [[a[0], a[1], b[0], b[1], self.live(a) and self.live(b)] for a, b in links],
            "hosts": {ip: [h.mac, h.dpid, h.port] for ip, h in sorted(self.hosts.items())},
            "servers": {h.name: h.up for h in self.health.values()},
            "pinned_flows": len(self.pinned),
            "backup_coverage": self.backup_coverage(),
        }
