import textwrap

import pytest

from lab.errors import TopologyError
from lab.model.topology import available_topologies, load_topology, parse_topology

GOOD = """
sites:
  dc1: {subnet: 10.1.0.0/24, servers: 2}
  dc2: {subnet: 10.2.0.0/24, servers: 1}
edges:
  edge: {subnet: 10.100.0.0/24, clients: 2}
links:
  dci-a: {between: [dc1, dc2], bw: 100, delay: 2ms}
  edge-dc1: {between: [edge, dc1], delay: 500us, jitter: 0.1ms, loss: 1, queue: 50}
"""


def parse(text):
    return parse_topology(textwrap.dedent(text), source="t.yaml")


def error_of(text):
    with pytest.raises(TopologyError) as info:
        parse(text)
    return info.value


def test_good_topology_builds_hosts_addresses_and_ports():
    topo = parse(GOOD)
    assert [h.name for h in topo.hosts] == ["dc1-srv1", "dc1-srv2", "dc2-srv1", "client1", "client2"]
    assert str(topo.host("dc1-srv2").ip) == "10.1.0.12/24"
    assert topo.host("dc1-srv2").mac == "02:00:0a:01:00:0c"
    assert str(topo.switch("dc2").gateway) == "10.2.0.1"
    assert topo.link("dci-a").kind == "dci" and topo.link("edge-dc1").kind == "edge"
    assert topo.link("edge-dc1").delay_ms == 0.5
    assert topo.link("edge-dc1").jitter_ms == pytest.approx(0.1)
    assert [p.intf for p in topo.ports("dc1")] == ["dc1-eth1", "dc1-eth2", "dc1-eth3", "dc1-eth4"]
    assert topo.port_to("dc1", "edge-dc1").number == 4
    assert len({s.dpid for s in topo.switches}) == 3


def test_shipped_dual_active_has_two_diverse_dci_links_and_two_clients():
    topo = load_topology("dual-active")
    dci = topo.dci_links
    assert len(dci) == 2 and {l.ends for l in dci} == {("dc1", "dc2")}
    assert dci[0].delay_ms != dci[1].delay_ms
    assert len(topo.clients) >= 2
    assert all(len(topo.hosts_at(s.name)) >= 2 for s in topo.sites)
    edge_delays = {l.b: l.delay_ms for l in topo.links if l.kind == "edge"}
    assert edge_delays["dc1"] != edge_delays["dc2"]


def test_every_shipped_topology_is_valid():
    for name in available_topologies():
        assert load_topology(name).name


