#!/usr/bin/env bash
# The kernel path in a real VM: a Debian guest whose stock kernel has the openvswitch module
# and sch_netem, booted with QEMU (KVM when a guest really boots under it, else TCG, and it
# says which), with this checkout copied in, install.sh run inside (offline), and the
# kernel-path selection of the test suite run there (tests/vm/suite.sh). Run as root:
#
#     bash tests/vm/run.sh [debian12|debian13] [--smoke] [-- COMMAND...]
#
#   (nothing)   the selection: dual-active --quick and the controller, firewall-remedy, QoS,
#               teardown and interrupt tests, on the kernel path and then on the userspace
#               path in the same boot
#   --smoke     dual-active --quick on the kernel path, then on the userspace path (CI)
#   -- COMMAND  any command, run in the guest's copy of the checkout
#
# The image (disk, kernel, initrd, and a wheelhouse for the guest's own Python) is built once
# with mmdebstrap and cached in ${ACTIVELAB_VM_CACHE:-/var/cache/activelab-vm}/DIST; later runs
# need no network. What comes back, in ${ACTIVELAB_VM_OUT:-tests/vm/out}/DIST: accelerator,
# console.log, install.log, the suite's log and JUnit reports, runs/ (the run folders).
# Under TCG the guest's vCPUs run on several host threads (debian12) or one (debian13, whose
# kernel met a cross-modifying-code race there); ACTIVELAB_VM_TCG_THREADS=single|multi chooses.
# Exit status: the guest's (the suite's); 1 when the VM could not run it. On every exit path
# the QEMU process (by its PID) and the scratch folder are removed; the guest disk is a
# -snapshot, so the cached image never changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO=$(pwd)

usage="usage: bash tests/vm/run.sh [debian12|debian13] [--smoke] [-- COMMAND...]"
DIST=debian12
MODE=selection
COMMAND=""
while [ $# -gt 0 ]; do
  case "$1" in
    debian12|debian13) DIST=$1 ;;
    --smoke) MODE=smoke ;;
    -h|--help) echo "$usage"; exit 0 ;;
    --) shift; COMMAND="$*"; MODE=command; break ;;
    *) echo "error: tests/vm/run.sh: unknown argument '$1'; $usage" >&2; exit 1 ;;
  esac
  shift
done
case "$DIST" in
  debian12) SUITE=bookworm; TCG_THREADS=multi ;;
  # Debian 13's kernel (6.12) once died under multi-threaded TCG with an int3 Oops in
  # __netif_receive_skb_core while it patched a static key (a vCPU ran the half-patched code:
  # cross-modifying code the translator did not see); one host thread for every vCPU has no
  # such race, at some speed
  debian13) SUITE=trixie; TCG_THREADS=single ;;
esac
TCG_THREADS=${ACTIVELAB_VM_TCG_THREADS:-$TCG_THREADS}
case "$TCG_THREADS" in
  single|multi) ;;
  *) echo "error: ACTIVELAB_VM_TCG_THREADS=$TCG_THREADS: use single or multi" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "error: tests/vm/run.sh needs root (image build, QEMU): sudo bash tests/vm/run.sh" >&2
  exit 1
fi
case "$MODE" in
  selection) COMMAND="bash tests/vm/suite.sh" ;;
  smoke) COMMAND="bash tests/vm/suite.sh --smoke" ;;
esac
CACHE=${ACTIVELAB_VM_CACHE:-/var/cache/activelab-vm}/$DIST
OUT=${ACTIVELAB_VM_OUT:-$REPO/tests/vm/out}/$DIST
TIMEOUT=${ACTIVELAB_VM_TIMEOUT:-5400}

SCRATCH=""
QEMU_PID=""
cleanup() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || while kill -0 "$QEMU_PID" 2>/dev/null; do sleep 0.2; done
  fi
  [ -n "$SCRATCH" ] && rm -rf "$SCRATCH"
  rm -rf "$CACHE.building"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${need[@]}" > /dev/null 2>&1 \
    || { apt-get update -q > /dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" > /dev/null; } \
    || { echo "error: could not install ${need[*]} (apt-get): install them, then run again" >&2; exit 1; }
fi

