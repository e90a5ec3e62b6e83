"""The data tier's metrics on synthetic ledgers: loss, recovery, commit times."""

from lab.analysis import datametrics as dm
from lab.emulation import databases

FAULT = 100.0


def ledger(client, writes):
    """writes: (seq, t_sent, t_ack or None, commit_ms)"""
    return {"client": client, "writes": [{"seq": s, "t_sent": t, "t_ack": a, "error": None,
                                          "commit_ms": c} for s, t, a, c in writes]}


def steady(client, start, end, every=0.01, ack_after=0.005, commit=2.0, gap=None):
    """A write every `every` s; none acknowledged in `gap` (sent in [gap0, gap1))."""
    out, seq, t = [], 0, start
    while t < end - 1e-9:
        seq += 1
        acked = not (gap and gap[0] <= t < gap[1])
        out.append((seq, round(t, 6), round(t + ack_after, 6) if acked else None, commit))
        t += every
    return ledger(client, out)


def present_of(ledgers, drop=()):
    return {(l["client"], w["seq"]) for l in ledgers for w in l["writes"]
            if w["t_ack"] and (l["client"], w["seq"]) not in drop}


def test_nothing_lost_is_rpo_zero_and_recovery_is_the_first_write_after_the_fault():
    ledgers = [steady("c1", 99.0, 102.0, gap=(100.0, 100.5))]
    assert dm.rpo(ledgers, present_of(ledgers), FAULT) == (0, 0.0)
    worst, per = dm.rto(ledgers, FAULT)
    assert per == {"c1": 505.0} and worst == 505.0         # sent at 100.5, acked 5 ms later


def test_lost_acknowledged_writes_count_back_from_the_fault():
    ledgers = [steady("c1", 99.0, 101.0)]
    lost = {("c1", s) for s in range(81, 101)}             # acked 99.805 ... 99.995
    writes, ms = dm.rpo(ledgers, present_of(ledgers, drop=lost), FAULT)
    assert writes == 20 and abs(ms - 195.0) < 1e-6
    # a lost write acknowledged after the fault reaches back nothing
    late = {("c1", 150)}
    assert dm.rpo(ledgers, present_of(ledgers, drop=late), FAULT) == (1, 0.0)


def test_a_client_that_never_recovers_has_no_rto_and_one_that_never_wrote_is_not_counted():
    ledgers = [steady("c1", 99.0, 102.0, gap=(100.0, 102.0)),   # loss to the end
               steady("c2", 99.0, 102.0),
               ledger("c3", [(1, 99.5, None, None)])]           # nothing ever acknowledged
    worst, per = dm.rto(ledgers, FAULT)
    assert worst is None and per["c1"] is None and "c3" not in per
    assert per["c2"] == 5.0


def test_reordered_acknowledgements_and_empty_windows():
    # acknowledgements out of order: the first *acknowledged* write sent after the fault counts
    ledgers = [ledger("c1", [(1, 99.0, 99.01, 1.0), (2, 100.1, 100.9, 5.0),
                             (3, 100.2, 100.3, 3.0)])]
    assert dm.rto(ledgers, FAULT)[0] == 300.0                # seq 3, acked at 100.3
    assert dm.commit_stats(ledgers, 100.0, 101.0) == {"count": 2, "p50": 3.0, "p99": 5.0}
    assert dm.commit_stats(ledgers, 0.0, 1.0) == {"count": 0, "p50": None, "p99": None}
    assert dm.commit_stats([], 0.0, 1000.0)["count"] == 0
    assert dm.rpo([], set(), FAULT) == (0, 0.0) and dm.rto([], FAULT) == (0.0, {})


def test_nearest_rank_percentiles():
    assert dm.percentile([1, 2, 3, 4], 50) == 2
    assert dm.percentile(list(range(1, 101)), 99) == 99
    assert dm.percentile([7], 99) == 7 and dm.percentile([1, 9], 99) == 9


def served(client, writes):
    """writes: (seq, t_sent, t_ack or None, server)"""
    return {"client": client, "writes": [{"seq": s, "t_sent": t, "t_ack": a, "error": None,
                                          "commit_ms": 1.0, "server": srv}
                                         for s, t, a, srv in writes]}


