#!/usr/bin/env bash
# A hand check of bkt over qemu+ssh against real OpenSSH and libvirt, run
# inside scripts/libvirt-netns.sh (root):
#
#   flock /tmp/bkt-e2e.lock bash scripts/libvirt-netns.sh \
#     bash scripts/try-ssh-host.sh target/debug/bkt [UNIT-TEST-BINARY]
#
# A throwaway sshd on the namespace's loopback (port 2222, its own host key,
# a client key); bkt runs in a mount namespace where the local libvirt
# socket and state are hidden behind empty tmpfs mounts, so the URI is its
# only way in. With the unit-test binary (target/debug/deps/bkt-HASH), the
# ignored test `real_host_file_operations` runs every SshHost file
# operation there first. Not the e2e remote phase: no VM is made.
set -euo pipefail
bkt=$(realpath "$1")
tests=${2:+$(realpath "$2")}
work=$(mktemp -d /tmp/bkt-ssh-try.XXXXXX)
# shellcheck source=scripts/sshd-lib.sh
. "$(dirname "$0")/sshd-lib.sh"
# libvirt's ssh (no_verify) writes the throwaway host key into root's
# known_hosts: taken out again at the end.
known_hosts_note
# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
  set +e
  sshd_stop
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
sshd_setup "$work"
sshd_start "$work"
uri="qemu+ssh://root@127.0.0.1:2222/system?keyfile=$work/key&no_verify=1"
hidden() {
  unshare -m sh -c 'mount -t tmpfs none /run/libvirt; mount -t tmpfs none /var/lib/libvirt; exec "$@"' sh "$@"
}
if [[ -n $tests ]]; then
  echo "=== every SshHost file operation on the host"
  BKT_TEST_SSH_URI=$uri hidden "$tests" --ignored real_host_file_operations
fi
echo "=== status"
time hidden "$bkt" vm -v -c "$uri" status
echo "=== doctor"
hidden "$bkt" vm -c "$uri" doctor || echo "doctor: exit $?"
echo "=== a key the host refuses"
hidden "$bkt" vm -c "qemu+ssh://root@127.0.0.1:2222/system?keyfile=$work/other&no_verify=1" status ||
  echo "exit $?"
echo "=== left behind"
ls -d /tmp/bkt-ssh.* 2>/dev/null || echo "no ssh socket directory"
