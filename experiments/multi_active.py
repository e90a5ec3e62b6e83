"""multi-active: N active sites (mesh or ring of DCI links), a client region near each.

Every site serves the clients nearest to it; when one powers off, only its clients move.
Measured with the designs yardstick (experiments/designs.py).
"""

from experiments import designs
from experiments.designs import COMMON_OPTIONS  # noqa: F401  (the CLI reads it here)
from lab.cli.options import bounded
from lab.model.topology import MAX_SITES, load_topology, multi_active

NAME = "multi-active"
TOPOLOGY = "generated"      # from --sites and --layout; or a file such as multi-active-4-ring
DESCRIPTION = "N active sites (mesh or ring): RTO, sessions lost, utilization"


def add_arguments(parser):
    default = designs.DesignOptions.default
    parser.add_argument("--sites", type=bounded(int, 2, MAX_SITES), default=default("sites"),
                        metavar="N", help=f"active sites, 2 to {MAX_SITES} (default "
                                          f"{default('sites')})")
    parser.add_argument("--layout", choices=("mesh", "ring"), default=default("layout"),
                        help=f"DCI links: full mesh or ring (default {default('layout')})")
    designs.add_arguments(parser)


def topology_for(args):
    if args.topology != TOPOLOGY:
        return load_topology(args.topology)
    return multi_active(args.sites, args.layout)


def run(ctx):
    return designs.run_one(ctx, NAME)


plot = designs.plot_one
analyse = designs.analyse_design
summarize = designs.summarize_one
OPTIONS = designs.DesignOptions
