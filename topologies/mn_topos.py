"""Every ActiveLab topology as a Mininet custom topology, by name.

    sudo mn --custom topologies/mn_topos.py --topo dual-active --link tc \
            --switch ovs,failMode=standalone,stp=True --controller none

The topologies have loops (two DCI links, a client edge homed to both sites), so plain Mininet
needs spanning tree (stp=True above; allow ~30 s before pingall) or a controller that handles
loops. Hosts get a default route on their interface: without a gateway the sites form one L2
domain, so hosts in different subnets still reach each other. Link delays use netem
(`--link tc`); on a kernel without sch_netem use `sudo python lab/run.py cli` instead, which
has the userspace delay line.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mininet.topo import Topo  # noqa: E402

from lab.model.topology import available_topologies, load_topology  # noqa: E402


class LabTopo(Topo):
    """A topology file from this folder, as Mininet nodes and TCLink parameters."""

    def build(self, name="dual-active"):
        topo = load_topology(name)
        for switch in topo.switches:
            self.addSwitch(switch.name, dpid=f"{switch.dpid:016x}")
        for host in topo.hosts:
            self.addHost(host.name, ip=str(host.ip), mac=host.mac,
                         defaultRoute=f"dev {host.intf}")
            port = topo.port_to(host.switch, host.name)
            self.addLink(host.name, host.switch, port2=port.number,
                         intfName1=host.intf, intfName2=port.intf)
        for link in topo.links:
            pa, pb = topo.port_to(link.a, link.name), topo.port_to(link.b, link.name)
            params = {"max_queue_size": link.queue}
            if link.bw:
                params["bw"] = link.bw
            if link.delay_ms:
                params["delay"] = f"{link.delay_ms:g}ms"
            if link.jitter_ms:
                params["jitter"] = f"{link.jitter_ms:g}ms"
            if link.loss:
                params["loss"] = link.loss
            self.addLink(link.a, link.b, key=link.name, port1=pa.number, port2=pb.number,
                         intfName1=pa.intf, intfName2=pb.intf, **params)


topos = {name: (lambda name=name: LabTopo(name=name)) for name in available_topologies()}