@pytest.mark.parametrize("text, field, words", [
    ("sites: {dc1: {subnet: 10.1.0.0/24, colour: red}}", "sites.dc1.colour", "unknown key"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}}\nlinkz: {}", "linkz", "unknown key"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}, dc2: {subnet: 10.2.0.0/24}}\n"
     "links: {l: {between: [dc1, dc2], bw: -5}}", "links.l.bw", "out of range"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}, dc2: {subnet: 10.2.0.0/24}}\n"
     "links: {l: {between: [dc1, dc2], delay: 2}}", "links.l.delay", "no unit"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}, dc2: {subnet: 10.2.0.0/24}}\n"
     "links: {l: {between: [dc1, dc2], delay: -2ms}}", "links.l.delay", "negative"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}, dc2: {subnet: 10.2.0.0/24}}\n"
     "links: {l: {between: [dc1, dc2], delay: 2 parsecs}}", "links.l.delay", "not a time"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}, dc2: {subnet: 10.2.0.0/24}}\n"
     "links: {l: {between: [dc1, dc2], loss: 120}}", "links.l.loss", "percentage"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}, dc2: {subnet: 10.2.0.0/24}}\n"
     "links: {l: {between: [dc1, dc2], queue: 0}}", "links.l.queue", "packet count"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}}\nlinks: {l: {between: [dc1, dc9]}}",
     "links.l.between", "unknown site"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}}\nlinks: {l: {between: [dc1, dc1]}}",
     "links.l.between", "itself"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}, dc2: {subnet: 10.1.0.128/25}}",
     "sites.dc2.subnet", "overlaps"),
    ("sites: {dc1: {subnet: 10.1.0.5/24}}", "sites.dc1.subnet", "not an IPv4 subnet"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}, dc1: {subnet: 10.2.0.0/24}}", "line", "duplicate key"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}, dc2: {subnet: 10.2.0.0/24}}\n"
     "links: {dc2: {between: [dc1, dc2]}}", "link dc2", "already used"),
    ("sites: {datacenter1: {subnet: 10.1.0.0/24}}", "sites.datacenter1", "too long"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}, dc2: {subnet: 10.2.0.0/24}}", "links", "not connected"),
    ("sites: {DC1: {subnet: 10.1.0.0/24}}", "sites.DC1", "bad name"),
    ("sites: {dc1: {subnet: 10.1.0.0/28, servers: 5}}", "sites.dc1", "no address"),
    ("sites: {dc1: {subnet: 10.1.0.0/24}}\nedges: {e1: {subnet: 10.9.0.0/24}, "
     "e2: {subnet: 10.8.0.0/24}}\nlinks: {l: {between: [e1, e2]}}", "links.l.between",
     "two client edges"),
    ("", "file", "empty"),
    ("sites: [dc1", "line", "not valid YAML"),
])
def test_bad_topologies_raise_one_line_naming_file_field_and_fix(text, field, words):
    exc = error_of(text)
    message = str(exc)
    assert message.startswith("t.yaml: "), message
    assert exc.field.startswith(field), message
    assert words in message
    assert "\n" not in message
    assert exc.fix and exc.fix in message


def test_unknown_topology_name_lists_the_shipped_ones():
    with pytest.raises(TopologyError) as info:
        load_topology("no-such-topology")
    assert "dual-active" in str(info.value)


def test_mininet_custom_topology_matches_the_model():
    pytest.importorskip("mininet")
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "topologies" / "mn_topos.py"
    spec = importlib.util.spec_from_file_location("mn_topos", path)
    mn_topos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mn_topos)
    mn = mn_topos.topos["dual-active"]()
    model = load_topology("dual-active")
    assert sorted(mn.switches()) == sorted(s.name for s in model.switches)
    assert sorted(mn.hosts()) == sorted(h.name for h in model.hosts)
    info = mn.linkInfo("dc1", "dc2", "dci-b")
    assert (info["bw"], info["delay"], info["max_queue_size"]) == (50.0, "5ms", 100)
    assert mn.nodeInfo("client1")["defaultRoute"] == "dev client1-eth0"


def test_services_default_to_every_server_and_the_first_site():
    topo = parse(GOOD + "services:\n  web: {vip: 10.200.0.10}\n")
    (web,) = topo.services
    assert str(web.vip) == "10.200.0.10" and web.port == 80
    assert web.servers == ("dc1-srv1", "dc1-srv2", "dc2-srv1") and web.primary == "dc1"


@pytest.mark.parametrize("service, field, words", [
    ("{vip: 10.1.0.50}", "services.web.vip", "inside sites.dc1.subnet"),
    ("{vip: 10.200.0.10, servers: [client1]}", "services.web.servers", "unknown server"),
    ("{vip: 10.200.0.10, primary: edge}", "services.web.primary", "unknown site"),
    ("{vip: 10.200.0.10, port: 0}", "services.web.port", "not a TCP port"),
    ("{vip: nowhere}", "services.web.vip", "not an IPv4 address"),
])
def test_bad_services(service, field, words):
    exc = error_of(GOOD + f"services:\n  web: {service}\n")
    assert exc.field == field and words in str(exc)


