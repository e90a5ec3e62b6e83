#!/usr/bin/env bash
# ActiveLab installer. Idempotent; run as root on Debian 12 or Ubuntu 22.04/24.04:
#   bash install.sh
# Installs the system packages, starts Open vSwitch (without relying on systemd), creates .venv
# (with --system-site-packages, for the distribution's Mininet) and installs the project in it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [ "$(id -u)" -ne 0 ]; then
  echo "error: install.sh needs root: sudo bash install.sh" >&2
  exit 1
fi

APT_PACKAGES=(
  mininet openvswitch-switch iperf3 nftables conntrack conntrackd ethtool iputils-ping
  iputils-arping tcpdump iproute2 procps util-linux kmod python3 python3-venv python3-pip python3-yaml
  python-is-python3
  # the data tier, started by the lab inside its hosts (never as system services)
  mariadb-server mariadb-client galera-4 galera-arbitrator-4 rsync postgresql
  patroni etcd-server  # PostgreSQL's failover manager and its consensus store
  haproxy  # the L4-L7 load balancer of the gslb experiment's HAProxy variants
  python3-pymysql python3-psycopg2  # the data-tier app's drivers (for the system python3)
  ruby  # only to check the Vagrantfile's syntax in the test suite
)
# The system services those packages bring: the lab runs its own instances in its hosts, so a
# fresh install must not leave a machine-wide database (or load balancer) running or enabled
# at boot.
DB_SERVICES=(mariadb-server:mariadb postgresql:postgresql
             galera-arbitrator-4:garb patroni:patroni etcd-server:etcd
             haproxy:haproxy)     # package:service

# Ubuntu ships sch_netem (and some other modules the lab uses) in linux-modules-extra, not in
# the base kernel package: without it `auto` falls back to the userspace delay line. Added when
# the running kernel lacks netem and the package for it exists.
if [ -r /etc/os-release ] && . /etc/os-release && [ "${ID:-}" = ubuntu ] \
    && ! modinfo sch_netem >/dev/null 2>&1; then
  extra="linux-modules-extra-$(uname -r)"
  if apt-cache show "$extra" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-cache show "$extra" >/dev/null 2>&1; }; then
    APT_PACKAGES+=("$extra")
  else
    echo "== warning: $extra is not available for this kernel: the delay line stands in for netem"
  fi
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # no service starts during the install (policy-rc.d, as Debian's own build images do);
  # one of ours only: a machine that has its own is left as it is
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# ActiveLab install.sh: no service starts while it installs\nexit 101\n' \
      > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [ "$own_policy" = 1 ]; then
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi
  # the database services of packages installed just now: off, and not at boot either
  if [ -d /run/systemd/system ]; then
    for pair in "${DB_SERVICES[@]}"; do
      pkg=${pair%%:*} svc=${pair#*:}
      if printf '%s\n' "${missing[@]}" | grep -qx "$pkg"; then
        systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
      fi
    done
  fi
else
  echo "== system packages: all present"
fi

# Open vSwitch: systemd where it runs, else Open vSwitch's own start script. Without the
# openvswitch kernel module the daemons still run, for the userspace (netdev) datapath.
if ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
  echo "== Open vSwitch: running"
else
  echo "== starting Open vSwitch"
  if [ -d /run/systemd/system ]; then
    systemctl start openvswitch-switch
  else
    /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random
  fi
  ovs-vsctl --timeout=10 show >/dev/null
fi

# The project's Python: the distribution's python3 (Mininet is installed for it).
if ! .venv/bin/python -c "import mininet.net" >/dev/null 2>&1; then
  echo "== creating .venv"
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
echo "== installing ActiveLab and its pinned Python packages into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'

.venv/bin/python lab/run.py doctor
