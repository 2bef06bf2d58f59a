#!/usr/bin/env bash
# Record what OpenSSH and the host's POSIX tools print to the calls bkt's
# ssh Host makes (fixtures/ssh/), against a throwaway sshd on the loopback
# of a network namespace this script creates (port 2222, its own host key,
# a client key in authorized_keys, a second key that is not), then tear it
# all down. Root. Usage: scripts/record-ssh-fixtures.sh [OUTDIR]
set -euo pipefail

out=$(realpath "${1:-fixtures/ssh}")
NS=bkt-ssh-rec-$$
work=$(mktemp -d /tmp/bkt-ssh-rec.XXXXXX)
sshd_pid=""

# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
  set +e
  [[ -n $sshd_pid ]] && kill "$sshd_pid"
  local p
  for p in $(ip netns pids "$NS" 2>/dev/null); do kill "$p"; done
  ip netns del "$NS" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
mkdir -p "$work/ctl"
chmod 700 "$work/ctl"
# shellcheck source=scripts/sshd-lib.sh
. "$(dirname "$0")/sshd-lib.sh"
sshd_setup "$work"
ip netns exec "$NS" /usr/sbin/sshd -D -f "$work/sshd_config" &
sshd_pid=$!
for _ in $(seq 50); do
  ip netns exec "$NS" bash -c 'exec 3<>/dev/tcp/127.0.0.1/2222' 2>/dev/null && break
  sleep 0.1
done

in_ns() { ip netns exec "$NS" "$@"; }
sock=$work/ctl/m
base=(ssh -S "$sock" -o BatchMode=yes -o ConnectTimeout=15)
rec() { # NAME CMD...: stdout (even empty), stderr (when any), exit status (when not 0)
  local name=$1 rc=0
  shift
  # Through pipes, as bkt's runner reads them: a master that kept them
  # open after going to the background would hang this.
  set +e
  ip netns exec "$NS" "$@" 2>"$out/$name.err" | cat >"$out/$name.txt"
  rc=${PIPESTATUS[0]}
  set -e
  [[ -s $out/$name.err ]] || rm -f "$out/$name.err"
  if [[ $rc != 0 ]]; then echo "$rc" >"$out/$name.code"; else rm -f "$out/$name.code"; fi
}

# The failures, each before any master exists.
rec master-unreachable "${base[@]}" -p 2223 -l root -i "$work/key" -o StrictHostKeyChecking=no \
  -M -o ControlPersist=no -f -N -- 127.0.0.1
rec master-host-key-unknown "${base[@]}" -p 2222 -l root -i "$work/key" -o UserKnownHostsFile=/dev/null \
  -M -o ControlPersist=no -f -N -- 127.0.0.1
rec master-auth-refused "${base[@]}" -p 2222 -l root -i "$work/other" -o UserKnownHostsFile=/dev/null \
  -o StrictHostKeyChecking=no -M -o ControlPersist=no -f -N -- 127.0.0.1

# virsh's own ssh (libvirt's transport) failing the same ways. With
# no_verify it writes the throwaway host key into root's known_hosts
# (libvirt's known_hosts= is for its libssh transports only): taken out
# again right after.
known_hosts_note
rec virsh-unreachable virsh -c "qemu+ssh://root@127.0.0.1:2223/system?keyfile=$work/key&no_verify=1&known_hosts=$work/kh" list
rec virsh-auth-refused virsh -c "qemu+ssh://root@127.0.0.1:2222/system?keyfile=$work/other&no_verify=1&known_hosts=$work/kh" list
known_hosts_restore

# The master, and calls over it.
ok=("${base[@]}" -p 2222 -l root -i "$work/key" -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no)
rec master-started "${ok[@]}" -M -o ControlPersist=no -f -N -- 127.0.0.1
run() { local name=$1; shift; rec "$name" "${ok[@]}" -o ControlMaster=no -T -- 127.0.0.1 "$@"; }
d=$work/remote
mkdir -p "$d/dir"
chmod 711 "$d/dir"
printf 'hello' >"$d/file"
chmod 640 "$d/file"
run stat-file "stat -L -c '%f %s %u %g' -- $d/file"
run stat-dir "stat -L -c '%f %s %u %g' -- $d/dir"
run stat-missing "stat -L -c '%f %s %u %g' -- $d/missing"
run sha256sum "sha256sum -- $d/file"
run df "p=$d/not/yet; while [ ! -e \"\$p\" ]; do p=\$(dirname -- \"\$p\"); done; df -PB1 -- \"\$p\""
# A listener on 127.0.0.1:3389 in the namespace; 127.0.0.2:3389 refuses;
# the namespace's firewall drops what goes to port 3390, so nothing answers.
in_ns iptables -A INPUT -p tcp --dport 3390 -j DROP
in_ns python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",3389)); s.listen(); time.sleep(30)' &
listener=$!
for _ in $(seq 50); do
  in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/3389' 2>/dev/null && break
  sleep 0.1
done
probe() { # INDEX IP:PORT TIMEOUT
  printf "(e=\$(timeout %s bash -c 'exec 3<>/dev/tcp/%s' 2>&1); r=\$?; if [ \$r = 0 ]; then echo %s open; else case \$e in *'Connection refused'*) echo %s refused;; *) echo %s noanswer;; esac; fi) & " "$3" "$2" "$1" "$1" "$1"
}
run probes "$(probe 0 127.0.0.2/3389 1.500)$(probe 1 127.0.0.1/3389 1.500)$(probe 2 127.0.0.1/3390 1.500)wait"
# A forward over the master to the listener, used once: the tunnel
# connect hands the RDP client.
rec master-forward "${ok[@]}" -O forward -L 127.0.0.1:40123:127.0.0.1:3389 -- 127.0.0.1
in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/40123' || { echo "the forward does not connect" >&2; exit 1; }
kill "$listener"
rec master-exit "${ok[@]}" -O exit -- 127.0.0.1
echo "recorded into $out:" >&2
ls "$out" >&2
