"""The replication and split-brain experiments' analysis, on synthetic run folders (no lab):
what serves after the fault, what it lost, the lag, the verdicts, the figures."""

import json
import shutil

import pytest

from experiments import replication, split_brain
from lab.errors import LabError
from lab.model.topology import load_topology

SITE_OF = {"dc1-srv1": "dc1", "dc1-srv2": "dc1", "dc2-srv1": "dc2", "dc2-srv2": "dc2",
           "dc3-srv1": "dc3", "client1": "edge", "client2": "edge"}
T0, FAULT = 1000.0, 1003.0


def writes(client, server_before, server_after, lost_window=None, every=0.01, end=1008.0,
           outage=(FAULT, FAULT + 2.0)):
    """A steady writer: acknowledged by server_before until the fault, nothing acknowledged
    during the outage, then by server_after."""
    out, seq, t = [], 0, T0
    while t < end - 1e-9:
        seq += 1
        if outage[0] <= t < outage[1]:
            out.append({"seq": seq, "t_sent": t, "t_ack": None, "server": None,
                        "commit_ms": None, "error": "connect: refused", "connection": 1})
        else:
            server = server_before if t < FAULT else server_after
            out.append({"seq": seq, "t_sent": t, "t_ack": t + 0.004, "server": server,
                        "commit_ms": 2.0 if t < FAULT else 1.0, "error": None,
                        "connection": 1 if t < FAULT else 2})
        t = round(t + every, 6)
    return {"client": client, "start": T0, "end": end, "rate": 1 / every, "connections": 2,
            "writes": out}


def write_case(folder, variant="pg-async", lost_last_ms=0.0, promote=True, lag=True,
               memory=None):
    """A power-off of dc1: dc1's node is down, dc2's serves; dc2 lacks the writes
    acknowledged in the last `lost_last_ms` before the fault."""
    folder.mkdir(parents=True)
    ledgers = [writes(c, "dc1-srv1", "dc2-srv1") for c in ("client1", "client2")]
    for ledger in ledgers:
        (folder / f"writes-{ledger['client']}.json").write_text(json.dumps(ledger))
    acked = [(l["client"], w["seq"], w["t_ack"]) for l in ledgers for w in l["writes"]
             if w["t_ack"]]
    everything = sorted((c, s) for c, s, _ in acked)
    kept = sorted((c, s) for c, s, t in acked
                  if not (FAULT - lost_last_ms / 1000 <= t < FAULT))
    (folder / "present-dc1-srv2.tsv").write_text("".join(f"{c}\t{s}\n" for c, s in everything
                                                         if True))
    (folder / "present-dc2-srv2.tsv").write_text("".join(f"{c}\t{s}\n" for c, s in kept))
    if lag:
        # the primary's WAL grows 10 bytes per 10 ms sample; the standby has received what
        # the primary had written 80 ms before each of its samples (5 ms after the primary's)
        (folder / "lag-primary.jsonl").write_text("".join(
            json.dumps({"t": round(T0 + k * 0.01, 4), "lsn": 10 * k}) + "\n"
            for k in range(300)))
        (folder / "lag-standby.jsonl").write_text("".join(
            json.dumps({"t": round(T0 + 0.005 + j * 0.01, 4), "recv": 10 * max(0, j - 8),
                        "replay_ms": 100.0 + j}) + "\n" for j in range(300)))
    (folder / "case.json").write_text(json.dumps({
        "variant": variant, "fault_name": "power-off", "fault": "power-off dc1", "t0": T0,
        "t_fault": FAULT, "t_promote": FAULT + 2.0 if promote else None,
        "fault_spread_ms": 3.0, "fault_delay_ms": 10, "rate": 100,
        "clients": ["client1", "client2"], "nodes": ["dc1-srv2", "dc2-srv2"],
        "down": ["dc1-srv1", "dc1-srv2"], "read": ["dc1-srv2", "dc2-srv2"],
        "site_of": SITE_OF, **({"memory_mb": memory} if memory else {})}))


