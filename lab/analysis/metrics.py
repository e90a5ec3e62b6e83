"""Metrics from raw probe samples: loss, reordering, duplicates, and per-fault outage.

Pure functions over rows of (stream, seq, sent, received, host); times are CLOCK_REALTIME
seconds, the clock faults are stamped with. A fault's *window* runs from the fault to the next
fault at a later time (or the end of the traffic); faults at the same instant share a window.
Definitions (also in the README):

- expected: the probes the sender sent in the window (send time in [fault, window end)). Their
  sequence numbers come from the received probes' own send times, the sender's start, rate
  and count (`t_start`, `rate`, `sent`): a probe lost in the window still counts, including a
  lost tail up to the window's end.
- lost: expected probes never received (probes sent before the fault are not charged to it).
- recovered: the last RECOVERY_PROBES expected probes of the window (leaving out those sent in
  the last `guard` seconds, which the next fault may catch in flight) all arrived; with fewer
  expected probes, all of them. None (not judged) when the sender sent nothing in the window
  (it had stopped, or stalled: its figures are untrustworthy, see stream_stats).
- outage: the longest gap in delivery, from the last probe received before the fault through
  every probe received in the window; when the stream has not recovered, the gap is closed at
  the window's end (the outage is then at least that long).
- convergence: from the fault until the first probe sent after the window's last lost one
  (before the guard) arrives (without loss: the first probe after the fault); None when not
  recovered.
"""

import math
from dataclasses import asdict, dataclass

RECOVERY_PROBES = 10


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


def _send_rate(by_seq):
    """Probes per second from the received probes' own send times (None with fewer than two)."""
    seqs = sorted(by_seq)
    if len(seqs) < 2 or by_seq[seqs[-1]][2] <= by_seq[seqs[0]][2]:
        return None
    return (seqs[-1] - seqs[0]) / (by_seq[seqs[-1]][2] - by_seq[seqs[0]][2])


def first_seq_at(by_seq, t, t_start=None, rate=None, sent=None):
    """The sequence number of the first probe sent at or after time t.

    Bounded by what was received (after every probe sent before t, at or before any probe sent
    from t on) and placed between those bounds by the sender's schedule when it is known."""
    lower = max((s for s, r in by_seq.items() if r[2] < t), default=-1) + 1
    upper = min((s for s, r in by_seq.items() if r[2] >= t), default=None)
    if upper is None:
        upper = sent if sent is not None else None
    if rate and t_start is not None:
        estimate = max(0, math.ceil((t - t_start) * rate - 1e-6))
    else:
        estimate = lower
    if upper is not None:
        estimate = min(estimate, upper)
    return max(estimate, lower)


def fault_impact(rows, t_fault, t_end, t_start=None, rate=None, sent=None, guard=0.0):
    """Outage, loss and convergence of one stream around a fault at t_fault (window to t_end).

    Args:
        rows: the stream's received probes (stream, seq, sent, received, host).
        t_start, rate, sent: the sender's start time, probes per second and total count (from
            its summary); without them the schedule is inferred from the received probes.
        guard: seconds before t_end whose probes do not count toward `recovered`.
    Returns:
        dict with expected, lost, outage_ms, convergence_ms and recovered.
    """
    by_seq = {}
    for row in sorted(rows, key=lambda r: r[3]):
        by_seq.setdefault(row[1], row)                       # first copy of each seq
    if rate is None:
        rate = _send_rate(by_seq)
    if t_start is None and rate and by_seq:
        t_start = min(r[2] - s / rate for s, r in by_seq.items())
    start_seq = first_seq_at(by_seq, t_fault, t_start, rate, sent)
    end_seq = max(first_seq_at(by_seq, t_end, t_start, rate, sent), start_seq)
    expected = range(start_seq, end_seq)
    missing = [s for s in expected if s not in by_seq]
    tail_end = max(min(first_seq_at(by_seq, t_end - guard, t_start, rate, sent), end_seq),
                   start_seq)
    tail = range(max(start_seq, tail_end - RECOVERY_PROBES), tail_end)
    recovered = len(tail) > 0 and all(s in by_seq for s in tail)
    if not expected:
        return {"expected": 0, "lost": 0, "outage_ms": None, "convergence_ms": None,
                "recovered": None}

    before = [r[3] for r in by_seq.values() if r[3] <= t_fault]
    times = [max(before) if before else t_fault]
    times += sorted(r[3] for r in by_seq.values() if t_fault < r[3] <= t_end)
    if not recovered:
        times.append(max(t_end, times[-1]))
    gaps = [b - a for a, b in zip(times, times[1:])]
    convergence = None
    if recovered:
        last_loss = max((s for s in missing if s < tail.start), default=-1)
        after = [r[3] for s, r in by_seq.items()
                 if start_seq <= s < end_seq and s > last_loss and r[3] > t_fault]
        convergence = round(1000 * (min(after) - t_fault), 3) if after else None
        recovered = convergence is not None
    return {
        "expected": len(expected),
        "lost": len(missing),
        "outage_ms": round(1000 * max(gaps), 3) if gaps else None,
        "convergence_ms": convergence,
        "recovered": recovered,
    }


def fault_windows(faults, t_stop):
    """Each fault's window (start, end), from [(scheduled at s, injected at t)] in time order.

    Faults scheduled at the same instant share one window, from the first of them to be
    injected; a window ends when the next fault scheduled later is injected, or at t_stop."""
    windows = []
    for i, (at, t) in enumerate(faults):
        start = next(u for a, u in faults if a == at)
        later = [u for a, u in faults[i + 1:] if a > at]
        windows.append((start, later[0] if later else t_stop))
    return windows


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


def rate_around(timeline, t, t_end, span=1.5, interval=0.5):
    """Mean Mbit/s before a fault at `t` ([t - span, t)), during it and after it, in a window
    that ends at `t_end` (the next fault): "during" is its first `span` seconds or its first
    half when the window is shorter than 2 x span, "after" the rest. timeline: (start, Mbit/s)
    of `interval`-long intervals, each counted where its middle falls (an interval that starts
    a few ms before a boundary is mostly on its far side); None where none falls in a part."""
    middles = [(start + interval / 2, mbit) for start, mbit in timeline]
    during = min(span, (t_end - t) / 2)
    return {"before": mean_rate(middles, t - span, t),
            "during": mean_rate(middles, t, t + during),
            "after": mean_rate(middles, t + during, t_end)}
