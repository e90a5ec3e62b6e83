"""The controller's intent: what the operator declares (sites, subnets, gateway, VIPs, costs).

The one contract between the lab and the controller process: the lab builds an ``Intent``
(``lab.emulation.controller.intent_for``) and writes ``to_dict()`` as JSON; the controller reads it back
with ``from_dict``, which validates every field and names the one that is wrong in a single
line (``IntentError``). The controller discovers everything else (links by LLDP, hosts by
ARP, failures by port status and BFD, server health by its own checks).
"""

import functools
import ipaddress
import json
from dataclasses import dataclass, fields

GATEWAY_MAC = "02:00:00:00:00:fe"        # the anycast gateway's virtual MAC, same at every site
MODES = ("protection", "restoration")    # failover: precomputed backup groups | recompute
DEFAULT_MODE = "protection"
POLICIES = ("anycast", "primary-backup")
DEFAULT_POLICY = "anycast"
ROUTINGS = ("shortest", "hot-potato")
SWITCH_KINDS = ("site", "edge")


class IntentError(ValueError):
    """The intent document is not what the controller can run: one line naming the field."""


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
    policy: str = DEFAULT_POLICY         # anycast | primary-backup


@dataclass(frozen=True)
class Intent:
    mode: str                            # protection | restoration
    switches: tuple
    links: tuple
    services: tuple
    gateway_mac: str = GATEWAY_MAC
    health_interval: float = 0.5         # seconds between health checks of a VIP server
    health_fail_after: int = 3           # missed or refused checks before a server is down
    health_recover_after: int = 2        # answered checks before it is up again
    lldp_interval: float = 1.0
    flow_idle_timeout: int = 30          # seconds an idle VIP flow keeps its site
    routing: str = "shortest"            # shortest | hot-potato (enter and leave the sites
    #                                      at the nearest exit: the source of asymmetric paths)
    symmetric: bool = False              # pin each client session's return path to its entry
    host_names: tuple = ()               # ((ip, name), ...): how the log names hosts

    def switch_by_dpid(self, dpid):
        return self._by_dpid.get(dpid)

    @functools.cached_property
    def _by_dpid(self):
        by_dpid = {}
        for switch in self.switches:
            by_dpid.setdefault(switch.dpid, switch)     # the first, as a search would find
        return by_dpid

    @functools.cached_property
    def switch_index(self):
        """{dpid: its position among the switches} (group ids are numbered by it)."""
        index = {}
        for i, switch in enumerate(self.switches):
            index.setdefault(switch.dpid, i)
        return index

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
        return self._delays.get(frozenset((end_a, end_b)))

    @functools.cached_property
    def _delays(self):
        return {frozenset((link.a, link.b)): link.delay_ms for link in self.links}

    # ------------------------------------------------------------------- the JSON form

    def to_dict(self):
        """The JSON-ready document ``from_dict`` reads back into an equal Intent."""
        doc = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("switches", "links", "services", "host_names")}
        doc["host_names"] = [[str(ip), name] for ip, name in self.host_names]
        doc["switches"] = [{"name": s.name, "dpid": s.dpid, "kind": s.kind,
                            "subnet": str(s.subnet), "gateway": str(s.gateway)}
                           for s in self.switches]
        doc["links"] = [{"name": l.name, "a": list(l.a), "b": list(l.b),
                         "delay_ms": l.delay_ms, "kind": l.kind} for l in self.links]
        doc["services"] = [{"name": v.name, "vip": str(v.vip), "port": v.port,
                            "primary": v.primary, "policy": v.policy,
                            "servers": [[n, str(ip)] for n, ip in v.servers]}
                           for v in self.services]
        return doc

    @classmethod
    def from_dict(cls, doc):
        """Validate and read an intent document; IntentError names the first wrong field."""
        if not isinstance(doc, dict):
            raise IntentError("intent: the document must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise IntentError(f"intent: unknown field '{unknown[0]}' (known: {', '.join(sorted(known))})")
        switches = tuple(_switch(s, f"switches[{i}]") for i, s in enumerate(_list(doc, "switches", required=True)))
        names = [s.name for s in switches]
        dpids = [s.dpid for s in switches]
        _unique(names, "switches", "name")
        _unique(dpids, "switches", "dpid")
        links = tuple(_link(l, f"links[{i}]", set(dpids)) for i, l in enumerate(_list(doc, "links")))
        _unique([l.name for l in links], "links", "name")
        services = tuple(_service(v, f"services[{i}]", set(names))
                         for i, v in enumerate(_list(doc, "services")))
        _unique([v.name for v in services], "services", "name")
        defaults = {f.name: f.default for f in fields(cls) if f.name not in ("switches", "links",
                                                                            "services", "mode",
                                                                            "host_names")}
        mode = _choice(doc, "mode", MODES, "intent", DEFAULT_MODE)
        options = {
            "gateway_mac": _mac(doc.get("gateway_mac", defaults["gateway_mac"]), "intent.gateway_mac"),
            "health_interval": _number(doc, "health_interval", "intent", defaults, float, 0.01),
            "health_fail_after": _number(doc, "health_fail_after", "intent", defaults, int, 1),
            "health_recover_after": _number(doc, "health_recover_after", "intent", defaults, int, 1),
            "lldp_interval": _number(doc, "lldp_interval", "intent", defaults, float, 0.01),
            "flow_idle_timeout": _number(doc, "flow_idle_timeout", "intent", defaults, int, 1),
            "routing": _choice(doc, "routing", ROUTINGS, "intent", defaults["routing"]),
            "symmetric": _bool(doc, "symmetric", "intent", defaults["symmetric"]),
            "host_names": _host_names(_list(doc, "host_names")),
        }
        return cls(mode=mode, switches=switches, links=links, services=services, **options)

    @classmethod
    def load(cls, path):
        """Read and validate an intent file; IntentError names the file and the field."""
        try:
            with open(path) as fh:
                doc = json.load(fh)
        except OSError as exc:
            raise IntentError(f"{path}: cannot read the intent ({exc.strerror})") from None
        except ValueError as exc:
            raise IntentError(f"{path}: not valid JSON ({exc})") from None
        try:
            return cls.from_dict(doc)
        except IntentError as exc:
            raise IntentError(f"{path}: {exc}") from None

    def save(self, path):
        with open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=1)


