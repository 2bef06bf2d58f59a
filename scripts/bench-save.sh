#!/usr/bin/env bash
# Benchmark: what saving an idle VM to disk buys.
#
#  1. The memory the host gets back: the QEMU process's resident memory
#     while the VM runs, and whether any QEMU process is left after
#     `bkt vm stop --save`.
#  2. From `bkt vm connect` on a saved VM to its port 3389 answering (the
#     moment connect starts the RDP client), against the same from shut off
#     (a cold boot).
#
# Goals: no QEMU process left after `stop --save` (checked in every run: a
# QEMU left fails the bench), and connect on a saved VM reaching the port
# sooner than from shut off (medians). Ends with a line per goal: "goal met:
# ..." or "goal NOT met: ..." (exit 0 either way: a bench reports).
#
# Against the real libvirt + QEMU of the end-to-end tier, in a network
# namespace of its own (scripts/libvirt-netns.sh), with the tier's tiny
# busybox guest (its port 3389 answers once it has booted) and a stand-in
# RDP client that notes when it started. Needs root.
#
#   flock /tmp/bkt-e2e.lock bash scripts/bench-save.sh [RUNS]   (default 10)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-10}

if [[ -z ${BKT_BENCH_INSIDE:-} ]]; then
  [[ $(id -u) -eq 0 ]] || exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME "$0" "$@"
  cargo build --release --quiet
  bash scripts/build-test-guest.sh target/e2e-guest >/dev/null
  exec env BKT_BENCH_INSIDE=1 bash scripts/libvirt-netns.sh bash "$0" "$RUNS"
fi

BKT=$PWD/target/release/bkt
GUEST=$PWD/target/e2e-guest
NAME=bench-save
URI=qemu:///system
work=$(mktemp -d)
export BENCH_GOALS=$work/goals
cleanup() {
  virsh -q -c $URI destroy $NAME >/dev/null 2>&1 || true
  virsh -q -c $URI undefine $NAME --managed-save >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The stand-in client: answers the version probe, notes when it started.
mkdir -p "$work/bin"
cat >"$work/bin/xfreerdp3" <<'CLIENT'
#!/bin/sh
case "$*" in */version*) echo "This is FreeRDP version 3.10.3 (n/a)"; exit 0 ;; esac
date +%s%N >"$BENCH_STARTED"
cat >/dev/null
CLIENT
chmod +x "$work/bin/xfreerdp3"

virt-install --connect $URI --name $NAME --osinfo linux2022 --virt-type qemu \
  --memory 256 --vcpus 1 --import --disk none \
  --boot "kernel=$GUEST/vmlinuz,initrd=$GUEST/initrd.gz,kernel_args=console=ttyS0 quiet" \
  --network network=default,model=virtio --graphics spice --noautoconsole >/dev/null
mac=$(virsh -q -c $URI domiflist $NAME | awk '{print $5}')
cat >"$work/vms.json" <<JSON
{"vms": [{"name": "$NAME", "type": "windows11", "disk": "", "created": "2026-11-28",
  "uri": "$URI", "mac": "$mac", "rdp_user": "anna", "auto_save": 0}], "files": []}
JSON

bkt() {
  env -i PATH="$work/bin:$PATH" HOME="$work" DISPLAY=:0 BKT_VM_MANIFEST="$work/vms.json" \
    BKT_VM_RDP_PASSWORD=x BENCH_STARTED="$work/started" "$BKT" "$@"
}
qemu_pid() { cat /run/libvirt/qemu/$NAME.pid 2>/dev/null || true; }
rss_mib() { awk '/^VmRSS:/ {printf "%.0f\n", $2 / 1024}' "/proc/$1/status"; }
ms() { awk -v v="$1" 'BEGIN{printf "%.0f", v / 1000000}'; }
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