SITE_OF = {"dc1-srv1": "dc1", "dc2-srv1": "dc2"}


def test_accepted_counts_acknowledged_writes_per_site_in_the_window():
    ledgers = [served("c1", [(1, 99.0, 99.01, "dc1-srv1"), (2, 100.2, None, None),
                             (3, 100.5, 100.6, "dc2-srv1"), (4, 100.7, 100.8, "dc2-srv1")]),
               served("c2", [(1, 100.1, 100.2, "dc1-srv1")])]
    assert dm.accepted(ledgers, SITE_OF, FAULT, 200) == {"dc1": 1, "dc2": 2}
    assert dm.accepted(ledgers, SITE_OF, 0, FAULT) == {"dc1": 1}
    assert dm.accepted(ledgers, SITE_OF, 200, 300) == {}                    # nothing then


def test_divergent_writes_need_two_sides_accepting_what_the_other_lacks():
    ledgers = [served("c1", [(1, 100.1, 100.2, "dc1-srv1"), (2, 100.2, 100.3, "dc1-srv1")]),
               served("c2", [(1, 100.1, 100.2, "dc2-srv1")])]
    both = {("c1", 1), ("c1", 2), ("c2", 1)}
    # replicated everywhere: both sides accepted, nothing diverged
    assert dm.divergent_writes(ledgers, SITE_OF, {"dc1": both, "dc2": both}, FAULT, 200) == 0
    # split brain (positive control): each side has only its own writes
    split = {"dc1": {("c1", 1), ("c1", 2)}, "dc2": {("c2", 1)}}
    assert dm.divergent_writes(ledgers, SITE_OF, split, FAULT, 200) == 3
    # one side accepted, the other stopped: a loss perhaps, not a divergence
    one = [ledgers[0]]
    assert dm.divergent_writes(one, SITE_OF, split, FAULT, 200) == 0
    # outside the window nothing counts
    assert dm.divergent_writes(ledgers, SITE_OF, split, 0, FAULT) == 0


def test_lag_stats_nearest_rank_and_the_last_sample_before_the_fault():
    assert dm.lag_stats([], FAULT) == {"count": 0, "p50": None, "p99": None, "at_fault": None}
    samples = [{"t": 99.0 + i * 0.1, "lag_ms": float(v)} for i, v in
               enumerate([5, 1, 3, 2, 40, 4, 100])]                  # reordered values
    stats = dm.lag_stats(samples, 99.45)
    assert stats["count"] == 7 and stats["p50"] == 4.0 and stats["p99"] == 100.0
    assert stats["at_fault"] == 40.0                                # t = 99.4
    assert dm.lag_stats(samples, 50.0)["at_fault"] is None          # none before the fault


def test_writes_sent_while_the_fault_is_carried_out_do_not_count_as_recovery():
    # acknowledged 5 ms after sending, even at 100.000 and 100.010: the fault took 15 ms
    ledgers = [steady("c1", 99.0, 102.0, gap=(100.02, 100.5))]
    assert dm.rto(ledgers, FAULT)[0] == 5.0                       # naive: no outage at all
    assert dm.rto(ledgers, FAULT, sent_after=FAULT + 0.015)[0] == 505.0


def test_receive_lag_reaches_back_to_the_first_primary_sample_beyond_the_standby():
    primary = [{"t": 100.0 + k * 0.01, "lsn": 100 * k} for k in range(10)][::-1]   # reordered
    standby = [{"t": 100.05, "recv": 200},         # the primary showed 300 at 100.03: 20 ms
               {"t": 100.06, "recv": 10_000},      # beyond what the samples show: caught up
               {"t": 100.07, "recv": None},        # no position (not streaming yet): skipped
               {"t": 100.04, "recv": 0},           # the primary showed 100 at 100.01: 30 ms
               {"t": 100.02, "recv": 250}]         # 300 is shown only at 100.03, later: 0
    assert dm.receive_lag(standby, primary) == [{"t": 100.02, "lag_ms": 0.0},
                                                {"t": 100.04, "lag_ms": 30.0},
                                                {"t": 100.05, "lag_ms": 20.0},
                                                {"t": 100.06, "lag_ms": 0.0}]
    assert dm.receive_lag(standby, []) == [] and dm.receive_lag([], primary) == []


