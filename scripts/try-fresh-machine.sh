#!/usr/bin/env bash
# The README's test command on a machine as it comes, as CI runs it: purge
# every Debian package the machine's base image does not list, remove what
# libvirt and the project's provisioning left (/var/lib/libvirt,
# /etc/libvirt, the test guest's packages, the backports source), then run
# .ci/run from a fresh clone in a 0700 `mktemp -d` directory, with CI=true
# and no standard input. Repeated RUNS times (each from a purged machine).
#
#   bash scripts/try-fresh-machine.sh --purge BASE-LIST [RUNS]   (root)
#
# BASE-LIST: the base image's packages, one per line as "apt NAME VERSION"
# (tab-separated; NAME may carry :amd64), e.g. the tool library's
# env/packages/installed-rust.txt. DESTRUCTIVE for this machine's packages:
# it asks for --purge and is meant for the project's throwaway machines.
# It clones the committed HEAD of this checkout, not its working tree.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

[[ ${1:-} == --purge && -r ${2:-} ]] || {
  echo "usage: $0 --purge BASE-LIST [RUNS]" >&2
  exit 2
}
base=$2
runs=${3:-3}
[[ $(id -u) -eq 0 ]] || { echo "needs root (apt-get)" >&2; exit 1; }
log() { printf 'try-fresh-machine: %s\n' "$*" >&2; }

purge() {
  local extra
  extra=$(comm -23 \
    <(dpkg-query -W -f='${db:Status-Status} ${Package}\n' | awk '$1 == "installed" {print $2}' | sort -u) \
    <(awk -F'\t' '$1 == "apt" {sub(/:.*/, "", $2); print $2}' "$base" | sort -u))
  if [[ -n $extra ]]; then
    log "purging $(wc -w <<<"$extra") packages the base image does not list"
    # shellcheck disable=SC2086  # one package name per word
    apt-mark auto $extra >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -qq >/dev/null
  fi
  rm -rf /var/lib/libvirt /etc/libvirt /var/cache/bkt /etc/apt/sources.list.d/bkt-backports.sources
  local left
  left=$(comm -23 \
    <(dpkg-query -W -f='${db:Status-Status} ${Package}\n' | awk '$1 == "installed" {print $2}' | sort -u) \
    <(awk -F'\t' '$1 == "apt" {sub(/:.*/, "", $2); print $2}' "$base" | sort -u))
  log "left beyond the base image (needed by it): ${left:-none}"
  for p in virsh xfreerdp3 xfreerdp qemu-system-x86_64 remote-viewer; do
    if command -v "$p" >/dev/null; then log "$p is still installed"; fi
  done
}

for n in $(seq "$runs"); do
  log "run $n of $runs: purging"
  purge
  dir=$(mktemp -d)
  chmod 700 "$dir"
  git clone -q "$here" "$dir/bkt"
  log "run $n: $(git -C "$dir/bkt" log --oneline -1) in $dir/bkt"
  t=$(date +%s)
  set +e
  (cd "$dir/bkt" && CI=true bash .ci/run </dev/null >"$dir/ci.log" 2>&1)
  rc=$?
  set -e
  log "run $n: .ci/run exited $rc after $(($(date +%s) - t))s (log: $dir/ci.log)"
  grep -E '^test result:|^  [a-z0-9 (),]+ +[0-9]+s' "$dir/ci.log" >&2 || true
  [[ $rc -eq 0 ]] || exit "$rc"
  # The build is gigabytes; the log stays.
  rm -rf "$dir/bkt"
done
log "$runs runs in a row, all green"
