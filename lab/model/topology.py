"""Topology model: sites, client edges, hosts and shaped links, loaded from YAML and validated.

A topology file (see ``topologies/dual-active.yaml``) has four top-level keys::

    name: dual-active            # optional, defaults to the file name
    description: one line        # optional
    sites:                       # data centers: one edge switch each, servers in a subnet
      dc1: {subnet: 10.1.0.0/24, servers: 2, location: Frankfurt}
    edges:                       # client edges: one switch each, clients in a subnet
      edge: {subnet: 10.100.0.0/24, clients: 2}
    links:                       # shaped links between switches, by name
      dci-a: {between: [dc1, dc2], bw: 100, delay: 2ms, jitter: 0ms, loss: 0, queue: 100}

Every problem raises :class:`TopologyError` with the file, the field and the fix. The model is
pure (stdlib + PyYAML) so that ``mn --custom topologies/mn_topos.py`` can use it too.
"""

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import yaml

from lab.errors import TopologyError
from lab import REPO

TOPOLOGY_DIR = REPO / "topologies"

IFNAMSIZ = 15                   # Linux interface names: at most 15 characters
HOST_OFFSET = 10                # hosts get subnet addresses .11, .12, ...; .1 is the gateway
NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
TIME_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)\s*$")
TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
DEFAULT_QUEUE = 1000            # packets, Linux's default txqueuelen
MAX_BW = 10000                  # Mbit/s; the emulation cannot do more, and rarely that

TOP_KEYS = {"name", "description", "sites", "edges", "links", "services", "firewall", "data",
            "qos"}
DATA_KEYS = {"engine", "nodes", "witness", "primary", "standbys", "failover", "consensus",
             "description"}
FAILOVERS = ("runbook", "patroni")
ENGINES = ("galera", "postgresql")
STANDBY_MODES = ("sync", "async")
FIREWALL_KEYS = {"tcp", "udp", "icmp", "description"}
SERVICE_KEYS = {"vip", "port", "servers", "primary", "description"}
SITE_KEYS = {"subnet", "servers", "location", "description"}
EDGE_KEYS = {"subnet", "clients", "location", "description"}
# QoS classes on DCI links: name -> (DSCP its traffic is marked with, TCP ports, UDP ports,
# what it carries). Hosts mark by port (both directions); OVS's own BFD and ARP are classed
# as control at the DCI egress (the switch sends them, no host can mark them).
QOS_CLASSES = {
    "control": (48, (2379, 2380), (3784, 3785, 4784),
                "BFD, ARP, etcd (consensus): what decides failover"),
    "replication": (34, (4444, 4567, 4568, 5432, 8008), (3780,),
                    "Galera, PostgreSQL, Patroni, conntrackd: state copied between sites"),
    "client": (18, (), (53, 7000), "the services' ports, DNS (GSLB), probe streams"),
    "bulk": (8, (5201, 5301), (), "backups and copies (iperf3; 5301: replication's DCI load)"),
}
QOS_KEYS = {"share", "rate", "priority", "dscp", "tcp", "udp", "description"}
QOS_TOP_KEYS = {"enabled", "default", "description"}
LINK_KEYS = {"between", "bw", "delay", "jitter", "loss", "queue", "firewall", "description"}


@dataclass(frozen=True)
class Switch:
    """An OpenFlow switch: a site's edge switch (kind 'site') or a client edge (kind 'edge')."""
    name: str
    kind: str
    dpid: int
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    location: str = ""


@dataclass(frozen=True)
class Host:
    """A server (in a site) or a client (at a client edge), attached to one switch."""
    name: str
    role: str
    switch: str
    ip: ipaddress.IPv4Interface
    mac: str

    @property
    def intf(self):
        return f"{self.name}-eth0"


@dataclass(frozen=True)
class Link:
    """A shaped link between two switches: 'dci' between sites, 'edge' from a client edge.

    bw is in Mbit/s (None: unshaped), delay and jitter in ms one way, loss in percent, queue in
    packets (the bottleneck buffer).
    """
    name: str
    a: str
    b: str
    kind: str
    bw: float = None
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    queue: int = DEFAULT_QUEUE
    firewall: str = None     # the site end whose stateful firewall sits on this link, if any

    @property
    def firewall_node(self):
        """Name of the firewall node on this link (None without one)."""
        return f"{self.firewall}-fw" if self.firewall else None

    @property
    def impaired(self):
        """True when the link needs a delay element (netem or the userspace delay line)."""
        return self.delay_ms > 0 or self.jitter_ms > 0 or self.loss > 0

    @property
    def ends(self):
        return (self.a, self.b)


@dataclass(frozen=True)
class Service:
    """An anycast service: one VIP (on the servers' loopback) served from several sites.

    port is the TCP port health checks and clients use; primary is the site a primary/backup
    policy serves from while it is healthy."""
    name: str
    vip: ipaddress.IPv4Address
    port: int
    servers: tuple
    primary: str


