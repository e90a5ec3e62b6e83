"""three-site: production, a hot local DR site and a cold remote DR site ("two sites, three centers").

dc1 serves; dc2, 1.5 ms away, is a hot standby (synchronous replication, service running)
that takes over once the controller sees dc1's servers fail their health checks; dc3, 25 ms
away, is a cold standby promoted only when dc1 is gone. Measured with the designs yardstick
(experiments/designs.py).
"""

from experiments import designs
from experiments.designs import COMMON_OPTIONS, add_arguments  # noqa: F401  (the CLI reads them here)

NAME = "three-site"
TOPOLOGY = "three-site"
DESCRIPTION = "production, hot local DR (1.5 ms), cold remote DR (25 ms): RTO and roles"


def run(ctx):
    return designs.run_one(ctx, NAME)


plot = designs.plot_one
analyse = designs.analyse_design
summarize = designs.summarize_one
OPTIONS = designs.DesignOptions
