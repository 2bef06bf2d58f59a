#!/usr/bin/env bash
# A hand check of snapshots and doctor over qemu+ssh against real OpenSSH,
# libvirt and polkit, as root on the host and as a user who is not (root on
# this machine; it starts everything it needs and tears it down):
#
#   flock /tmp/bkt-e2e.lock bash scripts/try-ssh-snapshots.sh target/debug/bkt [FIXTURES-DIR]
#
# A system D-Bus and polkitd (Debian's rule lets the libvirt group use
# libvirt; without them a user who is not root cannot even be refused as a
# real host refuses), then scripts/libvirt-netns.sh, inside it a throwaway
# sshd (sshd-lib.sh) that sees a passwd where `nobody` has a shell and a
# home, and a group file the script adds `nobody` to the libvirt group in
# halfway. A shut-off UEFI + TPM 2.0 domain with a qcow2 disk, started once
# so that its NVRAM and TPM state exist. bkt runs where the local libvirt
# socket and state are hidden (unshare -m, tmpfs), so the URI is its only
# way in. With FIXTURES-DIR, what the host printed to the calls bkt makes
# is recorded there (fixtures/README.md lists them).
set -euo pipefail

if [[ ${1:-} != --inner ]]; then
  bkt=$(realpath "$1")
  out=${2:+$(realpath "$2")}
  work=$(mktemp -d /tmp/bkt-ssh-snap.XXXXXX)
  chmod 711 "$work"
  dbus_pid="" polkit_pid=""
  # shellcheck disable=SC2317  # invoked through the EXIT trap
  cleanup() {
    set +e
    [[ -n $polkit_pid ]] && kill "$polkit_pid"
    [[ -n $dbus_pid ]] && kill "$dbus_pid"
    rm -f /run/dbus/system_bus_socket /run/dbus/pid
    rm -rf "$work"
  }
  trap cleanup EXIT INT TERM
  # Who sshd and polkitd see: `nobody` with a shell and a home.
  cp /etc/passwd "$work/passwd"
  cp /etc/group "$work/group"
  cp /etc/shadow "$work/shadow"
  sed -i "s|^nobody:.*|nobody:x:65534:65534:nobody:$work/home:/bin/sh|" "$work/passwd"
  sed -i "s|^nobody:[^:]*:|nobody:*:|" "$work/shadow"
  mkdir -p "$work/home"
  chown 65534:65534 "$work/home"
  if [[ -S /run/dbus/system_bus_socket ]]; then
    echo "a system bus is running already: this script starts its own" >&2
    exit 1
  fi
  mkdir -p /run/dbus
  dbus-daemon --system --fork --print-pid=3 3>"$work/dbus.pid"
  dbus_pid=$(cat "$work/dbus.pid")
  # shellcheck disable=SC2016  # expanded by the inner sh
  unshare -m sh -c 'mount --bind "$1/passwd" /etc/passwd; mount --bind "$1/group" /etc/group; exec /usr/lib/polkit-1/polkitd --no-debug' \
    sh "$work" >"$work/polkit.log" 2>&1 &
  polkit_pid=$!
  for _ in $(seq 100); do
    dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.ListNames 2>/dev/null |
      grep -q PolicyKit1 && break
    sleep 0.1
  done
  # libvirtd starts after the bus (it looks for it once).
  BKT_TRY_WORK=$work BKT_TRY_OUT=$out bash "$(dirname "$0")/libvirt-netns.sh" \
    bash "$(realpath "$0")" --inner "$bkt"
  exit $?
fi

