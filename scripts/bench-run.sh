#!/usr/bin/env bash
# Benchmark: bkt's own time in `bkt vm run` and `bkt vm apps`.
#
#  1. `run` on a running VM whose port 3389 answers: the time from launching
#     `bkt vm run windows notepad FILE` to the RDP client's start, beside the
#     time to launch the bare client. Goal: under 100 ms of our own.
#  2. `apps` with a warm cache: the time of `bkt vm apps windows` once
#     Windows has been asked. Goal: under 100 ms.
#
# Ends with a line per goal: "goal met: ..." or "goal NOT met: ..." (exit 0
# either way: a bench reports; a run that fails fails it).
#
# Everything runs against fakes (tests/fakes/fake.sh as virsh and as
# xfreerdp3, the guest agent answering with fixtures/guest/) and a listener
# on 127.0.0.51:3389 that this script starts and ends.
#
#   scripts/bench-run.sh [RUNS]     (default 10; BKT=path uses that binary)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-10}
IP=127.0.0.51

if [[ -z ${BKT:-} ]]; then
  cargo build --release --quiet
  BKT=$PWD/target/release/bkt
fi
work=$(mktemp -d)
export BENCH_GOALS=$work/goals
listener_pid=""
cleanup() {
  if [[ -n $listener_pid ]]; then kill "$listener_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
listen_3389 "$IP" "$work/listener.out"

w=$work/w
mkdir -p "$w/bin" "$w/rules" "$w/Documents"
for t in virsh xfreerdp3; do
  cp tests/fakes/fake.sh "$w/bin/$t"
  chmod +x "$w/bin/$t"
done
: >"$w/log"
echo x >"$w/Documents/Q3, final.docx"
r=$w/rules
rule() { # N TOOL GLOB [OUT]
  printf '%s\t%s' "$2" "$3" >"$r/$1.match"
  if [[ $# -ge 4 ]]; then printf '%s' "$4" >"$r/$1.out"; fi
}
rule 00 virsh '* domstate --reason windows' $'running (booted)\n'
rule 01 virsh '* domifaddr windows --source lease' \
  " Name       MAC address          Protocol     Address
-------------------------------------------------------------------------------
 vnet0      52:54:00:b4:b3:60    ipv4         $IP/8
"
rule 02 virsh '* qemu-agent-command windows *guest-exec-status*' "$(cat fixtures/guest/guest-exec-status-exited.json)"
rule 03 virsh '* qemu-agent-command windows *guest-exec*' "$(cat fixtures/guest/guest-exec.json)"
rule 04 xfreerdp3 '/version' $'This is FreeRDP version 3.10.3 (n/a)\n'
rule 05 xfreerdp3 '/v:*'
# The client's first act: note the time it started.
# shellcheck disable=SC2016  # expanded by the fake, not here
printf '/bin/date +%%s%%N >"$FAKE_DIR/started"\n/bin/cat >/dev/null\n' >"$r/05.sh"

bkt() {
  env -i PATH="$w/bin" HOME="$w" FAKE_DIR="$w" DISPLAY=:0 \
    BKT_VM_MANIFEST="$w/vms.json" BKT_VM_RDP_PASSWORD=x "$BKT" vm "$@"
}

ms() { awk -v v="$1" 'BEGIN{printf "%6.1f", v/1000}'; }

echo "1. run on a running VM, port answering ($RUNS runs, median)"
: >"$work/ours"
: >"$work/bare"
# Each run's stamp is removed before it and waited for after it: a run that
# never started the client fails instead of reading the one before's.
for ((i = 0; i < RUNS; i++)); do
  rm -f "$w/started"
  t0=$(date +%s%N)
  bkt run windows notepad "$w/Documents/Q3, final.docx" --user anna >/dev/null 2>&1
  t1=$(read_stamp "$w/started")
  echo $(((t1 - t0) / 1000)) >>"$work/ours"
  rm -f "$w/started"
  t0=$(date +%s%N)
  env -i PATH="$w/bin" FAKE_DIR="$w" "$w/bin/xfreerdp3" /v:$IP </dev/null
  t1=$(read_stamp "$w/started")
  echo $(((t1 - t0) / 1000)) >>"$work/bare"
done
ours=$(median <"$work/ours")
bare=$(median <"$work/bare")
echo "   run to client start:     $(ms "$ours") ms"
echo "   bare client start:       $(ms "$bare") ms"
# (Medians of an even count can end in .5: awk, not the shell's integers.)
overhead=$(awk -v a="$ours" -v b="$bare" 'BEGIN { printf "%.1f", a - b }')
echo "   our overhead:            $(ms "$overhead") ms   (goal: < 100 ms)"
overhead=$(ms_of_us "$overhead")
goal "$overhead" '<' 100 "run adds under 100 ms before the client starts" "$overhead ms"

echo "2. apps with a warm cache ($RUNS runs, median)"
bkt apps windows --refresh >/dev/null 2>&1
: >"$work/apps"
for ((i = 0; i < RUNS; i++)); do
  t0=$(date +%s%N)
  bkt apps windows >/dev/null 2>&1
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000)) >>"$work/apps"
done
apps=$(median <"$work/apps")
echo "   apps (cached):           $(ms "$apps") ms   (goal: < 100 ms)"
apps=$(ms_of_us "$apps")
goal "$apps" '<' 100 "apps with a warm cache under 100 ms" "$apps ms"
goals_report
