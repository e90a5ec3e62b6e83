"""compare-designs: primary/backup, dual-active, two-site-three-center and multi-active under
the same client traffic and the same fault (dc1 powers off), in one table and one figure;
with each design's data tier (--data on, the default: PostgreSQL async standby, PostgreSQL
sync local + async remote DR, Galera) its RPO, write RTO and commit latency beside them
(experiments/designs.py).
"""

import json
from dataclasses import dataclass
from pathlib import Path

from experiments import designs
from lab.analysis import plots
from lab.experiment import Summary
from lab.model.topology import MAX_SITES
from lab.cli.options import bounded, name_list
from lab.analysis.results import write_json

NAME = "compare-designs"
TOPOLOGY = "per design: two-region, three-site, generated multi-active"
DESCRIPTION = ("every design, same traffic and fault: RTO, sessions lost, utilization, DCI use, "
               "and its data tier's RPO, write RTO and commit latency")


# Each design brings its own topology and VIP policy: no --topology, no --vip-policy.
COMMON_OPTIONS = ("mode", "bfd_ms")


@dataclass(frozen=True)
class CompareOptions(designs.DesignOptions):
    designs: str = ",".join(designs.DESIGNS)      # the designs to run, in order


OPTIONS = CompareOptions


def add_arguments(parser):
    parser.add_argument("--designs", type=name_list(tuple(designs.DESIGNS)),
                        default=None, metavar="LIST",
                        help=f"designs to run (default {','.join(designs.DESIGNS)})")
    default = CompareOptions.default
    parser.add_argument("--sites", type=bounded(int, 2, MAX_SITES), default=None, metavar="N",
                        help=f"sites of the multi-active design, 2 to {MAX_SITES} (default "
                             f"{default('sites')})")
    parser.add_argument("--layout", choices=("mesh", "ring"), default=None,
                        help=f"the multi-active design's DCI links (default {default('layout')})")
    designs.add_arguments(parser)


def topology_for(args):
    return designs.design_topology("dual-active", vars(args))


def plot(run_dir):
    """RTO, utilization and sessions lost of every design, side by side."""
    out = run_dir / "designs.png"
    results = plots.read_metrics(run_dir)["designs"]
    plots.designs(results, out)
    paths = [out]
    for result in results:                  # each design's power-off up close, in its folder
        paths += plots.design_closeups(run_dir / result["design"], result)
    return paths


def run(ctx):
    """Every design in its own lab and subfolder (raw files only), then metrics.json, the
    figure and the summary from those files."""
    designs.run_designs(ctx, ctx.opts.designs.split(","))
    write_json(ctx.run_dir / "metrics.json", analyse(ctx.run_dir))
    plot(ctx.run_dir)
    return summarize(ctx.run_dir)


def analyse(run_dir):
    """metrics.json's content from the designs' subfolders' raw files alone (pure)."""
    run_dir = Path(run_dir)
    params = json.loads((run_dir / "params.json").read_text())
    names = CompareOptions.parse(params["options"]).designs.split(",")
    results = [designs.analyse_design(run_dir / name) for name in names]
    return {"designs": results,
            # the data tier's figures keyed by design, under the data experiments' names
            "variants": {r["design"]: {
                "data": r["data"], "rpo_writes": r["rpo_writes"], "rpo_ms": r["rpo_ms"],
                "rto_ms": r["write_rto_ms"], "commit_ms_p50": r["commit_ms_p50"],
                "commit_ms_p99": r["commit_ms_p99"], "service_rto_ms": r["rto_ms"],
                "memory_mb": r.get("memory_mb")}
                for r in results if r.get("data")}}


def summarize(run_dir):
    """The run's Summary from metrics.json."""
    results = json.loads((Path(run_dir) / "metrics.json").read_text())["designs"]
    text = designs.table(results) + f"\nplot: {Path(run_dir) / 'designs.png'}"
    failed = designs.problems(results)
    return Summary(text, ok=not failed, problems=failed)
