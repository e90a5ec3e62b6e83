"""What a fault costs the data tier, from the writers' ledgers and the surviving database.

Definitions (pure functions; the README's metrics section quotes them):

  rpo_writes   acknowledged writes missing from the database that serves after the fault
  rpo_ms       how far back before the fault the loss reaches: the fault's instant minus the
               acknowledgement of the earliest lost write (0 when nothing was lost; a lost
               write acknowledged after the fault counts from the fault, 0)
  rto_ms       per client, the fault to the first write both sent and acknowledged after it
               (sent after the fault was fully carried out, e.g. the last port of a powered-off
               site down); the worst client's (None when a client that wrote before the fault never had
               one acknowledged after it)
  commit_ms    the app's commit times (nearest-rank p50, p99) of acknowledged writes sent in a window
               (before / during / after the fault: during = from the fault to the last
               client's recovery)

  accepted     per site, the writes its servers acknowledged in a window (which sites kept
               taking writes)
  divergent_writes  writes acknowledged during a partition by one site that are missing from
               the database of another site that also acknowledged writes then: both sides took
               writes the other does not have (split brain); 0 when at most one side did
  lag_ms       a standby's receive lag: at each of its samples, how far back the WAL it has not
               received reaches: the time since the primary's own samples first showed a
               position beyond the one the standby has received (0 when the standby has all
               they show: an idle primary is no lag); nearest-rank p50, p99, and the last
               sample before the fault. What a power-off of the primary loses reaches back
               that far, less the WAL still on the wire (it arrives) and the time an
               acknowledgement takes to reach its client
  wal_missing_ms  how far back before the fault the WAL a standby never received reaches:
               the fault minus the first primary sample beyond the last position the standby
               received, after the fault too (what was on the wire arrived). A lost write was
               acknowledged after its WAL was written, so rpo_ms <= wal_missing_ms (to a
               sampling interval), and less by the time its acknowledgement took
  response_ms  the writers' response times (sent to acknowledged, as the clients saw them) of
               acknowledged writes sent in a window, as commit_ms

A write is (client, seq); a ledger entry has t_sent, t_ack (None: never acknowledged), error
and commit_ms (lab/agents/dataapp.py).
"""

import json
import math
from pathlib import Path


def percentile(ordered, p):
    """The nearest-rank p-th percentile of an ascending list (p50 of [1, 2, 3, 4] is 2; p99 of
    fewer than 100 values is the largest)."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def acknowledged(ledgers):
    """{(client, seq): entry} of every acknowledged write of every client's ledger."""
    return {(ledger["client"], w["seq"]): w for ledger in ledgers for w in ledger["writes"]
            if w.get("t_ack")}


def galera_commit_ms(writer, rtt):
    """What Galera's group communication adds to a commit on `writer`, from the RTT (ms)
    between every pair of members ({frozenset((a, b)): ms}; one way = half).

    Galera sends every write set with EVS *safe* delivery (gcs_gcomm.cpp: O_SAFE): the writer
    may deliver it (certify and commit) only once it knows every member has received it and
    everything before it. A member X has everything up to the write set once it has it and the
    next message of every other member (each answers the write set when it arrives): at
    t_X = max(d(w, X), d(w, Y) + d(Y, X) for the other members Y); the writer learns that at
    t_X + d(X, w), and has the others' messages itself after one RTT to each. With two members
    that is one RTT; with a third (a witness) as far away as the other node, 1.5 RTT."""
    members = sorted({m for pair in rtt for m in pair})

    def d(a, b):
        return 0.0 if a == b else rtt[frozenset((a, b))] / 2

    others = [m for m in members if m != writer]
    own = max((2 * d(writer, y) for y in others), default=0.0)
    learned = [max([d(writer, x)] + [d(writer, y) + d(y, x) for y in others if y != x])
               + d(x, writer) for x in others]
    return max([own] + learned)


def read_present(path):
    """{(client, seq)} from a present-NODE.tsv (client TAB seq per line: what a database
    held; lab.emulation.databases.write_present writes it)."""
    return {(c, int(s)) for c, s in (line.split("\t") for line in path.read_text().splitlines()
                                     if "\t" in line)}


def serving_node(nodes, down, ledgers, present):
    """The database that serves after a fault: of the nodes not powered off (`down`) whose
    writes could be read (`present`: {node: set of (client, seq)}), the one holding the last
    acknowledged write (a tie: the one holding more acknowledged writes); None if none."""
    acked = acknowledged(ledgers)
    candidates = [n for n in nodes if n in present and n not in down]
    if not candidates:
        return None
    last = max(acked, key=lambda k: acked[k]["t_ack"]) if acked else None
    return max(candidates, key=lambda n: (last in present[n],
                                          sum(1 for k in acked if k in present[n])))


