"""Host capability probe: what this machine can run, and which datapath and delay method to use.

Every kernel feature is probed by trying it inside a throw-away network namespace
(``unshare -n``), which disappears with the probe command: nothing is left behind.
"""

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass

from lab import sh
from lab.errors import LabError

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
PYTHON_PACKAGES = ("os-ken", "scapy", "matplotlib", "PyYAML", "networkx", "dnslib")


@dataclass
class Check:
    name: str
    status: str          # ok | fallback | missing
    detail: str
    fix: str = ""
    required: bool = True

    @property
    def blocks(self):
        return self.required and self.status == "missing"


def _in_scratch_netns(argv):
    return sh.ok(["unshare", "--net", "--"] + argv)


def load_modules(*names):
    """modprobe each kernel module the lab needs now (nothing auto-loads them: a sysctl of
    br_netfilter does not exist until it is loaded, a tap device needs tun). A kernel that
    has them built in, or lacks them, is left as it is: what then fails says so."""
    if shutil.which("modprobe"):
        for name in names:
            sh.ok(["modprobe", "-q", name])


def has_kernel_datapath():
    """True when the openvswitch kernel module is (or can be) loaded."""
    if shutil.which("modprobe"):
        sh.ok(["modprobe", "-q", "openvswitch"])
    return shutil.which("ovs-dpctl") is not None and sh.ok(["ovs-dpctl", "dump-dps"])


