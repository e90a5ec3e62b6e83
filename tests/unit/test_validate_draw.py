"""validate (no root, nothing built), list --json, and draw's three outputs (PNG, dot,
Mermaid), named after the file, with no label overlapping another on any shipped topology."""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import yaml

from lab.analysis.draw import figure, label_overlaps, to_dot, to_mermaid
from lab.errors import LabError, TopologyError
from lab.model.topology import available_topologies, load_topology, parse_topology, topology_path

REPO = Path(__file__).resolve().parents[2]


def run(*args, cwd=REPO, user=None):
    argv = [sys.executable, str(REPO / "lab" / "run.py"), *args]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120,
                          user=user)


@pytest.mark.parametrize("name", available_topologies())
def test_every_shipped_topology_validates(name):
    proc = run("validate", str(topology_path(name)))
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout
    data = json.loads(run("validate", str(topology_path(name)), "--json").stdout)
    assert data["valid"] and data["error"] is None and data["topology"]["name"] == name


@pytest.mark.parametrize("text, field", [
    ("name: x\nsites:\n  - name: dc1\n", "sites"),
    ("sites:\n  dc1: {subnet: 10.1.0.0/24}\nlinks:\n  l1: {between: [dc1, dc9]}\n", "links.l1"),
    ("sites:\n  dc1: {subnet: 10.1.0.0/33}\n", "sites.dc1"),
    ("sites: {}\n", "sites"),
    ("sites:\n  dc1: {subnet: 10.1.0.0/24, servers: many}\n", "sites.dc1.servers"),
    (": : :\n", "line 1"),
])
def test_an_invalid_file_is_one_line_naming_the_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    proc = run("validate", str(path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {path}: ") and "Traceback" not in proc.stderr
    data = json.loads(run("validate", str(path), "--json").stdout)
    assert data["valid"] is False and data["error"]["field"].startswith(field.split(".")[0])
    assert data["error"]["fix"]


def test_validate_of_a_missing_file(tmp_path):
    proc = run("validate", str(tmp_path / "nothere.yaml"))
    assert proc.returncode == 1 and "does not exist" in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None,
                    reason="needs root to become an unprivileged user")
def test_validate_needs_no_root(tmp_path):
    path = tmp_path / "t.yaml"
    shutil.copy(topology_path("dual-active"), path)
    os.chmod(tmp_path, 0o755)
    os.chmod(path, 0o644)
    probe = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-c", "print(1)"],
                           capture_output=True, text=True, cwd="/")
    if probe.returncode != 0:
        pytest.skip("nobody cannot run this interpreter here")
    proc = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable,
                           str(REPO / "lab" / "run.py"), "validate", str(path)],
                          capture_output=True, text=True, cwd="/")
    if "Permission denied" in proc.stderr:
        pytest.skip("the checkout is not readable by nobody here")
    assert proc.returncode == 0, proc.stderr


def test_the_validator_raises_only_topology_errors_on_mangled_files():
    """Shipped topologies with values swapped for wrong types: always a TopologyError."""
    rng = random.Random(5)
    docs = [yaml.safe_load(topology_path(n).read_text()) for n in available_topologies()]
    weird = [None, [], {}, "x", 0, -1, 1.5, True, [1, 2], {"a": 1}, [{"a": 1}], "", "2ms"]

    def paths(node, pre=()):
        yield pre
        items = node.items() if isinstance(node, dict) else enumerate(node) \
            if isinstance(node, list) else ()
        for key, value in items:
            yield from paths(value, pre + (key,))

    for _ in range(1500):
        doc = json.loads(json.dumps(rng.choice(docs)))
        where = rng.choice([p for p in paths(doc) if p])
        node = doc
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = rng.choice(weird)
        try:
            parse_topology(yaml.safe_dump(doc))
        except (TopologyError, LabError):
            pass


