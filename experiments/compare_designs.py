"""compare-designs: primary/backup, dual-active, two-site-three-center and multi-active under
the same client traffic and the same fault (dc1 powers off), in one table and one figure.
"""

from experiments import designs
from lab import plots
from lab.experiment import Summary
from lab.results import write_json

NAME = "compare-designs"
TOPOLOGY = "per design: two-region, three-site, generated multi-active"
DESCRIPTION = "every design, same traffic and fault: RTO, sessions lost, utilization, DCI use"


def add_arguments(parser):
    parser.add_argument("--designs", default=",".join(designs.DESIGNS), metavar="LIST",
                        help=f"designs to run (default {','.join(designs.DESIGNS)})")
    parser.add_argument("--sites", type=int, default=3, metavar="N",
                        help="sites of the multi-active design")
    parser.add_argument("--layout", choices=("mesh", "ring"), default="mesh")
    designs.add_arguments(parser)


def topology_for(args):
    return designs.design_topology("dual-active", vars(args))


def run(ctx):
    from lab.errors import LabError
    names = [n.strip() for n in ctx.options["designs"].split(",")]
    unknown = [n for n in names if n not in designs.DESIGNS]
    if unknown:
        raise LabError(f"--designs: unknown design {unknown[0]!r}; use some of "
                       + ", ".join(designs.DESIGNS))
    results = designs.run_designs(ctx, names)
    write_json(ctx.run_dir / "metrics.json", {"designs": results})
    plots.plot_run(ctx.run_dir)
    text = designs.table(results) + f"\nplot: {ctx.run_dir / 'designs.png'}"
    return Summary(text, ok=all(r["rto_ms"] is not None for r in results), problems=[])
