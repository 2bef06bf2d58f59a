#!/usr/bin/env bash
# Benchmark: `bkt vm status --json` against fake virsh listing 1, 10, 100 and
# 500 VMs (half of them running). For each it prints the number of external
# processes bkt spawned and its wall time beside one plain `virsh list --all`
# of the same fake. Goal: the spawn count is the same for 1 and 500, and the
# time stays within 2x of the baseline.
#
#   scripts/bench-status.sh [RUNS]      (RUNS per figure, default 20)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-20}

cargo build --release --quiet
BKT=$PWD/target/release/bkt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now_ns() { date +%s%N; }

# Mean wall time in ms of RUNS runs of "$@" (output discarded).
mean_ms() {
  local t0 t1 i
  t0=$(now_ns)
  for ((i = 0; i < RUNS; i++)); do "$@" >/dev/null 2>&1 || true; done
  t1=$(now_ns)
  awk -v a="$t0" -v b="$t1" -v n="$RUNS" 'BEGIN { printf "%.2f", (b - a) / n / 1000000 }'
}

printf '%-6s %-8s %-14s %-16s %s\n' VMS SPAWNS "STATUS (ms)" "BASELINE (ms)" RATIO
for n in 1 10 100 500; do
  dir=$work/$n
  mkdir -p "$dir/bin" "$dir/rules"
  cp tests/fakes/fake.sh "$dir/bin/virsh"
  chmod +x "$dir/bin/virsh"
  : >"$dir/log"
  stats=$dir/domstats.txt list=$dir/list.txt batch=$dir/batch.txt
  : >"$stats"
  printf ' Id   Name   State\n----------------------\n' >"$list"
  : >"$batch"
  for ((i = 0; i < n; i++)); do
    name=vm$i
    state=5
    if ((i % 2 == 0)); then state=1; fi
    {
      echo "Domain: '$name'"
      echo "  state.state=$state"
      echo "  state.reason=1"
      echo "  balloon.current=4194304"
      echo "  balloon.maximum=4194304"
      echo "  vcpu.current=2"
      echo "  vcpu.maximum=2"
      echo "  block.count=1"
      echo "  block.0.name=vda"
      echo "  block.0.path=/var/lib/libvirt/images/$name.qcow2"
      echo "  block.0.allocation=1073741824"
      echo "  block.0.capacity=68719476736"
      echo "  block.0.physical=1073741824"
      echo
    } >>"$stats"
    printf ' %-4s %-6s %s\n' "$i" "$name" "$([[ $state == 1 ]] && echo running || echo 'shut off')" >>"$list"
    if ((state == 1)); then
      {
        echo "@@bkt $name"
        echo " Name       MAC address          Protocol     Address"
        echo "-------------------------------------------------------------------------------"
        # Loopback addresses: status probes port 3389 of each, and a
        # benchmark only ever talks to this machine.
        printf ' vnet%-6s 52:54:00:00:%02x:%02x    ipv4         127.0.%d.%d/8\n\n' "$i" $((i / 256)) $((i % 256)) $((i / 250)) $((i % 250 + 2))
      } >>"$batch"
    fi
  done
  printf 'virsh\t* domstats *' >"$dir/rules/0.match"
  cp "$stats" "$dir/rules/0.out"
  printf 'virsh\t-c * echo @@bkt *' >"$dir/rules/1.match"
  cp "$batch" "$dir/rules/1.out"
  printf 'virsh\t* list --all' >"$dir/rules/2.match"
  cp "$list" "$dir/rules/2.out"

  run_status() {
    env -i PATH="$dir/bin" HOME="$dir" FAKE_DIR="$dir" BKT_VM_MANIFEST="$dir/vms.json" "$BKT" vm status --json
  }
  run_baseline() {
    env -i PATH="$dir/bin" FAKE_DIR="$dir" "$dir/bin/virsh" -c qemu:///system list --all
  }
  # Check the output is right before timing it.
  count=$(run_status | grep -c '"name"')
  [[ $count == "$n" ]] || { echo "bench: expected $n VMs in the status, got $count" >&2; exit 1; }
  : >"$dir/log"
  run_status >/dev/null
  spawns=$(wc -l <"$dir/log")
  status_ms=$(mean_ms run_status)
  base_ms=$(mean_ms run_baseline)
  ratio=$(awk -v s="$status_ms" -v b="$base_ms" 'BEGIN { printf "%.2f", s / b }')
  printf '%-6s %-8s %-14s %-16s %sx\n' "$n" "$spawns" "$status_ms" "$base_ms" "$ratio"
done
