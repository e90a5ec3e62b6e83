"""Health of the VIP servers: the controller's own checks and its verdicts (pure code).

One TCP SYN per server to its VIP port each health interval, sent from its subnet's gateway
address; a SYN-ACK is a pass (the half-open connection is reset), a RST a failure. A late or
unexpected answer is reset too (see reply), and successive checks use rotating source ports.

A check not answered by the next round is a miss only once the controller has proof that its
own path through the server's switch worked after the check was sent: a frame of its own sent
at least one interval later (another server's answer, or a stamped LLDP frame) came back
through that switch (``heard``). Without that proof
the silence is the controller's (its switches' upcalls or its own event loop starved of CPU),
not the server's: the check waits, and a late answer still counts. Every server failing at
once because the machine was busy is what this prevents; a dead server is still found one
LLDP round trip later. A path that makes no progress at all (nothing of ours comes back, not
even late) for HEALTH_SILENT_MAX intervals after the check is judged anyway; a path that lags
(frames of ours arriving seconds late, as when a flood of packet-ins queues ahead of them)
still makes progress, and is waited for.

The checker knows nothing of flows: each call returns the messages to send and the names of
the servers that have just been declared down; the VIP manager moves their flows.
"""

import ipaddress
from dataclasses import dataclass, field

from controllers import packets
from controllers.ofmsg import PacketOut

HEALTH_MAX_DEFER = 4           # health intervals a busy controller may defer its checks
HEALTH_SILENT_MAX = 20         # health intervals a check may wait for the control path's proof
HEALTH_PORT_BASE = 47000       # source ports of server i's checks: base + i * SPREAD + k
HEALTH_PORT_SPREAD = 16        # successive checks of a server rotate over this many ports


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