# ------------------------------------------------------------------------ field readers

def _host_names(pairs):
    out = []
    for i, pair in enumerate(pairs):
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(x, str) and x for x in pair)):
            raise IntentError(f"intent.host_names[{i}]: must be [ip, name] (two strings)")
        try:
            ipaddress.IPv4Address(pair[0])
        except ValueError:
            raise IntentError(f"intent.host_names[{i}]: {pair[0]!r} is not an IPv4 address") from None
        out.append((pair[0], pair[1]))
    return tuple(out)


def _list(doc, key, required=False):
    if key not in doc:
        if required:
            raise IntentError(f"intent: missing field '{key}'")
        return []
    value = doc[key]
    if not isinstance(value, list):
        raise IntentError(f"intent.{key}: must be a list, not {type(value).__name__}")
    return value


def _get(doc, key, where):
    if not isinstance(doc, dict):
        raise IntentError(f"{where}: must be an object")
    if key not in doc:
        raise IntentError(f"{where}: missing field '{key}'")
    return doc[key]


def _unique(values, where, what):
    seen = set()
    for value in values:
        if value in seen:
            raise IntentError(f"intent.{where}: {what} {value!r} appears twice")
        seen.add(value)


def _text(doc, key, where):
    value = _get(doc, key, where)
    if not isinstance(value, str) or not value:
        raise IntentError(f"{where}.{key}: must be a non-empty string, not {value!r}")
    return value


