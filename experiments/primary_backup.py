"""primary-backup: one active site, one idle standby promoted after the primary fails.

The classic design the active/active sites are measured against: dc2 is a cold standby
whose promotion agent starts the service once it has seen dc1 down (3 missed checks, about
1 s) and warmed up
(2 s). Measured with the designs yardstick (experiments/designs.py).
"""

from experiments import designs
from experiments.designs import COMMON_OPTIONS, add_arguments  # noqa: F401  (the CLI reads them here)

NAME = "primary-backup"
TOPOLOGY = "two-region"
DESCRIPTION = "one active site and a cold standby: RTO, sessions lost, idle capacity"


def run(ctx):
    return designs.run_one(ctx, NAME)


plot = designs.plot_one
analyse = designs.analyse_design
summarize = designs.summarize_one
OPTIONS = designs.DesignOptions
