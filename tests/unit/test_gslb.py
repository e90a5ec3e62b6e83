"""The GSLB's decisions and the failover arithmetic, without a network."""

import ipaddress

from lab.agents import gslb


def test_health_needs_three_misses_to_fail_and_two_answers_to_recover():
    events = []
    health = gslb.Health({"dc1": "10.1.0.11"}, 80, events.append)
    assert health.verdict("dc1", True) and health.up["dc1"] is True
    assert not health.verdict("dc1", False) and not health.verdict("dc1", False)
    assert health.verdict("dc1", False) and health.up["dc1"] is False
    assert not health.verdict("dc1", True)
    assert health.verdict("dc1", True) and health.up["dc1"] is True


def test_clients_get_the_nearest_healthy_site_of_their_subnet():
    proximity = [(ipaddress.IPv4Network("10.100.0.0/24"), ["dc1", "dc2"]),
                 (ipaddress.IPv4Network("10.101.0.0/24"), ["dc2", "dc1"])]
    up = {"dc1": True, "dc2": True}
    assert gslb.choose(proximity, up, "10.100.0.11") == "dc1"
    assert gslb.choose(proximity, up, "10.101.0.11") == "dc2"
    up["dc1"] = False
    assert gslb.choose(proximity, up, "10.100.0.11") == "dc2"
    assert gslb.choose(proximity, {"dc1": False, "dc2": False}, "10.100.0.11") is None


def test_failover_counts_from_the_fault_to_the_first_live_answer():
    attempts = [[t / 10, "10.1.0.11", "dc1-srv1"] for t in range(30)]
    attempts += [[3.0 + t / 10, "10.1.0.11", ""] for t in range(25)]
    attempts += [[5.5 + t / 10, "10.2.0.11", "dc2-srv1"] for t in range(10)]
    result = gslb.failover(attempts, 3.0, {"dc1-srv1", "dc1-srv2"})
    assert result == {"hit": True, "failover_s": 2.5, "failed_attempts": 25}
    other = gslb.failover([[t / 10, "x", "dc2-srv1"] for t in range(60)], 3.0, {"dc1-srv1"})
    assert other["hit"] is False and other["failed_attempts"] == 0


def gslb_run_folder(tmp_path):
    """A gslb run folder's raw files (anycast and TTL 1 recover, the caching variant never):
    returns the client names."""
    import json
    from experiments import gslb as experiment
    from lab.model.topology import load_topology
    topo = load_topology("two-region")
    (tmp_path / "params.json").write_text(json.dumps({
        "experiment": "gslb", "options": {"ttls": [1], "cache_extra": 8.0},
        "topology": topo.to_dict()}))
    dc1 = next(h.name for h in topo.servers if h.switch == "dc1")
    dc2 = next(h.name for h in topo.servers if h.switch != "dc1")
    names = [c.name for c in topo.clients]
    for label, recovers in (("anycast", True), ("gslb ttl 1", True),
                            ("gslb ttl 1 +8s cache", False)):
        folder = tmp_path / experiment.variant_dir(label)
        folder.mkdir()
        (folder / "variant.json").write_text(json.dumps({
            "variant": label, "ttl": None, "cache_extra": 0.0, "fault": "power-off dc1",
            "t_fault": 3.0, "clients": names}))
        for i, name in enumerate(names):
            served = dc1 if i == 0 else dc2
            attempts = [[t / 10, "a", served] for t in range(30)]
            if i == 0:
                attempts += [[3.0 + t / 10, "a", ""] for t in range(5)]
                attempts += [[3.5 + t / 10, "b", dc2] for t in range(5)] if recovers else []
            (folder / f"attempts-{name}.json").write_text(json.dumps(attempts))
    return names


def test_gslb_metrics_come_from_the_raw_files_alone(tmp_path):
    """Per variant: variant.json and each client's attempts; a variant whose clients never
    reach a live site fails the run."""
    import json
    from experiments import gslb as experiment
    names = gslb_run_folder(tmp_path)
    metrics = experiment.analyse(tmp_path)
    assert metrics == experiment.analyse(tmp_path)
    anycast, ttl1, cached = metrics["variants"]
    assert anycast["affected"] == [names[0]] and anycast["failover_s"] == 0.5
    assert anycast["failed_attempts"] == 5
    assert cached["failover_s"] is None
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    summary = experiment.summarize(tmp_path)
    assert summary.problems == ["variant gslb ttl 1 +8s cache: the clients dc1 served never "
                                "reached a live site"]
    assert "never" in summary.text and "0.50" in summary.text
