"""The lab/controller contract: the intent the lab builds is the intent the controller reads."""

import json

import pytest

from controllers.intent import DEFAULT_MODE, GATEWAY_MAC, Intent, IntentError
from lab.emulation.controller import intent_for
from lab.model.topology import load_topology, multi_active


@pytest.mark.parametrize("topo", [load_topology("dual-active"), multi_active(4, "ring")],
                         ids=["dual-active", "ring4"])
def test_round_trip_through_json_is_exact(topo):
    intent = intent_for(topo, "restoration", "primary-backup", health_interval=0.2,
                        routing="hot-potato", symmetric=True)
    again = Intent.from_dict(json.loads(json.dumps(intent.to_dict())))
    assert again == intent
    assert again.mode == "restoration" and again.routing == "hot-potato" and again.symmetric
    assert {v.policy for v in again.services} == {"primary-backup"}
    assert len(again.links) == len(topo.links) and len(again.switches) == len(topo.switches)


def test_defaults_are_stated_once():
    doc = intent_for(load_topology("dual-active")).to_dict()
    for key in ("mode", "gateway_mac", "routing", "symmetric", "health_interval"):
        del doc[key]
    intent = Intent.from_dict(doc)
    assert intent.mode == DEFAULT_MODE and intent.gateway_mac == GATEWAY_MAC
    assert intent.routing == "shortest" and intent.symmetric is False


def good():
    return intent_for(load_topology("dual-active")).to_dict()


def spoil(path, value):
    doc = good()
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


@pytest.mark.parametrize("path, value, named", [
    (("mode",), "fast", "intent.mode: 'fast' is not one of protection, restoration"),
    (("routing",), "random", "intent.routing"),
    (("symmetric",), "yes", "intent.symmetric"),
    (("health_interval",), 0, "intent.health_interval"),
    (("health_fail_after",), 2.5, "intent.health_fail_after"),
    (("gateway_mac",), "02:00:00:00:fe", "intent.gateway_mac"),
    (("switches",), KeyError, "missing field 'switches'"),
    (("switches",), {}, "intent.switches: must be a list"),
    (("switches", 0, "subnet"), "10.1.0.0/33", "switches[0].subnet"),
    (("switches", 0, "gateway"), "10.9.9.1", "switches[0].gateway: 10.9.9.1 is outside"),
    (("switches", 0, "kind"), "router", "switches[0].kind"),
    (("switches", 1, "dpid"), "2", "switches[1].dpid: must be an integer"),
    (("links", 0, "a"), [999, 1], "links[0].a: dpid 999 is no switch"),
    (("links", 0, "b"), [1], "links[0].b: must be [dpid, port]"),
    (("links", 0, "delay_ms"), -1, "links[0].delay_ms"),
    (("services", 0, "vip"), "10.200.0.300", "services[0].vip"),
    (("services", 0, "port"), 70000, "services[0].port: 70000 is out of range"),
    (("services", 0, "servers"), [], "services[0].servers"),
    (("services", 0, "primary"), "dc9", "services[0].primary: 'dc9' is no switch"),
    (("services", 0, "policy"), "random", "services[0].policy"),
    (("colour",), "blue", "unknown field 'colour'"),
])
def test_a_wrong_field_is_named_in_one_line(path, value, named):
    with pytest.raises(IntentError) as err:
        Intent.from_dict(spoil(path, value))
    message = str(err.value)
    assert named in message and "\n" not in message


def test_duplicate_switch_names_are_refused():
    doc = good()
    doc["switches"][1]["name"] = doc["switches"][0]["name"]
    with pytest.raises(IntentError, match="appears twice"):
        Intent.from_dict(doc)


def test_load_names_the_file(tmp_path):
    path = tmp_path / "intent.json"
    path.write_text("{not json")
    with pytest.raises(IntentError, match=f"{path}: not valid JSON"):
        Intent.load(path)
    path.write_text(json.dumps(spoil(("mode",), "fast")))
    with pytest.raises(IntentError, match=f"{path}: intent.mode"):
        Intent.load(path)
    intent_for(load_topology("dual-active")).save(path)          # positive control
    assert Intent.load(path) == intent_for(load_topology("dual-active"))


def test_the_controller_process_refuses_a_wrong_intent_in_one_line(tmp_path, capsys):
    from controllers.main import main
    config, log = tmp_path / "intent.json", tmp_path / "controller.log"
    config.write_text(json.dumps(spoil(("services", 0, "port"), 0)))
    code = main(["--config", str(config), "--port", "1", "--log", str(log),
                 "--status", str(tmp_path / "status.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "services[0].port" in err
    assert "services[0].port" in log.read_text()
