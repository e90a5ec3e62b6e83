"""The folders are the layers: no flat modules left in lab/, imports only go down, and the
old flat module names still give the same module objects."""

import ast
import importlib
from pathlib import Path

import lab

LAB = Path(lab.__file__).parent
# a layer may import the layers listed after it, never one before it
ORDER = ["cli", "experiment", "analysis", "emulation", "agents", "model", "base"]
LAYER_OF = {"cli": "cli", "run": "cli", "experiment": "experiment", "analysis": "analysis",
            "emulation": "emulation", "agents": "agents", "model": "model",
            "errors": "base", "sh": "base", "venv": "base", "__init__": "base"}


def layer(module):
    parts = module.split(".")
    return LAYER_OF.get(parts[1]) if parts[0] == "lab" and len(parts) > 1 else None


def imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "lab":
                yield from (f"lab.{a.name}" for a in node.names)
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_only_the_entry_point_and_the_base_are_flat():
    flat = sorted(p.stem for p in LAB.glob("*.py"))
    assert flat == ["__init__", "errors", "experiment", "run", "sh", "venv"]
    assert {p.name for p in LAB.iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        "model", "emulation", "agents", "analysis", "cli"}


def test_imports_only_go_down_the_layers():
    upward = []
    for path in LAB.rglob("*.py"):
        rel = path.relative_to(LAB.parent).with_suffix("")
        own = layer(".".join(rel.parts))
        for target in imports(path):
            theirs = layer(target)
            if own and theirs and ORDER.index(theirs) < ORDER.index(own):
                upward.append(f"{'.'.join(rel.parts)} -> {target}")
    assert upward == []


def test_the_layer_check_can_fail():                                 # positive control
    assert ORDER.index(layer("lab.analysis.plots")) < ORDER.index(layer("lab.model.topology"))


def test_old_flat_names_are_the_same_modules():
    for old, folder in lab.MOVED.items():
        assert importlib.import_module(f"lab.{old}") is importlib.import_module(
            f"lab.{folder}.{old}")
    assert importlib.import_module("lab.topology").__spec__.name == "lab.model.topology"
