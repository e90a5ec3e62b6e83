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
from concurrent.futures import ThreadPoolExecutor
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


UNREACHABLE = "unreachable"     # an RTT's detail when no ping came back: no throughput then
MAX_RTT_AT_ONCE = 4             # links whose RTT is measured at once (pings are light; more
#                                 at once would load the 2-core emulator itself)


def link_rounds(topo, links, at_once=MAX_RTT_AT_ONCE):
    """Links grouped so that each group fits one spanning tree (each link then carries the
    traffic between the hosts behind its ends alone) with at most `at_once` links; greedy, in
    the order given. [[Link]]."""
    rounds = []
    for link in links:
        for group in rounds:
            names = {l.name for l in group} | {link.name}
            if len(group) < at_once and names <= fabric.spanning_tree(topo, names):
                group.append(link)
                break
        else:
            rounds.append([link])
    return rounds


def measure_links(lab, links, pings=40, interval=0.002, seconds=3.0, run_dir=None,
                  measuring=None, measured=None):
    """Measure every link: the links of one round (link_rounds) share a spanning tree, and
    their RTTs are measured at once (pings: a packet or two in flight per link); throughput
    one link at a time (iperf3 fills a link: two at once would share the emulator's CPU).
    measuring(links): called as each round starts; measured(link, measurements): as each link's
    are in. Returns {link name: (measurements, rtt samples as (seq, rtt_ms))}."""
    topo, found = lab.topo, {}
    for group in link_rounds(topo, links):
        if measuring:
            measuring(group)
        tree = lab.use_links({link.name for link in group})
        for link in group:
            if fabric.path(topo, tree, link.a, link.b) != [link.name]:
                raise LabError(f"cannot steer traffic over link {link.name} alone")
        if len(group) == 1:
            rtts = [measure_rtt(lab, group[0], pings, interval)]
        else:
            with ThreadPoolExecutor(len(group)) as pool:
                rtts = list(pool.map(lambda link: measure_rtt(lab, link, pings, interval), group))
        for link, (rtt, samples) in zip(group, rtts):
            results = [rtt]
            if link.bw and rtt.detail != UNREACHABLE:
                results.append(measure_throughput(lab, link, seconds, run_dir,
                                                  rtt.measured or 2 * link.delay_ms))
            found[link.name] = (results, samples)
            if measured:
                measured(link, results)
    return found


def measure_rtt(lab, link, pings, interval):
    """A link's RTT (calibrated, then judged on an independent sample) on the tree in use;
    returns (Measurement, samples)."""
    src, dst = endpoints(lab.topo, link)
    base = (getattr(lab, "base_rtt", None) or {}).get("rtt_ms")
    if traffic.wait_reachable(lab, src.name, dst.ip.ip) is None:
        return judge(link.name, "rtt_ms", 2 * link.delay_ms, None, UNREACHABLE, base), []
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
    return rtt, samples


def measure_throughput(lab, link, seconds, run_dir=None, rtt_ms=None):
    """A link's TCP throughput (iperf3 for `seconds`): what the receiver took in after its
    warmup (traffic.warmup_s of the path's RTT) until the sender stopped."""
    src, dst = endpoints(lab.topo, link)
    save = run_dir / f"iperf3-{link.name}.json" if run_dir else None
    report = traffic.iperf3(lab, src.name, dst.name, dst.ip.ip, seconds, save_to=save,
                            warmup=traffic.warmup_s(rtt_ms, seconds))
    steady = report["steady_mbit"]
    return judge(link.name, "throughput_mbit", link.bw,
                 steady if steady is not None else report["received_mbit"],
                 f"{src.name}->{dst.name}, {report['retransmits']} retransmits"
                 + ("" if steady is not None else ", whole run (no receiver report)"))


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


ALL_PAIRS_AT_ONCE = 8            # source hosts pinging at once (each its targets in turn)


def all_pairs(lab, wait=10.0):
    """Ping every host from every other host; returns [(src, dst, reachable)] in host order.
    Sources ping at once (a ping per source in flight: no load to speak of), so a lab with a
    broken path does not wait out `wait` seconds pair after pair."""
    hosts = lab.topo.hosts

    def from_source(src):
        return [(src.name, dst.name,
                 traffic.wait_reachable(lab, src.name, dst.ip.ip, wait) is not None)
                for dst in hosts if dst is not src]

    with ThreadPoolExecutor(max(1, min(ALL_PAIRS_AT_ONCE, len(hosts)))) as pool:
        return [pair for pairs in pool.map(from_source, hosts) for pair in pairs]
