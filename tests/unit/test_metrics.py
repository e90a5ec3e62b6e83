"""Metrics on synthetic probe samples with known gaps, reordering and duplicates."""

import pytest

from lab.analysis import metrics

RATE, DELAY = 1000, 0.002          # 1 ms spacing, 2 ms one way


def stream(n=3000, lost=(), host="dc1-srv1", swap=(), dup=()):
    """Rows of one stream sent from t=0 at RATE; `lost` seqs vanish, `swap` pairs arrive swapped."""
    rows = []
    for seq in range(n):
        if seq in lost:
            continue
        sent = seq / RATE
        rows.append((1, seq, sent, sent + DELAY, host))
    for a, b in swap:
        ra, rb = rows[a], rows[b]
        rows[a], rows[b] = (1, ra[1], ra[2], rb[3], host), (1, rb[1], rb[2], ra[3], host)
    rows += [rows[i] for i in dup]
    return rows


def summary(sent=3000, achieved=1000.0):
    return {"sent": sent, "target_rate": RATE, "achieved_rate": achieved}


def test_a_50_ms_gap_is_a_51_ms_outage_with_50_lost():
    rows = stream(lost=range(1000, 1050))
    impact = metrics.fault_impact(rows, t_fault=0.9995, t_end=2.0)
    assert impact["lost"] == 50 and impact["expected"] == 1000
    assert impact["outage_ms"] == pytest.approx(51, abs=0.01)
    assert impact["convergence_ms"] == pytest.approx(1050 + 2 - 999.5, abs=0.01)
    assert impact["recovered"]


def test_no_loss_is_a_one_interval_outage():
    impact = metrics.fault_impact(stream(), t_fault=1.0005, t_end=2.0)
    assert impact["lost"] == 0 and impact["outage_ms"] == pytest.approx(1, abs=0.01)
    assert impact["outage_ms"] > 0


def test_delivery_that_never_resumes_is_not_recovered():
    impact = metrics.fault_impact(stream(lost=range(1500, 3000)), t_fault=1.4995, t_end=3.0,
                                  t_start=0.0, rate=RATE, sent=3000)
    assert not impact["recovered"] and impact["convergence_ms"] is None
    assert impact["lost"] == 1500 and impact["expected"] == 1500
    # the last gap is closed at the window's end: from the last probe (1.501) to 3.0
    assert impact["outage_ms"] == pytest.approx(3000 - 1501, abs=0.01)


def test_a_stream_dying_just_after_the_fault_is_not_recovered():
    # three probes in flight arrive after the fault, then nothing until the window ends
    rows = stream(lost=range(1003, 3000))
    impact = metrics.fault_impact(rows, t_fault=1.0005, t_end=2.5, t_start=0.0, rate=RATE,
                                  sent=3000)
    assert not impact["recovered"] and impact["convergence_ms"] is None
    assert impact["lost"] == 2500 - 1003
    assert impact["outage_ms"] == pytest.approx(2500 - 1004, abs=0.01)


def test_without_the_sender_summary_a_lost_tail_is_still_counted_from_the_probes_schedule():
    rows = stream(lost=range(1003, 3000))
    impact = metrics.fault_impact(rows, t_fault=1.0005, t_end=2.5)
    assert not impact["recovered"] and impact["lost"] == 2500 - 1003


def test_a_stream_dying_before_the_fault_is_charged_only_what_was_sent_after_it():
    rows = stream(lost=range(800, 3000))
    impact = metrics.fault_impact(rows, t_fault=1.0005, t_end=2.0, t_start=0.0, rate=RATE,
                                  sent=3000)
    assert impact["lost"] == 999 and impact["expected"] == 999     # seqs 1001..1999
    assert not impact["recovered"]
    assert impact["outage_ms"] == pytest.approx(2000 - 801, abs=0.01)


