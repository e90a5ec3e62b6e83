"""The experiments, by name. Each module has NAME, DESCRIPTION, TOPOLOGY, add_arguments(parser)
and run(ctx) -> Summary (see lab/experiment.py for ctx); topology_for(args), when present,
builds the topology instead of loading --topology."""

from experiments import (compare_designs, dual_active, firewall, gslb, multi_active,
                         primary_backup, three_site)

EXPERIMENTS = {module.NAME: module for module in (dual_active, firewall, primary_backup,
                                                  three_site, multi_active, gslb,
                                                  compare_designs)}
