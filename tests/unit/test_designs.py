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
