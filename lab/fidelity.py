"""Emulation fidelity: does each link deliver the delay and bandwidth it was configured with?

The lab steers the fabric so the link under test carries the traffic between a host behind
each of its ends, then measures round-trip time (ping) and TCP throughput (iperf3 -J).
Judging is pure: RTT within ±15% or ±1 ms (the larger) of twice the one-way delay, throughput
within ±15% of the configured bandwidth.
"""

import statistics
from dataclasses import asdict, dataclass

from lab import fabric, traffic
from lab.errors import LabError

RTT_REL, RTT_ABS_MS, BW_REL = 0.15, 1.0, 0.15


@dataclass
class Measurement:
    link: str
    metric: str          # rtt_ms | throughput_mbit
    configured: float
    measured: float
    tolerance: float
    ok: bool
    detail: str = ""

    def to_dict(self):
        return asdict(self)


def judge(link, metric, configured, measured, detail=""):
    """A Measurement with its tolerance and verdict."""
    if metric == "rtt_ms":
        tolerance = max(RTT_REL * configured, RTT_ABS_MS)
    else:
        tolerance = BW_REL * configured
    ok = measured is not None and abs(measured - configured) <= tolerance
    return Measurement(link, metric, configured, measured, tolerance, ok, detail)


def endpoints(topo, link):
    """A host behind each end of `link` (the first one of each switch), the site end first on
    a firewalled link (a site may open connections out; clients only to allowed ports)."""
    a, b = (link.b, link.a) if link.firewall == link.b else (link.a, link.b)
    try:
        return topo.hosts_at(a)[0], topo.hosts_at(b)[0]
    except IndexError:
        raise LabError(f"{topo.source}: links.{link.name}: a switch at its ends has no hosts to "
                       "measure from; give every site servers and every edge clients") from None


def measure_link(lab, link, pings=40, interval=0.05, seconds=3.0, run_dir=None):
    """Measure one link; returns (measurements, rtt samples as (seq, rtt_ms))."""
    topo = lab.topo
    tree = lab.use_links({link.name})
    if fabric.path(topo, tree, link.a, link.b) != [link.name]:
        raise LabError(f"cannot steer traffic over link {link.name} alone")
    src, dst = endpoints(topo, link)
    if traffic.wait_reachable(lab, src.name, dst.ip.ip) is None:
        return [judge(link.name, "rtt_ms", 2 * link.delay_ms, None, "unreachable")], []
    sent, received, samples = traffic.ping(lab, src.name, dst.ip.ip, pings, interval)
    rtts = [rtt for _, rtt in samples]
    detail = f"{src.name}->{dst.name}, {received}/{sent} replies"
    results = [judge(link.name, "rtt_ms", 2 * link.delay_ms,
                     statistics.median(rtts) if rtts else None, detail)]
    if link.bw:
        save = run_dir / f"iperf3-{link.name}.json" if run_dir else None
        report = traffic.iperf3(lab, src.name, dst.name, dst.ip.ip, seconds, save_to=save)
        results.append(judge(link.name, "throughput_mbit", link.bw, report["received_mbit"],
                             f"{src.name}->{dst.name}, {report['retransmits']} retransmits"))
    return results, samples


def base_rtt(lab, pings=20, interval=0.05):
    """Median RTT between two hosts on the same switch: the emulation's own cost, no shaped link.

    Returns (switch, rtt_ms) for the first switch with two hosts, or None."""
    for switch in lab.topo.switches:
        hosts = lab.topo.hosts_at(switch.name)
        if len(hosts) >= 2:
            traffic.wait_reachable(lab, hosts[0].name, hosts[1].ip.ip)
            rtts = [r for _, r in traffic.ping(lab, hosts[0].name, hosts[1].ip.ip, pings, interval)[2]]
            if rtts:
                return switch.name, statistics.median(rtts)
    return None


def all_pairs(lab, wait=10.0):
    """Ping every host from every other host; returns [(src, dst, reachable)]."""
    hosts = lab.topo.hosts
    results = []
    for src in hosts:
        for dst in hosts:
            if src is not dst:
                results.append((src.name, dst.name,
                                traffic.wait_reachable(lab, src.name, dst.ip.ip, wait) is not None))
    return results
