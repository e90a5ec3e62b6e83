"""The designs yardstick's metrics from synthetic samples."""

from experiments import designs
from lab.emulation.streams import Stream
from lab.model.topology import load_topology, multi_active


def rows_for(stream, host, start, end, rate=100, gap=None):
    rows = []
    for i in range(int((end - start) * rate)):
        sent = start + i / rate
        if gap and gap[0] <= sent < gap[1]:
            continue
        rows.append((stream, round(sent * rate), sent, sent + 0.001, host))
    return rows


def test_metrics_of_an_active_active_run_where_dc1_dies():
    topo = load_topology("two-region")
    streams = [Stream(1, "client1>web", "client1", "10.200.0.10"),
               Stream(2, "client3>web", "client3", "10.200.0.10")]
    rows = (rows_for(1, "dc1-srv1", 0, 3) + rows_for(1, "dc2-srv1", 3, 6, gap=(3, 4.9))
            + rows_for(2, "dc2-srv2", 0, 6))
    sessions = [{"sessions": [{"established": True, "died": 3.5}, {"established": True, "died": None}]}]
    m = designs.design_metrics(topo, rows, streams, sessions, 0.0, 3.0, 6.0, "dc1", 0.5)
    assert m["utilization"] == {"dc1": 0.5, "dc2": 0.5} and m["idle_sites"] == []
    assert m["clients_hit"] == ["client1>web"]            # only dc1's clients were hit
    assert 1890 < m["rto_ms"] < 1920
    assert (m["sessions_lost"], m["sessions"]) == (1, 2)
    assert m["latency_ms"] == 1.0 and m["dci_mbit"] == 0.5


def test_a_client_that_never_recovers_has_no_rto():
    topo = load_topology("two-region")
    streams = [Stream(1, "client1>web", "client1", "10.200.0.10")]
    m = designs.design_metrics(topo, rows_for(1, "dc1-srv1", 0, 3), streams, [], 0.0, 3.0, 6.0,
                               "dc1", 0.0)
    assert m["rto_ms"] is None and m["idle_sites"] == ["dc2"]


def test_every_design_has_a_topology_with_a_service_on_dc1():
    for name in designs.DESIGNS:
        topo = designs.design_topology(name, {})
        assert topo.services and "dc1" in [s.name for s in topo.sites]


def test_multi_active_layouts():
    mesh, ring = multi_active(4, "mesh"), multi_active(4, "ring")
    assert len(mesh.dci_links) == 6 and len(ring.dci_links) == 4
    assert {l.delay_ms for l in mesh.dci_links} == {2.0, 4.0}
    assert all(len(ring.hosts_at(f"r{i}")) == 1 for i in range(1, 5))


def test_shipped_multi_active_layouts_are_what_the_generator_builds():
    for n, layout in ((3, "mesh"), (4, "ring")):
        shipped, built = load_topology(f"multi-active-{n}-{layout}"), multi_active(n, layout)
        assert (shipped.switches, shipped.hosts, shipped.links) == (built.switches, built.hosts,
                                                                    built.links)


