"""The data tier for real: the distribution's MariaDB Galera + garbd and PostgreSQL streaming
replication, started in lab hosts, replicating, and gone after teardown."""

import contextlib
import json
import subprocess
import sys
import time

import pytest

from lab.agents import dataapp
from lab.emulation import probe, state
from lab.emulation.network import REPO_ROOT, go, running_lab
from lab.experiment import Progress
from lab.model.topology import load_topology
from tests.emulation.conftest import patience


APP_PORT = 8080


def service_answers(lab, src, ip):
    """Does a TCP connection from `src` to ip:APP_PORT open (vs refused or timed out)?"""
    code = (f"import socket\ntry:\n socket.create_connection(('{ip}', {APP_PORT}), timeout=1)\n"
            " print('open')\nexcept OSError:\n print('closed')\n")
    return lab.node_run(src, [sys.executable, "-c", code], check=False).stdout.startswith("open")


def running(pids):
    """The PIDs (with their start times) that still run."""
    return [pid for pid, start in pids if state.proc_start_time(pid) == start]


def server_pids(lab):
    return [(node["proc"].pid, state.proc_start_time(node["proc"].pid))
            for node in lab.data.nodes.values()]


def test_galera_replicates_between_sites_and_the_witness_decides_a_partition(tmp_path):
    topo = load_topology("dual-active-data")
    with running_lab(topo, probe.choose_platform(), tmp_path, "test-galera",
                     log=Progress(quiet=True)) as lab:
        lab.data.start()
        status = lab.data.galera_status("dc1-srv2")
        assert status["wsrep_cluster_size"] == "3"                   # 2 nodes + garbd
        assert status["wsrep_cluster_status"] == "Primary"
        lab.data.sql("dc1-srv2", "INSERT INTO lab.writes VALUES ('client1', 1, 'x', 0, NULL)")
        lab.data.sql("dc2-srv2", "INSERT INTO lab.writes VALUES ('client2', 1, 'x', 0, NULL)")
        for node in ("dc1-srv2", "dc2-srv2"):                            # both sides write
            assert lab.data.sql(node, "SELECT COUNT(*) FROM lab.writes") == "2"
        scratch, pids = lab.scratch, server_pids(lab)
        # garbd keeps its view of the cluster in its own folder, not in the checkout
        assert (lab.data.nodes[topo.data.witness]["dir"] / "gvwstate.dat").is_file()
        assert not (REPO_ROOT / "gvwstate.dat").exists()
        assert scratch.is_dir() and len(pids) == 3 and running(pids) == [p for p, _ in pids]
        # the application: dc2's app writes to dc2's node; a client in dc1 writes through it
        lab.start_agent("dc2-srv1", dataapp.serve_argv("dc2-srv1", APP_PORT, "galera",
                                                       lab.data.app_addresses("dc2-srv1")),
                        "data app dc2-srv1")
        out = tmp_path / "writes.json"
        writer = lab.start_agent("dc1-srv1", dataapp.write_argv("10.2.0.11", APP_PORT, "w1", 50,
                                                                2, out, wait_go=False),
                                 "writer dc1-srv1")
        writer.wait(30)
        writes = json.loads(out.read_text())["writes"]
        acked = [w for w in writes if w["t_ack"]]
        assert len(writes) >= 90 and len(acked) == len(writes), writes[-3:]
        assert {w["server"] for w in acked} == {"dc2-srv1"}
        assert all(0 < w["commit_ms"] < 1000 for w in acked)
        # every acknowledged write is on the other site's node too (synchronous replication)
        assert lab.data.sql("dc1-srv2", "SELECT COUNT(*) FROM lab.writes WHERE client = 'w1'") \
            == str(len(acked))
        # dc2 cut off from dc1 and from the witness: dc1 + garbd are 2 of 3 votes
        # one instant: cut one link at a time and dc1 + dc2 may first lose each other while both
        # still see garbd (it relays), the order then decides who keeps the primary component
        lab.faults.isolate_site("dc2", isolated=True)
        lab.data.wait("dc2-srv2", lambda: lab.data.galera_status("dc2-srv2").get(
            "wsrep_cluster_status") == "non-Primary", "out of the primary component")
        lab.data.wait("dc1-srv2", lambda: lab.data.galera_status("dc1-srv2").get(
            "wsrep_cluster_size") == "2", "in a primary component of two")
        lab.data.sql("dc1-srv2", "INSERT INTO lab.writes VALUES ('client1', 2, 'x', 0, NULL)")
        with pytest.raises(Exception, match="WSREP has not yet prepared node"):
            lab.data.sql("dc2-srv2", "INSERT INTO lab.writes VALUES ('client2', 2, 'x', 0, NULL)")
        # and dc2's app stops taking connections (health checks fail): refused, not a hang
        deadline = time.monotonic() + patience(5)
        while service_answers(lab, "dc1-srv1", "10.2.0.11") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not service_answers(lab, "dc1-srv1", "10.2.0.11")
    assert running(pids) == [] and not scratch.exists()


PG = """
sites:
  dc1: {subnet: 10.1.0.0/24, servers: 2}
  dc2: {subnet: 10.2.0.0/24, servers: 2}
edges:
  edge: {subnet: 10.100.0.0/24, clients: 1}
links:
  dci-a: {between: [dc1, dc2], bw: 100, delay: 2ms}
  edge-dc1: {between: [edge, dc1], bw: 100, delay: 1ms}
data:
  engine: postgresql
  primary: dc1-srv2
  standbys: {dc2-srv2: sync}
"""