def test_an_async_loss_is_counted_against_the_node_that_serves_afterwards(tmp_path):
    write_case(tmp_path / "case", lost_last_ms=60.0)
    result = replication.analyse_case(tmp_path / "case")
    # the powered-off dc1 holds everything but does not serve: dc2 does
    assert result["serving_node"] == "dc2-srv2"
    assert result["rpo_writes"] == 12                     # 6 per client, 10 ms apart
    assert 50.0 <= result["rpo_ms"] <= 60.0
    assert result["missing_on"] == {"dc1-srv2": 0, "dc2-srv2": 12}
    assert result["rto_ms"] == pytest.approx(2004.0, abs=0.5)
    assert result["accepting_before"] == {"dc1": 600} and result["accepting_after"] == \
        {"dc2": 598}
    assert result["commit_ms"]["before"]["p50"] == 2.0 and result["commit_ms"]["after"]["p50"] \
        == 1.0
    assert result["commit_ms"]["during"]["count"] == 2    # only the recovering writes
    # 80 ms + the 5 ms offset, less the primary's sample interval: its samples first show
    # more than the standby has 10 ms after the position it has
    assert result["lag_ms"]["at_fault"] == pytest.approx(75.0)
    # its samples end at the fault: what it misses reaches back 80 ms from the fault
    assert result["wal_missing_ms"] == pytest.approx(80.0)
    assert result["replay_lag_ms"]["at_fault"] == 399.0          # the last sample before it
    assert result["promoted_after_ms"] == 2000.0 and result["divergent_writes"] == 0


def test_nothing_lost_and_no_lag_file(tmp_path):
    write_case(tmp_path / "case", variant="galera", promote=False, lag=False)
    result = replication.analyse_case(tmp_path / "case")
    assert (result["rpo_writes"], result["rpo_ms"]) == (0, 0.0)
    assert result["lag_ms"] is None and result["promoted_after_ms"] is None


def run_folder(tmp_path, lost_by_variant):
    run = tmp_path / "run"
    run.mkdir()
    topo = load_topology("dual-active-data")
    (run / "params.json").write_text(json.dumps({
        "experiment": "replication", "topology": topo.to_dict(),
        "options": {"variants": ",".join(lost_by_variant), "faults": "power-off",
                    "delays": [1, 20]}}))
    for variant, lost in lost_by_variant.items():
        write_case(run / variant / "power-off", variant=variant, lost_last_ms=lost)
        (run / variant / "sweep.json").write_text(json.dumps([
            {"delay_ms": d, "rtt_ms_min": 2 * d, "rtt_ms_avg": 2 * d + 0.5,
             "replicated": [0.2 + 2 * d + 0.5 + x / 10 for x in range(10)],
             "local": [0.2 + x / 100 for x in range(10)]} for d in (1, 20)]))
    return run


def test_metrics_keep_a_variants_mapping_and_a_synchronous_loss_fails_the_run(tmp_path):
    run = run_folder(tmp_path, {"pg-async": 60.0, "pg-sync": 30.0, "galera": 0.0})
    metrics = replication.analyse(run)
    assert set(metrics["variants"]) == {"pg-async", "pg-sync", "galera"}
    for name, v in metrics["variants"].items():
        for key in ("rpo_writes", "rpo_ms", "rto_ms", "commit_ms_p50", "commit_ms_p99",
                    "divergent_writes", "sweep", "faults"):
            assert key in v, (name, key)
    assert metrics["variants"]["pg-async"]["rpo_writes"] == 12
    sweep = metrics["variants"]["galera"]["sweep"]
    assert [p["delay_ms"] for p in sweep] == [1, 20]
    # nearest-rank p50s: replicated 0.2 + 40.5 + 0.4, local 0.24; RTT 40.5
    assert sweep[1]["replication_minus_rtt_ms"] == pytest.approx(0.36, abs=1e-6)
    assert sweep[1]["local_ms_p50"] == 0.24 and sweep[1]["rtt_ms"] == 40.5
    (run / "metrics.json").write_text(json.dumps(metrics))
    summary = replication.summarize(run)
    assert not summary.ok
    assert any("pg-sync" in p and "lost" in p for p in summary.problems)
    assert not any(p.startswith("pg-async") for p in summary.problems)   # async may lose
    paths = replication.plot(run)
    assert all(p.exists() and p.stat().st_size > 10_000 for p in paths)


