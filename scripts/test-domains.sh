# shellcheck shell=bash
# Domains for the scripts that work a real libvirt (scripts/bench-status.sh,
# scripts/record-status-fixtures.sh): sourced, never run. Everything talks
# to qemu:///system and runs inside scripts/libvirt-netns.sh's namespace,
# where the guest's address lives.

TD_URI=qemu:///system

# Poll until "$@" succeeds, for at most SECS seconds: td_wait WHAT SECS CMD...
td_wait() {
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "${0##*/}: gave up waiting for $what" >&2
  return 1
}

# The XML of a shut-off domain NAME with the qcow2 DISK, 2 vCPUs, 1 GiB.
td_off_xml() {
  cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
XML
}

# Start the tiny busybox guest of scripts/build-test-guest.sh as NAME, its
# NIC on `default` with MAC; DIR holds vmlinuz and initrd.gz where QEMU can
# read them: td_start_tiny NAME MAC DIR
td_start_tiny() {
  virt-install --connect "$TD_URI" --name "$1" --osinfo linux2022 --virt-type qemu \
    --memory 256 --vcpus 1 --import --disk none \
    --boot "kernel=$3/vmlinuz,initrd=$3/initrd.gz,kernel_args=console=ttyS0 quiet" \
    --network "network=default,model=virtio,mac=$2" --graphics none --noautoconsole >/dev/null 2>&1
}

# The address `default` leased to MAC, or nothing.
td_lease() {
  virsh -q -c "$TD_URI" net-dhcp-leases default |
    awk -v m="$1" '$3 == m {sub(/\/.*/, "", $5); print $5; exit}'
}

td_has_lease() { [[ -n $(td_lease "$1") ]]; }
td_port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/3389"; }

# Wait until the guest with MAC holds a lease and its port 3389 answers;
# print its address.
td_wait_up() {
  local ip
  td_wait "the lease of $1" 120 td_has_lease "$1"
  ip=$(td_lease "$1")
  td_wait "port 3389 of $ip" 60 td_port_open "$ip"
  echo "$ip"
}