def test_postgresql_streams_to_a_sync_standby_that_can_be_promoted(tmp_path):
    from lab.model.topology import parse_topology
    topo = parse_topology(PG, source="pg.yaml", default_name="pg-sync")
    with running_lab(topo, probe.choose_platform(), tmp_path, "test-pg",
                     log=Progress(quiet=True)) as lab:
        lab.data.start()
        assert lab.data.pg_replicas() == {"dc2-srv2": "sync"}
        lab.data.sql("dc1-srv2", "insert into writes values ('client1', 1, 'x', 0)")
        # synchronous: the commit returned, so the standby has it
        assert lab.data.sql("dc2-srv2", "select count(*) from writes") == "1"
        with pytest.raises(Exception, match="read-only transaction"):
            lab.data.sql("dc2-srv2", "insert into writes values ('client1', 2, 'x', 0)")
        lab.faults.set_link("dci-a", up=False)
        assert lab.data.promote("dc2-srv2")
        lab.data.sql("dc2-srv2", "insert into writes values ('client1', 2, 'x', 0)")
        assert lab.data.sql("dc2-srv2", "select count(*) from writes") == "2"
        scratch, pids = lab.scratch, server_pids(lab)
        assert lab.data.rss_kb() > 10_000                    # the servers and their workers
        # the whole lab's memory, per part: the servers counted in the data tier, once
        memory = lab.memory_mb()
        assert memory["data tier"] * 1024 >= lab.data.rss_kb() * 0.9 > 10_000
        assert memory["open vswitch"] > 1 and memory["run, hosts and agents"] > 10
        assert memory["total"] < 2048                      # issue 13: ≤ 2 GB in total
    assert running(pids) == [] and not scratch.exists()


@contextlib.contextmanager
def data_lab(topo, tmp_path, name):
    """A lab under the controller with its data tier up and the apps as the VIP service."""
    from lab.emulation.controller import intent_for
    with running_lab(topo, probe.choose_platform(), tmp_path, name,
                     log=Progress(quiet=True)) as lab:
        lab.attach_controller(intent_for(topo), serving=[])
        lab.start_data_tier()
        yield lab


def test_the_vip_service_is_the_stateful_app_and_clients_write_through_anycast(tmp_path):
    """With a data tier the VIP servers run the app on their site's database: a client's
    writes through the VIP land on its nearest site (dc1) and are on dc2's node too."""
    topo = load_topology("dual-active-data")
    with data_lab(topo, tmp_path, "test-data-app") as lab:
        out = tmp_path / "writes.json"
        writer = lab.start_agent("client1", dataapp.write_argv(str(topo.services[0].vip),
                                                               topo.services[0].port, "client1",
                                                               50, 2, out, wait_go=False),
                                 "writer client1")
        writer.wait(30)
        writes = json.loads(out.read_text())["writes"]
        acked = [w for w in writes if w["t_ack"]]
        assert len(writes) >= 90 and len(acked) == len(writes), writes[-3:]
        assert {w["server"].split("-")[0] for w in acked} == {"dc1"}       # the nearest site
        assert lab.data.sql("dc2-srv2", "SELECT COUNT(*) FROM lab.writes WHERE client = "
                                        "'client1'") == str(len(acked))


def test_a_site_whose_database_loses_quorum_hands_its_clients_to_the_other(tmp_path):
    """dc1 (the clients' nearest site) cut off from dc2 and from the witness: its Galera node
    leaves the primary component, its apps close, the controller's health checks fail and
    anycast moves the client to dc2, whose node (with the witness) kept quorum. Nothing
    acknowledged is lost (Galera commits on every node of the primary component)."""
    from lab.analysis import datametrics
    topo = load_topology("dual-active-data")
    with data_lab(topo, tmp_path, "test-data-quorum") as lab:
        out = tmp_path / "writes.json"
        service = topo.services[0]
        writer = lab.start_agent("client1", dataapp.write_argv(str(service.vip), service.port,
                                                               "client1", 50, 12, out),
                                 "writer client1", stdin=subprocess.PIPE, wait=True)
        t0 = go([writer])
        time.sleep(max(0.0, t0 + 3.0 - time.time()))
        t_fault = time.time()
        lab.faults.isolate_site("dc1", isolated=True)
        writer.wait(60)
        ledger = json.loads(out.read_text())
        rows = lab.data.sql("dc2-srv2", "SELECT client, seq FROM lab.writes")
    present = {(c, int(s)) for c, s in (line.split("\t") for line in rows.splitlines())}
    acked = [w for w in ledger["writes"] if w["t_ack"]]
    before = {w["server"].split("-")[0] for w in acked if w["t_sent"] < t_fault - 0.1}
    after = {w["server"].split("-")[0] for w in acked if w["t_sent"] > t_fault + 6}
    assert before == {"dc1"} and after == {"dc2"}, (before, after)
    assert datametrics.rpo([ledger], present, t_fault) == (0, 0.0)
    rto_ms, _ = datametrics.rto([ledger], t_fault)
    print(f"quorum loss at dc1: RTO {rto_ms} ms, {len(acked)} of {len(ledger['writes'])} "
          "writes acknowledged")
    assert rto_ms is not None and rto_ms > 0
