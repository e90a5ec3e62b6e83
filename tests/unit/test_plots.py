"""Every experiment's figure is redrawn from its run folder's metrics.json (lab/run.py plot)."""

import json

import pytest

from lab import plots
from lab.errors import LabError

FIREWALL = {"remedies": [
    {"remedy": r, "asymmetric": {"established": e, "attempted": 12},
     "failover": {"survived": s, "established": 12}} for r, e, s in
    (("none", 0, 0), ("symmetric", 12, 0), ("sync", 12, 12))]}
DESIGN = {"design": "dual-active", "rto_ms": 49.0, "sessions": 12, "sessions_lost": 6,
          "utilization": {"dc1": 0.5, "dc2": 0.5}}
GSLB = {"variants": [{"variant": "anycast", "failover_s": 0.09},
                     {"variant": "gslb ttl 5", "failover_s": None}]}


@pytest.mark.parametrize("metrics, png", [
    (FIREWALL, "firewall.png"), ({"designs": [DESIGN]}, "designs.png"), (DESIGN, "designs.png"),
    (GSLB, "gslb.png")])
def test_plot_run_redraws_the_figure_of_each_experiment(tmp_path, metrics, png):
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    assert plots.plot_run(tmp_path) == [tmp_path / png]
    assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / png).stat().st_size > 10000


def test_a_folder_without_metrics_is_a_one_line_error(tmp_path):
    with pytest.raises(LabError, match="no readable metrics.json"):
        plots.plot_run(tmp_path)
