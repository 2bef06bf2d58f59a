#!/usr/bin/env bash
# Tiers 1 and 2 RUNS times in a row while CPU-bound processes keep every
# core busy: the proof that no test depends on timing or on having the
# machine to itself. Stops at the first failing run.
#
#   bash scripts/try-under-load.sh [RUNS]   (default 10; the stack installed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-10}
log() { printf 'try-under-load: %s\n' "$*" >&2; }

cargo test --no-run --quiet
burners=()
# shellcheck disable=SC2317  # invoked through the EXIT trap
stop_burners() {
  local pid
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_burners EXIT
for _ in $(seq "$(nproc)"); do
  yes >/dev/null &
  burners+=("$!")
done
log "${#burners[@]} busy processes (${burners[*]}), $runs runs"
passed=0
for n in $(seq "$runs"); do
  t=$(date +%s)
  out=$(mktemp)
  if cargo test --bins --test it --test e2e >"$out" 2>&1; then
    passed=$((passed + 1))
    log "run $n: green in $(($(date +%s) - t))s: $(grep -E '^test result:' "$out" | awk '{s += $4} END {print s}') tests passed"
    rm -f "$out"
  else
    log "run $n: FAILED after $(($(date +%s) - t))s; its output: $out"
    grep -E '^test .* FAILED$|panicked at' "$out" >&2 || true
    break
  fi
done
log "$passed of $runs runs green under load"
[[ $passed -eq $runs ]]