def test_a_design_run_folder_gives_the_same_metrics_as_the_samples(tmp_path):
    """analyse_design reads back what run_design writes, and gets design_metrics' numbers."""
    import dataclasses
    import json
    from lab.analysis.results import write_csv, write_json
    topo = load_topology("two-region")
    streams = [Stream(1, "client1>web", "client1", "10.200.0.10"),
               Stream(2, "client3>web", "client3", "10.200.0.10")]
    rows = (rows_for(1, "dc1-srv1", 0, 3) + rows_for(1, "dc2-srv1", 3, 6, gap=(3, 4.9))
            + rows_for(2, "dc2-srv2", 0, 6))
    sessions = {"sessions": [{"established": True, "died": 3.5},
                             {"established": True, "died": None}]}
    (tmp_path / "probes").mkdir()
    summaries = {}
    for s in streams:
        summaries[s.stream] = {"start": 0.0, "target_rate": 100, "sent": 600}
        write_json(tmp_path / "probes" / f"tx-{s.stream}.json", summaries[s.stream])
    write_csv(tmp_path / "probes.csv", ["stream", "seq", "sent", "received", "host"], rows)
    write_json(tmp_path / "streams.json", [dict(dataclasses.asdict(s), rate=100)
                                           for s in streams])
    write_json(tmp_path / "sessions-client1.json", sessions)
    write_json(tmp_path / "design.json", {
        "design": "dual-active", "topology": topo.to_dict(), "policy": "anycast",
        "roles": {"dc1": "active", "dc2": "active"}, "t0": 0.0, "t_fault": 3.0, "t_end": 6.0,
        "fault_site": "dc1", "dci_mbit": 0.5, "sessions": ["sessions-client1.json"]})
    got = designs.analyse_design(tmp_path)
    want = designs.design_metrics(topo, rows, streams, [sessions], 0.0, 3.0, 6.0, "dc1", 0.5,
                                  summaries)
    assert {k: got[k] for k in want} == want
    assert 1890 < got["rto_ms"] < 1920 and got["sessions_lost"] == 1
    assert (got["design"], got["topology"], got["policy"]) == ("dual-active", "two-region",
                                                               "anycast")
    (tmp_path / "metrics.json").write_text(json.dumps(got))
    summary = designs.summarize_one(tmp_path)
    assert summary.ok and "dual-active" in summary.text
    assert got["data"] is None and got["rpo_writes"] is None     # ran without a data tier


def test_each_design_gets_the_data_tier_it_would_have():
    pb = designs.design_data("primary-backup", designs.design_topology("primary-backup", {}))
    assert (pb.engine, pb.nodes, pb.standbys) == ("postgresql", ("dc1-srv2", "dc2-srv2"),
                                                  (("dc2-srv2", "async"),))
    ts = designs.design_data("three-site", designs.design_topology("three-site", {}))
    assert ts.engine == "postgresql" and ts.primary == "dc1-srv2"
    assert ts.standbys == (("dc2-srv2", "sync"), ("dc3-srv2", "async"))   # hot local, cold remote
    da = designs.design_data("dual-active", designs.design_topology("dual-active", {}))
    assert (da.engine, da.nodes, da.witness) == ("galera", ("dc1-srv2", "dc2-srv2"), None)
    for n, layout in ((4, "ring"), (8, "mesh")):
        ma = designs.design_data("multi-active", multi_active(n, layout))
        assert ma.engine == "galera" and len(ma.nodes) == n
        assert [h.split("-")[0] for h in ma.nodes] == [f"dc{i}" for i in range(1, n + 1)]
    # a topology that declares its own data tier keeps it
    own = load_topology("dual-active-data")
    assert designs.design_data("dual-active", own) is own.data


def data_case(folder, lost=0, back=True, engine="postgresql"):
    """A design's data/ folder: two clients writing 100/s from t=0 to 6, dc1 off at 3 s;
    `lost` acknowledged writes just before the fault missing on dc2's node; back: writes come
    back 1.5 s after the fault."""
    import json
    from lab.emulation import databases
    folder.mkdir(parents=True)
    present = set()
    for client in ("client1", "client3"):
        writes = []
        for seq in range(600):
            t = seq / 100
            acked = t < 3.0 or (back and t >= 4.5)
            writes.append({"seq": seq, "t_sent": t, "t_ack": t + 0.003 if acked else None,
                           "error": None if acked else "connect: refused",
                           "commit_ms": 2.0 + (seq % 10) / 10,
                           "server": "dc1-srv1" if t < 3 else "dc2-srv1"})
            if acked and not (client == "client1" and 300 - lost <= seq < 300):
                present.add((client, seq))
        (folder / f"writes-{client}.json").write_text(json.dumps(
            {"client": client, "start": 0.0, "end": 6.0, "writes": writes}))
    databases.write_present(folder / "present-dc2-srv2.tsv", present)
    (folder / "case.json").write_text(json.dumps({
        "variant": "primary-backup", "fault_name": "power-off", "fault": "power-off dc1",
        "t0": 0.0, "t_fault": 3.0, "t_promote": 3.4, "fault_spread_ms": 5.0,
        "fault_delay_ms": None, "engine": engine,
        "data": "postgresql dc1-srv2 -> dc2-srv2 (async)" if engine == "postgresql"
                else "galera on dc1-srv2, dc2-srv2, no witness",
        "clients": ["client1", "client3"], "nodes": ["dc1-srv2", "dc2-srv2"],
        "down": ["dc1-srv1", "dc1-srv2"], "read": ["dc2-srv2"],
        "site_of": {"dc1-srv1": "dc1", "dc1-srv2": "dc1", "dc2-srv1": "dc2",
                    "dc2-srv2": "dc2", "client1": "east", "client3": "west"}}))


