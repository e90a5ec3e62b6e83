"""The site firewalls of a running lab (lab.firewalls): each firewall node made a stateful
bridge with the topology's policy, its kernel settings read back, conntrackd between the two,
and the nftables counters. The rulesets and settings themselves are data in
lab/emulation/firewall.py.
"""

import time

from lab.emulation import firewall, probe, shaping
from lab.errors import LabError


class Firewalls:
    def __init__(self, lab):
        self.lab = lab
        self.settings = {}            # {firewall: {sysctl: value as read back}}

    def start(self, midstream=False, accept_all=False):
        """Each firewall node: a bridge through nftables + conntrack, with the topology's policy
        (midstream: loose TCP pickup; accept_all: the probe suite's positive control; see
        lab/emulation/firewall.py). Safe to call again to change it."""
        lab = self.lab
        if lab.topo.firewalls:
            probe.load_modules("br_netfilter")       # bridged IPv4 through nftables
        for index, (name, link) in enumerate(lab.topo.firewalls, start=1):
            configured = lab.node_run(name, ["ip", "link", "show", firewall.BRIDGE],
                                      check=False).returncode == 0
            for argv in firewall.node_setup_cmds(f"{name}-eth0", f"{name}-eth1",
                                                 strict=not midstream):
                if not (configured and argv[:2] == ["ip", "link"]):
                    lab.node_run(name, argv)
            self.check_settings(name, firewall.expected_settings(not midstream))
            rules = firewall.ruleset(lab.topo, firewall.outside_intf(name, link), midstream,
                                     accept_all)
            lab.node_run(name, ["nft", "flush", "ruleset"])
            lab.node_run(name, ["nft", "-f", "-"], stdin=rules)
            if configured:       # a new policy starts with no state: what the old one let
                lab.node_run(name, ["conntrack", "-F"])          # in must not stay let in
            if lab.sync_link is not None and not configured:
                self.address_sync_link(name, index)

    def address_sync_link(self, name, index):
        lab, intf = self.lab, firewall.sync_intf(name)
        lab.node_run(name, ["ip", "addr", "add", firewall.SYNC_NET.format(index) + "/30",
                            "dev", intf])
        lab.node_run(name, ["ip", "link", "set", intf, "up"])
        for argv in shaping.offload_cmds(intf):      # the delay line copies frames as they
            lab.node_run(name, argv)                 # are: checksums must be done
        if lab.platform.delay_method == "netem" and lab.sync_link.impaired:
            for argv in shaping.egress_cmds(intf, lab.sync_link, "netem")[1:]:
                lab.node_run(name, argv)

    def check_settings(self, name, expected):
        """Read the firewall node's kernel settings back; LabError if one did not take."""
        actual = {}
        for key in expected:
            got = self.lab.node_run(name, ["sysctl", "-n", key], check=False)
            if got.returncode == 0:
                actual[key] = got.stdout.strip()
        wrong = firewall.settings_mismatch(expected, actual)
        if wrong:
            raise LabError(f"firewall {name}: {'; '.join(wrong)} (the kernel did not take the "
                           "setting: the firewall would not be the one the experiment claims)")
        self.settings[name] = actual

    def start_sync(self):
        """conntrackd (FT-FW) on both firewalls: each learns the other's sessions."""
        lab = self.lab
        fws = lab.topo.firewalls
        if len(fws) != 2:
            raise LabError(f"session sync needs exactly two firewalls; {lab.topo.name} has "
                           f"{len(fws)}")
        runtime = lab.scratch_folder("conntrackd")
        procs = []
        for index, (name, _) in enumerate(fws, start=1):
            ctl = firewall.conntrackd_ctl(runtime, name)
            if len(str(ctl).encode()) > firewall.UNIX_PATH_MAX:
                raise LabError(f"{ctl}: too long for a unix socket ({len(str(ctl))} bytes, at "
                               f"most {firewall.UNIX_PATH_MAX}); set ACTIVELAB_SCRATCH to a "
                               "shorter folder")
            conf = lab.run_dir / f"conntrackd-{name}.conf"
            conf.write_text(firewall.conntrackd_conf(name, index, 3 - index, lab.run_dir,
                                                     runtime))
            procs.append((name, ctl, lab.run_dir / f"conntrackd-{name}.log",
                          lab.popen(name, ["conntrackd", "-C", conf], f"conntrackd in {name}")))
        # running means its control socket is there; a conntrackd that cannot start (a bad
        # configuration, a socket it cannot make) exits: say so, with its log, not later as
        # sessions that silently do not survive
        deadline = time.monotonic() + probe.patience(10.0)
        for name, ctl, log, proc in procs:
            while not ctl.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    last = (log.read_text().strip().splitlines() or ["nothing logged"])[-1] \
                        if log.exists() else "no log"
                    state = (f"exited with code {proc.returncode}" if proc.poll() is not None
                             else "did not open its control socket")
                    raise LabError(f"conntrackd in {name} {state} ({last}); see {log}")
                time.sleep(0.05)

    def counters(self, name):
        """{allowed_new, denied, invalid, spoofed: packets} of a firewall node."""
        out = self.lab.node_run(name, ["nft", "-j", "list", "counters", "table", "inet",
                                       firewall.TABLE]).stdout
        return firewall.parse_counters(out)