def test_the_labs_memory_is_the_largest_over_the_faults_and_named_in_the_summary(tmp_path):
    run = run_folder(tmp_path, {"pg-async": 0.0, "galera": 0.0})
    small = {"data tier": 100.0, "controller": 50.0, "total": 400.0}
    large = {"data tier": 900.0, "controller": 50.0, "total": 1500.0}
    shutil.rmtree(run / "galera" / "power-off")
    write_case(run / "galera" / "power-off", variant="galera", memory=small)
    write_case(run / "galera" / "partition", variant="galera", memory=large)
    params = json.loads((run / "params.json").read_text())
    params["options"]["faults"] = "power-off,partition"
    (run / "params.json").write_text(json.dumps(params))
    metrics = replication.analyse(run)
    assert metrics["variants"]["galera"]["memory_mb"] == large
    assert metrics["variants"]["pg-async"]["memory_mb"] is None      # an older run: none
    (run / "metrics.json").write_text(json.dumps(metrics))
    text = replication.summarize(run).text
    assert "galera 1500 MB (data tier 900 MB)" in text and "pg-async" not in text.split(
        "memory (RSS")[1].split("\n")[0]


def test_a_run_where_sync_tiers_lose_nothing_passes(tmp_path):
    run = run_folder(tmp_path, {"pg-async": 60.0, "pg-sync": 0.0, "galera": 0.0})
    (run / "metrics.json").write_text(json.dumps(replication.analyse(run)))
    assert replication.summarize(run).ok


def test_bad_topologies_are_refused_in_one_line():
    opts = replication.ReplicationOptions()
    with pytest.raises(LabError, match="replication needs a data: section"):
        replication.validate(opts, load_topology("dual-active"))
    replication.validate(opts, load_topology("dual-active-data"))
    with pytest.raises(LabError, match="split-brain needs a Galera data tier"):
        split_brain.validate(split_brain.SplitBrainOptions(), load_topology("dual-active"))


def test_the_fault_names_map_to_faults_on_the_clients_site():
    topo = load_topology("dual-active-data")
    assert [str(replication.fault_of(n, topo)[0]) for n in replication.FAULTS] == \
        ["power-off dc1", "isolate dc1", "gray dci-a"]
    assert [str(replication.fault_of(n, topo)[1]) for n in replication.FAULTS] == \
        ["power-on dc1", "rejoin dc1", "ungray dci-a"]


def split_variant(folder, variant, both_sides):
    """dc2 isolated at 1003 for 5 s; dc1's writer goes on; dc2's stops unless both_sides."""
    folder.mkdir(parents=True)
    tp, th = FAULT, FAULT + 5.0
    w1 = writes("client1", "dc1-srv1", "dc1-srv1", outage=(tp, tp + 1.5))
    w2 = writes("client2", "dc2-srv1", "dc2-srv1",
                outage=(tp, tp + 1.5) if both_sides else (tp, th + 2.0))
    for ledger in (w1, w2):
        (folder / f"writes-{ledger['client']}.json").write_text(json.dumps(ledger))
    acked = {l["client"]: [(w["seq"], w["t_sent"]) for w in l["writes"] if w["t_ack"]]
             for l in (w1, w2)}

    def rows(own, other):
        mine = [(own, s) for s, _ in acked[own]]
        theirs = [(other, s) for s, t in acked[other] if not (tp <= t < th)]
        return "".join(f"{c}\t{s}\n" for c, s in sorted(mine + theirs))

    (folder / "present-dc1-srv2.tsv").write_text(rows("client1", "client2"))
    (folder / "present-dc2-srv2.tsv").write_text(rows("client2", "client1"))
    (folder / "variant.json").write_text(json.dumps({
        "variant": variant, "quorum": variant != "quorum-off",
        "voters": ["dc1-srv2", "dc2-srv2"] + (["dc3-srv1"] if variant == "witness" else []),
        "t0": T0, "t_partition": tp, "t_heal": th, "isolated": "dc2",
        "nodes": ["dc1-srv2", "dc2-srv2"], "clients": ["client1", "client2"],
        "writes_to": {"client1": "dc1-srv1", "client2": "dc2-srv1"},
        "status_during_partition": {}, "site_of": SITE_OF, "suspect_timeout_s": 1.0}))


