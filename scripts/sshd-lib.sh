# shellcheck shell=bash
# Sourced by the scripts that need a throwaway sshd (record-ssh-fixtures.sh,
# try-ssh-host.sh, bench-ssh.sh). sshd_setup DIR [PORT]: in DIR, a host key,
# a client key `key` that root may log in with, a key `other` it may not,
# and an sshd_config for 127.0.0.1:PORT (default 2222; no password, no PAM;
# LogLevel VERBOSE, so that every login is a line of its log). Start it with
# `/usr/sbin/sshd -D -f DIR/sshd_config` (inside the caller's namespace), or
# with sshd_start.
sshd_setup() {
  local dir=$1 port=${2:-2222}
  mkdir -p /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/other"
  cp "$dir/key.pub" "$dir/authorized_keys"
  cat >"$dir/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The keys sit under /tmp (world-writable): not a home directory.
StrictModes no
PidFile $dir/sshd.pid
LogLevel VERBOSE
CONF
}

# sshd_start DIR [WRAPPER...]: start the sshd of sshd_setup DIR in the
# background (run through WRAPPER, e.g. a mount namespace's, when given),
# logging to DIR/sshd.log; returns once it listens, its PID in sshd_pid
# (the caller ends it, or sshd_stop does).
sshd_start() {
  local dir=$1 i
  shift
  "$@" /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" &
  sshd_pid=$!
  for ((i = 0; i < 100; i++)); do
    grep -qs 'Server listening on' "$dir/sshd.log" && return 0
    kill -0 "$sshd_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "sshd did not start:" >&2
  cat "$dir/sshd.log" >&2
  return 1
}

# sshd_stop: end the sshd of sshd_start (if any), and take the throwaway
# host key out of root's known_hosts again (see known_hosts_note).
sshd_stop() {
  [[ -n ${sshd_pid:-} ]] && kill "$sshd_pid"
  known_hosts_restore
}

# sshd_known_hosts DIR PORT: the known_hosts line of its host key.
sshd_known_hosts() {
  printf '[127.0.0.1]:%s %s\n' "$2" "$(cut -d' ' -f1,2 "$1/host_key.pub")"
}

# sshd_logins DIR: how many logins the sshd accepted so far.
sshd_logins() {
  grep -c 'Accepted publickey for ' "$1/sshd.log" || true
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