def test_fault_timelines_parse_in_time_order():
    from lab.model.faults import Fault, parse_faults
    topo = load_topology("dual-active")
    faults = parse_faults("10s power-off dc1; 3s cut dci-a;6.5s heal dci-a ; 12s controller-stop",
                          topo)
    assert faults == (Fault(3.0, "cut", "dci-a"), Fault(6.5, "heal", "dci-a"),
                      Fault(10.0, "power-off", "dc1"), Fault(12.0, "controller-stop"))
    assert str(faults[0]) == "cut dci-a"


@pytest.mark.parametrize("text, words", [
    ("3 cut dci-a", "not a fault"),
    ("3s explode dci-a", "unknown action 'explode'"),
    ("3s cut dci-z", "cut needs a link of dual-active: one of dci-a"),
    ("3s power-off edge", "power-off needs a site"),
    ("3s controller-stop dc1", "takes no target"),
])
def test_bad_fault_timelines_are_one_line_errors(text, words):
    from lab.errors import LabError
    from lab.model.faults import parse_faults
    with pytest.raises(LabError) as info:
        parse_faults(text, load_topology("dual-active"))
    assert words in str(info.value) and str(info.value).startswith("--faults: ")


def test_a_timeline_of_none_is_traffic_without_faults():
    from lab.errors import LabError
    from lab.model.faults import parse_faults
    topo = load_topology("dual-active")
    assert parse_faults("none", topo) == () and parse_faults(" None ", topo) == ()
    assert len(parse_faults("2s cut dci-a", topo)) == 1        # positive control
    with pytest.raises(LabError, match="'nothing' is not a fault"):
        parse_faults("nothing", topo)


THREE = """
sites:
  dc1: {subnet: 10.1.0.0/24, servers: 2}
  dc2: {subnet: 10.2.0.0/24, servers: 2}
  dc3: {subnet: 10.3.0.0/24, servers: 1}
edges:
  edge: {subnet: 10.100.0.0/24, clients: 1}
links:
  dci-a: {between: [dc1, dc2], delay: 2ms}
  dci-b: {between: [dc2, dc3], delay: 5ms}
  edge-dc1: {between: [edge, dc1], delay: 1ms}
"""


def test_a_galera_tier_with_a_witness_in_a_third_site():
    topo = parse(THREE + "data: {engine: galera, nodes: [dc1-srv2, dc2-srv2], witness: dc3-srv1}\n")
    assert topo.data.nodes == ("dc1-srv2", "dc2-srv2") and topo.data.witness == "dc3-srv1"
    assert topo.data.voters == ("dc1-srv2", "dc2-srv2", "dc3-srv1") and topo.warnings == ()
    assert topo.to_dict()["data"]["witness"] == "dc3-srv1"


def test_an_even_galera_membership_without_a_witness_is_warned_about_quorum():
    topo = parse(THREE + "data: {engine: galera, nodes: [dc1-srv2, dc2-srv2]}\n")
    (warning,) = topo.warnings
    assert "t.yaml" in warning and "no side with a majority" in warning and "garbd" in warning
    assert "\n" not in warning
    odd = parse(THREE + "data: {engine: galera, nodes: [dc1-srv1, dc2-srv1, dc3-srv1]}\n")
    assert odd.warnings == ()                                          # control: 3 voters
    assert parse(GOOD).data is None and parse(GOOD).to_dict()["data"] is None


def test_a_postgresql_tier_with_a_sync_and_an_async_standby():
    topo = parse(THREE + "data:\n  engine: postgresql\n  primary: dc1-srv2\n"
                 "  standbys: {dc2-srv2: sync, dc3-srv1: async}\n")
    assert topo.data.primary == "dc1-srv2" and topo.data.nodes == ("dc1-srv2", "dc2-srv2",
                                                                    "dc3-srv1")
    assert topo.data.standbys == (("dc2-srv2", "sync"), ("dc3-srv1", "async"))
    assert topo.data.failover == "runbook" and "failover" not in topo.to_dict()["data"]