def has_netem():
    return _in_scratch_netns(["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])


def has_htb():
    return _in_scratch_netns(["tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb"])


def has_nftables():
    return shutil.which("nft") is not None and _in_scratch_netns(
        ["nft", "add", "table", "inet", "activelab_probe"])


def ovs_running():
    return shutil.which("ovs-vsctl") is not None and sh.ok(["ovs-vsctl", "--timeout=3", "show"])


def command_version(argv):
    """First line of a command's version output, '' when it does not run."""
    try:
        proc = sh.run(argv, check=False, timeout=5)
    except LabError:
        return ""
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


def package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def mininet_version():
    if importlib.util.find_spec("mininet") is None:
        return ""
    from mininet.net import VERSION
    return VERSION


def run_checks():
    """Probe the host; return a list of Check."""
    checks = []
    root = os.geteuid() == 0
    checks.append(Check("root", "ok" if root else "missing",
                        "running as root" if root else f"running as uid {os.geteuid()}",
                        "run as root (sudo python lab/run.py ...)"))
    py_ok = sys.version_info >= (3, 10)
    in_venv = sys.prefix != sys.base_prefix
    checks.append(Check("python", "ok" if py_ok else "missing",
                        f"{platform.python_version()} at {sys.executable}"
                        + ("" if in_venv else " (not the project's .venv)"),
                        "Python 3.10 or newer is needed: run bash install.sh"))
    mn = mininet_version()
    checks.append(Check("mininet", "ok" if mn and shutil.which("mnexec") else "missing",
                        f"Mininet {mn}" if mn else "not importable",
                        "apt-get install mininet (bash install.sh does it)"))
    running = ovs_running()
    ovs = command_version(["ovs-vsctl", "--version"])
    checks.append(Check("open vswitch", "ok" if running else "missing",
                        f"{ovs.split()[-1] if ovs else 'not installed'}, "
                        + ("running" if running else "not running"),
                        f"start it: {OVS_CTL} start --system-id=random (bash install.sh does it)"
                        if ovs else "apt-get install openvswitch-switch"))
    kernel = has_kernel_datapath()
    checks.append(Check("ovs datapath", "ok" if kernel else "fallback",
                        "kernel (openvswitch module)" if kernel
                        else "userspace (netdev): no openvswitch kernel module",
                        "" if kernel else "modprobe openvswitch for the kernel datapath",
                        required=False))
    netem = has_netem()
    checks.append(Check("delay/loss", "ok" if netem else "fallback",
                        "netem" if netem else "userspace delay line: no sch_netem in this kernel",
                        "" if netem else "modprobe sch_netem (linux-modules-extra) for netem",
                        required=False))
    htb = has_htb()
    checks.append(Check("bandwidth (htb)", "ok" if htb else "missing",
                        "tc htb" if htb else "tc htb unavailable",
                        "a kernel with sch_htb is needed for bandwidth limits"))
    nft = has_nftables()
    checks.append(Check("nftables", "ok" if nft else "missing",
                        command_version(["nft", "--version"]) or "not usable",
                        "apt-get install nftables (needed by the firewall experiments)",
                        required=False))
    ctd = shutil.which("conntrackd")
    checks.append(Check("conntrackd", "ok" if ctd else "missing",
                        ctd or "not installed", "apt-get install conntrackd", required=False))
    for what, binary, version_argv, pkg in (
            ("MariaDB (data tier)", "/usr/sbin/mariadbd", ["/usr/sbin/mariadbd", "--version"],
             "mariadb-server"),
            ("Galera", "/usr/lib/galera/libgalera_smm.so", None, "galera-4"),
            ("garbd (Galera witness)", "garbd", ["garbd", "--version"], "galera-arbitrator-4"),
            ("PostgreSQL (data tier)", "pg_basebackup", ["pg_basebackup", "--version"],
             "postgresql"),
            ("Patroni (PostgreSQL failover)", "patroni", ["patroni", "--version"], "patroni"),
            ("etcd (Patroni's consensus store)", "etcd", ["etcd", "--version"],
             "etcd-server"),
            ("HAProxy (L4-L7 load balancer)", "haproxy", ["haproxy", "-v"], "haproxy")):
        path = shutil.which(binary) or (binary if os.path.exists(binary) else None)
        checks.append(Check(what, "ok" if path else "missing",
                            (command_version(version_argv) if version_argv else path) if path
                            else "not installed", f"apt-get install {pkg} (or bash install.sh)",
                            required=False))
    for tool, pkg in (("iperf3", "iperf3"), ("ethtool", "ethtool"), ("ping", "iputils-ping")):
        path = shutil.which(tool)
        checks.append(Check(tool, "ok" if path else "missing",
                            command_version([tool, "-V" if tool == "ping" else "--version"]) if path else "not installed",
                            f"apt-get install {pkg}"))
    for pkg in PYTHON_PACKAGES:
        version = package_version(pkg)
        checks.append(Check(pkg, "ok" if version else "missing",
                            version or "not installed in this Python",
                            "run bash install.sh (installs the pinned Python packages)"))
    return checks


@dataclass
class Platform:
    """What this run uses, and why."""
    datapath: str            # kernel | user
    datapath_reason: str
    delay_method: str        # netem | delayline
    delay_reason: str

    @property
    def datapath_label(self):
        return "kernel" if self.datapath == "kernel" else "userspace (netdev)"

    @property
    def delay_label(self):
        return "netem" if self.delay_method == "netem" else "userspace delay line"


def _choose(option, requested, available, kernel_way, user_way, feature):
    """(choice, reason) for one option: the kernel's way when asked or when auto and present."""
    sep = "=" if option.startswith("ACTIVELAB_") else " "
    if requested == kernel_way and not available:
        raise LabError(f"{option}{sep}{kernel_way}: this kernel has no {feature}; "
                       f"use {option}{sep}{user_way} (or auto)")
    if requested != "auto":
        return requested, f"{option}{sep}{requested}"
    if available:
        return kernel_way, f"{feature} present"
    return user_way, f"no {feature} in this kernel"


PIN_ENV = {"datapath": "ACTIVELAB_DATAPATH", "delay_method": "ACTIVELAB_DELAY_METHOD"}
PIN_VALUES = {"datapath": ("kernel", "user"), "delay_method": ("netem", "delayline")}


def pinned(what):
    """The value ACTIVELAB_DATAPATH / ACTIVELAB_DELAY_METHOD pins for auto, or None."""
    value = os.environ.get(PIN_ENV[what], "").strip()
    if not value or value == "auto":
        return None
    if value not in PIN_VALUES[what]:
        raise LabError(f"{PIN_ENV[what]}={value}: not a choice; use "
                       f"{' or '.join(PIN_VALUES[what])} (or unset it for auto)")
    return value


def choose_platform(datapath="auto", delay_method="auto"):
    """Pick the datapath and delay method (auto: the kernel's when it has them).

    ACTIVELAB_DATAPATH and ACTIVELAB_DELAY_METHOD pin what auto means for a whole shell (the
    VM harness runs the same tests on both datapaths this way); an explicit option wins."""
    dp_option = dl_option = None
    if datapath == "auto" and pinned("datapath"):
        datapath, dp_option = pinned("datapath"), PIN_ENV["datapath"]
    if delay_method == "auto" and pinned("delay_method"):
        delay_method, dl_option = pinned("delay_method"), PIN_ENV["delay_method"]
    datapath, dp_reason = _choose(dp_option or "--datapath", datapath, has_kernel_datapath(),
                                  "kernel", "user", "openvswitch kernel module")
    delay_method, dl_reason = _choose(dl_option or "--delay-method", delay_method, has_netem(),
                                      "netem", "delayline", "sch_netem")
    return Platform(datapath, dp_reason, delay_method, dl_reason)


ACCEL_ENV = "ACTIVELAB_ACCEL"
EMULATED = {"tcg": "QEMU TCG (instructions emulated, not virtualized)"}


def accelerator():
    """How this machine's CPU runs: 'tcg' inside a QEMU guest whose instructions are emulated
    (ACTIVELAB_ACCEL=tcg, which the VM harness sets, or a 'QEMU TCG' CPU model), else the
    value of ACTIVELAB_ACCEL, else None (real or hardware-virtualized CPUs)."""
    value = os.environ.get(ACCEL_ENV, "").strip().lower()
    if value:
        return value
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return "tcg" if "QEMU TCG" in line else None
    except OSError:
        pass
    return None


def timing_judged(accel=None):
    """(judged, why not): timing verdicts bind except on an emulated CPU, where time is not
    representative; they are then reported with the accelerator named. accel: judge for that
    accelerator (an old run's, from its platform.json) instead of this machine's."""
    accel = accelerator() if accel is None else accel
    if accel in EMULATED:
        return False, EMULATED[accel]
    return True, ""


def patience(seconds):
    """A deadline for something the lab waits on (a lab coming up, a host reaching its
    gateway through a starting controller), stretched 5x on an emulated CPU (QEMU TCG), where
    everything takes several times longer; unchanged elsewhere."""
    return seconds * (1 if timing_judged()[0] else 5)


EMULATED_BFD_MIN_MS = 300     # BFD faster than this flaps on QEMU TCG (every BFD frame through
#                               an emulated ovs-vswitchd); 300 ms held in every VM run


def paced_bfd_ms(bfd_ms, accel=None):
    """The BFD interval to use: `bfd_ms`, but at least EMULATED_BFD_MIN_MS on an emulated CPU
    (QEMU TCG), where a faster one flaps; unchanged elsewhere."""
    judged = timing_judged(accel)[0]
    return bfd_ms if judged else max(bfd_ms, EMULATED_BFD_MIN_MS)


def platform_facts(chosen):
    """Platform facts written with every run's results."""
    os_release = {}
    try:
        for line in open("/etc/os-release"):
            key, _, value = line.strip().partition("=")
            os_release[key] = value.strip('"')
    except OSError:
        pass
    return dict(asdict(chosen),
                datapath_label=chosen.datapath_label, delay_label=chosen.delay_label,
                kernel=platform.release(), os=os_release.get("PRETTY_NAME", ""),
                python=platform.python_version(), mininet=mininet_version(),
                open_vswitch=command_version(["ovs-vsctl", "--version"]),
                iperf3=command_version(["iperf3", "--version"]),
                os_ken=package_version("os-ken"), cpus=os.cpu_count(),
                accelerator=accelerator() or "none")
