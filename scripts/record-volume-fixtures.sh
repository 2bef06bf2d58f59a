#!/usr/bin/env bash
# Record what virsh prints for the storage-pool calls `create` makes over
# qemu+ssh (pool-refresh, vol-create-as, vol-dumpxml, vol-delete) into
# fixtures/virsh/, against the real libvirt:
#
#   flock /tmp/bkt-e2e.lock bash scripts/libvirt-netns.sh bash scripts/record-volume-fixtures.sh
#
# A throwaway directory pool `bkt-rec-$$` under /tmp, removed at the end
# (libvirt-netns.sh forgets pools that appeared, too). pool-list-uuid and
# batch-pool-dumpxml keep the real names and paths (that pool's and the
# `images` pool libvirt-netns.sh defines); the rest name it `default` in
# /var/lib/libvirt/images.
set -euo pipefail
out=$(realpath "${1:-fixtures/virsh}")
pool=bkt-rec-$$
dir=$(mktemp -d /tmp/bkt-pool-rec.XXXXXX)
cleanup() {
  set +e
  virsh -q pool-destroy "$pool" >/dev/null 2>&1
  virsh -q pool-undefine "$pool" >/dev/null 2>&1
  rm -rf "$dir" "$dir.src" "$dir.xml"
}
trap cleanup EXIT INT TERM
rec() { # NAME ARGS...: stdout, stderr (when any), exit status (when not 0)
  local name=$1 rc=0
  shift
  set +e
  LC_ALL=C virsh -c qemu:///system "$@" >"$out/$name.txt" 2>"$out/$name.err"
  rc=$?
  set -e
  [[ -s $out/$name.err ]] || rm -f "$out/$name.err"
  if [[ $rc != 0 ]]; then echo "$rc" >"$out/$name.code"; else rm -f "$out/$name.code"; fi
}
virsh -q pool-define-as "$pool" dir --target "$dir" >/dev/null
virsh -q pool-start "$pool" >/dev/null
rec pool-refresh pool-refresh "$pool"
# Which active pool holds a directory: their UUIDs, then each one's XML
# in one process, with a UUID no pool has among them (gone in between).
rec pool-list-uuid -q pool-list --uuid
script=""
for u in $(cat "$out/pool-list-uuid.txt") 00000000-0000-4000-8000-000000000000; do
  script+="echo @@bkt $u; pool-dumpxml $u; "
done
rec batch-pool-dumpxml "$script"
rec pool-refresh-missing pool-refresh bkt-no-such-pool
rec vol-create-as-qcow2 vol-create-as "$pool" win.qcow2 2147483648 --format qcow2
# A file put there by somebody else, then a refresh: libvirt refuses it.
: >"$dir/taken.qcow2"
virsh -q pool-refresh "$pool" >/dev/null
rec vol-create-as-taken vol-create-as "$pool" taken.qcow2 2147483648 --format qcow2
rec vol-dumpxml-qcow2 vol-dumpxml "$dir/win.qcow2"
# What create does for a user who cannot write the directory: a volume
# from bkt's XML (virsh::volume_xml), filled from stdin, read back whole.
head -c 40960 /dev/urandom >"$dir.src"
cat >"$dir.xml" <<'XML'
<volume>
  <name>bkt-media-0123456789abcdef-w.iso</name>
  <capacity unit='bytes'>40960</capacity>
  <allocation unit='bytes'>0</allocation>
  <target>
    <format type='raw'/>
    <permissions>
      <mode>0644</mode>
    </permissions>
  </target>
</volume>
XML
rec vol-create-stdin vol-create "$pool" /dev/stdin <"$dir.xml"
rec vol-upload-stdin vol-upload --pool "$pool" bkt-media-0123456789abcdef-w.iso /dev/stdin <"$dir.src"
cmp "$dir.src" "$dir/bkt-media-0123456789abcdef-w.iso"
[[ $(stat -c %a "$dir/bkt-media-0123456789abcdef-w.iso") == 644 ]]
rm -f "$dir.src" "$dir.xml"
rec vol-delete-created vol-delete "$dir/win.qcow2"
# The pool's path is random: the fixtures name it /var/lib/libvirt/images.
sed -i "s|$dir|/var/lib/libvirt/images|g; s|$pool|default|g" \
  "$out"/pool-refresh.txt "$out"/vol-create-as-*.txt "$out"/vol-create-as-taken.err \
  "$out"/vol-dumpxml-qcow2.txt "$out"/vol-delete-created.txt "$out"/vol-create-stdin.txt \
  "$out"/vol-upload-stdin.txt
echo "recorded into $out" >&2