def test_recovering_in_the_last_50_ms_is_recovered_with_everything_before_it_lost():
    rows = stream(lost=range(1000, 1950))
    impact = metrics.fault_impact(rows, t_fault=0.9995, t_end=2.0, t_start=0.0, rate=RATE,
                                  sent=3000)
    assert impact["recovered"]
    assert impact["lost"] == 950
    assert impact["convergence_ms"] == pytest.approx(1950 + 2 - 999.5, abs=0.01)
    assert impact["outage_ms"] == pytest.approx(951, abs=0.01)


def test_a_lost_tail_is_not_recovered_and_its_probes_count():
    # delivery resumes after the fault, then the last 30 probes of the window vanish
    rows = stream(lost=set(range(1000, 1050)) | set(range(1970, 3000)))
    impact = metrics.fault_impact(rows, t_fault=0.9995, t_end=2.0, t_start=0.0, rate=RATE,
                                  sent=3000)
    assert not impact["recovered"]
    assert impact["lost"] == 50 + 30
    assert impact["outage_ms"] == pytest.approx(51, abs=0.01)       # the longer of the two gaps


def test_probes_in_flight_when_the_next_fault_strikes_are_left_out_by_the_guard():
    rows = stream(lost=range(1997, 3000))             # the next fault at 2.0 catches 3 in flight
    impact = metrics.fault_impact(rows, t_fault=1.0005, t_end=2.0, t_start=0.0, rate=RATE,
                                  sent=3000, guard=0.02)
    assert impact["recovered"] and impact["lost"] == 3
    strict = metrics.fault_impact(rows, t_fault=1.0005, t_end=2.0, t_start=0.0, rate=RATE,
                                  sent=3000)
    assert not strict["recovered"]


def test_reordering_across_the_fault_is_not_loss():
    # probe 1000 (sent 1 ms before the fault) arrives after 1001 and 1002
    rows = [r for r in stream() if r[1] != 1000] + [(1, 1000, 1.0, 1.0035, "dc1-srv1")]
    impact = metrics.fault_impact(rows, t_fault=1.0005, t_end=2.0, t_start=0.0, rate=RATE,
                                  sent=3000)
    assert impact["lost"] == 0 and impact["recovered"]
    assert impact["outage_ms"] == pytest.approx(2, abs=0.01)     # 999 at 1.001, 1001 at 1.003


def test_nothing_received_at_all():
    impact = metrics.fault_impact([], t_fault=1.0, t_end=2.0, t_start=0.0, rate=RATE, sent=3000)
    assert impact["expected"] == 1000 and impact["lost"] == 1000
    assert not impact["recovered"] and impact["convergence_ms"] is None
    assert impact["outage_ms"] == pytest.approx(1000, abs=0.01)
    stats = metrics.stream_stats(1, "s", [], summary())
    assert (stats.received, stats.lost, stats.loss_pct) == (0, 3000, 100.0)


def test_faults_at_the_same_instant_share_one_window():
    faults = [(3.0, 103.0), (3.0, 103.004), (6.0, 106.0)]
    assert metrics.fault_windows(faults, 110.0) == [(103.0, 106.0), (103.0, 106.0),
                                                   (106.0, 110.0)]
    assert metrics.fault_windows([], 110.0) == []


def test_stream_stats_count_loss_reordering_and_duplicates():
    rows = stream(lost=range(10, 20), swap=[(100, 101), (200, 205)], dup=[5, 6, 7])
    stats = metrics.stream_stats(1, "client1>web", rows, summary())
    assert (stats.sent, stats.received, stats.lost) == (3000, 2990, 10)
    assert stats.loss_pct == pytest.approx(0.333, abs=0.001)
    assert stats.duplicates == 3
    # RFC 4737: a packet is reordered when it arrives after one with a higher seq. The adjacent
    # swap reorders 1; moving a packet 5 places ahead makes the 5 it overtook late.
    assert stats.reordered == 1 + 5
    assert stats.trustworthy


def test_a_stream_below_90_percent_of_its_rate_is_untrustworthy():
    assert not metrics.stream_stats(1, "s", stream(), summary(achieved=850.0)).trustworthy
    assert metrics.stream_stats(1, "s", stream(), summary(achieved=905.0)).trustworthy


