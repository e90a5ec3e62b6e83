"""The controller's intent: what the operator declares (sites, subnets, gateway, VIPs, costs).

The lab writes it as JSON; the controller discovers everything else (links by LLDP, hosts by
ARP, failures by port status and BFD, server health by its own checks).
"""

import ipaddress
import json
from dataclasses import dataclass

GATEWAY_MAC = "02:00:00:00:00:fe"        # the anycast gateway's virtual MAC, same at every site


@dataclass(frozen=True)
class SwitchIntent:
    name: str
    dpid: int
    kind: str                            # site | edge
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address


@dataclass(frozen=True)
class LinkIntent:
    name: str
    a: tuple                             # (dpid, port)
    b: tuple
    delay_ms: float
    kind: str


@dataclass(frozen=True)
class ServiceIntent:
    name: str
    vip: ipaddress.IPv4Address
    port: int
    servers: tuple                       # ((name, ip), ...)
    primary: str                         # site name
    policy: str                          # anycast | primary-backup


@dataclass(frozen=True)
class Intent:
    mode: str                            # protection | restoration
    gateway_mac: str
    switches: tuple
    links: tuple
    services: tuple
    health_interval: float = 0.5         # seconds between health checks of a VIP server
    health_fail_after: int = 3           # missed or refused checks before a server is down
    health_recover_after: int = 2        # answered checks before it is up again
    lldp_interval: float = 1.0
    flow_idle_timeout: int = 30          # seconds an idle VIP flow keeps its site
    routing: str = "shortest"            # shortest | hot-potato (enter and leave the sites
    #                                      at the nearest exit: the source of asymmetric paths)
    symmetric: bool = False              # pin each client session's return path to its entry

    def switch_by_dpid(self, dpid):
        return next((s for s in self.switches if s.dpid == dpid), None)

    def switch_by_name(self, name):
        return next(s for s in self.switches if s.name == name)

    @property
    def subnets(self):
        return [s.subnet for s in self.switches]

    @property
    def gateways(self):
        return {s.gateway for s in self.switches}

    def gateway_for(self, ip):
        """The gateway address of the subnet `ip` belongs to (None outside the lab)."""
        return next((s.gateway for s in self.switches if ip in s.subnet), None)

    def link_delay(self, end_a, end_b):
        """The configured delay of the link between two (dpid, port) ends, if declared."""
        for link in self.links:
            if {link.a, link.b} == {end_a, end_b}:
                return link.delay_ms
        return None

    @classmethod
    def from_dict(cls, doc):
        switches = tuple(SwitchIntent(s["name"], int(s["dpid"]), s["kind"],
                                      ipaddress.IPv4Network(s["subnet"]),
                                      ipaddress.IPv4Address(s["gateway"]))
                         for s in doc["switches"])
        links = tuple(LinkIntent(l["name"], tuple(l["a"]), tuple(l["b"]), float(l["delay_ms"]),
                                 l.get("kind", "dci")) for l in doc.get("links", []))
        services = tuple(ServiceIntent(v["name"], ipaddress.IPv4Address(v["vip"]), int(v["port"]),
                                       tuple((n, ipaddress.IPv4Address(ip)) for n, ip in v["servers"]),
                                       v["primary"], v.get("policy", "anycast"))
                         for v in doc.get("services", []))
        options = {k: doc[k] for k in ("health_interval", "health_fail_after",
                                       "health_recover_after", "lldp_interval",
                                       "flow_idle_timeout", "routing", "symmetric") if k in doc}
        return cls(mode=doc.get("mode", "protection"),
                   gateway_mac=doc.get("gateway_mac", GATEWAY_MAC),
                   switches=switches, links=links, services=services, **options)

    @classmethod
    def load(cls, path):
        with open(path) as fh:
            return cls.from_dict(json.load(fh))
