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
    assert result == {"hit": True, "failover_s": 2.5, "failed_attempts": 25,
                      "latency_ms_before": None, "latency_ms_after": None,   # none timed
                      "latency_ci_ms_before": None, "latency_ci_ms_after": None}
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
    assert summary.problems == ["variant gslb ttl 1 +8s cache: the clients the fault hit "
                                "never reached a live server"]
    assert "never" in summary.text and "0.50" in summary.text


def test_request_times_before_and_once_served_again_show_the_trombone():
    # served locally in 1.2 ms; the fault; 3 failures; then across the DCI in 5.3 ms (the
    # first answer after the failover waited for the check: left out)
    attempts = [[t / 10, "vip", "dc1-srv1", 1.2] for t in range(30)]
    attempts += [[3.0 + t / 10, "vip", "", None] for t in range(3)]
    attempts += [[3.3, "vip", "dc2-srv1", 90.0]]
    attempts += [[3.4 + t / 10, "vip", "dc2-srv1", 5.3] for t in range(20)]
    result = gslb.failover(attempts, 3.0, {"dc1-srv1"})
    assert result["failover_s"] == 0.3 and result["failed_attempts"] == 3
    assert result["latency_ms_before"] == 1.2 and result["latency_ms_after"] == 5.3


def test_a_median_request_time_is_known_to_its_notch():
    # 1.58 x IQR / sqrt(n): 16 requests of 3, 4, 5, 6 ms (4 each) have an IQR of 2 ms
    took = [[t / 10, "vip", "dc1-srv1", 3.0 + t % 4] for t in range(16)]
    assert gslb.median_ci_ms(took) == round(1.58 * 2 / 4, 3)
    # steady requests are known exactly; too few or untimed ones not at all
    assert gslb.median_ci_ms([[t, "vip", "s", 4.2] for t in range(10)]) == 0.0
    assert gslb.median_ci_ms(took[:3]) is None
    assert gslb.median_ci_ms([[t, "vip", "s", None] for t in range(10)]) is None
    # reordered requests give the same answer (positive control: a wider spread, a wider notch)
    assert gslb.median_ci_ms(list(reversed(took))) == gslb.median_ci_ms(took)
    wide = [[a[0], a[1], a[2], 2 * a[3]] for a in took]
    assert gslb.median_ci_ms(wide) == 2 * gslb.median_ci_ms(took)


def test_the_added_request_time_carries_its_resolution(tmp_path):
    """The trombone's added time is a difference of medians of ~30 requests: its resolution
    combines the notches of both medians of every client it hit (CI's case: the medians of two
    clients on one path 1.1 ms apart)."""
    import json
    from experiments import gslb as experiment
    site_of = {"client1": "dc1", "client2": "dc1", "dc1-srv1": "dc1", "dc2-srv1": "dc2"}
    (tmp_path / "variant.json").write_text(json.dumps({
        "variant": "haproxy app-down", "ttl": None, "cache_extra": 0.0,
        "fault": "server-down dc1-srv1", "t_fault": 3.0, "clients": ["client1", "client2"],
        "lb_rtt_ms": {"dc1-srv1": 0.26, "dc2-srv1": 4.24}}))
    for name, spread in (("client1", 1.0), ("client2", 0.0)):
        attempts = [[t / 10, "vip", "dc1-srv1", 3.5 + spread * (t % 4)] for t in range(30)]
        attempts += [[3.0, "vip", "", None], [3.1, "vip", "dc2-srv1", 90.0]]
        attempts += [[3.2 + t / 10, "vip", "dc2-srv1", 7.3 + spread * (t % 4)]
                     for t in range(30)]
        (tmp_path / f"attempts-{name}.json").write_text(json.dumps(attempts))
    r = experiment.analyse_variant(tmp_path, site_of)
    c1 = r["clients"]["client1"]
    assert c1["latency_ci_ms_before"] > 0 and c1["latency_ci_ms_after"] > 0
    assert r["clients"]["client2"]["latency_ci_ms_before"] == 0.0
    expected = (c1["latency_ci_ms_before"] ** 2 + c1["latency_ci_ms_after"] ** 2) ** 0.5 / 2
    assert r["added_latency_resolution_ms"] == round(expected, 3)
    assert r["expected_added_ms"] == 3.98
    (tmp_path / "metrics.json").write_text(json.dumps({"variants": [r]}))
    text = experiment.summarize(tmp_path).text
    assert f"± {r['added_latency_resolution_ms']:.2f} ms; the path is longer by 3.98" in text
    # older runs without timed requests have no resolution, and say nothing of it
    for name in ("client1", "client2"):
        f = tmp_path / f"attempts-{name}.json"
        f.write_text(json.dumps([a[:3] for a in json.loads(f.read_text())]))
    assert experiment.analyse_variant(tmp_path, site_of)["added_latency_resolution_ms"] is None


def test_dci_rates_before_and_after_the_fault():
    from experiments import gslb as experiment
    assert experiment.dci_rates([(0.0, 0), (3.0, 30_000), (13.0, 1_100_000)]) == (80.0, 856.0)
    assert experiment.dci_rates(None) == (None, None)
    assert experiment.dci_rates([(0.0, 0), (0.0, 10), (1.0, 20)]) == (None, 0.1)


def test_haproxy_prefers_its_sites_servers_and_keeps_the_others_as_backup():
    from lab.emulation import loadbalancers
    from lab.model.topology import load_topology
    text = loadbalancers.haproxy_config(80, [("dc1-srv1", "10.1.0.11")],
                                        [("dc2-srv1", "10.2.0.11")], "/x/dc1.sock")
    assert "    bind :80" in text and "    mode http" in text and "http-reuse always" in text
    assert "    server dc1-srv1 10.1.0.11:8080 check\n" in text
    assert "    server dc2-srv1 10.2.0.11:8080 check backup\n" in text
    assert f"inter {loadbalancers.CHECK_INTER_MS}ms fall 2 rise 2" in text
    plan = loadbalancers.plan(load_topology("two-region"))
    assert plan == {"dc1": ("dc1-srv2", ["dc1-srv1"]), "dc2": ("dc2-srv2", ["dc2-srv1"])}


def test_the_haproxy_variants_fail_the_whole_site_or_only_its_app_servers():
    from experiments import gslb as experiment
    from lab.model.topology import load_topology
    topo = load_topology("two-region")
    opts = experiment.GslbOptions()
    labels = [label for label, _, _ in experiment.variants(opts)]
    assert labels[-2:] == ["haproxy", "haproxy app-down"]
    assert "haproxy" not in [l for l, _, _ in experiment.variants(
        experiment.GslbOptions(haproxy="off"))]
    assert [str(f) for f in experiment.faults_of("haproxy app-down", topo)] == \
        ["server-down dc1-srv1"]
    assert [str(f) for f in experiment.faults_of("haproxy", topo)] == ["power-off dc1"]
    assert experiment.lb_topology(topo).services[0].servers == ("dc1-srv2", "dc2-srv2")


def test_the_trombone_should_add_the_remote_rtt_minus_the_local_one():
    from experiments import gslb as experiment
    site_of = {"dc1-srv1": "dc1", "dc2-srv1": "dc2", "dc2-srv3": "dc2"}
    rtts = {"dc1-srv1": 0.8, "dc2-srv1": 4.9, "dc2-srv3": None}
    assert experiment.trombone_ms(rtts, site_of, {"dc1-srv1"}) == 4.1
    assert experiment.trombone_ms(rtts, site_of, {"dc1-srv1", "dc2-srv1"}) is None   # none left
    assert experiment.trombone_ms(None, site_of, set()) is None
