"""VIP flows (pure code): which server a new flow to a VIP goes to, its pin in the switch, and
moving pins when their server fails or goes out of reach.

A new flow goes to the nearest site with a healthy server (primary-backup: the primary site
while it has one), and within a site to the server its client address hashes to; it stays
there while that server is healthy and reachable. With every server failing its checks the
choice fails open (serves as if all were up), as cloud load balancers do.

The manager keeps only its pins; the facts it decides on (hosts, server health, path costs,
routes, links) it reads, never writes, through ``VipFacts``: the controller logic is one.
"""

import zlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from controllers import routing
from controllers.ofmsg import T_FORWARD, T_ROUTE, TABLE, Flow, PacketOut

ETH_IP = 0x0800
P_VIP_FLOW = 3000
VIP_COOKIE = 0x5650_0000       # cookie of a pinned VIP flow: VIP_COOKIE + server index
SESSION_COOKIE = 0x5345_0000   # cookie of a pinned session (symmetric return path)
PIN_REFRESH = 1.0              # seconds before a pinned VIP flow is sent to its switch again


@dataclass(frozen=True)
class Pin:
    server: str                # the server the flow goes to
    sent: float                # when its flow was last sent to the switch


@runtime_checkable
class VipFacts(Protocol):
    """What the VIP manager reads from the rest of the controller: nothing else."""
    health: dict        # server name -> ServerHealth (.ip, .up)
    hosts: dict         # IP (str) -> where the host was last seen (.dpid, .port, .mac)
    names: dict         # dpid -> switch name
    ports: dict         # dpid -> {port: live}: the switches connected now
    peer: dict          # (dpid, port) -> (peer dpid, peer port), from LLDP
    now: float          # the time of the event being handled

    def routes(self):                   # {(switch, destination): (primary port, backup)}
        ...

    def distances_from(self, dpid):     # {dpid: path cost from dpid}
        ...

    def reaches(self, a, b):            # whether switch a reaches switch b over live links
        ...

    def note(self, text):               # a decision, in words, for the controller's log
        ...

    def who(self, ip):                  # 'client1 (10.100.0.11)': a host as the log names it
        ...