def test_a_postgresql_tier_failed_over_by_patroni_with_etcd_on_three_sites():
    topo = parse(THREE + "data:\n  engine: postgresql\n  primary: dc1-srv2\n"
                 "  standbys: {dc2-srv2: sync}\n  failover: patroni\n"
                 "  consensus: [dc1-srv2, dc2-srv2, dc3-srv1]\n")
    assert topo.data.failover == "patroni"
    assert topo.data.consensus == ("dc1-srv2", "dc2-srv2", "dc3-srv1")
    assert topo.to_dict()["data"]["consensus"] == ["dc1-srv2", "dc2-srv2", "dc3-srv1"]


@pytest.mark.parametrize("data, field, words", [
    ("{engine: oracle}", "data.engine", "unknown engine 'oracle'"),
    ("{nodes: [dc1-srv1]}", "data.engine", "missing"),
    ("{engine: galera, nodes: [dc1-srv1, dc9-srv1]}", "data.nodes", "unknown host 'dc9-srv1'"),
    ("{engine: galera, nodes: [dc1-srv1, client1]}", "data.nodes", "client1 is a client"),
    ("{engine: galera, nodes: [dc1-srv1, dc1-srv2]}", "data.nodes", "both in site dc1"),
    ("{engine: galera, nodes: [dc1-srv1]}", "data.nodes", "two or more hosts"),
    ("{engine: galera, nodes: [dc1-srv2, dc2-srv2], witness: dc2-srv1}", "data.witness",
     "in site dc2 with node dc2-srv2"),
    ("{engine: galera, nodes: [dc1-srv2, dc2-srv2], primary: dc1-srv2}", "data.primary",
     "is for postgresql"),
    ("{engine: galera, nodes: [dc1-srv2, dc2-srv2], quorum: false}", "data.quorum",
     "unknown key"),
    ("{engine: postgresql, standbys: {dc2-srv1: sync}}", "data.primary", "missing"),
    ("{engine: postgresql, primary: dc1-srv1}", "data.standbys", "not a mapping"),
    ("{engine: postgresql, primary: dc1-srv1, standbys: {dc2-srv1: eventually}}",
     "data.standbys.dc2-srv1", "not sync or async"),
    ("{engine: postgresql, primary: dc1-srv1, standbys: {dc1-srv2: sync}}", "data.standbys",
     "both in site dc1"),
    ("{engine: postgresql, primary: dc1-srv1, nodes: [dc2-srv1]}", "data.nodes",
     "is for galera"),
    ("{engine: postgresql, primary: dc1-srv1, standbys: {dc2-srv1: sync}, failover: pacemaker}",
     "data.failover", "unknown failover 'pacemaker'"),
    ("{engine: postgresql, primary: dc1-srv1, standbys: {dc2-srv1: sync}, failover: patroni, "
     "consensus: [dc1-srv1, dc2-srv1]}", "data.consensus", "odd list of three"),
    ("{engine: postgresql, primary: dc1-srv1, standbys: {dc2-srv1: sync}, failover: patroni}",
     "data.consensus", "odd list of three"),
    ("{engine: postgresql, primary: dc1-srv1, standbys: {dc2-srv1: sync}, failover: patroni, "
     "consensus: [dc1-srv1, dc1-srv2, dc2-srv1]}", "data.consensus", "two etcd members in one"),
    ("{engine: postgresql, primary: dc1-srv1, standbys: {dc2-srv1: sync}, failover: patroni, "
     "consensus: [dc1-srv1, dc2-srv1, dc9-srv1]}", "data.consensus", "unknown host"),
    ("{engine: postgresql, primary: dc1-srv1, standbys: {dc2-srv1: sync}, "
     "consensus: [dc1-srv1, dc2-srv1, dc3-srv1]}", "data.consensus", "is for failover: patroni"),
    ("{engine: galera, nodes: [dc1-srv2, dc2-srv2], failover: patroni}", "data.failover",
     "is for postgresql"),
])
def test_bad_data_tiers_are_one_line_naming_the_field_and_the_fix(data, field, words):
    exc = error_of(THREE + f"data: {data}\n")
    assert exc.field == field and words in str(exc), str(exc)
    assert "\n" not in str(exc)


