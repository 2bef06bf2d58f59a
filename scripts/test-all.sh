#!/usr/bin/env bash
# Every test tier, from a fresh machine: the README's test command and CI's.
#
#   1. provision the real virt stack (idempotent; fast when present)
#   2. tiers 1 and 2: parsers, argv builders, and the binary against fakes
#   3. the end-to-end tier against a real libvirtd in a network namespace
#      this run creates (scripts/libvirt-netns.sh), torn down at the end
#
# Needs root for the namespace and the system libvirtd (CI runs as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $(id -u) -ne 0 ]]; then
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME "$0" "$@"
fi

t0=$(date +%s)
phase() { printf '\n=== %s\n' "$*" >&2; }
timings=()
# Each phase's time, printed together at the end.
timed() {
  local name=$1 t
  shift
  t=$(date +%s)
  "$@"
  timings+=("$(printf '%-44s %5ss' "$name" "$(($(date +%s) - t))")")
}

e2e_log=target/e2e.log
rm -f "$e2e_log"
# Where the time went, also when a phase failed.
# shellcheck disable=SC2317  # invoked through the EXIT trap
summary() {
  local rc=$?
  {
    printf '\nwhere the time went:\n'
    printf '  %s\n' "${timings[@]}"
    printf '  %-44s %5ss\n' "all tiers" "$(($(date +%s) - t0))"
    if [[ -s $e2e_log ]]; then
      printf 'slowest end-to-end tests:\n'
      sed -nE 's/^\[([a-z0-9_]+)\] (done|failed) in ([0-9]+)s$/\3 \1 \2/p' "$e2e_log" |
        sort -rn | head -5 | awk '{printf "  %-44s %5ss%s\n", $2, $1, ($3 == "failed" ? " (failed)" : "")}'
    fi
  } >&2
  exit "$rc"
}
trap summary EXIT

phase "provisioning the virt stack"
timed "provisioning" bash scripts/provision-virt-stack.sh

phase "lint: cargo fmt --check, cargo clippy, shellcheck"
timed "lint (fmt, clippy, shellcheck)" sh -c 'cargo fmt --check && cargo clippy --all-targets --quiet -- -D warnings && shellcheck -x scripts/*.sh tests/fakes/fake.sh'

phase "tiers 1 and 2: unit tests and the binary against fake tools"
timed "build (all test binaries)" cargo test --no-run --quiet
timed "tier 1 (parsers, argv builders)" cargo test --bins
timed "tier 2 (the binary against fakes)" cargo test --test it --test e2e

phase "tier 3: end to end against real libvirt + QEMU + swtpm + OVMF"
timed "tier 3 test guest" bash scripts/build-test-guest.sh target/e2e-guest
# The unit tests' binary: the remote phase runs its one test that needs a
# real ssh host (every SshHost file operation) against its sshd.
unit_tests=$(cargo test --bins --no-run --quiet --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])')
# One real libvirt at a time on this machine: the benches and the try-*
# scripts take the same lock around theirs.
lock=/tmp/bkt-e2e.lock
exec 9>>"$lock"
if ! flock -n 9; then
  echo "test-all: waiting for $lock (another end-to-end run or bench holds it)" >&2
  flock 9
fi
e2e() {
  BKT_E2E_GUEST_DIR=$PWD/target/e2e-guest BKT_E2E_UNIT_TESTS=$unit_tests \
    bash scripts/libvirt-netns.sh cargo test --offline --test e2e -- --ignored --nocapture 9>&- 2>&1 | tee "$e2e_log"
}
timed "tier 3 (end to end)" e2e
flock -u 9