@dataclass(frozen=True)
class DataTier:
    """The replicated database the sites' application writes to.

    galera: a multi-master MariaDB Galera cluster, one node per site (``nodes``), optionally
    the arbitrator garbd in a site of its own (``witness``): a vote without data. postgresql:
    streaming replication from ``primary`` to ``standbys`` ({host: sync|async}): a synchronous
    standby is in synchronous_standby_names, so a commit waits for it."""
    engine: str
    nodes: tuple                 # every database node's host; postgresql: the primary first
    witness: str = None          # galera: garbd's host
    standbys: tuple = ()         # postgresql: ((host, 'sync' | 'async'), ...)
    failover: str = "runbook"    # postgresql: 'runbook' (promoted by the experiment, on
                                 # reachability alone) or 'patroni' (Patroni on every node,
                                 # its leader lease in etcd on the `consensus` hosts)
    consensus: tuple = ()        # patroni: etcd's hosts (an odd number, in different sites)

    @property
    def primary(self):
        return self.nodes[0] if self.engine == "postgresql" else None

    @property
    def voters(self):
        """Galera's quorum members: the nodes and the witness."""
        return self.nodes + ((self.witness,) if self.witness else ())


@dataclass(frozen=True)
class FirewallPolicy:
    """What the sites' firewalls let clients open: TCP and UDP ports, ICMP echo. Everything
    else from the client side is dropped and counted; replies and the sites' own outbound
    connections pass (stateful)."""
    tcp: tuple = ()
    udp: tuple = ()
    icmp: bool = True


@dataclass(frozen=True)
class QosClass:
    """One traffic class on every DCI egress: a guaranteed `share` (percent of the link's bw)
    or `rate` (Mbit/s), up to the whole link when the others leave it idle; `priority` 0 is
    served first when classes compete for spare bandwidth; traffic marked `dscp`."""
    name: str
    dscp: int
    priority: int
    share: float = None
    rate: float = None
    tcp: tuple = ()
    udp: tuple = ()

    def rate_on(self, bw):
        """The guaranteed rate on a link of `bw` Mbit/s."""
        return self.rate if self.rate is not None else bw * self.share / 100.0


@dataclass(frozen=True)
class QosPolicy:
    """QoS classes on the DCI links (HTB classes on both ends, filters on DSCP); traffic no
    host marked goes to `default`. `enabled` false: declared, not applied (one class)."""
    classes: tuple
    default: str
    enabled: bool = True

    def cls(self, name):
        return next(c for c in self.classes if c.name == name)


@dataclass(frozen=True)
class Port:
    """One switch port as the builder creates it: OpenFlow port number, interface, what is behind."""
    switch: str
    number: int
    intf: str
    peer: str           # host name or link name
    peer_kind: str      # 'host' or 'link'


@dataclass(frozen=True)
class Topology:
    name: str
    description: str
    source: str
    switches: tuple
    hosts: tuple
    links: tuple
    services: tuple = ()
    firewall: FirewallPolicy = None
    data: DataTier = None
    qos: QosPolicy = None
    warnings: tuple = ()         # what is legal but probably not meant (one line each)

    @property
    def firewalls(self):
        """(firewall node name, link) for every firewalled link."""
        return tuple((l.firewall_node, l) for l in self.links if l.firewall)

    def switch(self, name):
        return next(s for s in self.switches if s.name == name)

    def link(self, name):
        return next(l for l in self.links if l.name == name)

    def host(self, name):
        return next(h for h in self.hosts if h.name == name)

    @property
    def sites(self):
        return tuple(s for s in self.switches if s.kind == "site")

    @property
    def servers(self):
        return tuple(h for h in self.hosts if h.role == "server")

    @property
    def clients(self):
        return tuple(h for h in self.hosts if h.role == "client")

    @property
    def dci_links(self):
        return tuple(l for l in self.links if l.kind == "dci")

    def hosts_at(self, switch):
        return tuple(h for h in self.hosts if h.switch == switch)

    def ports(self, switch):
        """The ports of a switch: its hosts first (1..k), then its links in file order."""
        peers = [(h.name, "host") for h in self.hosts_at(switch)]
        peers += [(l.name, "link") for l in self.links if switch in l.ends]
        return tuple(Port(switch, n, f"{switch}-eth{n}", peer, kind)
                     for n, (peer, kind) in enumerate(peers, start=1))

    def port_to(self, switch, peer):
        """The port of `switch` that leads to host or link `peer`."""
        return next(p for p in self.ports(switch) if p.peer == peer)

    def to_dict(self):
        """A plain description (for the results folder's parameters)."""
        return {
            "name": self.name, "description": self.description, "source": self.source,
            "switches": [{"name": s.name, "kind": s.kind, "dpid": s.dpid, "subnet": str(s.subnet),
                          "gateway": str(s.gateway), "location": s.location}
                         for s in self.switches],
            "hosts": [{"name": h.name, "role": h.role, "switch": h.switch, "ip": str(h.ip),
                       "mac": h.mac} for h in self.hosts],
            "links": [{"name": l.name, "between": [l.a, l.b], "kind": l.kind, "bw_mbit": l.bw,
                       "delay_ms": l.delay_ms, "jitter_ms": l.jitter_ms, "loss_pct": l.loss,
                       "queue_pkts": l.queue} for l in self.links],
            "firewall": None if self.firewall is None else {
                "tcp": list(self.firewall.tcp), "udp": list(self.firewall.udp),
                "icmp": self.firewall.icmp, "on": [n for n, _ in self.firewalls]},
            "services": [{"name": v.name, "vip": str(v.vip), "port": v.port,
                          "servers": list(v.servers), "primary": v.primary}
                         for v in self.services],
            "qos": None if self.qos is None else {
                "enabled": self.qos.enabled, "default": self.qos.default,
                "classes": [{"name": c.name, "dscp": c.dscp, "priority": c.priority,
                             "share_pct": c.share, "rate_mbit": c.rate, "tcp": list(c.tcp),
                             "udp": list(c.udp)} for c in self.qos.classes]},
            "data": None if self.data is None else {
                "engine": self.data.engine, "nodes": list(self.data.nodes),
                "witness": self.data.witness, "standbys": dict(self.data.standbys),
                **({"failover": self.data.failover, "consensus": list(self.data.consensus)}
                   if self.data.failover != "runbook" else {})},
        }


