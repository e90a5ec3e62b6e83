"""A fake OpenFlow network for testing the controller's decisions by their effect.

Switches hold the flows and groups the logic sends and run packets through them (tables,
set-field, dec_ttl, goto, fast-failover groups with port liveness); links and hosts connect
them. Packets are dicts of OXM-named fields; they become real bytes (os-ken's packet library)
only on the way to and from the controller, as in a real switch.
"""

import ipaddress

from os_ken.lib.packet import arp, ethernet, icmp, ipv4, packet, tcp, udp

from controllers.logic import ControllerLogic
from controllers.ofmsg import CONTROLLER, TABLE, Flow, Group, PacketOut


def to_bytes(pkt):
    if "raw" in pkt:
        return pkt["raw"]
    protos = [ethernet.ethernet(dst=pkt["eth_dst"], src=pkt["eth_src"], ethertype=pkt["eth_type"])]
    if pkt["eth_type"] == 0x0806:
        protos.append(arp.arp(opcode=pkt["arp_op"], src_mac=pkt["arp_sha"], src_ip=pkt["arp_spa"],
                              dst_mac=pkt.get("arp_tha", "00:00:00:00:00:00"),
                              dst_ip=pkt["arp_tpa"]))
    elif pkt["eth_type"] == 0x0800:
        protos.append(ipv4.ipv4(src=pkt["ipv4_src"], dst=pkt["ipv4_dst"], proto=pkt["ip_proto"],
                                ttl=pkt["ttl"]))
        if pkt["ip_proto"] == 6:
            protos.append(tcp.tcp(src_port=pkt["tcp_src"], dst_port=pkt["tcp_dst"],
                                  seq=pkt.get("tcp_seq", 0), ack=pkt.get("tcp_ack", 0),
                                  bits=pkt.get("tcp_flags", 0)))
        elif pkt["ip_proto"] == 17:
            protos.append(udp.udp(src_port=pkt["udp_src"], dst_port=pkt["udp_dst"]))
        elif pkt["ip_proto"] == 1:
            protos.append(icmp.icmp(type_=pkt["icmpv4_type"], code=0, csum=0,
                                    data=icmp.echo(id_=1, seq=1, data=b"x")))
    out = packet.Packet()
    for proto in protos:
        out.add_protocol(proto)
    out.serialize()
    return bytes(out.data)


def from_bytes(data):
    pkt = packet.Packet(data)
    eth = pkt.get_protocol(ethernet.ethernet)
    fields = {"eth_src": eth.src, "eth_dst": eth.dst, "eth_type": eth.ethertype, "raw": data}
    a = pkt.get_protocol(arp.arp)
    if a:
        fields.update(arp_op=a.opcode, arp_sha=a.src_mac, arp_spa=a.src_ip, arp_tpa=a.dst_ip,
                      arp_tha=a.dst_mac)
    ip = pkt.get_protocol(ipv4.ipv4)
    if ip:
        fields.update(ipv4_src=ip.src, ipv4_dst=ip.dst, ip_proto=ip.proto, ttl=ip.ttl)
        t = pkt.get_protocol(tcp.tcp)
        if t:
            fields.update(tcp_src=t.src_port, tcp_dst=t.dst_port, tcp_flags=t.bits,
                          tcp_seq=t.seq, tcp_ack=t.ack)
        u = pkt.get_protocol(udp.udp)
        if u:
            fields.update(udp_src=u.src_port, udp_dst=u.dst_port)
        i = pkt.get_protocol(icmp.icmp)
        if i:
            fields.update(icmpv4_type=i.type)
    return fields


def matches(match, pkt, in_port):
    for name, want in match.items():
        have = in_port if name == "in_port" else pkt.get(name)
        if have is None:
            return False
        if isinstance(want, tuple):
            if ipaddress.IPv4Address(have) not in ipaddress.IPv4Network(f"{want[0]}/{want[1]}"):
                return False
        elif str(have) != str(want):
            return False
    return True


