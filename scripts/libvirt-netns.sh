#!/usr/bin/env bash
# Run a command against a real libvirtd that lives in a network namespace this
# script creates, then tear everything down again.
#
#   scripts/libvirt-netns.sh COMMAND [ARGS...]
#
# Why a namespace: libvirt's `default` network is 192.168.122.0/24, a private
# range. Started inside our own namespace, its bridge and dnsmasq exist only
# there, and so does every guest address; the COMMAND runs there too, so
# anything that talks to a guest stays inside (see shared/docs/host-facts.md).
# The libvirt unix sockets under /run/libvirt are shared with the main
# namespace, which is why only one such environment can run at a time.
#
# On exit (any exit: success, failure, Ctrl-C) it destroys and undefines the
# domains that appeared while it ran (with their NVRAM and TPM state), stops
# the daemons it started by PID, ends what is left in the namespace by PID,
# and deletes the namespace. The COMMAND's exit status is this script's.
set -euo pipefail

NS=${BKT_NETNS:-bkt-e2e-$$}
SBIN_PATH="$PATH:/usr/sbin:/sbin"
started_pids=()
domains_before=""
pools_before=""
defined_default_net=no

log() { printf 'libvirt-netns: %s\n' "$*" >&2; }

in_ns() { ip netns exec "$NS" env PATH="$SBIN_PATH" "$@"; }

# Whether PID is a live process inside our namespace.
# shellcheck disable=SC2317  # called from the EXIT trap
ours() { [[ -n $1 ]] && [[ $(ip netns identify "$1" 2>/dev/null) == "$NS" ]]; }

# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [[ -S /run/libvirt/libvirt-sock ]]; then
    local d
    for d in $(virsh -q -c qemu:///system list --all --name 2>/dev/null); do
      if ! grep -qxF "$d" <<<"$domains_before"; then
        log "removing domain $d"
        virsh -q -c qemu:///system destroy "$d" >/dev/null 2>&1
        # Its disk images (never its CD-ROMs: those are install media) and
        # the snapshot copies bkt keeps beside them.
        local kind dev path
        while read -r kind dev _ path; do
          if [[ $kind == file && $dev == disk && -n $path && $path != *.iso ]]; then
            rm -f "$path"
            rm -rf "${path%/*}/$d.snapshots"
          fi
        done < <(virsh -q -c qemu:///system domblklist "$d" --details 2>/dev/null)
        # Never --remove-all-storage: it deletes ISOs in pools too.
        virsh -q -c qemu:///system undefine "$d" --nvram --tpm --snapshots-metadata --managed-save >/dev/null 2>&1 ||
          virsh -q -c qemu:///system undefine "$d" --nvram >/dev/null 2>&1
      fi
    done
  fi
  if [[ -S /run/libvirt/libvirt-sock ]]; then
    # virt-install quietly defines a pool for the directory of every ISO it
    # is given; forget those (definitions only: never their files).
    local p
    for p in $(virsh -q -c qemu:///system pool-list --all --name 2>/dev/null); do
      if ! grep -qxF "$p" <<<"$pools_before"; then
        virsh -q -c qemu:///system pool-destroy "$p" >/dev/null 2>&1
        virsh -q -c qemu:///system pool-undefine "$p" >/dev/null 2>&1
      fi
    done
    if [[ $defined_default_net == yes ]]; then
      virsh -q -c qemu:///system net-destroy default >/dev/null 2>&1
      virsh -q -c qemu:///system net-undefine default >/dev/null 2>&1
    fi
  fi
  local pid
  # The pid files name the daemons running now (a test may have restarted
  # one). A PID is ended only while it is a process of our namespace: a
  # daemon that already ended may have left its number to anyone's process
  # (a bkt of another test run), which must never get our signal.
  for pid in "${started_pids[@]}" $(cat /run/libvirtd.pid /run/virtlogd.pid 2>/dev/null); do
    if ours "$pid"; then
      kill "$pid" 2>/dev/null
      # Wait for the daemon to go, polling its PID.
      for _ in $(seq 100); do ours "$pid" || break; sleep 0.1; done
      ours "$pid" && kill -9 "$pid" 2>/dev/null
    fi
  done
  if ip netns list | grep -qw "$NS"; then
    # Everything still in the namespace is ours (dnsmasq outlives libvirtd).
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill "$pid" 2>/dev/null; done
    for _ in $(seq 50); do [[ -z "$(ip netns pids "$NS" 2>/dev/null)" ]] && break; sleep 0.1; done
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$NS"
  fi
  log "torn down"
  exit "$rc"
}

if [[ $# -eq 0 ]]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  log "needs root (network namespaces, the system libvirtd)"
  exit 1
fi
for p in libvirtd virtlogd; do
  if [[ -f /run/$p.pid ]] && kill -0 "$(cat "/run/$p.pid")" 2>/dev/null; then
    log "$p is already running (PID $(cat "/run/$p.pid")); stop it first: this script must own the daemons it tests against"
    exit 1
  fi
done

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
log "namespace $NS"

start_daemon() {
  local name=$1 sock=$2
  rm -f "/run/$name.pid"
  in_ns "$name" -d
  # Poll for the daemon's socket rather than sleeping a fixed time.
  for _ in $(seq 200); do
    [[ -f /run/$name.pid && -S $sock ]] && break
    sleep 0.05
  done
  [[ -S $sock ]] || { log "$name did not come up"; return 1; }
  started_pids+=("$(cat "/run/$name.pid")")
}
start_daemon virtlogd /run/libvirt/virtlogd-sock
start_daemon libvirtd /run/libvirt/libvirt-sock
for _ in $(seq 200); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.05; done
domains_before=$(virsh -q -c qemu:///system list --all --name 2>/dev/null || true)
pools_before=$(virsh -q -c qemu:///system pool-list --all --name 2>/dev/null || true)

# The `default` NAT network, inside our namespace only. Debian ships its
# definition in libvirt-daemon-config-network, which we do not install.
if ! virsh -q -c qemu:///system net-info default >/dev/null 2>&1; then
  tmp=$(mktemp)
  cat >"$tmp" <<'NET'
<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
  </ip>
</network>
NET
  virsh -q -c qemu:///system net-define "$tmp" >/dev/null
  rm -f "$tmp"
  defined_default_net=yes
fi
virsh -q -c qemu:///system net-autostart default --disable >/dev/null 2>&1 || true
# libvirtd runs in $NS, so the bridge and dnsmasq it creates live there.
virsh -q -c qemu:///system net-start default >/dev/null 2>&1 || true
# The pool virt-install would define for the images directory at the first
# create (named after the directory, as it names it). The end-to-end tests
# run side by side, and two virt-installs defining it at once would race.
images=/var/lib/libvirt/images
pool_xml=""
for p in $pools_before; do
  pool_xml+=$(virsh -q -c qemu:///system pool-dumpxml "$p" 2>/dev/null || true)
done
if [[ $pool_xml != *"<path>$images</path>"* ]]; then
  mkdir -p "$images"
  virsh -q -c qemu:///system pool-define-as images dir --target "$images" >/dev/null
  virsh -q -c qemu:///system pool-start images >/dev/null
fi
log "libvirtd ready ($(virsh -c qemu:///system version 2>/dev/null | awk -F': ' '/Running hypervisor/ {print $2}')); running: $*"

set +e
in_ns "$@"
rc=$?
set -e
exit "$rc"
