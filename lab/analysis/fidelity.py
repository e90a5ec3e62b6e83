"""Emulation fidelity: does each link deliver the delay and bandwidth it was configured with?

The lab steers the fabric so the link under test carries the traffic between a host behind
each of its ends, then measures round-trip time (ping) and TCP throughput (iperf3 -J).
The emulation's own path cost is calibrated out once per run (LabNetwork.calibrate_delays), so
judging is pure and tight: RTT within ±5 % or ±0.2 ms (the larger) of twice the one-way delay
(a link faster than the emulator's floor, the base RTT, is judged against that floor); TCP
throughput within ±5 % of the configured rate's TCP goodput (1448 payload bytes of every
1514 the shaper counts).
"""

import statistics
from dataclasses import asdict, dataclass

from lab.emulation import fabric, shaping, traffic
from lab.errors import LabError

RTT_REL, RTT_ABS_MS, BW_REL = 0.05, 0.2, 0.05
MAX_BASE_MS = 2.0              # more than this beyond the configured delay is the link's fault
CALIBRATION_ATTEMPTS = 3       # the userspace path's cost drifts by ~0.25 ms over seconds: a
#                                check that fails is calibrated and measured again (twice at most)
TCP_GOODPUT = 1448 / 1514      # TCP payload per Ethernet frame of a full-size segment (timestamps)


@dataclass
class Measurement:
    link: str
    metric: str          # rtt_ms | throughput_mbit
    configured: float    # twice the one-way delay (ms) | the bandwidth (Mbit/s)
    measured: float      # what ping (median) or iperf3 (receiver) measured
    tolerance: float
    ok: bool
    detail: str = ""
    expected: float = None     # what the measurement should show: configured, its TCP goodput,
    #                            or the emulator's floor (base RTT) for a faster link
    base_ms: float = None      # the base RTT of the switch path (RTT only)
    raw: float = None          # RTT before this link's calibration (its delay element at the
    #                            configured delay, the path's own cost on top)

    def to_dict(self):
        return asdict(self)


def judge(link, metric, configured, measured, detail="", base_ms=None, raw=None):
    """A Measurement with its tolerance and verdict.

    base_ms: the base RTT of the switch path; a link configured below it cannot be emulated
    faster, so it is judged against that floor."""
    if metric == "rtt_ms":
        expected = max(configured, base_ms or 0.0)
        tolerance = max(RTT_REL * expected, RTT_ABS_MS)
    else:
        expected = configured * TCP_GOODPUT
        tolerance = BW_REL * expected
    ok = measured is not None and abs(measured - expected) <= tolerance
    return Measurement(link, metric, configured, measured, tolerance, ok, detail,
                       round(expected, 3), base_ms, raw)


def endpoints(topo, link):
    """A host behind each end of `link` (the first one of each switch), the site end first on
    a firewalled link (a site may open connections out; clients only to allowed ports)."""
    a, b = (link.b, link.a) if link.firewall == link.b else (link.a, link.b)
    try:
        return topo.hosts_at(a)[0], topo.hosts_at(b)[0]
    except IndexError:
        raise LabError(f"{topo.source}: links.{link.name}: a switch at its ends has no hosts to "
                       "measure from; give every site servers and every edge clients") from None


def measure_link(lab, link, pings=40, interval=0.005, seconds=3.0, run_dir=None):
    """Measure one link; returns (measurements, rtt samples as (seq, rtt_ms))."""
    topo = lab.topo
    tree = lab.use_links({link.name})
    if fabric.path(topo, tree, link.a, link.b) != [link.name]:
        raise LabError(f"cannot steer traffic over link {link.name} alone")
    src, dst = endpoints(topo, link)
    base = (getattr(lab, "base_rtt", None) or {}).get("rtt_ms")
    if traffic.wait_reachable(lab, src.name, dst.ip.ip) is None:
        return [judge(link.name, "rtt_ms", 2 * link.delay_ms, None, "unreachable", base)], []
    calibrate = link.impaired and link.delay_ms > 0
    for attempt in range(1, CALIBRATION_ATTEMPTS + 1 if calibrate else 2):
        raw = None
        if calibrate:
            raw, base = calibrate_link(lab, link, src, dst, pings, interval)
        sent, received, samples = traffic.ping(lab, src.name, dst.ip.ip, pings, interval)
        detail = f"{src.name}->{dst.name}, {received}/{sent} replies" + (
            f", calibrated {attempt} times (the path's cost drifted)" if attempt > 1 else "")
        rtt = judge(link.name, "rtt_ms", 2 * link.delay_ms, _median_rtt(samples), detail, base,
                    raw)
        if rtt.ok:
            break
    results = [rtt]
    if link.bw:
        save = run_dir / f"iperf3-{link.name}.json" if run_dir else None
        report = traffic.iperf3(lab, src.name, dst.name, dst.ip.ip, seconds, save_to=save)
        results.append(judge(link.name, "throughput_mbit", link.bw, report["received_mbit"],
                             f"{src.name}->{dst.name}, {report['retransmits']} retransmits"))
    return results, samples


def calibrate_link(lab, link, src, dst, pings, interval):
    """Calibrate one link at its own operating point; returns (raw RTT, base), in ms.

    raw: the median RTT with the delay element at the configured delay; the path's cost (the
    base) is what it shows beyond twice that delay, trimmed once from a second sample (the cost
    shrinks a little with the delay a frame waits out). The base is bounded to 0..MAX_BASE_MS,
    so a delay element that adds too little or far too much is not hidden."""
    lab.set_link_delay(link.name, link.delay_ms)
    raw = _median_rtt(traffic.ping(lab, src.name, dst.ip.ip, pings, interval)[2])
    if raw is None:
        return None, None
    base = min(max(raw - 2 * link.delay_ms, 0.0), MAX_BASE_MS)
    lab.set_link_delay(link.name, shaping.compensated_delay(link.delay_ms, base / 2))
    trimmed = _median_rtt(traffic.ping(lab, src.name, dst.ip.ip, pings, interval)[2])
    if trimmed is not None:
        base = min(max(base + trimmed - 2 * link.delay_ms, 0.0), MAX_BASE_MS)
        lab.set_link_delay(link.name, shaping.compensated_delay(link.delay_ms, base / 2))
    return raw, round(base, 3)


def _median_rtt(samples):
    rtts = [rtt for _, rtt in samples]
    return round(statistics.median(rtts), 3) if rtts else None


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