def test_split_brain_counts_divergence_only_when_both_sides_wrote(tmp_path):
    run = tmp_path / "run"
    split_variant(run / "witness", "witness", both_sides=False)
    split_variant(run / "quorum-off", "quorum-off", both_sides=True)
    witness = split_brain.analyse_variant(run / "witness")
    assert witness["accepted_during"] == {"dc1": 350}
    assert witness["divergent_writes"] == 0
    assert witness["witness_side_rto_ms"] == pytest.approx(1504.0, abs=0.5)
    off = split_brain.analyse_variant(run / "quorum-off")
    assert off["divergent_writes"] == 700 and off["sites_accepting_during"] == ["dc1", "dc2"]
    (run / "params.json").write_text(json.dumps({
        "experiment": "split-brain", "topology": {"name": "dual-active-data"},
        "options": {"variants": "witness,quorum-off"}}))
    (run / "metrics.json").write_text(json.dumps(split_brain.analyse(run)))
    summary = split_brain.summarize(run)
    assert summary.ok, summary.problems                     # quorum-off is expected to diverge
    assert "DIVERGED 700" in summary.text
    timelines = split_brain.timeline_data(run)
    assert len(timelines["quorum-off"]["sites"]["dc1"]["divergent"]) == 350
    assert timelines["witness"]["sites"]["dc1"]["divergent"] == []
    (out,) = split_brain.plot(run)
    assert out.exists() and out.stat().st_size > 10_000


def test_galeras_commit_model_is_one_rtt_with_two_members_and_more_with_a_far_witness():
    from lab.analysis.datametrics import galera_commit_ms
    two = {frozenset(("a", "b")): 20.0}
    assert galera_commit_ms("a", two) == 20.0
    far = {frozenset(("a", "b")): 20.0, frozenset(("a", "w")): 20.0, frozenset(("b", "w")): 20.0}
    assert galera_commit_ms("a", far) == 30.0                   # 1.5 RTT
    near = {frozenset(("a", "b")): 20.0, frozenset(("a", "w")): 2.0, frozenset(("b", "w")): 2.0}
    assert galera_commit_ms("a", near) == 20.0                  # a witness in the middle: 1 RTT
    # the far member of an uneven triangle decides
    uneven = {frozenset(("a", "b")): 10.0, frozenset(("a", "w")): 30.0,
              frozenset(("b", "w")): 30.0}
    assert galera_commit_ms("a", uneven) == 35.0                # 5 + 15 + 15
    assert galera_commit_ms("a", {}) == 0.0