class VipManager:
    def __init__(self, intent, facts):
        self.intent = intent
        self.gw_mac = intent.gateway_mac
        self.facts = facts
        self.pins = {}             # (dpid, match items) -> Pin: the VIP flows we installed

    def pinned(self):
        """[(key, server)] of every pin (a copy: safe to change pins while iterating)."""
        return [(key, pin.server) for key, pin in self.pins.items()]

    def forget_switch(self, dpid):
        """A switch (re)connected with empty tables: its pins are gone."""
        self.pins = {k: p for k, p in self.pins.items() if k[0] != dpid}

    def server_site(self, name):
        """The site switch a server sits at now (it may have moved), or None."""
        health = self.facts.health[name]
        host = self.facts.hosts.get(str(health.ip))
        return host.dpid if host else None

    def choose_server(self, service, ingress, flow_key):
        """The server a new flow to `service` entering at switch `ingress` should go to."""
        healthy = [name for name, _ in service.servers
                   if self.facts.health[name].up and self.server_site(name) is not None]
        if not healthy:
            # fail open, as cloud load balancers do: when no server passes its checks, the
            # verdicts are more likely wrong than every server dead; serve as if all were up
            healthy = [name for name, _ in service.servers
                       if self.facts.health[name].up is not None and self.server_site(name) is not None]
        if not healthy:
            return None
        dist = self.facts.distances_from(ingress)
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
            site = routing.nearest(dist, by_site, name=lambda d: self.facts.names.get(d, str(d)))
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
        pin = self.pins.get(key)
        server = pin.server if pin else None
        if server is not None and str(self.facts.health[server].ip) in self.facts.hosts:
            if now - pin.sent < PIN_REFRESH:
                return out
        else:
            server = self.choose_server(service, dpid, self.affinity_key(match))
            if server is None:
                return []
        return self.pin(dpid, match, server, now) + out

    def pin(self, dpid, match, server, now):
        """The messages that pin a VIP flow (match at switch dpid) to a server."""
        host = self.facts.hosts[str(self.facts.health[server].ip)]
        flow = Flow(dpid, T_ROUTE, P_VIP_FLOW, match,
                    (("set", "eth_src", self.gw_mac), ("set", "eth_dst", host.mac), ("dec_ttl",)),
                    goto=T_FORWARD, cookie=VIP_COOKIE + self.facts.health[server].index,
                    idle_timeout=self.intent.flow_idle_timeout)
        key = (dpid, tuple(sorted(match.items())))
        old = self.pins.get(key)
        if old is None or old.server != server:
            flow_text = self.describe(dpid, match)
            site = self.facts.names.get(host.dpid, host.dpid)
            self.facts.note(f"VIP {flow_text} -> {server} at {site}" if old is None else
                 f"VIP {flow_text} moved from {old.server} to {server} at {site}")
        self.pins[key] = Pin(server, now)
        msgs = [flow]
        if self.intent.symmetric:
            msgs += self.return_pin(dpid, match, host)
        return msgs

    def describe(self, dpid, match):
        """'web 10.200.0.10:80 from client1 (10.100.0.11) udp 5000 at edge' for the log."""
        who = self.facts.who
        service = next((v for v in self.intent.services if str(v.vip) == match.get("ipv4_dst")),
                       None)
        proto = next((p for p in ("tcp", "udp") if f"{p}_src" in match), None)
        what = f"{proto} {match[f'{proto}_src']}" if proto else f"proto {match.get('ip_proto')}"
        return (f"{service.name if service else match.get('ipv4_dst')} from "
                f"{who(match.get('ipv4_src'))} {what} at {self.facts.names.get(dpid, dpid)}")

    def repin(self, key, server):
        """A pinned flow's server failed or went out of reach: choose again now and move the
        flow in the switch (its packets never go up to the controller), or remove it when no
        server is left. Deleting it instead sent every packet of every such flow to the
        controller until its next packet-in was handled."""
        dpid, items = key
        match = dict(items)
        service = next((v for v in self.intent.services if str(v.vip) == match["ipv4_dst"]), None)
        choice = None
        if service is not None and dpid in self.facts.ports:
            choice = self.choose_server(service, dpid, self.affinity_key(match))
        if choice == server:          # the same choice (every server failed: fail open)
            return []
        if choice is not None:
            return self.pin(dpid, match, choice, self.facts.now)
        self.pins.pop(key, None)
        self.facts.note(f"VIP {self.describe(dpid, match)}: no server left for it (was {server}); "
                 "its flow is removed")
        return [Flow(dpid, T_ROUTE, P_VIP_FLOW, match, delete=True,
                     cookie=VIP_COOKIE + self.facts.health[server].index)]

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
        host = self.facts.hosts[info["ip_dst"]]
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
        routes = self.facts.routes()
        hop = routes.get((ingress, server.dpid))
        if hop is None:
            return []
        entry = self.facts.peer.get((ingress, hop[0]), (server.dpid, None))[0]
        client = self.facts.hosts.get(match["ipv4_src"])
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
        msgs = []
        for (dpid, items), server in self.pinned():
            host = self.facts.hosts.get(str(self.facts.health[server].ip))
            if host is None or not self.facts.reaches(dpid, host.dpid):
                msgs += self.repin((dpid, items), server)
        return msgs

    def withdraw(self, names):
        """Servers are down: their flows choose again (see repin)."""
        msgs = []
        for key, server in self.pinned():
            if server in names:
                msgs += self.repin(key, server)
        return msgs

    def flow_removed(self, dpid, match):
        """An idle VIP flow expired in the switch."""
        key = (dpid, tuple(sorted(match.items())))
        self.pins.pop(key, None)
        return []