def with_dci(topo, delay=None, bw=None):
    """The topology with every DCI link's delay (a time with a unit) and/or bw overridden.

    Raises TopologyError naming the option, as for a bad topology file."""
    import dataclasses
    check = _Validator("command line", topo.name)
    changes = {}
    if delay is not None:
        changes["delay_ms"] = check.duration(delay, "--dci-delay")
    if bw is not None:
        changes["bw"] = check.bandwidth(bw, "--dci-bw")
    links = tuple(dataclasses.replace(l, **changes) if l.kind == "dci" else l for l in topo.links)
    return dataclasses.replace(topo, links=links)


MAX_SITES = 16               # generated layouts (multi-active --sites, the scale benchmark)


def multi_active(n, layout="mesh"):
    """N active sites (2 to MAX_SITES), one client region near each, DCI links as a full mesh
    or a ring.

    Site i is dc<i> (10.i.0.0/24, 2 servers); region r<i> has one client, 1 ms from dc<i> and
    4 ms from the next site; DCI links cost 2 ms per step around the ring."""
    if not 2 <= n <= MAX_SITES:
        raise TopologyError("--sites", "sites", f"{n} is out of range",
                            f"use 2 to {MAX_SITES} sites")
    if layout not in ("mesh", "ring"):
        raise TopologyError("--layout", "layout", f"unknown layout {layout!r}", "use mesh or ring")
    doc = {"name": f"multi-active-{n}-{layout}",
           "description": f"{n} active sites, DCI {layout}, a client region near each site",
           "sites": {f"dc{i}": {"subnet": f"10.{i}.0.0/24", "servers": 2} for i in range(1, n + 1)},
           "edges": {f"r{i}": {"subnet": f"10.{100 + i}.0.0/24", "clients": 1}
                     for i in range(1, n + 1)},
           "links": {}, "services": {"web": {"vip": "10.200.0.10", "port": 80}}}
    for i in range(1, n + 1):
        nxt = i % n + 1
        doc["links"][f"r{i}-dc{i}"] = {"between": [f"r{i}", f"dc{i}"], "bw": 100, "delay": "1ms",
                                       "queue": 100}
        doc["links"][f"r{i}-dc{nxt}"] = {"between": [f"r{i}", f"dc{nxt}"], "bw": 100,
                                         "delay": "4ms", "queue": 100}
    pairs = [(i, j) for i in range(1, n + 1) for j in range(i + 1, n + 1)]
    for i, j in pairs:
        steps = min(j - i, n - (j - i))
        if layout == "ring" and steps != 1:
            continue
        if n == 2 and (i, j) != (1, 2):
            continue
        doc["links"][f"dci-{i}-{j}"] = {"between": [f"dc{i}", f"dc{j}"], "bw": 100,
                                        "delay": f"{2 * steps}ms", "queue": 100}
    return _Validator(f"generated {doc['name']}", doc["name"]).topology(doc)


# ----------------------------------------------------------------------------------- loading

class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_mapping)


def available_topologies():
    """Names of the topologies shipped in topologies/."""
    return sorted(p.stem for p in TOPOLOGY_DIR.glob("*.yaml"))


