#!/usr/bin/env bash
# The kernel path in a real VM: a Debian guest whose stock kernel has the openvswitch module
# and sch_netem, booted with QEMU (KVM when a guest really boots under it, else TCG), with this
# checkout copied in, install.sh run inside (offline, from a wheelhouse made on the host), and
# commands run there. Run as root:
#
#     bash tests/vm/run.sh [debian12] [-- COMMAND...]
#
# Default command: python lab/run.py doctor && python lab/run.py dual-active --quick.
# The image (rootfs, kernel, initrd, wheelhouse) is built once and cached in
# ${ACTIVELAB_VM_CACHE:-/var/cache/activelab-vm}/DIST; later runs need no network. The guest's
# output (install.log, command.log, results/) comes back to ${ACTIVELAB_VM_OUT:-tests/vm/out}.
# Exit status: the command's inside the guest; 1 when the VM could not run it. The QEMU process
# (by its PID) and the scratch folder are removed on every exit path; the guest disk is a
# -snapshot, so the cached image never changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO=$(pwd)

DIST=debian12
if [ $# -gt 0 ] && [ "$1" != "--" ]; then DIST=$1; shift; fi
[ "${1:-}" = "--" ] && shift
case "$DIST" in
  debian12) SUITE=bookworm ;;
  *) echo "error: tests/vm/run.sh: unknown distribution '$DIST'; use debian12" >&2; exit 1 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "error: tests/vm/run.sh needs root (image build, QEMU): sudo bash tests/vm/run.sh" >&2
  exit 1
fi
COMMAND=${*:-"python lab/run.py doctor && python lab/run.py dual-active --quick --out /mnt/out/results"}
CACHE=${ACTIVELAB_VM_CACHE:-/var/cache/activelab-vm}/$DIST
OUT=${ACTIVELAB_VM_OUT:-$REPO/tests/vm/out}
TIMEOUT=${ACTIVELAB_VM_TIMEOUT:-2400}

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" \
    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
         --no-install-recommends "${need[@]}"; }
fi

# The packages install.sh would install, read from it (one list, not two), plus a kernel.
lab_packages=$(sed -n '/^APT_PACKAGES=(/,/^)/p' install.sh | sed '1d;$d;s/#.*//' | tr -s ' \n' ',' \
               | sed 's/^,//;s/,$//')
packages="linux-image-amd64,initramfs-tools,kmod,udev,$lab_packages"

build_image() {
  local tmp="$CACHE.building"
  rm -rf "$tmp" && mkdir -p "$tmp"
  echo "== building the $DIST image in $CACHE (mmdebstrap, once)"
  mmdebstrap --variant=minbase --include="$packages" "$SUITE" "$tmp/rootfs.tar" > "$tmp/mmdebstrap.log" 2>&1 \
    || { echo "error: mmdebstrap failed: see $tmp/mmdebstrap.log" >&2; return 1; }
  mkdir "$tmp/rootfs" && tar -C "$tmp/rootfs" -xf "$tmp/rootfs.tar" && rm "$tmp/rootfs.tar"
  install -m 0755 tests/vm/guest-init "$tmp/rootfs/sbin/activelab-init"
  cp "$tmp"/rootfs/boot/vmlinuz-* "$tmp/vmlinuz"
  cp "$tmp"/rootfs/boot/initrd.img-* "$tmp/initrd.img"
  mkfs.ext4 -q -F -d "$tmp/rootfs" "$tmp/disk.img" 6G && rm -rf "$tmp/rootfs"
  echo "== the wheelhouse for the guest's offline pip install"
  mkdir "$tmp/wheelhouse"
  "$REPO/.venv/bin/python" -m pip download -q -d "$tmp/wheelhouse" "$REPO[test]" setuptools wheel \
    > "$tmp/pip-download.log" 2>&1 \
    || { echo "error: pip download failed: see $tmp/pip-download.log" >&2; return 1; }
  rm -rf "$CACHE" && mv "$tmp" "$CACHE"
}

if [ ! -f "$CACHE/disk.img" ] || [ tests/vm/guest-init -nt "$CACHE/disk.img" ]; then
  [ -x "$REPO/.venv/bin/python" ] || { echo "error: run bash install.sh first (the wheelhouse is made with .venv)" >&2; exit 1; }
  build_image
fi

SCRATCH=$(mktemp -d /tmp/activelab-vm.XXXXXX)
QEMU_PID=""
cleanup() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$SCRATCH/out"
printf '%s\n' "$COMMAND" > "$SCRATCH/out/command"

boot() {    # boot ACCEL: start QEMU in the background, its PID in QEMU_PID
  local accel=$1 cpu=max
  [ "$accel" = kvm ] && cpu=host
  qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp 2 -m 4096 -nographic -no-reboot -nic none \
    -snapshot -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img" \
    -append "console=ttyS0,115200 root=/dev/vda rw panic=-1 quiet init=/sbin/activelab-init" \
    -drive "file=$CACHE/disk.img,format=raw,if=virtio" \
    -virtfs "local,path=$REPO,mount_tag=src,security_model=passthrough,id=src,readonly=on" \
    -virtfs "local,path=$SCRATCH/out,mount_tag=out,security_model=passthrough,id=out" \
    -virtfs "local,path=$CACHE,mount_tag=cache,security_model=passthrough,id=cache,readonly=on" \
    > "$SCRATCH/console-$accel.log" 2>&1 &
  QEMU_PID=$!
}

wait_for() {   # wait_for FILE TEXT SECONDS: until TEXT is in FILE or QEMU ends
  local deadline=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$QEMU_PID" 2>/dev/null || return 1
    sleep 1
  done
  return 1
}

ACCEL=tcg
if [ -w /dev/kvm ]; then
  boot kvm 2>/dev/null
  if wait_for "$SCRATCH/console-kvm.log" "== guest up" 60; then
    ACCEL=kvm
  else
    echo "== KVM: no guest came up under it (QEMU exited or 60 s passed: nested virtualization); using TCG"
    kill "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=""
    rm -f "$SCRATCH/out/"*.log
  fi
fi
[ "$ACCEL" = tcg ] && boot tcg
echo "== $DIST guest on QEMU $ACCEL (timings under TCG are not representative)"
wait_for "$SCRATCH/console-$ACCEL.log" "== guest up" 300 \
  || { echo "error: the guest did not boot: see its console below" >&2; tail -20 "$SCRATCH/console-$ACCEL.log" >&2; exit 1; }
wait_for "$SCRATCH/out/rc" "[0-9]" "$TIMEOUT" || true
wait "$QEMU_PID" 2>/dev/null || true
QEMU_PID=""

rm -rf "$OUT" && mkdir -p "$OUT"
cp -a "$SCRATCH/out/." "$OUT/"
cp "$SCRATCH/console-$ACCEL.log" "$OUT/console.log"
echo "$ACCEL" > "$OUT/accelerator"
grep "^== " "$OUT/console.log" || true
if [ ! -s "$OUT/rc" ]; then
  echo "error: the guest did not finish within ${TIMEOUT}s: see $OUT/console.log" >&2
  exit 1
fi
rc=$(cat "$OUT/rc")
echo "== guest command exited $rc (accelerator $ACCEL); output in $OUT"
exit "$rc"
