"""What a fault costs the data tier, from the writers' ledgers and the surviving database.

Definitions (pure functions; the README's metrics section quotes them):

  rpo_writes   acknowledged writes missing from the database that serves after the fault
  rpo_ms       how far back before the fault the loss reaches: the fault's instant minus the
               acknowledgement of the earliest lost write (0 when nothing was lost; a lost
               write acknowledged after the fault counts from the fault, 0)
  rto_ms       per client, the fault to the first write both sent and acknowledged after it;
               the worst client's (None when a client that wrote before the fault never had
               one acknowledged after it)
  commit_ms    the app's commit times (nearest-rank p50, p99) of acknowledged writes sent in a window
               (before / during / after the fault: during = from the fault to the last
               client's recovery)

A write is (client, seq); a ledger entry has t_sent, t_ack (None: never acknowledged), error
and commit_ms (lab/agents/dataapp.py).
"""

import math


def percentile(ordered, p):
    """The nearest-rank p-th percentile of an ascending list (p50 of [1, 2, 3, 4] is 2; p99 of
    fewer than 100 values is the largest)."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def acknowledged(ledgers):
    """{(client, seq): entry} of every acknowledged write of every client's ledger."""
    return {(ledger["client"], w["seq"]): w for ledger in ledgers for w in ledger["writes"]
            if w.get("t_ack")}


def rpo(ledgers, present, t_fault):
    """(rpo_writes, rpo_ms): acknowledged writes not in `present` (a set of (client, seq)
    read from the surviving database) and how far before the fault the loss reaches."""
    lost = [w for key, w in acknowledged(ledgers).items() if key not in present]
    if not lost:
        return 0, 0.0
    earliest = min(w["t_ack"] for w in lost)
    return len(lost), round(max(0.0, 1000 * (t_fault - earliest)), 3)


def rto(ledgers, t_fault):
    """(rto_ms of the worst client or None, {client: ms or None}) over the clients that had
    a write acknowledged before the fault."""
    per_client = {}
    for ledger in ledgers:
        writes = ledger["writes"]
        if not any(w.get("t_ack") and w["t_ack"] < t_fault for w in writes):
            continue
        after = [w["t_ack"] for w in writes if w.get("t_ack") and w["t_sent"] >= t_fault]
        per_client[ledger["client"]] = (round(1000 * (min(after) - t_fault), 3) if after
                                        else None)
    times = list(per_client.values())
    worst = None if any(t is None for t in times) else max(times, default=0.0)
    return worst, per_client


def commit_stats(ledgers, start, end):
    """{count, p50, p99} of the commit times (ms) of acknowledged writes sent in [start, end)."""
    times = sorted(w["commit_ms"] for ledger in ledgers for w in ledger["writes"]
                   if w.get("t_ack") and w.get("commit_ms") is not None
                   and start <= w["t_sent"] < end)
    if not times:
        return {"count": 0, "p50": None, "p99": None}
    return {"count": len(times), "p50": round(percentile(times, 50), 3),
            "p99": round(percentile(times, 99), 3)}
