"""Teaching aids: the Vagrantfile, topology drawings, and self-contained run reports."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.analysis.draw import draw
from lab.analysis.report import write_report
from lab.model.topology import available_topologies, load_topology

REPO = Path(__file__).resolve().parents[2]


def test_vagrantfile_is_valid_ruby_and_provisions_with_the_installer():
    if shutil.which("ruby") is None:
        pytest.fail("ruby is missing: install.sh installs it to check the Vagrantfile")
    proc = subprocess.run(["ruby", "-c", str(REPO / "Vagrantfile")], capture_output=True, text=True)
    assert proc.returncode == 0 and "Syntax OK" in proc.stdout, proc.stderr
    text = (REPO / "Vagrantfile").read_text()
    assert "bash install.sh" in text and '"/vagrant"' in text
    assert 'ACTIVELAB_CPUS", "2"' in text and 'ACTIVELAB_MEMORY", "4096"' in text
    # boxes built for both providers (bento: VirtualBox and libvirt), selectable
    assert '"bento/ubuntu-22.04"' in text and '"bento/ubuntu-24.04"' in text
    assert 'provider "virtualbox"' in text and 'provider "libvirt"' in text
    assert "ubuntu/jammy64" not in text                  # VirtualBox only: no libvirt build


def test_install_adds_netem_on_ubuntu_and_pins_python_packages():
    text = (REPO / "install.sh").read_text()
    assert 'linux-modules-extra-$(uname -r)' in text and "modinfo sch_netem" in text
    assert "-c constraints.txt" in text


def test_constraints_pin_every_package_the_venv_installs():
    """Every package of .venv (not the system's) is pinned to one version per Python."""
    import sys
    from importlib import metadata
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        req, _, marker = line.partition(";")
        name, _, version = req.strip().partition("==")
        assert version, f"constraints.txt: {line!r} is not pinned with =="
        if marker:
            env = {"python_version": f"{sys.version_info[0]}.{sys.version_info[1]}"}
            low = marker.strip()
            op, value = low.split("python_version")[1].strip().split(" ", 1)
            major_minor = tuple(int(x) for x in env["python_version"].split("."))
            bound = tuple(int(x) for x in value.strip().strip('"').split("."))
            if not {"<": major_minor < bound, ">=": major_minor >= bound}[op]:
                continue
        key = name.lower().replace("_", "-").replace(".", "-")
        assert key not in pins, f"constraints.txt pins {name} twice for this Python"
        pins[key] = version
    venv = Path(sys.prefix)
    if not str(venv).endswith(".venv"):
        pytest.skip("not running in the project's .venv")
    site = next(venv.glob("lib/python3*/site-packages"))
    for dist in metadata.distributions(path=[str(site)]):
        name = dist.metadata["Name"]
        key = name.lower().replace("_", "-").replace(".", "-")
        if key in ("activelab", "pip", "setuptools"):
            continue
        assert key in pins, f"{name} is installed in .venv but not pinned in constraints.txt"
        assert pins[key] == dist.version, f"{name} {dist.version} vs constraints {pins[key]}"


@pytest.mark.parametrize("name", available_topologies())
def test_every_topology_draws_to_a_png(name, tmp_path):
    out = draw(load_topology(name), tmp_path / f"{name}.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000


def test_report_references_only_files_in_its_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("delivery.png", "sub/firewall.png"):
        draw(load_topology("dual-active"), tmp_path / name)
    (tmp_path / "params.json").write_text('{"experiment": "x"}')
    (tmp_path / "platform.json").write_text('{"datapath": "user"}')
    report = write_report(tmp_path, "ActiveLab test", "summary <table> & more").read_text()
    refs = re.findall(r"(?:src|href)='([^']+)'", report)
    assert refs and "delivery.png" in refs and "sub/firewall.png" in refs
    for ref in refs:
        assert not ref.startswith(("/", "http", "file:")) and ".." not in ref
        assert (tmp_path / ref).exists(), ref
    assert "summary &lt;table&gt; &amp; more" in report and "&quot;datapath&quot;: &quot;user&quot;" in report