def rpo(ledgers, present, t_fault):
    """(rpo_writes, rpo_ms): acknowledged writes not in `present` (a set of (client, seq)
    read from the surviving database) and how far before the fault the loss reaches."""
    lost = [w for key, w in acknowledged(ledgers).items() if key not in present]
    if not lost:
        return 0, 0.0
    earliest = min(w["t_ack"] for w in lost)
    return len(lost), round(max(0.0, 1000 * (t_fault - earliest)), 3)


def rto(ledgers, t_fault, sent_after=None):
    """(rto_ms of the worst client or None, {client: ms or None}) over the clients that had
    a write acknowledged before the fault. sent_after: count only writes sent from then on
    (a fault that takes some ms to carry out: the writes sent meanwhile may still reach the
    failing side); the time is still counted from t_fault."""
    per_client = {}
    since = t_fault if sent_after is None else max(t_fault, sent_after)
    for ledger in ledgers:
        writes = ledger["writes"]
        if not any(w.get("t_ack") and w["t_ack"] < t_fault for w in writes):
            continue
        after = [w["t_ack"] for w in writes if w.get("t_ack") and w["t_sent"] >= since]
        per_client[ledger["client"]] = (round(1000 * (min(after) - t_fault), 3) if after
                                        else None)
    times = list(per_client.values())
    worst = None if any(t is None for t in times) else max(times, default=0.0)
    return worst, per_client


def spread(values):
    """{count, p50, p99} (nearest rank) of some times in ms; None percentiles without any."""
    times = sorted(values)
    if not times:
        return {"count": 0, "p50": None, "p99": None}
    return {"count": len(times), "p50": round(percentile(times, 50), 3),
            "p99": round(percentile(times, 99), 3)}


def commit_stats(ledgers, start, end):
    """{count, p50, p99} of the commit times (ms) of acknowledged writes sent in [start, end)."""
    return spread(w["commit_ms"] for ledger in ledgers for w in ledger["writes"]
                  if w.get("t_ack") and w.get("commit_ms") is not None
                  and start <= w["t_sent"] < end)


def accepted(ledgers, site_of, start, end):
    """{site: writes acknowledged by its servers, sent in [start, end)}; site_of: {server:
    site}."""
    out = {}
    for ledger in ledgers:
        for w in ledger["writes"]:
            if w.get("t_ack") and start <= w["t_sent"] < end:
                site = site_of.get(w["server"], w["server"])
                out[site] = out.get(site, 0) + 1
    return dict(sorted(out.items()))


def divergent_writes(ledgers, site_of, present_by_site, start, end):
    """Writes acknowledged in [start, end) by one site and missing from the database of
    another site that also acknowledged writes in that window. present_by_site: {site: set of
    (client, seq) in its database}."""
    by_site = {}
    for key, w in acknowledged(ledgers).items():
        if start <= w["t_sent"] < end:
            by_site.setdefault(site_of.get(w["server"], w["server"]), set()).add(key)
    sides = [site for site in by_site if site in present_by_site]
    if len(sides) < 2:
        return 0
    return sum(1 for site in sides for key in by_site[site]
               if any(key not in present_by_site[other] for other in sides if other != site))


def lag_stats(samples, t_fault=None):
    """{count, p50, p99, at_fault} of lag samples [{t, lag_ms}] (at_fault: the last sample
    before t_fault; None without samples)."""
    before = [s for s in samples if t_fault is None or s["t"] < t_fault]
    return dict(spread(s["lag_ms"] for s in samples),
                at_fault=round(max(before, key=lambda s: s["t"])["lag_ms"], 3) if before else None)


def receive_lag(standby, primary):
    """[{t, lag_ms}]: per standby sample {t, recv}, how far back the WAL it is missing reaches:
    t minus the first primary sample {t, lsn} that shows a position beyond recv (the primary
    had written what the standby lacks by then); 0 when no primary sample up to t shows more
    than the standby has (an idle primary is not a lagging standby). Positions only grow;
    samples may come in any order."""
    points = sorted((s["t"], s["lsn"]) for s in primary)
    out = []
    for sample in sorted(standby, key=lambda s: s["t"]):
        if sample.get("recv") is None or not points:
            continue
        beyond = next((t for t, lsn in points if lsn > sample["recv"]), None)
        lag = 0.0 if beyond is None else max(0.0, sample["t"] - beyond)
        out.append({"t": sample["t"], "lag_ms": round(1000 * lag, 3)})
    return out


