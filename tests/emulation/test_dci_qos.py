"""QoS on the DCI for real: hosts mark by port, the DCI egress classes by DSCP; and the
dci-qos experiment: a saturated DCI with QoS off and on, and the bandwidth replication needs."""

import pytest

from lab.emulation import probe, traffic
from lab.emulation.network import running_lab
from lab.experiment import Progress
from lab.model.topology import load_topology
from tests.emulation.conftest import lab_leftovers, run_experiment, timing_bound


def tcp_bytes_by_class(lab, port, seconds=1):
    """Send TCP for `seconds` on `port` from dc1-srv1 to dc2-srv1 across dci-a; the bytes
    each QoS class of dc1's DCI egress carried meanwhile."""
    before = lab.qos_stats()["dci-a"]["dc1"]
    server = lab.popen("dc2-srv1", traffic.iperf3_server_argv(port), "iperf3 server")
    traffic.wait_listening(lab, "dc2-srv1", port)
    lab.node_run("dc1-srv1", traffic.iperf3_client_argv("10.2.0.11", seconds, port, omit=0),
                 timeout=30)
    lab.stop_process(server)
    after = lab.qos_stats()["dci-a"]["dc1"]
    return {name: after[name]["bytes"] - before[name]["bytes"] for name in after}


def test_hosts_mark_by_port_and_the_dci_classes_what_they_marked(tmp_path):
    topo = load_topology("dci-qos")
    with running_lab(topo, probe.choose_platform(), tmp_path, "test-qos",
                     log=Progress(quiet=True)) as lab:
        lab.use_links(("dci-a",))                  # the L2 fabric's tree: across the DCI
        replication = tcp_bytes_by_class(lab, 5432)            # PostgreSQL's port
        assert replication["replication"] > 1_000_000, replication
        assert replication["bulk"] < 0.05 * replication["replication"], replication
        bulk = tcp_bytes_by_class(lab, 5201)                   # iperf3's: a backup copy
        assert bulk["bulk"] > 1_000_000 and bulk["replication"] < 0.05 * bulk["bulk"], bulk
        unmarked = tcp_bytes_by_class(lab, 6000)               # no class: the default (bulk)
        assert unmarked["bulk"] > 1_000_000 and unmarked["client"] < 100_000, unmarked
        lab.set_qos(False)
        assert lab.qos_stats() == {}                           # one queue, no classes
        lab.set_qos(True)
        assert set(lab.qos_stats()["dci-a"]["dc2"]) == {"control", "replication", "client",
                                                        "bulk"}


@pytest.fixture(scope="module")
def qos_run(tmp_path_factory):
    return run_experiment(tmp_path_factory, "dci-qos")


def test_a_saturated_dci_hurts_every_class_without_qos_and_none_it_protects_with_it(qos_run):
    metrics, _ = qos_run
    v, over = metrics["variants"], metrics["p99_over_unloaded_ms"]
    bw = v["qos-on"]["bw"]
    assert v["qos-off"]["bulk_mbit"] > 0.6 * bw and v["qos-on"]["bulk_mbit"] > 0.3 * bw
    # without QoS the protected classes wait behind the copy's queue: the damage, measured
    assert over["qos-off"]["control"] > 5 and over["qos-off"]["replication"] > 5, over
    assert v["qos-off"]["commit_ms_p99"] > v["unloaded"]["commit_ms_p99"] + 5
    assert v["qos-on"]["bfd_flaps"] == 0 and v["qos-on"]["false_failovers"] == 0
    # what QoS answers for: the protected classes' queues at the DCI egress drop nothing;
    # beyond it the emulator's own packet sockets may drop a probe of 800 as the copy starts
    # (CI: replication seq 53 and client seqs 19, 53 at 0.1-0.3 s, 0 queue drops; README)
    protected = [v["qos-on"]["classes"][c] for c in ("control", "replication")]
    assert all(c["dci_drops"] == 0 for c in protected), protected
    assert all(c["loss_pct"] <= 0.5 for c in protected), protected
    # judged as the experiment judges: the 1 ms target plus what this run's probes resolve
    # (the unloaded classes' own p99s spread; CI: control +1.222 ms with a 0.837 ms spread)
    assert 0 <= metrics["p99_resolution_ms"] < 2.5, metrics["p99_resolution_ms"]
    assert metrics["bound_ms"] == pytest.approx(metrics["target_ms"]
                                                + metrics["p99_resolution_ms"], abs=0.002)
    timing_bound(all(over["qos-on"][c] <= metrics["bound_ms"]
                     for c in ("control", "replication")),
                 f"with QoS, p99 over the unloaded figure: {over['qos-on']}, bound "
                 f"{metrics['bound_ms']} ms")


def test_replication_needs_its_bandwidth_and_the_knee_is_found(qos_run):
    metrics, run_dir = qos_run
    steps = {s["bw"]: s for s in metrics["bandwidth"]}
    narrow, wide = steps[min(steps)], steps[max(steps)]
    assert wide["acked"] >= 0.95 * wide["writes"] and wide["wal_mbit"] > 0.5
    assert narrow["commit_ms_p99"] > 3 * wide["commit_ms_p99"]       # starved below the knee
    assert metrics["knee_mbit"] is not None and metrics["knee_mbit"] > min(steps)
    assert (run_dir / "dci_qos.png").stat().st_size > 10_000
    assert (run_dir / "dci_bandwidth.png").stat().st_size > 10_000
    assert lab_leftovers("dci-qos", run_dir) == []
