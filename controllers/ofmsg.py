"""OpenFlow messages as plain data: what the decision logic returns and the adapter sends.

Matches are dicts of OXM field names as os-ken spells them (in_port, eth_type, eth_dst,
ipv4_dst, ip_proto, tcp_src, ...); ipv4 fields may carry a (address, mask) pair. Actions are
tuples: ('output', port), ('group', id), ('set', field, value), ('dec_ttl',), ('controller',).
"""

import functools
from dataclasses import dataclass

CONTROLLER = "controller"
TABLE = "table"            # packet-out port: run the packet through the flow tables

T_CLASSIFY, T_ROUTE, T_FORWARD = 0, 1, 2


@dataclass(frozen=True)
class Flow:
    dpid: int
    table: int
    priority: int
    match: dict
    actions: tuple = ()
    goto: int = None
    cookie: int = 0
    idle_timeout: int = 0
    delete: bool = False          # delete flows matching (match, cookie) instead of adding

    def key(self):
        return self._key

    @functools.cached_property
    def _key(self):      # computed once: a sync compares thousands of flows by key
        return (self.dpid, self.table, self.priority, tuple(sorted(self.match.items())))


@dataclass(frozen=True)
class Group:
    """A fast-failover group: the first bucket whose watch port is live forwards."""
    dpid: int
    group_id: int
    buckets: tuple                # ((watch_port, (actions...)), ...)
    modify: bool = False


@dataclass(frozen=True)
class PacketOut:
    dpid: int
    port: object                  # a port number, or TABLE
    data: bytes
    in_port: object = CONTROLLER