def test_data_columns_from_a_designs_data_folder(tmp_path):
    data_case(tmp_path / "lossy", lost=7)
    got = designs.data_columns(tmp_path / "lossy")
    assert (got["rpo_writes"], got["rpo_ms"]) == (7, 67.0)    # acked 2.933 s, fault at 3.0
    assert 1500 <= got["write_rto_ms"] <= 1510
    assert got["commit_ms_p50"] == 2.4 and got["commit_ms_p99"] == 2.9
    data_case(tmp_path / "stopped", back=False, engine="galera")
    stopped = designs.data_columns(tmp_path / "stopped")
    assert stopped["rpo_writes"] == 0 and stopped["write_rto_ms"] is None
    assert designs.data_columns(tmp_path / "none")["data"] is None


def test_the_table_shows_data_columns_and_explains_a_cluster_that_stopped(tmp_path):
    data_case(tmp_path / "a", lost=7)
    data_case(tmp_path / "b", back=False, engine="galera")
    base = {"topology": "two-region", "policy": "anycast", "rto_ms": 60.0, "sessions": 12,
            "sessions_lost": 6, "utilization": {"dc1": 0.5, "dc2": 0.5}, "idle_sites": [],
            "dci_mbit": 0.5, "latency_ms": 1.0, "clients_hit": []}
    results = [dict(base, design="primary-backup", **designs.data_columns(tmp_path / "a"),
                    memory_mb={"data tier": 321.4, "total": 1234.6}),
               dict(base, design="dual-active", **designs.data_columns(tmp_path / "b"))]
    text = designs.table(results)
    assert "RPO writes" in text and "write RTO ms" in text and "never" in text
    assert "lab RSS MB (data tier)" in text and "1235 (321)" in text   # an older run: '-'
    assert "note: dual-active: no write acknowledged after dc1 powered off" in text
    assert "witness" in text
    assert designs.problems(results) == []          # a stopped cluster is a finding
    # a data tier that never took a write is a failure of the run
    broken = dict(results[0], data_detail={**results[0]["data_detail"],
                                           "commit_ms": {"before": {"count": 0}}})
    assert "acknowledged no write before the fault" in designs.problems([broken])[0]


def test_the_figure_gets_a_data_row_only_with_a_data_tier(tmp_path):
    from PIL import Image
    from lab.analysis import plots
    data_case(tmp_path / "a", lost=7)
    base = {"design": "primary-backup", "rto_ms": 60.0, "sessions": 12, "sessions_lost": 6,
            "utilization": {"dc1": 1.0, "dc2": 0.0}}
    plots.designs([dict(base, data=None)], tmp_path / "plain.png")
    plots.designs([dict(base, **designs.data_columns(tmp_path / "a")),
                   dict(base, design="dual-active", data="galera", write_rto_ms=None,
                        rpo_writes=0, commit_ms_p50=8.0, commit_ms_p99=20.0)],
                  tmp_path / "data.png")
    plain, data = (Image.open(tmp_path / n).size for n in ("plain.png", "data.png"))
    assert plain[0] == data[0] and data[1] > 1.8 * plain[1]
