"""The experiments, by name. Each module has NAME, DESCRIPTION, TOPOLOGY, add_arguments(parser)
and run(ctx) -> Summary (see lab/experiment.py for ctx)."""

from experiments import dual_active, firewall

EXPERIMENTS = {module.NAME: module for module in (dual_active, firewall)}