class FakeSwitch:
    def __init__(self, dpid, ports):
        self.dpid = dpid
        self.live = {p: True for p in ports}    # what fast-failover watches (carrier and BFD)
        self.wire = {}           # port -> whether frames pass, where that differs from live
        self.flows = {}          # key -> Flow
        self.groups = {}

    def passes(self, port):
        """Whether frames cross this port: its wire state when set (a link healed while BFD
        is down passes frames; a gray one does not), else its liveness."""
        return self.wire.get(port, self.live.get(port, False))

    def apply(self, msg):
        if isinstance(msg, Group):
            self.groups[msg.group_id] = msg.buckets
        elif msg.delete:
            self.flows = {k: f for k, f in self.flows.items()
                          if not (f.table == msg.table and f.priority == msg.priority
                                  and f.match == msg.match)}
        else:
            self.flows[msg.key()] = msg

    def lookup(self, table, pkt, in_port):
        candidates = [f for f in self.flows.values() if f.table == table
                      and matches(f.match, pkt, in_port)]
        return max(candidates, key=lambda f: f.priority, default=None)

    def process(self, pkt, in_port, table=0):
        """[(out port or CONTROLLER, packet)] for a packet entering at in_port."""
        outputs = []
        pkt = dict(pkt)
        while table is not None:
            flow = self.lookup(table, pkt, in_port)
            if flow is None:
                break
            for action in flow.actions:
                outputs += self.act(action, pkt, in_port)
            table = flow.goto
        return outputs

    def act(self, action, pkt, in_port):
        if action[0] == "set":
            pkt[action[1]] = action[2]
            pkt.pop("raw", None)
        elif action[0] == "dec_ttl":
            pkt["ttl"] -= 1
            pkt.pop("raw", None)
        elif action[0] == "output":
            if action[1] == in_port:           # Open vSwitch drops output to the input port
                return []                      # (only the IN_PORT pseudo-port sends it back)
            return [(action[1], dict(pkt))]
        elif action[0] == "group":
            for watch, actions in self.groups[action[1]]:
                if self.live.get(watch):
                    out = []
                    for a in actions:
                        out += self.act(a, pkt, in_port)
                    return out
        return []