def topology_path(name_or_path):
    """The file of a topology given by name (``dual-active``) or path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in str(name_or_path):
        if path.suffix not in (".yaml", ".yml"):
            raise TopologyError(name_or_path, "file", "is not a .yaml or .yml file",
                                "give a YAML topology file (e.g. my-sites.yaml) or one of: "
                                + ", ".join(available_topologies()))
        if not path.is_file():
            raise TopologyError(name_or_path, "file", "does not exist",
                                "give an existing YAML file or one of: "
                                + ", ".join(available_topologies()))
        return path
    path = TOPOLOGY_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise TopologyError(name_or_path, "topology", "unknown topology",
                            "use one of: " + ", ".join(available_topologies()))
    return path


def load_topology(name_or_path):
    """Load and validate a topology by name or path. Raises TopologyError."""
    path = topology_path(name_or_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TopologyError(path, "file", f"cannot be read ({exc.strerror})",
                            "check the path and its permissions") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TopologyError(path, "file", f"is not UTF-8 text (byte {exc.start})",
                            "give a YAML topology file saved as UTF-8") from None
    if "\0" in text:
        raise TopologyError(path, "file", "is binary, not YAML text",
                            "give a YAML topology file") from None
    return parse_topology(text, source=_display_path(path), default_name=path.stem)


def _display_path(path):
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_topology(text, source="<string>", default_name="topology"):
    """Validate YAML text and build the Topology. Raises TopologyError."""
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TopologyError(source, where, f"not valid YAML ({problem})",
                            "fix the syntax or remove the duplicate") from None
    return _Validator(source, default_name).topology(doc)


class _Validator:
    """Turns the parsed YAML document into a Topology, raising on the first problem."""

    def __init__(self, source, default_name):
        self.source = source
        self.default_name = default_name

    def fail(self, field, problem, fix):
        raise TopologyError(self.source, field, problem, fix)

    def mapping(self, value, field, allowed, required=()):
        if not isinstance(value, dict):
            self.fail(field, f"must be a mapping, not {type(value).__name__}",
                      "write it as 'key: value' lines")
        for key in value:
            if key not in allowed:
                shown = str(key) if len(str(key)) <= 40 else str(key)[:37] + "..."
                self.fail(f"{field}.{shown}" if field else shown, "unknown key",
                          "allowed keys are " + ", ".join(sorted(allowed)))
        for key in required:
            if key not in value:
                self.fail(f"{field}.{key}" if field else key, "missing", f"add '{key}:'")
        return value

    def keyed(self, value, field):
        """A section of named entries (sites, edges, links, services): a mapping of name to
        spec; empty when absent."""
        if value is None:
            return {}
        if isinstance(value, list):
            self.fail(field, "is a list ('- ' items)",
                      f"write each entry as 'NAME: {{...}}' under '{field}:', not as '- ' items")
        return self.mapping(value, field, set(value) if isinstance(value, dict) else set())

    def name(self, value, field):
        if not isinstance(value, str) or not NAME_RE.match(value):
            self.fail(field, f"bad name {value!r}",
                      "use lowercase letters, digits and '-', starting with a letter")
        return value

    def topology(self, doc):
        if doc is None:
            self.fail("file", "is empty", "describe at least one site and a link")
        self.mapping(doc, "", TOP_KEYS, required=("sites",))
        name = doc.get("name", self.default_name)
        if not isinstance(name, str) or not name:
            self.fail("name", f"bad name {name!r}", "give the topology a non-empty name")
        description = str(doc.get("description", "") or "")

        sites = self.keyed(doc["sites"], "sites")
        edges = self.keyed(doc.get("edges"), "edges")
        if not sites:
            self.fail("sites", "no sites", "describe at least one site")

        switches, hosts, subnets = [], [], []
        client_no = 0
        for index, (sname, spec) in enumerate(sites.items(), start=1):
            field = f"sites.{sname}"
            self.name(sname, field)
            self.mapping(spec, field, SITE_KEYS, required=("subnet",))
            switch = self.switch(sname, "site", index, spec, field, subnets)
            switches.append(switch)
            for n in range(1, self.count(spec.get("servers", 1), f"{field}.servers") + 1):
                hosts.append(self.host(f"{sname}-srv{n}", "server", switch, n, field))
        for index, (ename, spec) in enumerate(edges.items(), start=1):
            field = f"edges.{ename}"
            self.name(ename, field)
            self.mapping(spec, field, EDGE_KEYS, required=("subnet",))
            switch = self.switch(ename, "edge", 0x100 + index, spec, field, subnets)
            switches.append(switch)
            for n in range(1, self.count(spec.get("clients", 1), f"{field}.clients") + 1):
                client_no += 1
                hosts.append(self.host(f"client{client_no}", "client", switch, n, field))

        kinds = {s.name: s.kind for s in switches}
        raw_links = self.keyed(doc.get("links"), "links")
        links = [self.link(lname, spec, kinds) for lname, spec in raw_links.items()]

        raw_services = self.keyed(doc.get("services"), "services")
        services = [self.service(vname, spec, switches, hosts, subnets)
                    for vname, spec in raw_services.items()]

        policy = self.firewall_policy(doc.get("firewall"), links)
        data, warnings = self.data_tier(doc.get("data"), hosts)
        qos = self.qos(doc.get("qos"), links, services)
        self.unique_names(switches, hosts, links)
        topo = Topology(name=name, description=description, source=self.source,
                        switches=tuple(switches), hosts=tuple(hosts), links=tuple(links),
                        services=tuple(services), firewall=policy, data=data, qos=qos,
                        warnings=tuple(warnings))
        self.interface_names(topo)
        self.connected(topo)
        return topo

    def switch(self, name, kind, dpid, spec, field, subnets):
        subnet = self.subnet(spec["subnet"], f"{field}.subnet")
        for other_field, other in subnets:
            if subnet.overlaps(other):
                self.fail(f"{field}.subnet", f"{subnet} overlaps {other_field} ({other})",
                          "give every site and edge its own subnet")
        subnets.append((f"{field}.subnet", subnet))
        location = spec.get("location", "")
        if not isinstance(location, str):
            self.fail(f"{field}.location", "must be text", "write a place name, e.g. Frankfurt")
        return Switch(name=name, kind=kind, dpid=dpid, subnet=subnet,
                      gateway=subnet.network_address + 1, location=location)

    def subnet(self, value, field):
        try:
            net = ipaddress.IPv4Network(str(value), strict=True)
        except ValueError as exc:
            self.fail(field, f"{value!r} is not an IPv4 subnet ({exc})",
                      "write e.g. 10.1.0.0/24 (network address, no host bits)")
        if net.prefixlen > 28:
            self.fail(field, f"{net} is too small", "use a /28 or larger")
        return net

    def count(self, value, field):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 50:
            self.fail(field, f"{value!r} is not a count from 1 to 50", "write a whole number, e.g. 2")
        return value

    def host(self, name, role, switch, n, field):
        if HOST_OFFSET + n >= switch.subnet.num_addresses - 1:
            self.fail(field, f"subnet {switch.subnet} has no address for host {n}",
                      "use a larger subnet or fewer hosts")
        ip = switch.subnet.network_address + HOST_OFFSET + n
        mac = "02:00:" + ":".join(f"{b:02x}" for b in ip.packed)
        return Host(name=name, role=role, switch=switch.name,
                    ip=ipaddress.IPv4Interface(f"{ip}/{switch.subnet.prefixlen}"), mac=mac)

    def link(self, name, spec, kinds):
        field = f"links.{name}"
        self.name(name, field)
        self.mapping(spec, field, LINK_KEYS, required=("between",))
        between = spec["between"]
        if (not isinstance(between, list) or len(between) != 2
                or not all(isinstance(x, str) for x in between)):
            self.fail(f"{field}.between", f"{between!r} is not two switch names",
                      "write e.g. [dc1, dc2]")
        a, b = between
        for end in (a, b):
            if end not in kinds:
                self.fail(f"{field}.between", f"unknown site or edge {end!r}",
                          "use one of: " + ", ".join(kinds))
        if a == b:
            self.fail(f"{field}.between", f"links {a} to itself", "name two different switches")
        pair = sorted([kinds[a], kinds[b]])
        if pair == ["edge", "edge"]:
            self.fail(f"{field}.between", "links two client edges",
                      "link each client edge to one or more sites")
        kind = "dci" if pair == ["site", "site"] else "edge"
        firewall = spec.get("firewall", False)
        if not isinstance(firewall, bool):
            self.fail(f"{field}.firewall", f"{firewall!r} is not true or false",
                      "write firewall: true to put the site's firewall on this link")
        if firewall and kind != "edge":
            self.fail(f"{field}.firewall", "only a client-edge link can carry a site's firewall",
                      "put firewall: true on the link from the client edge to the site")
        site = (a if kinds[a] == "site" else b) if firewall else None
        return Link(name=name, a=a, b=b, kind=kind, firewall=site,
                    bw=self.bandwidth(spec.get("bw"), f"{field}.bw"),
                    delay_ms=self.duration(spec.get("delay", 0), f"{field}.delay"),
                    jitter_ms=self.duration(spec.get("jitter", 0), f"{field}.jitter"),
                    loss=self.percent(spec.get("loss", 0), f"{field}.loss"),
                    queue=self.queue(spec.get("queue", DEFAULT_QUEUE), f"{field}.queue"))

    def service(self, name, spec, switches, hosts, subnets):
        field = f"services.{name}"
        self.name(name, field)
        self.mapping(spec, field, SERVICE_KEYS, required=("vip",))
        try:
            vip = ipaddress.IPv4Address(str(spec["vip"]))
        except ValueError:
            self.fail(f"{field}.vip", f"{spec['vip']!r} is not an IPv4 address", "write e.g. 10.200.0.10")
        for subnet_field, subnet in subnets:
            if vip in subnet:
                self.fail(f"{field}.vip", f"{vip} is inside {subnet_field} ({subnet})",
                          "give the VIP an address outside every site and edge subnet")
        port = spec.get("port", 80)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            self.fail(f"{field}.port", f"{port!r} is not a TCP port", "write a number from 1 to 65535")
        server_names = [h.name for h in hosts if h.role == "server"]
        servers = spec.get("servers", server_names)
        if not isinstance(servers, list) or not servers:
            self.fail(f"{field}.servers", f"{servers!r} is not a list of servers",
                      "write e.g. [dc1-srv1, dc2-srv1], or leave it out for every server")
        for server in servers:
            if server not in server_names:
                self.fail(f"{field}.servers", f"unknown server {server!r}",
                          "use server names such as " + ", ".join(server_names[:3]))
        sites = [s.name for s in switches if s.kind == "site"]
        primary = spec.get("primary", sites[0])
        if primary not in sites:
            self.fail(f"{field}.primary", f"unknown site {primary!r}", "use one of: " + ", ".join(sites))
        return Service(name=name, vip=vip, port=port, servers=tuple(servers), primary=primary)

    def data_tier(self, spec, hosts):
        """The `data:` section: (DataTier or None, [warnings])."""
        if spec is None:
            return None, []
        self.mapping(spec, "data", DATA_KEYS, required=("engine",))
        engine = spec["engine"]
        if not isinstance(engine, str) or engine not in ENGINES:
            self.fail("data.engine", f"unknown engine {engine!r}", "use one of: "
                      + ", ".join(ENGINES))
        servers = {h.name: h for h in hosts if h.role == "server"}

        def server(name, field):
            if not isinstance(name, str):
                self.fail(field, f"{name!r} is not a host name",
                          f"name a site's server, e.g. {', '.join(list(servers)[:4])}")
            if name not in servers:
                known = ", ".join(list(servers)[:4])
                self.fail(field, f"unknown host {name!r}" if not any(h.name == name for h in hosts)
                          else f"{name} is a client, not a server",
                          f"run the database on a site's server, e.g. {known}")
            return servers[name]

        def one_per_site(names, field):
            seen = {}
            for name in names:
                site = server(name, field).switch
                if site in seen:
                    self.fail(field, f"{seen[site]} and {name} are both in site {site}",
                              "put one database node per site (a site is one failure domain)")
                seen[site] = name

        if engine == "galera":
            for key in ("primary", "standbys", "failover", "consensus"):
                if key in spec:
                    self.fail(f"data.{key}", "is for postgresql, not galera",
                              "list galera's nodes under nodes: (every node takes writes)")
            nodes = spec.get("nodes")
            if not isinstance(nodes, list) or len(nodes) < 2:
                self.fail("data.nodes", f"{nodes!r} is not a list of two or more hosts",
                          "write e.g. nodes: [dc1-srv2, dc2-srv2]")
            one_per_site(nodes, "data.nodes")
            witness = spec.get("witness")
            warnings = []
            if witness is not None:
                site = server(witness, "data.witness").switch
                clash = [n for n in nodes if servers[n].switch == site]
                if clash:
                    self.fail("data.witness", f"{witness} is in site {site} with node {clash[0]}",
                              "put the witness in a third site: when the sites are cut apart, "
                              "its vote must go with one side only, not fail with a node")
            if (len(nodes) + (witness is not None)) % 2 == 0:
                warnings.append(
                    f"{self.source}: data: {len(nodes)} Galera voters"
                    + (" with the witness" if witness else "") + " is an even number: a "
                    "partition into halves leaves no side with a majority, so both stop taking "
                    "writes (add a witness, garbd, in a third site)")
            return DataTier(engine=engine, nodes=tuple(nodes), witness=witness), warnings

        for key in ("nodes", "witness"):
            if key in spec:
                self.fail(f"data.{key}", "is for galera, not postgresql",
                          "write primary: HOST and standbys: {HOST: sync|async}")
        if "primary" not in spec:
            self.fail("data.primary", "missing", "add primary: HOST (e.g. dc1-srv2)")
        primary = spec["primary"]
        standbys = spec.get("standbys")
        if not isinstance(standbys, dict) or not standbys:
            self.fail("data.standbys", f"{standbys!r} is not a mapping of hosts to sync|async",
                      "write e.g. standbys: {dc2-srv2: sync}")
        for name, mode in standbys.items():
            if mode not in STANDBY_MODES:
                self.fail(f"data.standbys.{name}", f"{mode!r} is not sync or async",
                          "sync: a commit waits for this standby; async: it does not")
        one_per_site([primary, *standbys], "data.standbys")
        failover = spec.get("failover", "runbook")
        if failover not in FAILOVERS:
            self.fail("data.failover", f"unknown failover {failover!r}",
                      "use runbook (the experiment promotes the standby) or patroni "
                      "(Patroni on every node, its leader lease in etcd)")
        consensus = spec.get("consensus")
        if failover == "runbook" and consensus is not None:
            self.fail("data.consensus", "is for failover: patroni",
                      "add failover: patroni, or drop consensus:")
        if failover == "patroni":
            if not isinstance(consensus, list) or len(consensus) < 3 or len(consensus) % 2 == 0:
                self.fail("data.consensus", f"{consensus!r} is not an odd list of three or more "
                          "hosts", "write e.g. consensus: [dc1-srv2, dc2-srv2, dc3-srv1] "
                          "(etcd needs a majority: with two members, losing one stops it)")
            sites = [server(name, "data.consensus").switch for name in consensus]
            if len(set(sites)) < len(sites):
                self.fail("data.consensus", "two etcd members in one site",
                          "put each member in a site of its own, so that losing a site "
                          "loses one vote")
        return DataTier(engine=engine, nodes=(primary, *standbys),
                        standbys=tuple(standbys.items()), failover=failover,
                        consensus=tuple(consensus or ())), []

    def qos(self, spec, links, services):
        """The `qos:` section: classes by name (control, replication, client, bulk), each a
        `share` (percent) or `rate` (Mbit/s) and a `priority`; `enabled`, `default`."""
        if spec is None:
            return None
        names = set(QOS_CLASSES)
        if isinstance(spec, dict):
            for key in spec:
                if key not in names | QOS_TOP_KEYS:
                    self.fail(f"qos.{key}", "unknown class",
                              "classes are " + ", ".join(QOS_CLASSES) + " (and the keys "
                              + ", ".join(sorted(QOS_TOP_KEYS)) + ")")
        self.mapping(spec, "qos", names | QOS_TOP_KEYS)
        declared = [n for n in spec if n in names]
        if not declared:
            self.fail("qos", "no class", "declare classes, e.g. qos: {control: {share: 5, "
                      "priority: 0}, bulk: {share: 50, priority: 3}}; classes: "
                      + ", ".join(QOS_CLASSES))
        enabled = spec.get("enabled", True)
        if not isinstance(enabled, bool):
            self.fail("qos.enabled", f"{enabled!r} is not true or false", "write enabled: true")
        dci = [l for l in links if l.kind == "dci"]
        if not dci:
            self.fail("qos", "there is no DCI link to apply it to",
                      "QoS classes shape the links between sites: add one, or remove qos:")
        for link in dci:
            if not link.bw:
                self.fail(f"links.{link.name}.bw", "QoS needs the link's rate to share out",
                          "add bw (Mbit/s) to every DCI link, e.g. bw: 100")
        service_ports = tuple(sorted({v.port for v in services}))
        classes, dscps, ports = [], {}, {}
        for name in declared:
            field = f"qos.{name}"
            c = spec[name] if spec[name] is not None else {}
            self.mapping(c, field, QOS_KEYS, required=("priority",))
            if ("share" in c) == ("rate" in c):
                self.fail(field, "needs a share or a rate (one of them)",
                          "write share: 20 (percent of each DCI link) or rate: 10 (Mbit/s)")
            share = rate = None
            if "share" in c:
                share = self.share(c["share"], f"{field}.share")
            else:
                rate = self.bandwidth(c["rate"], f"{field}.rate")
            priority = c["priority"]
            if isinstance(priority, bool) or not isinstance(priority, int) or \
                    not 0 <= priority <= 7:
                self.fail(f"{field}.priority", f"{priority!r} is not a priority from 0 to 7",
                          "0 is served first: write e.g. priority: 0 for control")
            dscp, tcp, udp, _ = QOS_CLASSES[name]
            dscp = c.get("dscp", dscp)
            if isinstance(dscp, bool) or not isinstance(dscp, int) or not 0 <= dscp <= 63:
                self.fail(f"{field}.dscp", f"{dscp!r} is not a DSCP value from 0 to 63",
                          "write e.g. dscp: 46 (EF), or leave it out for the class's default")
            if dscp in dscps:
                self.fail(f"{field}.dscp", f"{dscp} is also qos.{dscps[dscp]}'s",
                          "give every class a DSCP value of its own")
            dscps[dscp] = name
            extra = {}
            for proto in ("tcp", "udp"):
                values = c.get(proto, [])
                if not isinstance(values, list) or not all(
                        isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535
                        for p in values):
                    self.fail(f"{field}.{proto}", f"{values!r} is not a list of ports",
                              f"write e.g. {proto}: [8443]")
                extra[proto] = tuple(values)
            tcp = tuple(sorted(set(tcp) | set(extra["tcp"])
                               | (set(service_ports) if name == "client" else set())))
            udp = tuple(sorted(set(udp) | set(extra["udp"])))
            for proto, values in (("tcp", tcp), ("udp", udp)):
                for port in values:
                    other = ports.setdefault((proto, port), name)
                    if other != name:
                        self.fail(f"{field}.{proto}", f"{proto} port {port} is also in qos.{other}",
                                  "a port's traffic belongs to one class: remove it from one")
            classes.append(QosClass(name, dscp, priority, share, rate, tcp, udp))
        total_share = sum(c.share or 0 for c in classes)
        if total_share > 100:
            self.fail("qos", f"the shares add up to {total_share:g} %",
                      "keep the classes' shares at 100 % or less together")
        for link in dci:
            guaranteed = sum(c.rate_on(link.bw) for c in classes)
            if guaranteed > link.bw + 1e-9:
                self.fail("qos", f"the classes guarantee {guaranteed:g} Mbit/s on "
                          f"links.{link.name}, which has {link.bw:g}",
                          "lower the rates or shares, or raise the link's bw")
        default = spec.get("default", "bulk" if "bulk" in declared else
                           max(classes, key=lambda c: c.priority).name)
        if default not in declared:
            self.fail("qos.default", f"{default!r} is not a declared class",
                      "use one of: " + ", ".join(declared))
        return QosPolicy(classes=tuple(classes), default=default, enabled=enabled)

    def share(self, value, field):
        """A share of a link: 20, 20.5 or '20%' (percent, more than 0, at most 100)."""
        text = value.strip().rstrip("%").strip() if isinstance(value, str) else value
        try:
            number = float(text) if not isinstance(text, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not 0 < number <= 100:
            self.fail(field, f"{value!r} is not a share from more than 0 to 100 %",
                      "write a percentage of each DCI link, e.g. share: 20")
        return number

    def firewall_policy(self, spec, links):
        firewalled = [l for l in links if l.firewall]
        sites = [l.firewall for l in firewalled]
        for site in set(sites):
            if sites.count(site) > 1:
                self.fail("links", f"site {site} has more than one firewalled link",
                          "put firewall: true on one client-edge link per site")
        if spec is None:
            if firewalled:
                self.fail("firewall", "links have firewall: true but there is no policy",
                          "add a firewall: section, e.g. firewall: {tcp: [80, 443]}")
            return None
        self.mapping(spec, "firewall", FIREWALL_KEYS)
        ports = {}
        for proto in ("tcp", "udp"):
            values = spec.get(proto, [])
            if not isinstance(values, list) or not all(
                    isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in values):
                self.fail(f"firewall.{proto}", f"{values!r} is not a list of ports",
                          f"write e.g. {proto}: [80, 443]")
            ports[proto] = tuple(values)
        icmp = spec.get("icmp", True)
        if not isinstance(icmp, bool):
            self.fail("firewall.icmp", f"{icmp!r} is not true or false", "write icmp: true")
        if not firewalled:
            self.fail("firewall", "a policy but no firewalled link",
                      "put firewall: true on a client-edge link of each site")
        return FirewallPolicy(tcp=ports["tcp"], udp=ports["udp"], icmp=icmp)

    def bandwidth(self, value, field):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(field, f"{value!r} is not a number",
                      "bw is in Mbit/s: write a number, e.g. 100")
        if not 0 < value <= MAX_BW:
            self.fail(field, f"{value} Mbit/s is out of range",
                      f"use more than 0 and at most {MAX_BW} Mbit/s")
        return float(value)

    def duration(self, value, field):
        """A time with a unit ('2ms', '500us', '0.1s') in ms; a bare 0 is allowed."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
            return 0.0
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self.fail(field, f"{value} has no unit", f"write e.g. '{value}ms'")
        text = str(value)
        if re.fullmatch(r"\s*\d+(\.\d+)?\s*", text):
            self.fail(field, f"{text.strip()} has no unit", f"write e.g. '{text.strip()}ms'")
        if text.strip().startswith("-"):
            self.fail(field, f"{text!r} is negative", "use a time of 0 or more, e.g. '2ms'")
        match = TIME_RE.match(text)
        if not match:
            self.fail(field, f"{text!r} is not a time", "write a number and a unit: us, ms or s, e.g. '2ms'")
        ms = float(match.group(1)) * TIME_UNITS_MS[match.group(2)]
        if ms > 10000:
            self.fail(field, f"{text} is longer than 10 s", "use a delay of at most 10s")
        return ms

    def percent(self, value, field):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            self.fail(field, f"{value!r} is not a percentage from 0 to 100",
                      "loss is in percent: write e.g. 0.5")
        return float(value)

    def queue(self, value, field):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100000:
            self.fail(field, f"{value!r} is not a packet count from 1 to 100000",
                      "queue is in packets: write a whole number, e.g. 100")
        return value

    def unique_names(self, switches, hosts, links):
        seen = {}
        fws = [SimpleNamespace(name=l.firewall_node) for l in links if l.firewall]
        for kind, items in (("switch", switches), ("host", hosts), ("link", links),
                            ("firewall", fws)):
            for item in items:
                if item.name in seen:
                    self.fail(f"{kind} {item.name}", f"name already used by a {seen[item.name]}",
                              "give every site, edge, host and link its own name")
                seen[item.name] = kind

    def interface_names(self, topo):
        """Every interface the builder will create must fit Linux's 15 characters."""
        names = [(f"sites.{s.name}" if s.kind == "site" else f"edges.{s.name}", p.intf)
                 for s in topo.switches for p in topo.ports(s.name)]
        names += [(f"host {h.name}", h.intf) for h in topo.hosts]
        names += [(f"links.{l.name}", f"{l.name}-eth1") for l in topo.links]
        names += [(f"links.{l.name}.firewall", f"{n}-eth1") for n, l in topo.firewalls]
        for field, intf in names:
            if len(intf) > IFNAMSIZ:
                self.fail(field, f"name too long for Linux interfaces ({intf!r} has "
                                 f"{len(intf)} > {IFNAMSIZ} characters)",
                          "use a shorter name (at most 10 characters is always safe)")

    def connected(self, topo):
        """Every switch must be reachable from every other over the links."""
        adjacency = {s.name: set() for s in topo.switches}
        for l in topo.links:
            adjacency[l.a].add(l.b)
            adjacency[l.b].add(l.a)
        start = topo.switches[0].name
        seen, todo = {start}, [start]
        while todo:
            for nxt in adjacency[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        missing = [s.name for s in topo.switches if s.name not in seen]
        if missing:
            self.fail("links", f"{', '.join(missing)} not connected to {start}",
                      "add a link to every site and edge")
