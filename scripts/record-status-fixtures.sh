#!/usr/bin/env bash
# Record, on the real stack, the virsh outputs `status` and its neighbours
# are tested on (fixtures/virsh/, see fixtures/README.md), all in one scene:
# the status batch with no domains, with the tiny guest running before and
# after its lease and a shut-off domain beside it, with the guest saved to
# disk, with the `default`
# network inactive and undefined, and with no libvirtd at all; the batched
# domifaddr; `domstate --reason` after an ACPI shutdown the guest acted on;
# `net-info` of an inactive network; `pool-dumpxml` of a missing pool;
# `list --all --name`; `virsh --version`.
#
#   flock /tmp/bkt-e2e.lock bash scripts/libvirt-netns.sh \
#       bash scripts/record-status-fixtures.sh GUEST_DIR
#
# GUEST_DIR is what scripts/build-test-guest.sh made. A call that fails or
# writes to stderr is recorded as three files: NAME.txt (stdout), NAME.err
# (stderr), NAME.code (exit status).
# Runs inside libvirt-netns.sh's namespace: the guest's address exists only
# there.
set -euo pipefail
GUEST_DIR=$(realpath "${1:?usage: $0 GUEST_DIR}")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/test-domains.sh
. scripts/test-domains.sh
# BKT_RECORD_OUT: record into another directory (to take one new file).
OUT=${BKT_RECORD_OUT:-fixtures/virsh}
URI=qemu:///system
MAC=52:54:00:b4:b3:60
export LC_ALL=C

# The shut-off domain's disk sits where libvirt's images do, at a path that
# stays the same from one recording to the next.
disk=/var/lib/libvirt/images/bkt-record-off.qcow2
[[ ! -e $disk ]] || { echo "record: $disk exists; not touching it" >&2; exit 1; }
work=$(mktemp -d /var/tmp/bkt-record.XXXXXX)
chmod 755 "$work"
# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
  set +e
  for d in tiny off; do
    virsh -q -c "$URI" destroy "$d" >/dev/null 2>&1
    virsh -q -c "$URI" undefine "$d" --nvram --managed-save >/dev/null 2>&1
  done
  rm -rf "$work"
  rm -f "$disk"
}
trap cleanup EXIT

v() { virsh -c "$URI" "$@"; }

# NAME CMD...: stdout only; the call must succeed.
rec() {
  local name=$1
  shift
  "$@" >"$OUT/$name.txt"
  echo "recorded $name: $*" >&2
}

# NAME CMD...: stdout, stderr and the exit status, whatever it is.
rec3() {
  local name=$1 rc=0
  shift
  "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err" || rc=$?
  echo "$rc" >"$OUT/$name.code"
  echo "recorded $name (exit $rc): $*" >&2
}

batch() { v "echo @@bkt leases; net-dhcp-leases default; echo @@bkt saved; list --all --name --with-managed-save; echo @@bkt domstats; domstats --raw --state --vcpu --balloon --block"; }
# The batch of `status` over qemu+ssh: the host's size first.
batch_node() { v "echo @@bkt node; nodeinfo; echo @@bkt leases; net-dhcp-leases default; echo @@bkt saved; list --all --name --with-managed-save; echo @@bkt domstats; domstats --raw --state --vcpu --balloon --block"; }
is_off() { [[ $(v domstate tiny) == "shut off" ]]; }

[[ -n ${BKT_RECORD_OUT:-} ]] || virsh --version >fixtures/tools/virsh-version.txt
rec3 pool-dumpxml-default-missing v pool-dumpxml default
rec status-batch-empty batch

install -m 644 "$GUEST_DIR/vmlinuz" "$GUEST_DIR/initrd.gz" "$work/"
mkdir -p "${disk%/*}"
qemu-img create -q -f qcow2 "$disk" 4G
td_off_xml off "$disk" >"$work/off.xml"
v define "$work/off.xml" >/dev/null
td_start_tiny tiny "$MAC" "$work"
rec status-batch-booting batch
td_wait_up "$MAC" >/dev/null
rec status-batch-running batch
rec status-batch-node-running batch_node
rec list-all-name v -q list --all --name
rec3 batch-domifaddr v "echo @@bkt tiny; domifaddr --source lease tiny; echo @@bkt off; domifaddr --source lease off"
rec net-dhcp-leases-default v net-dhcp-leases default

# Saved to disk, then restored.
v managedsave tiny >/dev/null
rec status-batch-saved batch
v start tiny >/dev/null
td_wait_up "$MAC" >/dev/null

v shutdown tiny --mode acpi >/dev/null
td_wait "tiny to power off" 60 is_off
rec domstate-reason-shutoff-shutdown v domstate --reason tiny
rec status-batch-shutoff batch

v net-destroy default >/dev/null
rec net-info-default-inactive v net-info default
rec status-batch-network-inactive batch
v net-dumpxml default >"$work/net.xml"
v net-undefine default >/dev/null
rec3 status-batch-no-network batch
v net-define "$work/net.xml" >/dev/null
v net-start default >/dev/null

# No daemon: this run's libvirtd (libvirt-netns.sh started it) goes, then
# comes back for the teardown. The domains go first.
for d in tiny off; do v -q undefine "$d" --nvram >/dev/null; done
pid=$(cat /run/libvirtd.pid)
kill "$pid"
td_wait "libvirtd to exit" 30 bash -c "! kill -0 $pid"
rec3 status-batch-no-libvirtd batch
libvirtd -d
td_wait "libvirtd to answer" 30 v version
echo "record: done" >&2