def test_an_idle_primary_is_no_lag_and_a_stalled_standby_is():
    # the primary writes up to 100.03, then nothing: a standby holding it all lags 0 however
    # long after; one stuck at an older position lags more with every sample
    primary = [{"t": 100.0 + k * 0.01, "lsn": min(k, 3) * 100} for k in range(30)]
    holding = [{"t": 100.1 + k * 0.1, "recv": 300} for k in range(3)]
    stuck = [{"t": 100.1 + k * 0.1, "recv": 200} for k in range(3)]
    assert [s["lag_ms"] for s in dm.receive_lag(holding, primary)] == [0.0, 0.0, 0.0]
    assert [s["lag_ms"] for s in dm.receive_lag(stuck, primary)] == [70.0, 170.0, 270.0]


def test_present_files_round_trip_and_the_serving_node_holds_the_last_write(tmp_path):
    path = tmp_path / "present-db1.tsv"
    databases.write_present(path, {("c2", 3), ("c1", 10), ("c1", 2)})
    assert path.read_text() == "c1\t2\nc1\t10\nc2\t3\n"
    assert dm.read_present(path) == {("c1", 2), ("c1", 10), ("c2", 3)}
    ledgers = [ledger("c1", [(0, 1.0, 1.1, 2.0), (1, 2.0, 2.1, 2.0), (2, 3.0, 3.1, 2.0)])]
    present = {"db1": {("c1", 0), ("c1", 1)}, "db2": {("c1", 0), ("c1", 1), ("c1", 2)},
               "db3": {("c1", 0), ("c1", 1), ("c1", 2)}}
    # db3 holds everything but is powered off; db2 has the last acknowledged write
    assert dm.serving_node(["db1", "db2", "db3"], ["db3"], ledgers, present) == "db2"
    # a tie on the last write: more acknowledged writes wins
    present["db1"] = {("c1", 2)}
    assert dm.serving_node(["db1", "db2"], [], ledgers, present) == "db2"
    assert dm.serving_node(["db1"], ["db1"], ledgers, present) is None
    assert dm.serving_node(["db9"], [], ledgers, present) is None


def test_wal_missing_counts_from_the_last_position_received_even_after_the_fault():
    primary = [{"t": 99.0 + k * 0.01, "lsn": 100 * k} for k in range(200)]  # 100 per 10 ms
    # its last sample before the fault (99.99) had 9000: the primary showed more at 99.91, 80 ms
    # earlier; 200 more was on the wire and arrived after the fault: the primary showed more
    # than that at 99.93, so what is missing reaches back 70 ms from the fault
    standby = [{"t": 99.99, "recv": 9000}, {"t": 100.02, "recv": 9200}, {"t": 100.5, "recv": None}]
    assert dm.wal_missing(standby, primary, FAULT) == 70.0
    assert dm.lag_stats(dm.receive_lag(standby, primary), FAULT)["at_fault"] == 80.0  # 99.99-99.91
    # caught up with everything the primary showed: nothing missing; no samples: unknown
    assert dm.wal_missing([{"t": 100.5, "recv": 19_900}], primary, FAULT) == 0.0
    assert dm.wal_missing([], primary, FAULT) is None
    assert dm.wal_missing([{"t": 100.0, "recv": None}], primary, FAULT) is None
    assert dm.wal_missing(standby, [], FAULT) is None


def test_response_times_are_what_the_client_saw_and_only_acknowledged_ones_count():
    ledgers = [steady("c1", 99.0, 100.0, ack_after=0.005),
               steady("c2", 99.0, 100.0, ack_after=0.25, gap=(99.5, 100.0))]
    stats = dm.response_stats(ledgers, 99.0, FAULT)
    assert stats["count"] == 100 + 50 and stats["p50"] == 5.0 and stats["p99"] == 250.0
    assert dm.response_stats(ledgers, 100.0, 101.0) == {"count": 0, "p50": None, "p99": None}