class HealthChecker:
    def __init__(self, intent):
        self.intent = intent
        self.servers = {}                 # name -> ServerHealth
        self.last_round = None
        # per switch (dpid; None: any switch): the send time of the latest frame of ours that
        # came back through that switch, and when that last moved on (its path is alive)
        self.path_proven = {}
        self.path_progress = {}
        index = 0
        for service in intent.services:
            for name, ip in service.servers:
                if name not in self.servers:
                    self.servers[name] = ServerHealth(name, ip, index)
                    index += 1

    def heard(self, sent, now=None, dpid=None):
        """Something the controller sent at `sent` came back through switch `dpid`: that
        switch's path to the controller works since then.

        Proof is per switch: each switch has its own connection and its own queue of frames
        for the controller, and under load one can lag seconds behind another (on the kernel
        datapath under an emulated CPU, a site's answers arrived after other switches' newer
        LLDP: every server there was declared down). `now` is when it came back: a path that
        lags (frames seconds old still arriving, in order) is alive, and a check is then
        waited for, not judged silent."""
        if sent is None:
            return
        for key in {dpid, None}:
            if key not in self.path_proven or sent > self.path_proven[key]:
                self.path_proven[key] = sent
                if now is not None:
                    self.path_progress[key] = now

    def port_of(self, health):
        """The source port of a server's current check (rotating: see reply)."""
        return HEALTH_PORT_BASE + health.index * HEALTH_PORT_SPREAD + health.seq % HEALTH_PORT_SPREAD

    def owner(self, port):
        """The server whose checks use source port `port`, or None."""
        index, k = divmod(port - HEALTH_PORT_BASE, HEALTH_PORT_SPREAD)
        if port < HEALTH_PORT_BASE:
            return None
        return next((h for h in self.servers.values() if h.index == index), None)

    def due(self, now, backlog=False):
        """Whether a round of checks is due. backlog: the controller has events it has not
        handled yet, or its timer ran late; a check's answer may be among them, so the round
        waits, by at most HEALTH_MAX_DEFER intervals (a dead server is still found)."""
        interval = self.intent.health_interval
        due = self.last_round is None or now - self.last_round >= interval
        deferred_too_long = (self.last_round is not None
                             and now - self.last_round >= HEALTH_MAX_DEFER * interval)
        return due and (not backlog or deferred_too_long)

    def round(self, now, locate, gw_mac, glean, connected=lambda dpid: True):
        """Judge what is overdue, then send one check per located server.

        locate(ip) -> the server's host entry (mac, dpid, port) or None; glean(ip) -> messages
        that look for an unknown address; connected(dpid) -> whether that switch has a live
        link (a switch cut off, e.g. a site powered off, can prove nothing through itself: its
        servers are judged on the proof of any switch). Returns (messages, names declared
        down)."""
        self.last_round = now
        msgs, down = [], []
        interval = self.intent.health_interval
        for service in self.intent.services:
            for name, _ in service.servers:
                health = self.servers[name]
                host = locate(health.ip)
                switch = host.dpid if host is not None and connected(host.dpid) else None
                for seq, sent in sorted(health.outstanding.items()):
                    # proof: a frame of ours sent a whole interval after the check came back
                    # through the server's own switch (an answer to the check, which had that
                    # head start, would have too)
                    last = self.path_proven.get(switch)
                    proven = last is not None and last >= sent + interval
                    alive = max(sent, self.path_progress.get(switch) or sent)
                    if proven or now - alive >= HEALTH_SILENT_MAX * interval:
                        del health.outstanding[seq]
                        if self.verdict(health, ok=False):
                            down.append(name)
                if host is None:
                    msgs += glean(health.ip)              # e.g. after a controller restart
                    continue
                health.seq += 1
                health.outstanding[health.seq] = now
                frame = packets.tcp_segment(gw_mac, host.mac, self.intent.gateway_for(host.ip),
                                            service.vip, self.port_of(health),
                                            service.port, packets.TCP_SYN, seq=health.seq)
                msgs.append(PacketOut(host.dpid, host.port, frame))
        return msgs, down

    def reply(self, info, now, locate, gw_mac, dpid=None):
        """A server's answer to a check (a TCP segment to a gateway address), arrived through
        switch `dpid`. Returns (messages, names declared down).

        An answer to no outstanding check (late: its check was already judged; or a
        server's challenge ACK) gets a RST, as a TCP stack answers a segment for no
        connection: a half-open connection left on the server would make it answer the next
        check on the same ports with an ACK instead of a SYN-ACK, for as long as it keeps
        retransmitting (a minute), and the server would look dead that long. Successive checks
        also rotate over HEALTH_PORT_SPREAD source ports."""
        health = self.owner(info["dst_port"])
        if health is None:
            return [], []
        if info["ack"] - 1 not in health.outstanding:
            host = locate(health.ip)
            if host is None or info["flags"] & packets.TCP_RST:
                return [], []
            return [PacketOut(host.dpid, host.port, packets.tcp_segment(
                gw_mac, host.mac, info["ip_dst"], info["ip_src"], info["dst_port"],
                info["src_port"], packets.TCP_RST, seq=info["ack"]))], []
        sent = health.outstanding[info["ack"] - 1]
        self.heard(sent, now, dpid)
        for seq in [q for q in health.outstanding if q <= info["ack"] - 1]:
            del health.outstanding[seq]               # an answer supersedes older checks
        syn_ack = info["flags"] & packets.TCP_SYN and info["flags"] & packets.TCP_ACK
        down = [health.name] if self.verdict(health, ok=bool(syn_ack)) else []
        msgs = []
        if syn_ack:                                   # close the half-open connection
            host = locate(health.ip)
            if host:
                msgs.append(PacketOut(host.dpid, host.port, packets.tcp_segment(
                    gw_mac, host.mac, info["ip_dst"], info["ip_src"], info["dst_port"],
                    info["src_port"], packets.TCP_RST, seq=info["ack"])))
        return msgs, down

    def verdict(self, health, ok):
        """Count one pass or failure; True when the server has just been declared down."""
        if ok:
            health.oks, health.misses = health.oks + 1, 0
            if health.up is None or (not health.up and health.oks >= self.intent.health_recover_after):
                health.up = True
            return False
        health.misses, health.oks = health.misses + 1, 0
        if health.up is not False and health.misses >= self.intent.health_fail_after:
            health.up = False
            return True
        return False

    def status(self):
        return {h.name: h.up for h in self.servers.values()}
