"""The interactive lab: the Mininet CLI on a running topology with the controller attached.

    sudo python lab/run.py cli dual-active

Hosts, switches and links have the topology's names (`client1 ping 10.200.0.10`,
`dc1-srv1 ip route`); `pingall` pings between lab hosts (not the delay-line nodes); `vip`
shows which server answers each client. Leaving the CLI (exit, Ctrl-D) tears the lab down.
"""

from mininet.cli import CLI
from mininet.log import setLogLevel

from lab import traffic
from lab.controller import intent_for


class LabCLI(CLI):
    """Mininet's CLI, aware of which nodes are lab hosts and which services exist."""

    prompt = "activelab> "

    def __init__(self, lab, **kwargs):
        self.lab = lab
        super().__init__(lab.net, **kwargs)

    def do_pingall(self, line):
        """Ping between every pair of lab hosts (delay-line nodes are not hosts)."""
        self.mn.ping(hosts=[self.lab.nodes[h.name] for h in self.lab.topo.hosts])

    def do_vip(self, line):
        """Show which server answers each client on each service VIP."""
        for service in self.lab.topo.services:
            for client in self.lab.topo.clients:
                server = traffic.vip_answer(self.lab, client.name, service.vip, service.port)
                print(f"{client.name} -> {service.name} {service.vip}:{service.port}: "
                      f"{server or 'no answer'}")


def banner(topo, options):
    services = ", ".join(f"{v.name} {v.vip}:{v.port}" for v in topo.services) or "none"
    return (f"\nActiveLab {topo.name}: controller in {options['mode']} mode, VIP policy "
            f"{options['vip_policy']}.\n"
            f"hosts: {', '.join(h.name for h in topo.hosts)}\n"
            f"services: {services}\n"
            "try: pingall | vip | client1 ping -c3 10.200.0.10 | dc1-srv1 ip route | exit\n")


def run_cli(ctx):
    """Bring the lab up, attach the controller, and hand the terminal to the CLI."""
    with ctx.open_lab() as lab:
        ready = lab.attach_controller(intent_for(ctx.topo, ctx.options["mode"],
                                                 ctx.options["vip_policy"]),
                                      bfd_ms=ctx.options["bfd_ms"])
        ctx.log(f"controller ready in {ready:.1f}s")
        print(banner(ctx.topo, ctx.options), flush=True)
        setLogLevel("output")              # command output and pingall results, not build chatter
        LabCLI(lab)
        setLogLevel("warning")
        ctx.log("leaving the CLI: tearing down")