def wal_missing(standby, primary, t_fault):
    """How far back before t_fault the WAL the standby never received reaches (ms): t_fault
    minus the first primary sample showing a position beyond the last one the standby
    received (samples after the fault count: WAL on the wire arrives); 0 when it received
    everything the primary's samples show; None without samples of both."""
    received = [s["recv"] for s in standby if s.get("recv") is not None]
    if not received or not primary:
        return None
    final = max(received)
    beyond = min((s["t"] for s in primary if s["lsn"] > final), default=None)
    return 0.0 if beyond is None else round(max(0.0, 1000 * (t_fault - beyond)), 3)


def response_stats(ledgers, start, end):
    """{count, p50, p99} of the writers' response times (ms: sent to acknowledged, as the
    client saw it) of acknowledged writes sent in [start, end)."""
    return spread(1000 * (w["t_ack"] - w["t_sent"]) for ledger in ledgers
                  for w in ledger["writes"] if w.get("t_ack") and start <= w["t_sent"] < end)


def case_metrics(case_dir):
    """What one fault cost the data tier, from a case folder's raw files alone: case.json (the
    fault's instant, the nodes, which were powered off, which could be read, the promotion),
    writes-CLIENT.json (the writers' ledgers), present-NODE.tsv (what each database held
    afterwards) and, for a PostgreSQL standby, lag-standby/lag-primary.jsonl."""
    case_dir = Path(case_dir)
    case = json.loads((case_dir / "case.json").read_text())
    ledgers = [json.loads((case_dir / f"writes-{c}.json").read_text()) for c in case["clients"]]
    present = {n: read_present(case_dir / f"present-{n}.tsv") for n in case["read"]}
    t_fault = case["t_fault"]
    end = max((ledger["end"] for ledger in ledgers), default=t_fault)
    start = min((ledger["start"] for ledger in ledgers), default=t_fault)
    serving = serving_node(case["nodes"], case["down"], ledgers, present)
    rpo_writes, rpo_ms = (rpo(ledgers, present[serving], t_fault) if serving
                          else (None, None))
    done = t_fault + (case.get("fault_spread_ms") or 0.0) / 1000
    rto_ms, per_client = rto(ledgers, t_fault, sent_after=done)
    recovered = t_fault + (rto_ms or 0) / 1000 if rto_ms is not None else end
    site_of = case["site_of"]
    present_by_site = {site_of[n]: present[n] for n in present if n not in case["down"]}
    acked = acknowledged(ledgers)

    def samples_of(role):
        path = case_dir / f"lag-{role}.jsonl"
        return ([json.loads(line) for line in path.read_text().splitlines() if line.strip()]
                if path.exists() else None)

    standby_samples, primary_samples = samples_of("standby"), samples_of("primary")
    lagged = standby_samples is not None and primary_samples is not None
    samples = receive_lag(standby_samples, primary_samples) if lagged else []
    replay = ([{"t": s["t"], "lag_ms": s["replay_ms"]} for s in standby_samples
               if s.get("replay_ms") is not None] if lagged else [])
    writes = [w for ledger in ledgers for w in ledger["writes"]]
    return {
        "variant": case["variant"], "fault": case["fault"], "fault_delay_ms":
            case["fault_delay_ms"],
        "writes_sent": len(writes), "writes_acknowledged": len(acked),
        "writes_per_s": round(len(writes) / max(1e-9, max(
            (ledger["end"] - ledger["start"] for ledger in ledgers), default=1)), 1),
        "serving_node": serving,
        "rpo_writes": rpo_writes, "rpo_ms": rpo_ms,
        "rto_ms": rto_ms, "rto_ms_per_client": per_client,
        "missing_on": {n: sum(1 for k in acked if k not in present[n]) for n in present},
        "commit_ms": {"before": commit_stats(ledgers, start, t_fault),
                      "during": commit_stats(ledgers, t_fault, recovered),
                      "after": commit_stats(ledgers, recovered, end + 1)},
        "response_ms": {"before": response_stats(ledgers, start, t_fault),
                        "during": response_stats(ledgers, t_fault, recovered),
                        "after": response_stats(ledgers, recovered, end + 1)},
        "lag_ms": lag_stats(samples, t_fault) if lagged else None,
        "wal_missing_ms": (wal_missing(standby_samples, primary_samples, t_fault) if lagged
                           else None),
        "replay_lag_ms": lag_stats(replay, t_fault) if lagged else None,
        "promoted_after_ms": (round(1000 * (case["t_promote"] - t_fault), 1)
                              if case.get("t_promote") else None),
        "divergent_writes": divergent_writes(ledgers, site_of, present_by_site,
                                                         t_fault, end + 1),
        "accepting_before": accepted(ledgers, site_of, start, t_fault),
        "accepting_after": accepted(ledgers, site_of, recovered, end + 1),
    }
