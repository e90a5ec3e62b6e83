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