# Inside libvirt-netns.sh.
bkt=$2
work=$BKT_TRY_WORK
out=${BKT_TRY_OUT:-}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/sshd-lib.sh
. scripts/sshd-lib.sh
known_hosts_note
# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
  set +e
  sshd_stop
  for d in bkt-rcreate bkt-rcreate2; do
    virsh -q -c qemu:///system destroy "$d" >/dev/null 2>&1
    virsh -q -c qemu:///system undefine "$d" --nvram --tpm >/dev/null 2>&1
    rm -f "/var/lib/libvirt/images/$d.qcow2"
  done
  # Only what this script sent: there were none before it.
  [[ ${sending:-} == yes ]] && rm -f /var/lib/libvirt/images/bkt-media-*
}
trap cleanup EXIT INT TERM
sshd_setup "$work"
chmod 644 "$work/authorized_keys"
# shellcheck disable=SC2016  # expanded by the inner sh
sshd_start "$work" unshare -m sh -c 'd=$1; shift; mount --bind "$d/passwd" /etc/passwd;
  mount --bind "$d/group" /etc/group; mount --bind "$d/shadow" /etc/shadow; exec "$@"' sh "$work"

vm="bkt-rsnap"
virt-install --connect qemu:///system --name "$vm" --virt-type qemu --machine q35 --memory 256 --vcpus 1 \
  --osinfo win11 --boot uefi --tpm backend.type=emulator,backend.version=2.0,model=tpm-crb \
  --disk "path=/var/lib/libvirt/images/$vm.qcow2,size=0.05,format=qcow2,bus=virtio" \
  --import --network none --graphics none --noautoconsole >/dev/null
