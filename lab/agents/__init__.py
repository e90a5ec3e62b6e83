"""Programs that run inside lab hosts (`python -m lab.agents.NAME`): probe streams, sessions,
the VIP service, GSLB, standby promotion, firewall probes, the userspace delay line. Each
prints 'ready' when it is, and builds its own command line beside its parser."""