def test_site_share_by_receiving_host():
    rows = stream(n=1000, host="dc1-srv1") + [(2, s, s / RATE, s / RATE + DELAY, "dc2-srv1")
                                                for s in range(500, 1000)]
    share = metrics.site_share(rows, {"dc1-srv1": "dc1", "dc2-srv1": "dc2"}, 0.0, 0.5)
    assert share == {"dc1": 1.0}
    share = metrics.site_share(rows, {"dc1-srv1": "dc1", "dc2-srv1": "dc2"}, 0.6, 0.9)
    assert share == {"dc1": 0.5, "dc2": 0.5}


def test_mean_rate_of_a_window():
    timeline = [(0.0, 10.0), (0.5, 20.0), (1.0, 0.0), (1.5, 30.0)]
    assert metrics.mean_rate(timeline, 0.0, 1.0) == 15.0
    assert metrics.mean_rate(timeline, 5.0, 6.0) is None


def test_probes_a_dead_sender_never_sent_are_not_counted_after_it_comes_back():
    # sender powered off from 1.0 s to 2.0 s (its probes failed to send); back at 2.0 s
    rows = stream(lost=range(1000, 2030))
    impact = metrics.fault_impact(rows, t_fault=2.0, t_end=3.0, t_start=0.0, rate=RATE)
    assert impact["lost"] == 30
    assert impact["convergence_ms"] == pytest.approx(30 + 2, abs=0.01)


def test_a_window_in_which_the_sender_sent_nothing_is_not_judged():
    # the sender ran from 0 to 1 s; the fault's window is 2..3 s
    impact = metrics.fault_impact(stream(n=1000), t_fault=2.0, t_end=3.0, t_start=0.0, rate=RATE,
                                  sent=1000)
    assert impact["expected"] == 0 and impact["recovered"] is None
    assert impact["lost"] == 0 and impact["outage_ms"] is None


def test_rate_around_a_fault_in_a_long_window():
    timeline = [(0.5 * i, 10.0) for i in range(20)]            # 0.0 .. 9.5 s, 10 Mbit/s
    timeline[8] = (4.0, 2.0)                                   # the fault's first half second
    rates = metrics.rate_around(timeline, 4.0, 9.0)
    # before [2.5, 4), during [4, 5.5), after [5.5, 9)
    assert rates == {"before": 10.0, "during": round((2 + 10 + 10) / 3, 2), "after": 10.0}


def test_rate_around_a_fault_in_a_short_window_splits_it_in_halves():
    timeline = [(0.5 * i, 10.0 + i) for i in range(20)]
    rates = metrics.rate_around(timeline, 4.0, 5.0)            # the next fault 1 s later
    assert rates == {"before": 16.0, "during": 18.0, "after": 19.0}   # [2.5, 4) [4, 4.5) [4.5, 5)
    # positive control: with a fixed 1.5 s "during", nothing would be left "after"
    assert metrics.mean_rate(timeline, 5.5, 5.0) is None


def test_rate_around_a_fault_after_the_traffic_ended_is_none():
    timeline = [(0.5 * i, 10.0) for i in range(4)]             # 0.0 .. 1.5 s
    assert metrics.rate_around(timeline, 3.0, 4.0) == {"before": 10.0, "during": None,
                                                       "after": None}
    assert metrics.rate_around([], 3.0, 4.0) == {"before": None, "during": None, "after": None}


def test_rate_around_counts_an_interval_where_its_middle_falls():
    # the fault came 6 ms after an interval began, the window ends 1 s later: the interval that
    # begins 3 ms before the window's middle belongs to "after", not "during"
    timeline = [(6.0, 10.0), (6.5, 20.0)]
    rates = metrics.rate_around(timeline, 6.006, 7.0)
    assert rates["during"] == 10.0 and rates["after"] == 20.0
    # positive control: by start times, both would land in "during" and "after" would be empty
    assert metrics.mean_rate(timeline, 6.006, 6.503) == 20.0
    assert metrics.mean_rate(timeline, 6.503, 7.0) is None