virsh -q -c qemu:///system destroy "$vm" >/dev/null
nvram=/var/lib/libvirt/qemu/nvram/${vm}_VARS.fd
tpm=/var/lib/libvirt/swtpm/$(virsh -q -c qemu:///system domuuid "$vm")
sums() { sha256sum "$nvram" "$tpm"/tpm2/tpm2-00.permall | cut -c1-16; }

key="keyfile=$work/key&no_verify=1"
root_uri="qemu+ssh://root@127.0.0.1:2222/system?$key"
user_uri="qemu+ssh://nobody@127.0.0.1:2222/system?$key"
export BKT_VM_MANIFEST=$work/vms.json
hidden() {
  unshare -m sh -c 'mount -t tmpfs none /run/libvirt; mount -t tmpfs none /var/lib/libvirt; exec "$@"' sh "$@"
}
show() { # a command, its output and its exit status
  echo "\$ ${*/#$bkt/bkt}"
  local rc=0
  hidden "$@" || rc=$?
  echo "(exit $rc)"
}
as() { # USER CMD: over bkt's kind of ssh, as USER
  local u=$1
  shift
  ssh -p 2222 -l "$u" -i "$work/key" -o BatchMode=yes -o StrictHostKeyChecking=no -T -- 127.0.0.1 "$@"
}
rec() { # NAME CMD...: stdout, stderr (when any), exit status (when not 0)
  [[ -n $out ]] || return 0
  local name=$1 rc=0
  shift
  "$@" >"$out/$name.txt" 2>"$out/$name.err" || rc=$?
  [[ -s $out/$name.err ]] || rm -f "$out/$name.err"
  if [[ $rc != 0 ]]; then echo "$rc" >"$out/$name.code"; else rm -f "$out/$name.code"; fi
}

echo "=== as nobody, not in the libvirt group"
virsh -c "$user_uri" version >/dev/null 2>&1 || true # the host key, once
rec virsh-no-libvirt-access virsh -c "$user_uri" version
show "$bkt" vm -c "$user_uri" doctor
show "$bkt" vm -c "$user_uri" status

echo "=== as nobody, in the libvirt group"
sed 's/^\(libvirt:x:[0-9]*:.*\)$/\1,nobody/; s/^\(libvirt:x:[0-9]*:\),nobody$/\1nobody/' "$work/group" >"$work/group.new"
cat "$work/group.new" >"$work/group" # in place: the bind mounts keep the inode
rec id-nonroot as nobody 'id -u'
rec stat-nvram-denied as nobody "stat -L -c '%f %s %u %g' -- $nvram"
rec test-w-denied as nobody 'test -w /var/lib/libvirt/images'
rec home as nobody "printf '%s' \"\$HOME\""
rec swtpm-version as root 'command -v swtpm >/dev/null || exit 1; LC_ALL=C swtpm --version 2>&1; true'
rec program-missing as root 'command -v not-installed >/dev/null || exit 1; LC_ALL=C not-installed --version 2>&1; true'
rec stat-dev-kvm as root "stat -L -c '%f %s %u %g' -- /dev/kvm"
show "$bkt" vm -c "$user_uri" doctor
before=$(sums)
show "$bkt" vm -c "$user_uri" snapshot create "$vm" s1
echo "left on the host: $(ls -d /var/lib/libvirt/images/$vm.snapshots 2>/dev/null || echo nothing)," \
  "libvirt snapshots: $(virsh -q -c qemu:///system snapshot-list "$vm" --name | tr '\n' ' ')"

echo "=== create as nobody, in the libvirt group: the media go through libvirt's pool"
guest=target/e2e-guest
media() { ls /var/lib/libvirt/images/bkt-media-* 2>/dev/null; }
if [[ -n $(media) ]]; then
  echo "bkt media are on this host already: this script sends and removes its own" >&2
  exit 1
fi
sending=yes
mk() { # NAME: a small Windows-shaped VM from the stand-in ISOs, as nobody
  show "$bkt" vm -c "$user_uri" create windows --name "$1" --iso "$guest/win-standin.iso" \
    --virtio-iso "$guest/virtio-standin.iso" --virt-type qemu --memory 1G --cpus 1 --disk-size 1G --yes
}
mk bkt-rcreate
stat -c '%U:%G %a %s %n' /var/lib/libvirt/images/bkt-media-*
for f in win-standin virtio-standin; do
  cmp "$guest/$f.iso" /var/lib/libvirt/images/bkt-media-*-"$f.iso" && echo "$f.iso arrived whole"
done
echo "the disk is in pool: $(virsh -q -c qemu:///system vol-pool /var/lib/libvirt/images/bkt-rcreate.qcow2)"
mk bkt-rcreate2
# enable-rdp's script ISO goes the same way (libvirt makes and deletes it);
# no Windows answers, so it times out and puts the install ISO back.
show "$bkt" vm -c "$user_uri" enable-rdp bkt-rcreate --timeout 5
echo "script ISO left: $(ls /var/lib/libvirt/images/*enable-rdp* 2>/dev/null || echo none);" \
  "sda holds: $(virsh -q -c qemu:///system domblklist bkt-rcreate | awk '$1 == "sda" {print $2}')"
show "$bkt" vm -c "$user_uri" destroy bkt-rcreate --yes
show "$bkt" vm -c "$user_uri" destroy bkt-rcreate2 --yes
echo "left on the host but the media: $(find /var/lib/libvirt/images -mindepth 1 ! -name 'bkt-media-*' | tr '\n' ' ')"
rm -f /var/lib/libvirt/images/bkt-media-*

echo "=== as root"
show "$bkt" vm -c "$root_uri" doctor
show "$bkt" vm -c "$root_uri" snapshot create "$vm" s1 --description "over ssh"
show "$bkt" vm -c "$root_uri" snapshot list "$vm"
ls -lR "/var/lib/libvirt/images/$vm.snapshots"
# Change NVRAM and TPM state, then revert: both come back.
printf 'changed' | dd of="$nvram" bs=1 seek=100 conv=notrunc status=none
printf 'changed' | dd of="$tpm/tpm2/tpm2-00.permall" bs=1 seek=100 conv=notrunc status=none
echo "before: $before / changed: $(sums | tr '\n' ' ')"
show "$bkt" vm -c "$user_uri" snapshot revert "$vm" s1 --yes
show "$bkt" vm -c "$root_uri" snapshot revert "$vm" s1 --yes
after=$(sums)
if [[ $after == "$before" ]]; then echo "NVRAM and TPM state reverted"; else echo "NOT REVERTED: $after"; fi
stat -c '%U:%G %a %n' "$nvram" "$tpm/tpm2" "$tpm/tpm2/tpm2-00.permall"
show "$bkt" vm -c "$user_uri" snapshot delete "$vm" s1
show "$bkt" vm -c "$root_uri" snapshot delete "$vm" s1
echo "left on the host: $(find /var/lib/libvirt/images -mindepth 1 | tr '\n' ' ')"
echo "ssh socket directories left: $(ls -d /tmp/bkt-ssh.* 2>/dev/null || echo none)"