# ------------------------------------------------------------------------------ QoS

QOS = THREE.replace("delay: 2ms}", "delay: 2ms, bw: 100}").replace("delay: 5ms}",
                                                                   "delay: 5ms, bw: 100}")


def test_qos_classes_are_read_with_their_defaults_and_the_services_port_in_client():
    topo = parse_topology(QOS + "services: {web: {vip: 10.200.0.10, port: 8443}}\n"
                     "qos:\n  control: {share: 5, priority: 0}\n"
                     "  replication: {share: '30%', priority: 1, tcp: [3306]}\n"
                     "  client: {rate: 20, priority: 2}\n  bulk: {share: 20, priority: 3}\n")
    control, replication, client, bulk = topo.qos.classes
    assert (control.dscp, control.priority, control.share) == (48, 0, 5.0)
    assert replication.share == 30.0 and 3306 in replication.tcp and 5432 in replication.tcp
    assert client.rate == 20.0 and client.rate_on(100) == 20.0 and 8443 in client.tcp
    assert bulk.rate_on(50) == 10.0
    assert topo.qos.default == "bulk" and topo.qos.enabled
    assert topo.to_dict()["qos"]["classes"][0]["name"] == "control"


@pytest.mark.parametrize("qos, field, words", [
    ("{gold: {share: 5, priority: 0}}", "qos.gold", "unknown class"),
    ("{enabled: true}", "qos", "no class"),
    ("{control: {share: 60, priority: 0}, bulk: {share: 50, priority: 3}}", "qos",
     "shares add up to 110 %"),
    ("{control: {priority: 0}}", "qos.control", "a share or a rate"),
    ("{control: {share: 5, rate: 5, priority: 0}}", "qos.control", "a share or a rate"),
    ("{control: {share: 5}}", "qos.control.priority", "missing"),
    ("{control: {share: 5, priority: 8}}", "qos.control.priority", "from 0 to 7"),
    ("{control: {share: 0, priority: 0}}", "qos.control.share", "from more than 0"),
    ("{control: {share: lots, priority: 0}}", "qos.control.share", "from more than 0"),
    ("{control: {rate: 500, priority: 0}}", "qos", "guarantee 500 Mbit/s"),
    ("{control: {share: 5, priority: 0, dscp: 64}}", "qos.control.dscp", "0 to 63"),
    ("{control: {share: 5, priority: 0, dscp: 8}, bulk: {share: 5, priority: 3}}",
     "qos.bulk.dscp", "also qos.control's"),
    ("{control: {share: 5, priority: 0}, bulk: {share: 5, priority: 3, tcp: [2379]}}",
     "qos.bulk.tcp", "also in qos.control"),
    ("{control: {share: 5, priority: 0}, default: bulk}", "qos.default", "not a declared"),
    ("{control: {share: 5, priority: 0}, enabled: yes please}", "qos.enabled",
     "not true or false"),
])
def test_bad_qos_is_one_line_naming_the_field_and_the_fix(qos, field, words):
    exc = error_of(QOS + f"qos: {qos}\n")
    assert exc.field == field and words in str(exc), str(exc)
    assert "\n" not in str(exc)


def test_qos_needs_a_rate_on_every_dci_link_and_a_dci_link_at_all():
    exc = error_of(THREE + "qos: {control: {share: 5, priority: 0}}\n")
    assert exc.field.startswith("links.") and exc.field.endswith(".bw"), str(exc)
    one = "sites: {dc1: {subnet: 10.1.0.0/24}}\nqos: {control: {share: 5, priority: 0}}\n"
    assert "no DCI link" in str(error_of(one))
