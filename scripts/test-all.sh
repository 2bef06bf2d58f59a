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

phase "provisioning the virt stack"
bash scripts/provision-virt-stack.sh

phase "lint: cargo fmt --check, cargo clippy"
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings

phase "tiers 1 and 2: unit tests and the binary against fake tools"
cargo test

phase "tier 3: end to end against real libvirt + QEMU + swtpm + OVMF"
t3=$(date +%s)
cargo test --test e2e --no-run --quiet
bash scripts/build-test-guest.sh target/e2e-guest
BKT_E2E_GUEST_DIR=$PWD/target/e2e-guest \
  bash scripts/libvirt-netns.sh cargo test --offline --test e2e -- --ignored --nocapture
t_end=$(date +%s)

printf '\nend-to-end tier: %ss; all tiers: %ss\n' "$((t_end - t3))" "$((t_end - t0))" >&2