class FakeNetwork:
    """Switches, links and hosts from a lab topology, driven by a ControllerLogic."""

    def __init__(self, topo, intent):
        self.topo = topo
        self.logic = ControllerLogic(intent)
        self.now = 0.0
        self.switches = {}
        self.links = {}              # (dpid, port) -> (dpid, port)
        self.link_ends = {}          # link name -> ((dpid, port), (dpid, port))
        self.host_at = {}            # host name -> (dpid, port)
        self.received = {}           # host name -> [packets]
        self.trail = []              # (dpid, port) every switch-to-switch hop left by
        self.packet_ins = []         # (dpid, packet) of every packet a switch sent up
        dpid = {s.name: s.dpid for s in topo.switches}
        for switch in topo.switches:
            self.switches[switch.dpid] = FakeSwitch(switch.dpid,
                                                    [p.number for p in topo.ports(switch.name)])
        for host in topo.hosts:
            self.host_at[host.name] = (dpid[host.switch], topo.port_to(host.switch, host.name).number)
            self.received[host.name] = []
        for link in topo.links:
            a = (dpid[link.a], topo.port_to(link.a, link.name).number)
            b = (dpid[link.b], topo.port_to(link.b, link.name).number)
            self.links[a], self.links[b] = b, a
            self.link_ends[link.name] = (a, b)

    # ---- driving the logic
    def send(self, msgs):
        """Apply the logic's messages; deliver packet-outs (which may cause more messages)."""
        todo = list(msgs)
        while todo:
            msg = todo.pop(0)
            if isinstance(msg, PacketOut):
                pkt = from_bytes(msg.data)
                switch = self.switches[msg.dpid]
                if msg.port == TABLE:
                    todo += self.forward(msg.dpid, switch.process(pkt, msg.in_port))
                else:
                    todo += self.forward(msg.dpid, [(msg.port, pkt)])
            else:
                self.switches[msg.dpid].apply(msg)

    def forward(self, dpid, outputs, hops=0):
        """Carry switch outputs over links to the next switch, to hosts, or to the controller."""
        assert hops < 32, "forwarding loop"
        msgs = []
        for port, pkt in outputs:
            if port == CONTROLLER:
                self.packet_ins.append((dpid, dict(pkt)))
                msgs += self.logic.packet_in(dpid, self.in_port_of(pkt), to_bytes(pkt), self.now)
                continue
            if not self.switches[dpid].passes(port):
                continue
            peer = self.links.get((dpid, port))
            if peer is not None:
                if not self.switches[peer[0]].passes(peer[1]):
                    continue
                self.trail.append((dpid, port))
                nxt = self.switches[peer[0]]
                pkt["_in_port"] = peer[1]
                msgs += self.forward(peer[0], nxt.process(pkt, peer[1]), hops + 1)
            else:
                host = next((h for h, at in self.host_at.items() if at == (dpid, port)), None)
                if host:
                    pkt.pop("_in_port", None)
                    self.received[host].append(pkt)
        return msgs

    @staticmethod
    def in_port_of(pkt):
        return pkt.pop("_in_port", None)

    def start(self):
        for dpid, switch in self.switches.items():
            self.send(self.logic.switch_connected(dpid, dict(switch.live), self.now))
        self.tick()

    def tick(self, seconds=1.0):
        self.now += seconds
        self.send(self.logic.tick(self.now))

    # ---- hosts
    def host_sends(self, name, pkt):
        dpid, port = self.host_at[name]
        if self.switches[dpid].live.get(port):
            pkt = dict(pkt, _in_port=port)
            self.send(self.forward(dpid, self.switches[dpid].process(pkt, port)))

    def arp(self, name, target_ip, gratuitous=False):
        host = self.topo.host(name)
        ip = str(host.ip.ip)
        self.host_sends(name, {"eth_src": host.mac, "eth_dst": "ff:ff:ff:ff:ff:ff",
                               "eth_type": 0x0806, "arp_op": 1, "arp_sha": host.mac,
                               "arp_spa": ip, "arp_tpa": ip if gratuitous else str(target_ip)})

    def ip_packet(self, src, dst_ip, proto=17, sport=5000, dport=5001, dst_mac=None, **extra):
        host = self.topo.host(src)
        pkt = {"eth_src": host.mac, "eth_dst": dst_mac or self.logic.gw_mac, "eth_type": 0x0800,
               "ipv4_src": str(host.ip.ip), "ipv4_dst": str(dst_ip), "ip_proto": proto, "ttl": 64}
        if proto == 6:
            pkt.update(tcp_src=sport, tcp_dst=dport, tcp_flags=extra.get("flags", 0x02))
        elif proto == 17:
            pkt.update(udp_src=sport, udp_dst=dport)
        elif proto == 1:
            pkt.update(icmpv4_type=8)
        return pkt

    def links_taken(self):
        """Names of the links the last packet crossed, in order."""
        names = {end: name for name, ends in self.link_ends.items() for end in ends}
        return [names[hop] for hop in self.trail]

    def send_ip(self, src, dst_ip, **kw):
        """Send one IP packet from host src; return {host: packet} of who received it."""
        self.trail = []
        for host in self.received:
            self.received[host] = []
        self.host_sends(src, self.ip_packet(src, dst_ip, **kw))
        return {h: pkts[-1] for h, pkts in self.received.items() if pkts}

    def set_link(self, name, up):
        """Cut (both ends down) or restore a link; the logic hears port status as OVS reports."""
        for dpid, port in self.link_ends[name]:
            self.switches[dpid].live[port] = up
            self.send(self.logic.port_changed(dpid, port, up, self.now))

    def heal_before_bfd(self, name):
        """A cut link comes back: carrier at both ends, frames pass, but BFD is still down
        (not live) as it is for 1-2 s after a repair; the logic hears carrier without live."""
        for dpid, port in self.link_ends[name]:
            self.switches[dpid].wire[port] = True
        for dpid, port in self.link_ends[name]:
            self.send(self.logic.port_changed(dpid, port, False, self.now, carrier=True))

    def bfd_up(self, name):
        """BFD comes up on a link's two ends: live again."""
        for dpid, port in self.link_ends[name]:
            self.switches[dpid].wire.pop(port, None)
            self.switches[dpid].live[port] = True
            self.send(self.logic.port_changed(dpid, port, True, self.now))

    def gray_wire(self, name, on):
        """Frames stop crossing a link (on) or cross again (off), its carrier up throughout;
        BFD (live) is left as it is: bfd_down / bfd_up say when it notices."""
        for dpid, port in self.link_ends[name]:
            self.switches[dpid].wire[port] = not on

    def bfd_down(self, name):
        """BFD declares a link's ends down while their carrier stays up (a gray failure)."""
        for dpid, port in self.link_ends[name]:
            self.switches[dpid].live[port] = False
            self.send(self.logic.port_changed(dpid, port, False, self.now, carrier=True))

    def gray(self, name, up):
        """A gray failure seen only by BFD: ports stay up until BFD marks them not live."""
        self.set_link(name, up)

    def move_host(self, name, to_switch, port):
        """Re-link a host to another switch's new port (it keeps IP and MAC)."""
        dpid = self.topo.switch(to_switch).dpid
        self.switches[dpid].live[port] = True
        self.send(self.logic.port_changed(dpid, port, True, self.now))
        self.host_at[name] = (dpid, port)
