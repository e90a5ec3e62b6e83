"""Packets the controller reads and writes, built and parsed with os-ken's packet library.

Pure functions: bytes in, a small dict out; arguments in, bytes out.
"""

from os_ken.lib.packet import arp, ethernet, ether_types, icmp, ipv4, lldp, packet, tcp, udp

LLDP_MAC = "01:80:c2:00:00:0e"
TCP_SYN, TCP_RST, TCP_ACK = 0x02, 0x04, 0x10


def parse(data):
    """The fields the controller uses, as a flat dict ('kind' says what it is)."""
    pkt = packet.Packet(data)
    eth = pkt.get_protocol(ethernet.ethernet)
    if eth is None:
        return {"kind": "other"}
    info = {"kind": "other", "eth_src": eth.src, "eth_dst": eth.dst, "eth_type": eth.ethertype}
    if eth.ethertype == ether_types.ETH_TYPE_LLDP:
        frame = pkt.get_protocol(lldp.lldp)
        if frame is not None:
            chassis, port = frame.tlvs[0], frame.tlvs[1]
            info.update(kind="lldp", chassis=chassis.chassis_id.decode(errors="replace"),
                        port_id=port.port_id.decode(errors="replace"))
            for tlv in frame.tlvs[3:]:
                name = getattr(tlv, "system_name", b"").decode(errors="replace")
                if name.startswith(STAMP_PREFIX):
                    try:
                        info["stamp"] = float(name[len(STAMP_PREFIX):])
                    except ValueError:
                        pass
        return info
    request = pkt.get_protocol(arp.arp)
    if request is not None:
        info.update(kind="arp", op=request.opcode, src_mac=request.src_mac,
                    src_ip=request.src_ip, dst_ip=request.dst_ip)
        return info
    ip = pkt.get_protocol(ipv4.ipv4)
    if ip is None:
        return info
    info.update(kind="ipv4", ip_src=ip.src, ip_dst=ip.dst, ip_proto=ip.proto, ttl=ip.ttl)
    segment = pkt.get_protocol(tcp.tcp)
    if segment is not None:
        info.update(kind="tcp", src_port=segment.src_port, dst_port=segment.dst_port,
                    flags=segment.bits, seq=segment.seq, ack=segment.ack)
    datagram = pkt.get_protocol(udp.udp)
    if datagram is not None:
        info.update(kind="udp", src_port=datagram.src_port, dst_port=datagram.dst_port)
    echo = pkt.get_protocol(icmp.icmp)
    if echo is not None:
        info.update(kind="icmp", icmp_type=echo.type, icmp_code=echo.code, icmp=echo)
    return info


def _serialize(*protocols):
    pkt = packet.Packet()
    for proto in protocols:
        pkt.add_protocol(proto)
    pkt.serialize()
    return bytes(pkt.data)


def arp_reply(src_mac, src_ip, dst_mac, dst_ip):
    """`src_ip` is at `src_mac`, told to dst."""
    return _serialize(
        ethernet.ethernet(dst=dst_mac, src=src_mac, ethertype=ether_types.ETH_TYPE_ARP),
        arp.arp(opcode=arp.ARP_REPLY, src_mac=src_mac, src_ip=str(src_ip),
                dst_mac=dst_mac, dst_ip=str(dst_ip)))


def arp_request(src_mac, src_ip, target_ip):
    return _serialize(
        ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=src_mac, ethertype=ether_types.ETH_TYPE_ARP),
        arp.arp(opcode=arp.ARP_REQUEST, src_mac=src_mac, src_ip=str(src_ip),
                dst_mac="00:00:00:00:00:00", dst_ip=str(target_ip)))


STAMP_PREFIX = "activelab-sent:"


def lldp_frame(dpid, port, src_mac="02:00:00:00:00:fd", stamp=None):
    """An LLDP frame naming the switch (chassis 'dpid:<hex>') and port it leaves from; `stamp`
    (the controller's clock when it sent the frame) rides in a system-name TLV."""
    tlvs = [lldp.ChassisID(subtype=lldp.ChassisID.SUB_LOCALLY_ASSIGNED,
                           chassis_id=f"dpid:{dpid:016x}".encode()),
            lldp.PortID(subtype=lldp.PortID.SUB_PORT_COMPONENT, port_id=str(port).encode()),
            lldp.TTL(ttl=120)]
    if stamp is not None:
        tlvs.append(lldp.SystemName(system_name=f"{STAMP_PREFIX}{stamp:.6f}".encode()))
    tlvs = tuple(tlvs + [lldp.End()])
    return _serialize(ethernet.ethernet(dst=LLDP_MAC, src=src_mac,
                                        ethertype=ether_types.ETH_TYPE_LLDP), lldp.lldp(tlvs))


def lldp_origin(info):
    """(dpid, port) an LLDP frame was sent from, or None when it is not ours."""
    chassis, port = info.get("chassis", ""), info.get("port_id", "")
    if not chassis.startswith("dpid:") or not port.isdigit():
        return None
    return int(chassis[5:], 16), int(port)


def icmp_echo_reply(data, gateway_mac):
    """The gateway's answer to an echo request in `data` (addressed to a gateway IP)."""
    pkt = packet.Packet(data)
    eth, ip, echo = (pkt.get_protocol(p) for p in (ethernet.ethernet, ipv4.ipv4, icmp.icmp))
    return _serialize(
        ethernet.ethernet(dst=eth.src, src=gateway_mac, ethertype=ether_types.ETH_TYPE_IP),
        ipv4.ipv4(src=ip.dst, dst=ip.src, proto=ip.proto, ttl=64),
        icmp.icmp(type_=icmp.ICMP_ECHO_REPLY, code=0, csum=0, data=echo.data))


def tcp_segment(src_mac, dst_mac, src_ip, dst_ip, src_port, dst_port, flags, seq=0, ack=0):
    return _serialize(
        ethernet.ethernet(dst=dst_mac, src=src_mac, ethertype=ether_types.ETH_TYPE_IP),
        ipv4.ipv4(src=str(src_ip), dst=str(dst_ip), proto=6, ttl=64),
        tcp.tcp(src_port=src_port, dst_port=dst_port, seq=seq, ack=ack, bits=flags,
                window_size=1024))
