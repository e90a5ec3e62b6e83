"""A prompt on the lab that is up (`lab/run.py cli` while `lab/run.py up` runs one).

Every lab command is a request to the lab's supervisor (lab/cli/lifecycle.py); a line that
starts with a host name runs in that host (`client1 ping -c3 dc2-srv1`: host names after the
first word become their IP addresses, as in Mininet's CLI). Leaving the prompt (exit, Ctrl-D)
leaves the lab up; `down` takes it down.
"""

import cmd
import shlex
import subprocess

from lab.cli import lifecycle
from lab.errors import LabError

COMMANDS = ("status", "vip", "sites", "fail LINK", "heal LINK", "gray LINK", "ungray LINK",
            "power-off SITE", "power-on SITE", "move HOST SITE", "paths SRC DST",
            "flows SWITCH", "pingall", "HOST CMD...", "down", "exit")
ALIASES = {"power-off": "power_off", "power-on": "power_on"}


def translate(line):
    """'power-off dc1' -> 'power_off dc1' (cmd.Cmd's command names are identifiers)."""
    word, _, rest = line.strip().partition(" ")
    return f"{ALIASES.get(word, word)} {rest}".strip()


class AttachedCLI(cmd.Cmd):
    prompt = "activelab> "

    def __init__(self, session, **kwargs):
        super().__init__(**kwargs)
        self.session = session
        self.status = lifecycle.request("status")["data"]
        self.hosts = {h["name"]: h["ip"] for h in self.status["hosts"]}
        self.intro = (f"\nattached to the running lab {self.status['topology']} "
                      f"({session.data.get('mode')} mode, VIP policy "
                      f"{session.data.get('vip_policy')}); leaving keeps it up.\n"
                      f"commands: {' | '.join(COMMANDS)}\n")

    def precmd(self, line):
        return translate(line.split("#")[0])

    def emptyline(self):
        return False

    def ask(self, cmd_, **args):
        try:
            answer = lifecycle.request(cmd_, **args)
        except LabError as exc:
            print(f"error: {exc}")
            return None
        if answer.get("out"):
            print(answer["out"])
        return answer

    def do_status(self, line):
        """status: nodes, links, controller, VIP placement, backup coverage."""
        self.ask("status")

    def do_vip(self, line):
        """vip: which server answers each client on each service VIP."""
        try:
            data = lifecycle.request("status")["data"]
        except LabError as exc:
            print(f"error: {exc}")
            return
        for v in data["vip_placement"]:
            print(f"{v['client']} -> {v['service']} {v['vip']}: {v['server'] or 'no answer'}")

    def do_sites(self, line):
        """sites: sites, their power and hosts."""
        try:
            data = lifecycle.request("status")["data"]
        except LabError as exc:
            print(f"error: {exc}")
            return
        for site in data["sites"]:
            hosts = [f"{h['name']} ({h['health'] or '-'})" for h in data["hosts"]
                     if h["site"] == site["name"]]
            print(f"{site['name']:8} power {site['power']:3}  {', '.join(hosts)}")

    def _one(self, verb, line, n, usage):
        args = line.split()
        if len(args) != n:
            print(f"usage: {usage}")
            return
        keys = {"link": ("link",), "site": ("site",), "move": ("host", "site")}[
            "move" if verb == "move" else "site" if verb.startswith("power") else "link"]
        self.ask(verb, **dict(zip(keys, args)))

    def do_fail(self, line):
        """fail LINK: cut a link (carrier lost at both ends)."""
        self._one("fail", line, 1, "fail LINK")

    def do_heal(self, line):
        """heal LINK: restore a cut link."""
        self._one("heal", line, 1, "heal LINK")

    def do_gray(self, line):
        """gray LINK: the link drops every frame but keeps its carrier (BFD finds it)."""
        self._one("gray", line, 1, "gray LINK")

    def do_ungray(self, line):
        """ungray LINK: end a gray failure."""
        self._one("ungray", line, 1, "ungray LINK")

    def do_power_off(self, line):
        """power-off SITE: the site's switch, hosts and links go dark at once."""
        self._one("power-off", line, 1, "power-off SITE")

    def do_power_on(self, line):
        """power-on SITE: power a site back on."""
        self._one("power-on", line, 1, "power-on SITE")

    def do_move(self, line):
        """move HOST SITE: re-link a host to another site (it keeps its IP and MAC)."""
        self._one("move", line, 2, "move HOST SITE")

    def do_paths(self, line):
        """paths SRC DST: the current and backup paths between two switches or hosts."""
        args = line.split()
        if len(args) != 2:
            print("usage: paths SRC DST (switch or host names)")
            return
        self.ask("paths", src=args[0], dst=args[1])

    def do_flows(self, line):
        """flows SWITCH: the switch's flows and groups, without counters."""
        from lab.cli.interactive import readable_flows
        switches = [s["name"] for s in self.status["switches"]]
        if line.strip() not in switches:
            print(f"usage: flows SWITCH, one of: {', '.join(switches)}")
            return
        print("\n".join(readable_flows(line.strip())))

    def do_pingall(self, line):
        """pingall: one ping between every pair of hosts (through the anycast gateway)."""
        names = list(self.hosts)
        lost = total = 0
        for src in names:
            got = []
            for dst in names:
                if dst == src:
                    continue
                total += 1
                rc = self.run_in(src, ["ping", "-c1", "-W1", self.hosts[dst]], quiet=True)
                got.append(dst if rc == 0 else "X")
                lost += rc != 0
            print(f"{src} -> {' '.join(got)}")
        print(f"*** Results: {round(100 * lost / total) if total else 0}% dropped "
              f"({total - lost}/{total} received)")

    def do_down(self, line):
        """down: tear the lab down and leave."""
        try:
            problems = lifecycle.down()
        except LabError as exc:
            print(f"error: {exc}")
            return False
        print("the lab is down" + ("" if not problems else f"; left: {'; '.join(problems)}"))
        return True

    def do_exit(self, line):
        """exit: leave the prompt; the lab stays up (lab/run.py down takes it down)."""
        print("the lab stays up; take it down with: sudo python lab/run.py down")
        return True

    do_quit = do_exit

    def do_EOF(self, line):
        print()
        return self.do_exit(line)

    def default(self, line):
        words = shlex.split(line)
        if words and words[0] in self.hosts:
            argv = [self.hosts.get(w, w) for w in words[1:]]
            if not argv:
                print(f"usage: {words[0]} CMD...")
                return
            self.run_in(words[0], argv)
            return
        print(f"unknown command {words[0] if words else line!r}; try: {' | '.join(COMMANDS)}")

    def run_in(self, host, argv, quiet=False):
        try:
            full = lifecycle.exec_argv(host, argv)
        except LabError as exc:
            print(f"error: {exc}")
            return 1
        out = subprocess.DEVNULL if quiet else None
        try:
            return subprocess.run(full, stdout=out, stderr=out).returncode
        except KeyboardInterrupt:
            return 130

    def completenames(self, text, *ignored):
        words = [c.split()[0] for c in COMMANDS] + list(self.hosts)
        return [w for w in words if w.startswith(text)]


def attach():
    """Run the prompt on the lab that is up (LabError when none is)."""
    session = lifecycle.running_session()
    if session is None:
        raise LabError("no lab is up; start one with: sudo python lab/run.py up TOPOLOGY")
    cli = AttachedCLI(session)
    while True:
        try:
            cli.cmdloop()
            return
        except KeyboardInterrupt:
            print("^C (exit leaves the prompt; the lab stays up)")
            cli.intro = None
