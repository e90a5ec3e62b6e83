#!/usr/bin/env bash
# The kernel-path selection, run inside the test VM by tests/vm/run.sh (from the guest's copy
# of the checkout, after install.sh). Each part runs on the kernel path (the openvswitch
# module and netem: what auto picks there) and then, in the same boot, on the userspace path,
# pinned with ACTIVELAB_DATAPATH / ACTIVELAB_DELAY_METHOD:
#
#   dual-active --quick                     the README's run, its run folder kept
#   controller, firewall remedies,          tests/emulation: failover, sessions through the
#   teardown and interrupt tests            firewalls, exact teardown on every signal
#
#     bash tests/vm/suite.sh [--smoke]      (--smoke: only the two dual-active runs)
#
# ACTIVELAB_VM_PATHS (default "kernel user") chooses the paths, e.g. only the kernel path:
#     bash tests/vm/run.sh debian12 -- ACTIVELAB_VM_PATHS=kernel bash tests/vm/suite.sh
#
# Output in $ACTIVELAB_VM_OUT (default tests/vm/out/local): runs/<path>/ (run folders),
# <part>-<path>.log, report-<path>.xml (JUnit), summary.txt. Exit status: 0 when every part
# passed, else the first failing part's. Timing verdicts on an emulated CPU (ACTIVELAB_ACCEL=tcg)
# are reported, not failed: see lab.emulation.probe.timing_judged and the `timing` test marker.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${ACTIVELAB_VM_OUT:-tests/vm/out/local}
SMOKE=0
case "${1:-}" in
  --smoke) SMOKE=1 ;;
  "") ;;
  *) echo "error: tests/vm/suite.sh: unknown argument '$1'; use --smoke or nothing" >&2; exit 1 ;;
esac
mkdir -p "$OUT/runs"
: > "$OUT/summary.txt"
PY=.venv/bin/python
status=0
retried=0

say() {   # progress on the suite's log, the summary and, in a VM, the console the host follows
  echo "== $*" | tee -a "$OUT/summary.txt"
  if [ -n "${ACTIVELAB_VM_CONSOLE:-}" ]; then echo "== $*" > "$ACTIVELAB_VM_CONSOLE"; fi
}

part() {   # part NAME PATH COMMAND...: run, log, record
  local name=$1 path=$2 start rc
  shift 2
  start=$(date +%s)
  "$@" > "$OUT/$name-$path.log" 2>&1
  rc=$?
  say "$name on the $path path: exit $rc after $(( $(date +%s) - start )) s" \
      "($(tail -n 1 "$OUT/$name-$path.log" | cut -c1-160))"
  [ "$status" -eq 0 ] && [ "$rc" -ne 0 ] && status=$rc
  return 0
}

# On an emulated CPU (QEMU TCG: ~10x slower) the default quick run overloads the machine with
# its own measurement (4 probe senders at 1000/s, iperf3): the controller fell 13 s behind and
# faults were injected seconds late. There the run is paced to what the CPU can carry: fewer
# probes, a slower BFD, 6 s between faults. Functional verdicts still bind. The userspace
# datapath under TCG forwards ~20 Mbit/s in all (every frame through an emulated
# ovs-vswitchd): its iperf3 flows alone saturate it and probes are lost before any fault, so
# there it runs without the fault timeline (build, fidelity reported, controller,
# reachability, VIP placement, teardown): the kernel path carries the failover verdicts.
# BFD at 300 ms on both paths: dual-active's default (30 ms) flaps on an emulated CPU (every
# BFD frame through an emulated ovs-vswitchd), and a slower host never saw every link live.
PACE=()
USER_PACE=()
if [ "${ACTIVELAB_ACCEL:-}" = tcg ]; then
  PACE=(--probe-rate 200 --bfd-ms 300 --duration 28
        --faults "4s cut dci-a; 10s heal dci-a; 16s gray dci-a; 22s ungray dci-a")
  USER_PACE=(--probe-rate 200 --bfd-ms 300 --duration 6 --faults none)
  say "paced for QEMU TCG: kernel path ${PACE[*]}; userspace path ${USER_PACE[*]}"
fi
TESTS=(tests/emulation/test_controller.py tests/emulation/test_firewall_remedies.py
       tests/emulation/test_teardown.py
       "tests/emulation/test_dci_qos.py::test_hosts_mark_by_port_and_the_dci_classes_what_they_marked")
PATHS=${ACTIVELAB_VM_PATHS:-kernel user}
for path in $PATHS; do
  case "$path" in kernel|user) ;; *) echo "error: ACTIVELAB_VM_PATHS: unknown path '$path'; use kernel and/or user" >&2; exit 1 ;; esac
  if [ "$path" = user ]; then
    export ACTIVELAB_DATAPATH=user ACTIVELAB_DELAY_METHOD=delayline
    pace=("${USER_PACE[@]}")
  else
    unset ACTIVELAB_DATAPATH ACTIVELAB_DELAY_METHOD
    pace=("${PACE[@]}")
  fi
  part dual-active "$path" $PY lab/run.py dual-active --quick "${pace[@]}" --out "$OUT/runs/$path"
  # Under QEMU TCG about one kernel-path run in seven still loses the controller's path to the
  # switches for the rest of the run (no packet-in, no port status, every VIP server "failed"
  # at once; README "Tested platforms", issue 11). Until that is found, the CI smoke runs a
  # failed dual-active once more and says so: a deterministic failure fails twice, the first
  # attempt's folder and verdict stay in the output, and the summary names the retry.
  if [ "$SMOKE" -eq 1 ] && [ "${ACTIVELAB_ACCEL:-}" = tcg ] && [ "$status" -ne 0 ] \
     && [ "$retried" -eq 0 ]; then
    retried=1
    say "dual-active on the $path path failed (exit $status); retrying once (the known TCG flake: see above)"
    status=0
    part dual-active-retry "$path" $PY lab/run.py dual-active --quick "${pace[@]}" \
      --out "$OUT/runs/$path-retry"
    [ "$status" -eq 0 ] && say "RETRIED: dual-active on the $path path passed on its second attempt; the first attempt's folder is runs/$path"
  fi
  if [ "$SMOKE" -eq 0 ]; then
    part tests "$path" $PY -m pytest -p no:cacheprovider "${TESTS[@]}" \
      --junitxml="$OUT/report-$path.xml"
  fi
done
say "suite: exit $status"
exit "$status"
