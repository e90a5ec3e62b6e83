"""Every experiment's figure is redrawn from its run folder's metrics.json by the experiment
that wrote it (lab/run.py plot dispatches on params.json)."""

import json

import pytest

import experiments
from lab.errors import LabError
from lab.experiment import Experiment

FIREWALL = {"remedies": [
    {"remedy": r, "asymmetric": {"established": e, "attempted": 12},
     "failover": {"survived": s, "established": 12}} for r, e, s in
    (("none", 0, 0), ("symmetric", 12, 0), ("sync", 12, 12))]}
DESIGN = {"design": "dual-active", "rto_ms": 49.0, "sessions": 12, "sessions_lost": 6,
          "utilization": {"dc1": 0.5, "dc2": 0.5}}
GSLB = {"variants": [{"variant": "anycast", "failover_s": 0.09},
                     {"variant": "gslb ttl 5", "failover_s": None}]}


@pytest.mark.parametrize("experiment, metrics, png", [
    ("firewall", FIREWALL, "firewall.png"), ("compare-designs", {"designs": [DESIGN]}, "designs.png"),
    ("primary-backup", DESIGN, "designs.png"), ("multi-active", DESIGN, "designs.png"),
    ("three-site", DESIGN, "designs.png"), ("gslb", GSLB, "gslb.png")])
def test_plot_redraws_the_figure_of_each_experiment(tmp_path, experiment, metrics, png):
    (tmp_path / "params.json").write_text(json.dumps({"experiment": experiment}))
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    assert experiments.plot(tmp_path) == [tmp_path / png]
    assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / png).stat().st_size > 10000


def test_a_folder_without_metrics_is_a_one_line_error(tmp_path):
    (tmp_path / "params.json").write_text(json.dumps({"experiment": "gslb"}))
    with pytest.raises(LabError, match="no readable metrics.json"):
        experiments.plot(tmp_path)


@pytest.mark.parametrize("params, said", [
    (None, "no readable params.json"), ("{}", "no readable params.json"),
    ('{"experiment": "warp-drive"}', "written by experiment 'warp-drive'")])
def test_a_folder_of_no_known_experiment_is_a_one_line_error(tmp_path, params, said):
    if params is not None:
        (tmp_path / "params.json").write_text(params)
    with pytest.raises(LabError, match=said) as err:
        experiments.plot(tmp_path)
    assert "\n" not in str(err.value)


def test_every_registered_experiment_follows_the_protocol():
    assert set(experiments.EXPERIMENTS) >= {"dual-active", "firewall", "gslb", "primary-backup",
                                            "three-site", "multi-active", "compare-designs"}
    for name, experiment in experiments.EXPERIMENTS.items():
        assert experiment.name == name and experiment.description and experiment.doc
        assert all(callable(f) for f in (experiment.run, experiment.analyse,
                                          experiment.summarize, experiment.plot))


def test_a_module_missing_part_of_the_protocol_is_refused():
    import types
    module = types.ModuleType("half_done")
    module.NAME, module.DESCRIPTION, module.TOPOLOGY = "x", "y", "z"
    module.add_arguments = module.run = lambda *a: None
    with pytest.raises(TypeError, match="lacks analyse, summarize, plot"):
        Experiment.from_module(module)
    module.analyse = module.summarize = module.plot = lambda *a: None
    assert Experiment.from_module(module).name == "x"


def test_experiment_options_are_declared_once_and_parsed_once():
    from experiments.dual_active import DualActiveOptions
    from experiments.firewall import FirewallOptions
    raw = {"quick": True, "duration": None, "pings": 7, "command": "dual-active", "out": None}
    opts = DualActiveOptions.parse(raw)
    assert opts.pings == 7                                       # given: wins
    assert opts.duration == DualActiveOptions.QUICK["duration"]   # left out, --quick: quick's
    assert opts.iperf_seconds == 1.0 and opts.probe_rate == 1000.0 and opts.mode == "protection"
    assert DualActiveOptions.parse({"quick": False}).duration == DualActiveOptions.default("duration")
    assert FirewallOptions.parse({"quick": True}).sessions == 3
    assert FirewallOptions.parse({"quick": True, "sessions": 5}).sessions == 5


def test_every_experiment_names_its_options_and_the_runner_parses_them_once():
    """Each experiment's OPTIONS is its own dataclass (a subclass of lab.experiment.Options);
    the runner parses the command line into it once (ctx.opts): what each --quick changes and
    each default come from there, for every experiment."""
    from lab.experiment import Options
    from lab.run import build_parser
    parser = build_parser()
    for name, experiment in experiments.EXPERIMENTS.items():
        assert issubclass(experiment.options, Options), name
        opts = experiment.options.parse(vars(parser.parse_args([name, "--quick"])))
        assert opts.quick is True and opts.mode == "protection", name
        for field_, value in experiment.options.QUICK.items():
            assert getattr(opts, field_) == value, (name, field_)
    compare = experiments.EXPERIMENTS["compare-designs"].options
    assert compare.parse(vars(parser.parse_args(["compare-designs"]))).designs == \
        "dual-active,primary-backup,three-site,multi-active"
    assert compare.parse(vars(parser.parse_args(["compare-designs", "--designs",
                                                 "primary-backup"]))).designs == "primary-backup"


def _square(x):
    return x * x


def _fail(x):
    raise ValueError(f"figure {x} failed")


def test_figures_drawn_at_once_come_back_in_order_and_errors_are_raised():
    from lab.analysis import plots
    jobs = [(_square, (n,)) for n in range(6)]
    assert plots.render(jobs, workers=2) == [n * n for n in range(6)]
    assert plots.render(jobs, workers=1) == [n * n for n in range(6)]     # the same, serially
    with pytest.raises(ValueError, match="figure 3 failed"):
        plots.render([(_square, (1,)), (_fail, (3,))], workers=2)
