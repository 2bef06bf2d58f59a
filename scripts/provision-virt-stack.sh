#!/usr/bin/env bash
# Install the real virtualization stack that `bkt vm` drives, plus what the
# end-to-end tier needs (Xvfb, FreeRDP, virt-viewer, the sshd of its remote
# phase, the pieces of the tiny test guest). Idempotent: a second run only
# checks and returns.
#
# Debian 12 (bookworm): the image ships qemu-utils 10 from bookworm-backports,
# which conflicts with bookworm's own qemu-system-x86 7.2, so the whole stack
# comes from backports (see shared/docs/host-facts.md).
# Fedora (dnf): we do not install anything; we print the equivalent packages.
set -euo pipefail

DEB_PACKAGES=(
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients virtinst
  qemu-system-x86 qemu-system-modules-spice qemu-utils swtpm swtpm-tools ovmf
  xorriso dnsmasq-base iptables iproute2 acl
  xvfb freerdp2-x11 virt-viewer desktop-file-utils shared-mime-info
  busybox-static cpio xz-utils gzip dosfstools mtools imagemagick x11-utils
  python3 openssh-client openssh-server
)
DNF_PACKAGES=(
  libvirt-daemon-kvm libvirt-client virt-install qemu-kvm qemu-img swtpm
  swtpm-tools edk2-ovmf xorriso freerdp virt-viewer acl desktop-file-utils
  shared-mime-info
)
# Programs whose presence means the stack is already installed.
NEEDED_PROGRAMS=(virsh virt-install libvirtd virtlogd qemu-system-x86_64 qemu-img
  swtpm xorriso setfacl Xvfb xfreerdp virt-viewer busybox cpio mkfs.vfat mcopy convert import xwininfo
  desktop-file-validate update-mime-database ssh sshd)

log() { printf 'provision: %s\n' "$*" >&2; }

all_present() {
  local p
  for p in "${NEEDED_PROGRAMS[@]}"; do
    command -v "$p" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$p" >/dev/null 2>&1 || return 1
  done
  [[ -e /usr/share/OVMF/OVMF_CODE_4M.ms.fd ]] || return 1
  dpkg-query -W -f='${Status}' linux-image-cloud-amd64 >/dev/null 2>&1 || true
  return 0
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

if all_present; then
  log "virt stack already installed"
  exit 0
fi

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
log "done"