def _int(value, where, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise IntentError(f"{where}: must be an integer, not {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise IntentError(f"{where}: {value} is out of range {low}..{high}")
    return value


def _number(doc, key, where, defaults, kind, low):
    value = doc.get(key, defaults[key])
    ok = (not isinstance(value, bool)
          and (isinstance(value, int) if kind is int else isinstance(value, (int, float))))
    if not ok or value < low:
        raise IntentError(f"{where}.{key}: must be {'an integer' if kind is int else 'a number'} "
                          f">= {low}, not {value!r}")
    return kind(value)


def _bool(doc, key, where, default):
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise IntentError(f"{where}.{key}: must be true or false, not {value!r}")
    return value


def _choice(doc, key, choices, where, default):
    value = doc.get(key, default)
    if value not in choices:
        raise IntentError(f"{where}.{key}: {value!r} is not one of {', '.join(choices)}")
    return value


def _mac(value, where):
    parts = value.split(":") if isinstance(value, str) else []
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                  for p in parts):
        raise IntentError(f"{where}: {value!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return value.lower()


def _ip(value, where, kind):
    try:
        return kind(value)
    except (ValueError, TypeError):
        what = "an IPv4 network (a.b.c.d/n)" if kind is ipaddress.IPv4Network else "an IPv4 address"
        raise IntentError(f"{where}: {value!r} is not {what}") from None


def _switch(doc, where):
    name = _text(doc, "name", where)
    kind = _get(doc, "kind", where)
    if kind not in SWITCH_KINDS:
        raise IntentError(f"{where}.kind: {kind!r} is not one of {', '.join(SWITCH_KINDS)}")
    subnet = _ip(_get(doc, "subnet", where), f"{where}.subnet", ipaddress.IPv4Network)
    gateway = _ip(_get(doc, "gateway", where), f"{where}.gateway", ipaddress.IPv4Address)
    if gateway not in subnet:
        raise IntentError(f"{where}.gateway: {gateway} is outside its subnet {subnet}")
    return SwitchIntent(name, _int(_get(doc, "dpid", where), f"{where}.dpid", 1, 2**64 - 1),
                        kind, subnet, gateway)


def _end(value, where, dpids):
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise IntentError(f"{where}: must be [dpid, port], not {value!r}")
    dpid = _int(value[0], f"{where}[0] (dpid)", 1, 2**64 - 1)
    if dpid not in dpids:
        raise IntentError(f"{where}: dpid {dpid} is no switch of the intent")
    return dpid, _int(value[1], f"{where}[1] (port)", 1, 0xffffff00)


def _link(doc, where, dpids):
    name = _text(doc, "name", where)
    a = _end(_get(doc, "a", where), f"{where}.a", dpids)
    b = _end(_get(doc, "b", where), f"{where}.b", dpids)
    delay = _get(doc, "delay_ms", where)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise IntentError(f"{where}.delay_ms: must be a number >= 0, not {delay!r}")
    kind = doc.get("kind", "dci")
    if not isinstance(kind, str) or not kind:
        raise IntentError(f"{where}.kind: must be a non-empty string, not {kind!r}")
    return LinkIntent(name, a, b, float(delay), kind)


def _service(doc, where, switch_names):
    name = _text(doc, "name", where)
    vip = _ip(_get(doc, "vip", where), f"{where}.vip", ipaddress.IPv4Address)
    port = _int(_get(doc, "port", where), f"{where}.port", 1, 65535)
    servers = _get(doc, "servers", where)
    if not isinstance(servers, list) or not servers:
        raise IntentError(f"{where}.servers: must be a non-empty list of [name, ip]")
    pairs = []
    for i, pair in enumerate(servers):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], str):
            raise IntentError(f"{where}.servers[{i}]: must be [name, ip], not {pair!r}")
        pairs.append((pair[0], _ip(pair[1], f"{where}.servers[{i}]", ipaddress.IPv4Address)))
    primary = _text(doc, "primary", where)
    if primary not in switch_names:
        raise IntentError(f"{where}.primary: {primary!r} is no switch of the intent")
    policy = _choice(doc, "policy", POLICIES, where, DEFAULT_POLICY)
    return ServiceIntent(name, vip, port, tuple(pairs), primary, policy)
