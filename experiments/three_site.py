"""three-site: production, a hot local DR site and a cold remote DR site ("two sites, three centers").

dc1 serves; dc2, 1.5 ms away, is a hot standby (synchronous replication, service running)
that takes over once the controller sees dc1's servers fail their health checks; dc3, 25 ms
away, is a cold standby promoted only when dc1 is gone. Measured with the designs yardstick
(experiments/designs.py).
"""

from experiments import designs
from lab.experiment import Summary
from lab.results import write_json

NAME = "three-site"
TOPOLOGY = "three-site"
DESCRIPTION = "production, hot local DR (1.5 ms), cold remote DR (25 ms): RTO and roles"


def add_arguments(parser):
    parser.add_argument("--probe-rate", type=float, default=200.0, metavar="PPS",
                        help="probe packets per second per client (default 200)")


def run(ctx):
    result = designs.run_design(ctx, NAME)
    write_json(ctx.run_dir / "metrics.json", result)
    return Summary(designs.table([result]), ok=result["rto_ms"] is not None, problems=[])