# PID 1 of the guest, baked into the image: mount what the guest needs and the host's shares,
# then run the checkout's tests/vm/guest-init (so changing that never needs a new image).
STUB='#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /dev/shm; mount -o remount,rw /
modprobe 9p; modprobe 9pnet_virtio; mkdir -p /mnt/src /mnt/out
o=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$o,ro" src /mnt/src && mount -t 9p -o "$o" out /mnt/out \
  && exec sh /mnt/src/tests/vm/guest-init
echo "== guest: could not mount the shares"; echo o > /proc/sysrq-trigger; sleep 30'

# The packages install.sh would install, read from it (one list, not two), plus a kernel.
lab_packages=$(sed -n '/^APT_PACKAGES=(/,/^)/p' install.sh | sed '1d;$d;s/#.*//' | tr -s ' \n' ',' \
               | sed 's/^,//;s/,$//')
packages="linux-image-amd64,initramfs-tools,kmod,udev,ca-certificates,$lab_packages"
KEY=$( { echo "$SUITE $packages"; echo "$STUB"; cat setup.py pyproject.toml constraints.txt; } | sha256sum | cut -c1-16)

build_image() {
  local tmp="$CACHE.building"
  rm -rf "$tmp" && mkdir -p "$tmp"
  echo "== building the $DIST image in $CACHE (mmdebstrap $SUITE, once; a few minutes)"
  # the wheelhouse is made inside the image by its own Python, as install.sh's venv would
  # resolve the pinned packages there (the host's Python may be another version), against
  # constraints.txt as install.sh installs them; pip trusts the certificates the host trusts (a proxy's CA) for that one download
  mkdir -p "$tmp/src" && cp setup.py pyproject.toml constraints.txt "$tmp/src/" && mkdir -p "$tmp/src/lab"
  touch "$tmp/src/lab/__init__.py"
  printf '%s\n' "$STUB" > "$tmp/init"
  mmdebstrap --variant=minbase --include="$packages" \
    --customize-hook="install -m 0755 '$tmp/init' \"\$1/sbin/activelab-init\"" \
    --customize-hook="cp -r '$tmp/src' \"\$1/tmp/activelab-src\"" \
    --customize-hook="cp /etc/resolv.conf \"\$1/etc/resolv.conf\" 2>/dev/null || true" \
    --customize-hook="cp /etc/ssl/certs/ca-certificates.crt \"\$1/tmp/host-ca.crt\"" \
    --customize-hook="chroot \"\$1\" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PIP_CERT=/tmp/host-ca.crt \${https_proxy:+https_proxy=\$https_proxy} \${http_proxy:+http_proxy=\$http_proxy} sh -c 'python3 -m venv --system-site-packages /tmp/wh-venv && /tmp/wh-venv/bin/python -m pip download -q -d /var/cache/activelab-wheels -c /tmp/activelab-src/constraints.txt \"/tmp/activelab-src[test]\" setuptools wheel'" \
    --customize-hook="rm -rf \"\$1/tmp/activelab-src\" \"\$1/tmp/wh-venv\" \"\$1/tmp/host-ca.crt\"" \
    "$SUITE" "$tmp/rootfs.tar" > "$tmp/mmdebstrap.log" 2>&1 \
    || { mkdir -p "$OUT" && cp "$tmp/mmdebstrap.log" "$OUT/mmdebstrap.log";
         echo "error: building the image failed (mmdebstrap, needs the network once): see $OUT/mmdebstrap.log" >&2; return 1; }
  mkdir "$tmp/rootfs" && tar -C "$tmp/rootfs" -xf "$tmp/rootfs.tar" && rm "$tmp/rootfs.tar"
  cp "$tmp"/rootfs/boot/vmlinuz-* "$tmp/vmlinuz"
  cp "$tmp"/rootfs/boot/initrd.img-* "$tmp/initrd.img"
  mkfs.ext4 -q -F -d "$tmp/rootfs" "$tmp/disk.img" 8G && rm -rf "$tmp/rootfs"
  rm -rf "$tmp/src" "$tmp/init" "$tmp/mmdebstrap.log"
  echo "$KEY" > "$tmp/key"
  rm -rf "$CACHE" && mv "$tmp" "$CACHE"
}

if [ "$(cat "$CACHE/key" 2>/dev/null)" != "$KEY" ] || [ ! -f "$CACHE/disk.img" ]; then
  mkdir -p "$(dirname "$CACHE")"
  build_image || exit 1
