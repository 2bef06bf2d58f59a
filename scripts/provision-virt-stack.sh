#!/usr/bin/env bash
# Install the real virtualization stack that `bkt vm` drives, plus what the
# end-to-end tier, the benches and the scripts need (Xvfb, FreeRDP 2 and 3 as
# freerdp2-x11 and freerdp3-x11, virt-viewer, the sshd of the remote phase,
# the pieces of the tiny test guest, the recordings' tools): every package of
# scripts/packages.txt. Idempotent: a second run only checks and returns.
#
# Debian 12 (bookworm): the image ships qemu-utils 10 from bookworm-backports,
# which conflicts with bookworm's own qemu-system-x86 7.2, so the whole stack
# comes from backports (see shared/docs/host-facts.md).
# Fedora (dnf): we do not install anything; we print the equivalent packages.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The Debian packages and the programs each is needed for: one list
# (scripts/packages.txt), also read by the end-to-end tier's own check.
LIST=$HERE/packages.txt
mapfile -t DEB_PACKAGES < <(awk '!/^[[:space:]]*(#|$)/ {print $1}' "$LIST")
DNF_PACKAGES=(
  libvirt-daemon-kvm libvirt-client virt-install qemu-kvm qemu-img swtpm
  swtpm-tools edk2-ovmf xorriso freerdp virt-viewer acl desktop-file-utils
  shared-mime-info
)

log() { printf 'provision: %s\n' "$*" >&2; }

# The packages of the list that dpkg does not hold as installed.
missing_packages() {
  local p st
  for p in "${DEB_PACKAGES[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ $st == installed ]] || printf '%s\n' "$p"
  done
}

# The programs of the list that cannot be found, as "PROGRAM (PACKAGE)".
missing_programs() {
  local pkg progs p
  while read -r pkg progs; do
    for p in $progs; do
      if [[ $p == /* ]]; then
        [[ -e $p ]] || printf '%s (%s)\n' "$p" "$pkg"
      else
        PATH="$PATH:/usr/sbin:/sbin" command -v "$p" >/dev/null 2>&1 || printf '%s (%s)\n' "$p" "$pkg"
      fi
    done
  done < <(awk '!/^[[:space:]]*(#|$)/' "$LIST")
}

# The guest kernel and agent the end-to-end tier's tiny guest is built from
# (pinned in scripts/test-guest-packages.txt): fetched here, with the
# packages, so that the tests themselves fetch nothing.
fetch_guest_packages() {
  bash "$HERE/build-test-guest.sh" --fetch
}

if command -v dnf >/dev/null 2>&1 && ! command -v apt-get >/dev/null 2>&1; then
  log "this is a dnf host; install the stack with:"
  echo "  sudo dnf install ${DNF_PACKAGES[*]}"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "neither apt-get nor dnf found; install libvirt, QEMU, swtpm, OVMF and xorriso by hand"
  exit 1
fi

missing=$(missing_packages)
if [[ -z $missing ]]; then
  absent=$(missing_programs)
  if [[ -n $absent ]]; then
    log "every package is installed, yet these programs are not found:"
    while read -r line; do log "  $line"; done <<<"$absent"
    exit 1
  fi
  if [[ $(id -u) -eq 0 ]]; then
    fetch_guest_packages
  fi
  log "virt stack already installed (${#DEB_PACKAGES[@]} packages)"
  exit 0
fi
log "not installed yet: ${missing//$'\n'/ }"

if [[ $(id -u) -ne 0 ]]; then
  log "installing packages needs root; re-run with sudo"
  exit 1
fi

# shellcheck source=/dev/null
. /etc/os-release
codename=${VERSION_CODENAME:-}
apt_target=()
if [[ "$codename" == bookworm ]]; then
  src=/etc/apt/sources.list.d/bkt-backports.sources
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding bookworm-backports ($src)"
    # Same mirror and keyring as the machine's own debian.sources.
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    uri=${uri:-http://deb.debian.org/debian}
    cat >"$src" <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  apt_target=(-t bookworm-backports)
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
apt-get update -qq
log "installing: ${DEB_PACKAGES[*]}"
apt-get install -y -qq --no-install-recommends "${apt_target[@]}" "${DEB_PACKAGES[@]}" >/dev/null
missing=$(missing_packages)
if [[ -n $missing ]]; then
  log "apt-get did not install: ${missing//$'\n'/ }"
  exit 1
fi
absent=$(missing_programs)
if [[ -n $absent ]]; then
  log "installed, yet these programs are not found (is scripts/packages.txt right?):"
  while read -r line; do log "  $line"; done <<<"$absent"
  exit 1
fi
fetch_guest_packages
log "done"
