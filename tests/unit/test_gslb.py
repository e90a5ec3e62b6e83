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
