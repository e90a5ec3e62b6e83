"""Metrics from raw probe samples: loss, reordering, duplicates, and per-fault outage.

Pure functions over rows of (stream, seq, sent, received, host); times are CLOCK_REALTIME
seconds, the clock faults are stamped with. Definitions (also in the README):

- outage: the longest gap between consecutive received probes of a stream, from the last probe
  received before the fault to the end of the fault's window (the next fault, or the end). With
  nothing lost it is about one send interval; it is None when delivery never resumed.
- lost: probes sent in the window (from the one after the last received before the fault) and
  never received.
- convergence: from the fault until the first probe after the window's last lost one arrives
  (without loss: until the first probe after the fault arrives).
"""

from dataclasses import asdict, dataclass


@dataclass
class StreamStats:
    stream: int
    name: str
    sent: int
    received: int
    lost: int
    loss_pct: float
    reordered: int
    duplicates: int
    target_rate: float
    achieved_rate: float
    trustworthy: bool

    def to_dict(self):
        return asdict(self)


def stream_stats(stream, name, rows, summary, min_rate_share=0.9):
    """Totals for one stream; `summary` is the sender's (sent, target_rate, achieved_rate)."""
    seen, duplicates, reordered, highest = set(), 0, 0, -1
    for row in sorted(rows, key=lambda r: r[3]):           # in receive order
        seq = row[1]
        if seq in seen:
            duplicates += 1
            continue
        seen.add(seq)
        if seq < highest:
            reordered += 1
        highest = max(highest, seq)
    sent = summary["sent"]
    lost = max(sent - len(seen), 0)
    return StreamStats(stream, name, sent, len(seen), lost,
                       round(100.0 * lost / sent, 3) if sent else 0.0, reordered, duplicates,
                       summary["target_rate"], round(summary["achieved_rate"], 1),
                       summary["achieved_rate"] >= min_rate_share * summary["target_rate"])


def fault_impact(rows, t_fault, t_end, t_start=None, rate=None):
    """Outage, loss and convergence of one stream around a fault at t_fault (window to t_end).

    t_start and rate (the sender's) place the first sequence number sent after the fault even
    when nothing was delivered before it (probes a powered-off sender could not send).
    Returns a dict with outage_ms, lost, convergence_ms and recovered."""
    by_seq = {}
    for row in rows:
        by_seq.setdefault(row[1], row)                       # first copy of each seq
    before = [r for r in by_seq.values() if r[3] <= t_fault]
    last_before = max(before, key=lambda r: r[3]) if before else None
    start_seq = max((r[1] for r in by_seq.values() if r[2] < t_fault), default=-1) + 1
    if t_start is not None and rate:
        start_seq = max(start_seq, int((t_fault - t_start) * rate))
    in_window = sorted((r for r in by_seq.values() if r[1] >= start_seq and r[2] < t_end),
                       key=lambda r: r[1])
    times = sorted([last_before[3]] if last_before else [])
    times += sorted(r[3] for r in by_seq.values() if r[3] > t_fault and r[2] < t_end)
    gaps = [b - a for a, b in zip(times, times[1:])]
    delivered_after = [r for r in in_window if r[3] > t_fault]
    if not delivered_after:
        return {"outage_ms": None, "lost": None, "convergence_ms": None, "recovered": False}
    last_seq = in_window[-1][1]
    received = {r[1] for r in in_window}
    missing = [s for s in range(start_seq, last_seq + 1) if s not in received]
    after_loss = [r for r in in_window if r[1] > (missing[-1] if missing else start_seq - 1)]
    first = min(after_loss, key=lambda r: r[3]) if after_loss else None
    return {
        "outage_ms": round(1000 * max(gaps), 3) if gaps else None,
        "lost": len(missing),
        "convergence_ms": round(1000 * (first[3] - t_fault), 3) if first else None,
        "recovered": first is not None,
    }


def site_share(rows, site_of_host, t0, t1):
    """Share (0..1) of probes received in [t0, t1) per site, from the receiving host."""
    counts = {}
    for row in rows:
        if t0 <= row[3] < t1:
            site = site_of_host.get(row[4], row[4])
            counts[site] = counts.get(site, 0) + 1
    total = sum(counts.values())
    return {site: round(n / total, 3) for site, n in sorted(counts.items())} if total else {}


def mean_rate(timeline, t0, t1):
    """Mean Mbit/s of throughput intervals (start time, Mbit/s) starting in [t0, t1)."""
    values = [mbit for t, mbit in timeline if t0 <= t < t1]
    return round(sum(values) / len(values), 2) if values else None
