"""primary-backup: one active site, one idle standby promoted after the primary fails.

The classic design the active/active sites are measured against: dc2 is a cold standby
whose promotion agent starts the service once it has seen dc1 down (1.5 s) and warmed up
(2 s). Measured with the designs yardstick (experiments/designs.py).
"""

from experiments import designs
from lab.experiment import Summary
from lab.results import write_json

NAME = "primary-backup"
TOPOLOGY = "two-region"
DESCRIPTION = "one active site and a cold standby: RTO, sessions lost, idle capacity"


def add_arguments(parser):
    parser.add_argument("--probe-rate", type=float, default=200.0, metavar="PPS",
                        help="probe packets per second per client (default 200)")


def run(ctx):
    result = designs.run_design(ctx, NAME)
    write_json(ctx.run_dir / "metrics.json", result)
    return Summary(designs.table([result]), ok=result["rto_ms"] is not None, problems=[])