def test_the_sweep_compares_each_engine_with_its_model_and_galera_without_its_witness(tmp_path):
    run = run_folder(tmp_path, {"pg-async": 0.0, "pg-sync": 0.0, "galera": 0.0})
    for name, pairs in (("sweep.json", [["dc1-srv2", "dc2-srv2", 40.5],
                                        ["dc1-srv2", "dc3-srv1", 40.5],
                                        ["dc2-srv2", "dc3-srv1", 40.5]]),
                        ("sweep-no-witness.json", [["dc1-srv2", "dc2-srv2", 40.5]])):
        factor = 1.5 if "no-witness" not in name else 1.0
        (run / "galera" / name).write_text(json.dumps([
            {"delay_ms": 20, "rtt_ms_min": 40.0, "rtt_ms_avg": 40.5, "writer": "dc1-srv2",
             "rtt_ms_per_peer": {"dc2-srv2": 40.5}, "rtt_ms_pairs": pairs,
             "replicated": [0.3 + factor * 40.5 + x / 100 for x in range(10)],
             "local": [0.3] * 10}]))
    metrics = replication.analyse(run)
    galera = metrics["variants"]["galera"]
    with_w, without = galera["sweep"][0], galera["sweep_no_witness"][0]
    assert with_w["model_ms"] == pytest.approx(0.3 + 60.75)
    assert with_w["replication_rtts"] == pytest.approx(1.5, abs=0.01)
    assert abs(with_w["commit_minus_model_ms"]) < 0.1
    assert without["model_ms"] == pytest.approx(0.3 + 40.5)
    assert without["replication_rtts"] == pytest.approx(1.0, abs=0.01)
    sync, async_ = (metrics["variants"][v]["sweep"][1] for v in ("pg-sync", "pg-async"))
    assert sync["model_ms"] == pytest.approx(sync["local_ms_p50"] + 40.5)
    assert async_["model_ms"] == async_["local_ms_p50"]
    assert "sweep_no_witness" not in metrics["variants"]["pg-sync"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    text = replication.summarize(run).text
    assert "galera (no witness)" in text and "EVS safe delivery" in text
    assert all(p.stat().st_size > 10_000 for p in replication.plot(run))


def test_pg_patroni_is_a_synchronous_pair_with_etcd_on_three_sites():
    topo = load_topology("dual-active-data")
    spec = replication.spec_of("pg-patroni", topo)
    assert (spec.engine, spec.failover, spec.standbys) == ("postgresql", "patroni",
                                                           (("dc2-srv2", "sync"),))
    assert spec.consensus == ("dc1-srv2", "dc2-srv2", "dc3-srv1")
    assert len({topo.host(h).switch for h in spec.consensus}) == 3
    assert replication.spec_of("pg-async", topo).failover == "runbook"
    # not in the default run (its faults last the lease and more), but offered
    assert "pg-patroni" not in replication.ReplicationOptions().variants.split(",")
    assert replication.PATRONI_AFTER_S > 20


def test_a_write_sent_while_the_isolation_was_carried_out_is_not_accepted_during_it(tmp_path):
    # no witness: both sides stop, but each acknowledged the write it sent at the very instant
    # the isolation began (replicated to both: the partition was not in place yet)
    folder = tmp_path / "no-witness"
    split_variant(folder, "no-witness", both_sides=False)
    tp, th = FAULT, FAULT + 5.0
    ledgers = [writes("client1", "dc1-srv1", "dc1-srv1", outage=(tp + 0.005, th + 2.0)),
               writes("client2", "dc2-srv1", "dc2-srv1", outage=(tp + 0.005, th + 2.0))]
    rows = ""
    for ledger in ledgers:
        (folder / f"writes-{ledger['client']}.json").write_text(json.dumps(ledger))
        rows += "".join(f"{ledger['client']}\t{w['seq']}\n" for w in ledger["writes"]
                        if w["t_ack"])
    for node in ("dc1-srv2", "dc2-srv2"):
        (folder / f"present-{node}.tsv").write_text(rows)
    raw = json.loads((folder / "variant.json").read_text())
    # positive control: counted from the instant the isolation began, each side "accepted" one
    assert split_brain.analyse_variant(folder)["accepted_during"] == {"dc1": 1, "dc2": 1}
    raw["t_isolated"] = tp + 0.02                     # its commands took 20 ms
    (folder / "variant.json").write_text(json.dumps(raw))
    got = split_brain.analyse_variant(folder)
    assert got["accepted_during"] == {} and got["divergent_writes"] == 0