def test_list_json():
    data = json.loads(run("list", "--json").stdout)
    assert {e["name"] for e in data["experiments"]} >= {"dual-active", "firewall", "scale"}
    names = {t["name"] for t in data["topologies"]}
    assert names == set(available_topologies())
    da = next(t for t in data["topologies"] if t["name"] == "dual-active")
    assert da["valid"] and da["sites"] == ["dc1", "dc2"] and "dci-a" in da["links"]


def test_draw_names_its_outputs_after_the_file_not_the_name_inside(tmp_path):
    copy = tmp_path / "my-sites.yaml"
    shutil.copy(topology_path("dual-active"), copy)          # name: dual-active inside
    proc = run("draw", str(copy), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for suffix in (".png", ".dot", ".mmd"):
        assert (tmp_path / f"my-sites{suffix}").stat().st_size > 100
    assert not (tmp_path / "dual-active.png").exists()
    proc = run("draw", "dual-active", "--out", str(tmp_path / "pics" / "da.png"))
    assert proc.returncode == 0 and (tmp_path / "pics" / "da.dot").exists()
    assert run("draw", "dual-active", "--out", str(tmp_path / "x.svg")).returncode == 1


@pytest.mark.parametrize("name", available_topologies())
def test_dot_and_mermaid_name_every_node_and_link(name):
    topo = load_topology(name)
    dot, mmd = to_dot(topo), to_mermaid(topo)
    assert dot.startswith("graph ") and dot.rstrip().endswith("}")
    assert mmd.startswith("flowchart")
    for node in [s.name for s in topo.switches] + [h.name for h in topo.hosts]:
        assert f'"{node}"' in dot and node in mmd
    for l in topo.links:
        assert l.name in dot and l.name in mmd
    assert dot.count(" -- ") == len(topo.links) + len(topo.hosts)
    if shutil.which("dot"):
        assert subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True,
                              text=True).returncode == 0


@pytest.mark.parametrize("name", available_topologies())
def test_no_label_overlaps_another_on_a_shipped_topology(name):
    fig, labels = figure(load_topology(name))
    try:
        assert len(labels) >= len(load_topology(name).links)
        assert label_overlaps(fig, labels) == []
    finally:
        plt.close(fig)


def test_the_overlap_check_can_fail():
    """Positive control: two labels at one spot are reported."""
    fig, ax = plt.subplots()
    labels = [ax.text(0.5, 0.5, "dci-a\n100 Mbit"), ax.text(0.5, 0.5, "dci-b\n50 Mbit")]
    try:
        assert label_overlaps(fig, labels) != []
    finally:
        plt.close(fig)


def test_the_readme_example_topology_validates(tmp_path):
    text = (REPO / "README.md").read_text()
    blocks = text.split("```yaml\n")[1:]
    assert blocks, "the README has no yaml example"
    for i, block in enumerate(blocks):
        path = tmp_path / f"readme-{i}.yaml"
        path.write_text(block.split("```")[0])
        proc = run("validate", str(path))
        assert proc.returncode == 0, proc.stderr


def test_every_command_the_parser_offers_is_in_the_readme():
    import argparse
    sys.path.insert(0, str(REPO))
    from lab.run import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    readme = (REPO / "README.md").read_text()
    missing = [name for name in sub.choices if f"lab/run.py {name}" not in readme
               and f"`{name}`" not in readme]
    assert missing == [], missing


def test_validate_reads_only_yaml_files_and_echoes_no_file_content(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("root:$6$verysecrethash:20228:0:99999:7:::\n")
    proc = run("validate", str(secret))
    assert proc.returncode == 1 and "not a .yaml or .yml file" in proc.stderr
    assert "verysecrethash" not in proc.stderr + proc.stdout
    # positive control: the same content as a .yaml file is read (and its key is shortened)
    as_yaml = tmp_path / "secret.yaml"
    as_yaml.write_text("root:$6$verysecrethash_and_a_long_tail_of_characters:20228:0:99999:7:::\n")
    proc = run("validate", str(as_yaml))
    assert proc.returncode == 1 and "unknown key" in proc.stderr
    assert "99999:7" not in proc.stderr
