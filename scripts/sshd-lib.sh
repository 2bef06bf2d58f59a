# shellcheck shell=bash
# Sourced by the scripts that need a throwaway sshd (record-ssh-fixtures.sh,
# try-ssh-host.sh). sshd_setup DIR: in DIR, a host key, a client key `key`
# that root may log in with, a key `other` it may not, and an sshd_config
# for 127.0.0.1:2222 (no password, no PAM). Start it with
# `/usr/sbin/sshd -D -f DIR/sshd_config` (inside the caller's namespace).
sshd_setup() {
  local dir=$1
  mkdir -p /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/other"
  cp "$dir/key.pub" "$dir/authorized_keys"
  cat >"$dir/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port 2222
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The keys sit under /tmp (world-writable): not a home directory.
StrictModes no
PidFile $dir/sshd.pid
CONF
}

# sshd_start DIR [WRAPPER...]: `sshd -D -f DIR/sshd_config` in the
# background (run through WRAPPER, e.g. a mount namespace's, when given),
# its PID in sshd_pid; returns once it answers on 127.0.0.1:2222.
sshd_start() {
  local dir=$1
  shift
  "$@" /usr/sbin/sshd -D -f "$dir/sshd_config" &
  # shellcheck disable=SC2034  # the caller's, for sshd_stop
  sshd_pid=$!
  for _ in $(seq 50); do
    bash -c 'exec 3<>/dev/tcp/127.0.0.1/2222' 2>/dev/null && return 0
    sleep 0.1
  done
  echo "sshd did not come up on 127.0.0.1:2222" >&2
  return 1
}

# sshd_stop: end the sshd of sshd_start (if any), and take the throwaway
# host key out of root's known_hosts again (see known_hosts_note).
sshd_stop() {
  [[ -n ${sshd_pid:-} ]] && kill "$sshd_pid"
  known_hosts_restore
}

# libvirt's ssh with no_verify writes the throwaway host key into root's
# known_hosts. known_hosts_note, before: remember what was there;
# known_hosts_restore, after: take the key out again (and the file and its
# directory, when they were not there before).
known_hosts_note() {
  kh=$(getent passwd root | cut -d: -f6)/.ssh/known_hosts
  had_kh=no had_kh_dir=no
  [[ -e $kh ]] && had_kh=yes
  [[ -d ${kh%/*} ]] && had_kh_dir=yes
  return 0
}
known_hosts_restore() {
  if [[ $had_kh == yes ]]; then
    ssh-keygen -q -R '[127.0.0.1]:2222' -f "$kh" >/dev/null 2>&1
    rm -f "$kh.old"
  else
    rm -f "$kh" "$kh.old"
    [[ $had_kh_dir == yes ]] || rmdir "${kh%/*}"
  fi
}
