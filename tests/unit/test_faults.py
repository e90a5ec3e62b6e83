"""Fault timelines: one runner for every experiment, one place that knows what a fault downs."""

import time
from types import SimpleNamespace

import pytest

from lab.emulation.faults import FaultInjector, run_timeline
from lab.errors import LabError
from lab.model.faults import ACTIONS, Fault, hosts_down, isolation_links, parse_faults
from lab.model.topology import load_topology


class RecordingInjector(FaultInjector):
    """FaultInjector with its actions recorded (and when they came) instead of carried out."""

    def __init__(self):
        super().__init__(SimpleNamespace(controller=SimpleNamespace(
            stop=lambda: self._note("controller", False),
            restart=lambda: self._note("controller", True))))
        self.calls = []

    def _note(self, *call):
        self.calls.append((time.time(), call))

    def set_link(self, name, up):
        self._note("link", name, up)

    def gray_link(self, name, on):
        self._note("gray", name, on)

    def power_site(self, name, on):
        self._note("power", name, on)

    def host_link(self, name, up):
        self._note("host", name, up)

    def isolate_site(self, name, isolated):
        self._note("isolate", name, isolated)


def test_the_runner_injects_each_fault_at_its_time_and_in_order():
    topo = load_topology("dual-active")
    faults = parse_faults("0.1s cut dci-a; 0.25s gray dci-b; 0.3s power-off dc2; "
                          "0.35s controller-stop", topo)
    lab, ticks, told = RecordingInjector(), [], []
    t0 = time.time()
    done = run_timeline(lab, faults, t0, until=1.3, every=ticks.append,
                        announce=lambda f, t: told.append(str(f)))
    assert [c for _, c in lab.calls] == [("link", "dci-a", False), ("gray", "dci-b", True),
                                         ("power", "dc2", False), ("controller", False)]
    assert [f for f, _ in done] == list(faults) and told == [str(f) for f in faults]
    for (fault, t), (called, _) in zip(done, lab.calls):
        assert fault.at <= t - t0 < fault.at + 0.05 and t <= called
    assert time.time() - t0 >= 1.3 and len(ticks) == 1          # about once a second


def test_a_late_start_injects_at_once_without_reordering():
    lab = RecordingInjector()
    faults = [Fault(0.0, "cut", "dci-a"), Fault(0.01, "heal", "dci-a")]
    done = run_timeline(lab, faults, time.time() - 5)
    assert [c for _, c in lab.calls] == [("link", "dci-a", False), ("link", "dci-a", True)]
    assert done[0][1] <= done[1][1]


def test_every_action_is_carried_out_by_the_injector():
    injector = RecordingInjector()
    targets = {"link": "dci-a", "site": "dc1", "host": "dc1-srv1", None: None}
    for action, kind in ACTIONS.items():
        injector.inject(Fault(0, action, targets[kind]))
    assert [c for _, c in injector.calls] == [
        ("link", "dci-a", False), ("link", "dci-a", True), ("gray", "dci-a", True),
        ("gray", "dci-a", False), ("power", "dc1", False), ("power", "dc1", True),
        ("isolate", "dc1", True), ("isolate", "dc1", False), ("host", "dc1-srv1", False), ("host", "dc1-srv1", True), ("controller", False),
        ("controller", True)]
    with pytest.raises(LabError, match="unknown fault action 'melt'"):
        injector.inject(Fault(0, "melt", "dc1"))


def test_hosts_down_follows_power_and_server_faults():
    topo = load_topology("dual-active")
    dc1 = {h.name for h in topo.hosts if h.switch == "dc1"}
    assert dc1 and len(dc1) < len(topo.hosts)
    faults = [Fault(1, "power-off", "dc1"), Fault(2, "server-down", "dc2-srv1"),
              Fault(3, "cut", "dci-a"), Fault(4, "power-on", "dc1"),
              Fault(5, "server-up", "dc2-srv1")]
    sets = hosts_down({h.name: h.switch for h in topo.hosts}, faults)
    assert sets[0] == (set(), dc1)
    assert sets[1] == (dc1, dc1 | {"dc2-srv1"})
    assert sets[2] == (dc1 | {"dc2-srv1"}, dc1 | {"dc2-srv1"})     # a link cut downs no host
    assert sets[3] == (dc1 | {"dc2-srv1"}, {"dc2-srv1"})
    assert sets[4] == ({"dc2-srv1"}, set())


def test_isolating_a_site_cuts_its_links_to_other_sites_not_to_its_clients():
    topo = load_topology("dual-active-data")
    assert isolation_links(topo, "dc1") == ("dci-a", "dci-b", "wit-dc1")
    assert isolation_links(topo, "dc3") == ("wit-dc1", "wit-dc2")
    assert isolation_links(load_topology("dual-active"), "dc2") == ("dci-a", "dci-b")