# connect, and the time from its start to the client's: the port answered.
timed_connect() {
  rm -f "$work/started"
  local t0 t1
  t0=$(date +%s%N)
  # Each line bkt prints (with -v: every command before it runs), with the
  # milliseconds since connect began: where the time goes.
  {
    bkt vm connect $NAME --rdp --timeout 300 -v 2>&1 && echo "bkt: ok" || echo "bkt: failed"
  } | while IFS= read -r line; do
    printf '%6d ms  %s\n' $((($(date +%s%N) - t0) / 1000000)) "$line"
  done >"$work/connect.out"
  grep -q "bkt: ok" "$work/connect.out" || { cat "$work/connect.out" >&2; return 1; }
  t1=$(read_stamp "$work/started")
  echo $((t1 - t0))
}

# First boot, until the port answers (connect on a VM that is already
# running probes the port once; it does not wait for a boot it did not start).
up=no
for _ in $(seq 240); do
  if ip=$(bkt vm ip $NAME --timeout 0 2>/dev/null) &&
    timeout 1 bash -c "exec 3<>/dev/tcp/$ip/3389" 2>/dev/null; then
    up=yes
    break
  fi
  sleep 0.5
done
[[ $up == yes ]] || { echo "the guest's port 3389 never answered" >&2; exit 1; }
timed_connect >/dev/null
: >"$work/restore"; : >"$work/cold"; : >"$work/rss"; : >"$work/restore-only"
for ((i = 0; i < RUNS; i++)); do
  # Let the guest settle, then measure what it holds.
  pid=$(qemu_pid)
  rss_mib "$pid" >>"$work/rss"
  bkt vm stop $NAME --save >/dev/null
  if [[ -n $(qemu_pid) ]] || kill -0 "$pid" 2>/dev/null; then
    echo "QEMU (pid $pid) still runs after stop --save" >&2
    exit 1
  fi
  timed_connect >>"$work/restore"
  grep -q "saved to disk; restoring it" "$work/connect.out" ||
    { echo "connect did not restore:" >&2; cat "$work/connect.out" >&2; exit 1; }
  cp "$work/connect.out" "$work/restore.timeline"
  awk '/restoring .* from disk/ {a=$1} /Restored .* from disk/ {print ($1 - a) * 1000000}' \
    "$work/connect.out" >>"$work/restore-only"
  bkt vm stop $NAME --force >/dev/null
  timed_connect >>"$work/cold"
  grep -q "shut off; starting it" "$work/connect.out" ||
    { echo "connect did not boot:" >&2; cat "$work/connect.out" >&2; exit 1; }
done

rss=$(median <"$work/rss")
restore=$(ms "$(median <"$work/restore")")
cold=$(ms "$(median <"$work/cold")")
echo "tiny guest (256 MiB, software emulation), libvirt $(virsh -v), QEMU $(qemu-system-x86_64 --version | awk 'NR==1{print $4}'), $RUNS runs, median"
printf '  QEMU resident memory while running:   %6s MiB\n' "$rss"
printf '  after stop --save:                     no QEMU process\n'
printf '  connect -> port 3389, saved (restore): %6s ms\n' "$restore"
printf '    of which the restore (virsh start):  %6s ms\n' "$(ms "$(median <"$work/restore-only")")"
printf '  connect -> port 3389, shut off (boot): %6s ms\n' "$cold"
echo "  (a restored guest's new tap joins libvirt's bridge, which has STP on: Linux holds"
echo "  a new port at least 2 s listening and 2 s learning before it forwards, so the"
echo "  guest's port answers about 4 s after the restore; a cold boot of this busybox"
echo "  guest hides the same wait behind its own boot, a Windows boot takes far longer)"
echo "the last connect after a save, line by line:"
sed 's/^/    /' "$work/restore.timeline"
# Reaching here, every run's check found no QEMU left.
goal 0 '==' 0 "stop --save gives the host the guest's memory back: no QEMU process left" \
  "$RUNS of $RUNS runs; it held $rss MiB resident"
goal "$restore" '<' "$cold" "connect on a saved VM reaches port 3389 sooner than from shut off" \
  "saved $restore ms, shut off $cold ms"
goals_report