fi

SCRATCH=$(mktemp -d /tmp/activelab-vm.XXXXXX)
mkdir -p "$SCRATCH/out"
printf '%s\n' "$COMMAND" > "$SCRATCH/out/command"

boot() {    # boot ACCEL: start QEMU in the background, its PID in QEMU_PID
  local accel=$1 cpu=max
  [ "$accel" = kvm ] && cpu=host
  [ "$accel" = tcg ] && accel=tcg,thread=$TCG_THREADS
  qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp 2 -m 4096 -nographic -no-reboot -nic none \
    -snapshot -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img" \
    -append "console=ttyS0,115200 root=/dev/vda rw panic=-1 quiet init=/sbin/activelab-init activelab.accel=${1}" \
    -drive "file=$CACHE/disk.img,format=raw,if=virtio" \
    -virtfs "local,path=$REPO,mount_tag=src,security_model=passthrough,id=src,readonly=on" \
    -virtfs "local,path=$SCRATCH/out,mount_tag=out,security_model=passthrough,id=out" \
    > "$SCRATCH/console-$1.log" 2>&1 &
  QEMU_PID=$!
}

qemu_alive() {  # QEMU still runs (an exited, not yet reaped QEMU is a zombie: state Z)
  [ -r "/proc/$QEMU_PID/stat" ] && ! grep -q '^[0-9]* (.*) Z ' "/proc/$QEMU_PID/stat" 2>/dev/null
}

wait_for() {   # wait_for FILE TEXT SECONDS: until TEXT is in FILE or QEMU ends
  local deadline=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    grep -q "$2" "$1" 2>/dev/null && return 0
    qemu_alive || return 1
    sleep 1
  done
  return 1
}

ACCEL=tcg
if [ -w /dev/kvm ]; then
  boot kvm
  disown "$QEMU_PID"        # a QEMU that aborts here is expected: no job report from bash
  if wait_for "$SCRATCH/console-kvm.log" "== guest up" 60; then
    ACCEL=kvm
  else
    echo "== KVM: no guest came up under it ($(grep -m1 -o 'Assertion.*\|error.*' "$SCRATCH/console-kvm.log" | cut -c1-100 || echo 'it hung')): using TCG"
    kill "$QEMU_PID" 2>/dev/null || true
    while kill -0 "$QEMU_PID" 2>/dev/null; do sleep 0.2; done
    QEMU_PID=""
    find "$SCRATCH/out" -mindepth 1 ! -name command -exec rm -rf {} +
  fi
fi
[ "$ACCEL" = tcg ] && boot tcg
echo "== $DIST guest on QEMU $ACCEL$([ "$ACCEL" = tcg ] && echo " ($TCG_THREADS-threaded; instructions emulated: timing verdicts are reported, not judged)")"
wait_for "$SCRATCH/console-$ACCEL.log" "== guest up" 300 \
  || { echo "error: the guest did not boot: see its console below" >&2; tail -20 "$SCRATCH/console-$ACCEL.log" >&2; exit 1; }
tail -n +1 -f "$SCRATCH/console-$ACCEL.log" --pid "$QEMU_PID" 2>/dev/null | grep --line-buffered "^== " &
wait_for "$SCRATCH/out/rc" "[0-9]" "$TIMEOUT" || true
if ! wait_for "$SCRATCH/console-$ACCEL.log" "reboot: Power down" 60; then :; fi
kill "$QEMU_PID" 2>/dev/null || true
wait "$QEMU_PID" 2>/dev/null || true
QEMU_PID=""
wait 2>/dev/null || true

rm -rf "$OUT" && mkdir -p "$OUT"
cp -a "$SCRATCH/out/." "$OUT/"
cp "$SCRATCH/console-$ACCEL.log" "$OUT/console.log"
echo "$ACCEL" > "$OUT/accelerator"
if [ ! -s "$OUT/rc" ]; then
  echo "error: the guest did not finish within ${TIMEOUT}s: see $OUT/console.log" >&2
  exit 1
fi
rc=$(cat "$OUT/rc")
echo "== the guest's suite exited $rc ($DIST, QEMU $ACCEL); its output is in $OUT"
exit "$rc"
