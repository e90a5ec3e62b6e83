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
  ruby  # only to check the Vagrantfile's syntax in the test suite
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
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
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/python lab/run.py doctor
