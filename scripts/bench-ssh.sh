#!/usr/bin/env bash
# Benchmark: bkt over `qemu+ssh://`, against a real libvirt (the end-to-end
# tier's, in a network namespace of its own) behind a throwaway sshd on
# that namespace's loopback. Prints:
#
#  - the median wall time of `bkt vm -c URI status` and of
#    `virsh -c URI list --all` over RUNS runs each, alternating, and their
#    ratio. Goal: status within 2x.
#  - ssh handshakes per command (status, ip, doctor, connect; and virsh's
#    one call for reference), counted from sshd's own log ("Accepted
#    publickey" lines, LogLevel VERBOSE). Goal: 1.
#
# One running tiny guest (scripts/build-test-guest.sh) stands in for
# Windows: a lease, port 3389 answering. Both sides run in a private mount
# namespace where /run/libvirt, /var/lib/libvirt and /etc/libvirt are empty
# tmpfs mounts (the URI is the only way in) and /root is one too, holding
# the known_hosts the bench writes for its sshd: virsh's own ssh reads it
# as a user's, bkt is also told it in the URI (?known_hosts=), and root's
# real ~/.ssh is never touched. Every output is checked before it is timed;
# a failed run fails the bench. Ends with a line per goal: "goal met: ..."
# or "goal NOT met: ..." (exit 0 either way: a bench reports). Needs root:
#
#   flock /tmp/bkt-e2e.lock bash scripts/bench-ssh.sh [RUNS]   (default 15)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
# shellcheck source=scripts/sshd-lib.sh
. scripts/sshd-lib.sh
# shellcheck source=scripts/test-domains.sh
. scripts/test-domains.sh

PORT=2222
TINY=bench-ssh-tiny
TINY_MAC=52:54:00:be:4c:02

# The third part, run by unshare -m: libvirt and root's home hidden.
timed_part() {
  local work=$1 uri=$2 ip=$3 display=$4 out
  for d in /run/libvirt /var/lib/libvirt /etc/libvirt /root; do
    mount -t tmpfs none "$d"
  done
  mkdir -m 700 /root/.ssh
  cp "$work/known_hosts" /root/.ssh/known_hosts
  export TMPDIR=$work/tmp NO_COLOR=1 BKT_VM_MANIFEST=$work/vms.json XDG_CACHE_HOME=$work/cache
  mkdir -p "$TMPDIR" "$XDG_CACHE_HOME"
  bkt() { "$BKT" vm -c "$uri" "$@"; }
  run_status() { bkt status --json; }
  run_baseline() { virsh -c "$uri" list --all; }
  left() {
    if compgen -G "$TMPDIR/bkt-ssh.*" >/dev/null; then
      echo "bench: bkt left its ssh directory behind: $(echo "$TMPDIR"/bkt-ssh.*)" >&2
      return 1
    fi
  }

  # manifest NAME=MAC...: bkt's manifest with those VMs on this URI (an
  # empty MAC: none on record).
  manifest() {
    python3 - "$uri" "$@" >"$BKT_VM_MANIFEST" <<'PY'
import json, sys
vms = []
for a in sys.argv[2:]:
    name, mac = a.split("=")
    e = {"name": name, "type": "windows11", "disk": f"/var/lib/libvirt/images/{name}.qcow2",
         "created": "2026-11-28", "uri": sys.argv[1], "rdp_enabled": True}
    if mac:
        e["mac"] = mac
    vms.append(e)
print(json.dumps({"vms": vms}))
PY
  }
  # row CASE NAME=MAC...: status (checked first) and the baseline, RUNS
  # times each, alternating.
  row() {
    local case=$1 s=() b=() i sm bm ratio
    shift
    manifest "$@"
    check <<<"$(run_status)"
    for ((i = 0; i < RUNS; i++)); do
      s+=("$(time_us run_status)")
      b+=("$(time_us run_baseline)")
    done
    sm=$(printf '%s\n' "${s[@]}" | median_ms)
    bm=$(printf '%s\n' "${b[@]}" | median_ms)
    ratio=$(awk -v s="$sm" -v b="$bm" 'BEGIN { printf "%.2f", s / b }')
    printf '%-36s %-10s %-14s %sx\n' "$case" "$sm" "$bm" "$ratio"
    goal "$ratio" '<=' 2 "status within 2x of virsh list --all, $case" "${ratio}x"
  }
  # check <STATUS-JSON: the guest running, its address, its port open.
  check() {
    python3 -c '
import json, sys
row = next((v for v in json.load(sys.stdin)["vms"] if v["name"] == sys.argv[1]), None)
got = row and (row["state"], row["ip"], row["rdp_port"])
if got != ("running", sys.argv[2], "open"):
    sys.exit(f"bench: status shows {sys.argv[1]} as {got}")
' "$TINY" "$ip"
  }

  # Checked first: the guest, its address and its open port in status;
  # in virsh's list.
  manifest "$TINY=$TINY_MAC"
  check <<<"$(run_status)"
  left
  # (Not piped into grep -q: it can end virsh early, a failure under pipefail.)
  out=$(run_baseline)
  grep -q " $TINY  *running" <<<"$out" || { echo "bench: virsh list --all does not show $TINY running:" "$out" >&2; return 1; }

  # Handshakes: sshd's log before and after one run of each.
  local before logins
  count() {
    local what=$1 want=$2
    shift 2
    before=$(sshd_logins "$work/sshd")
    out=$("$@" 2>&1) || [[ $want != ok ]] || { echo "bench: $what failed: $out" >&2; return 1; }
    left
    logins=$(($(sshd_logins "$work/sshd") - before))
    printf '%-48s %s\n' "$what" "$logins"
    if [[ $what == bkt* ]]; then
      goal "$logins" '==' 1 "one ssh handshake for $what" "$logins"
    fi
  }
  echo "ssh handshakes per command, the guest in bkt's manifest (sshd's \"Accepted publickey\" lines; goal: 1):"
  count "bkt vm status" ok bkt status
  count "bkt vm ip $TINY" ok bkt ip "$TINY"
  [[ $out == "$ip"* ]] || { echo "bench: ip printed $out" >&2; return 1; }
  # doctor fails two checks: the tiny guest is not Windows-shaped.
  count "bkt vm doctor $TINY" fails bkt doctor "$TINY"
  [[ $out == *"RDP            $ip:3389 answers"* ]] || { echo "bench: doctor said $out" >&2; return 1; }
  # The real xfreerdp through bkt's tunnel; it fails at the guest's
  # stand-in listener, after the tunnel carried it there.
  count "bkt vm connect $TINY --rdp (xfreerdp)" fails \
    env DISPLAY="$display" BKT_VM_RDP_CLIENT=xfreerdp BKT_VM_RDP_PASSWORD=x \
    "$BKT" vm -c "$uri" connect "$TINY" --rdp --user bench --timeout 30
  [[ $out == *"through an ssh tunnel at 127.0.0.1:"* ]] || { echo "bench: connect said $out" >&2; return 1; }
  count "virsh -c URI list --all (for reference)" ok run_baseline

  if [[ -n ${BENCH_SSH_TRACE:-} ]]; then
    echo "bkt -v status, each command's start in ms since bkt started:"
    local t0
    t0=$(date +%s%N)
    bkt -v status 2>&1 >/dev/null | while IFS= read -r l; do
      printf '%6d %s\n' $((($(date +%s%N) - t0) / 1000000)) "${l:0:150}"
    done
    printf '%6d end\n' $((($(date +%s%N) - t0) / 1000000))
  fi

  echo
  echo "status against virsh list --all, median of $RUNS runs each, alternating (goal: within 2x):"
  printf '%-36s %-10s %-14s %s\n' CASE "STATUS ms" "LIST --all ms" RATIO
  row "the guest in bkt's manifest" "$TINY=$TINY_MAC"
  # Not in the manifest: no MAC to find its lease by, one virsh more.
  row "the guest made by hand" "$TINY="
  left
}

# Inside scripts/libvirt-netns.sh's namespace: the guest, sshd, Xvfb.
inside() {
  local guest=$1 ip display
  # Globals: the EXIT trap reads them after this function returned.
  work=$(mktemp -d /var/tmp/bkt-bench-ssh.XXXXXX)
  chmod 755 "$work"
  sshd_pid="" xvfb_pid=""
  # shellcheck disable=SC2317  # invoked through the EXIT trap
  cleanup() {
    set +e
    [[ -n $sshd_pid ]] && kill "$sshd_pid"
    [[ -n $xvfb_pid ]] && kill "$xvfb_pid"
    virsh -q -c "$TD_URI" "destroy $TINY; undefine $TINY" >/dev/null 2>&1
    rm -rf "$work"
  }
  trap cleanup EXIT
  install -m 644 "$guest/vmlinuz" "$guest/initrd.gz" "$work/"
  td_start_tiny "$TINY" "$TINY_MAC" "$work"
  ip=$(td_wait_up "$TINY_MAC")
  mkdir -m 700 "$work/sshd"
  sshd_setup "$work/sshd" "$PORT"
  sshd_start "$work/sshd"
  sshd_known_hosts "$work/sshd" "$PORT" >"$work/known_hosts"
  Xvfb -displayfd 1 -screen 0 1024x768x24 -nolisten tcp >"$work/display" 2>/dev/null &
  xvfb_pid=$!
  td_wait "Xvfb" 10 test -s "$work/display"
  display=:$(cat "$work/display")
  echo "real libvirt $(virsh -c "$TD_URI" version | awk -F': ' '/^Using library/ {sub(/libvirt /, "", $2); print $2}') behind OpenSSH $(ssh -V 2>&1 | cut -d' ' -f1 | cut -d_ -f2) on 127.0.0.1:$PORT; one running tiny guest at $ip"
  echo
  local uri="qemu+ssh://root@127.0.0.1:$PORT/system?keyfile=$work/sshd/key&known_hosts=$work/known_hosts"
  unshare -m env RUNS="$RUNS" BKT="$BKT" bash "$0" --timed "$work" "$uri" "$ip" "$display"
}

case ${1:-} in
  --timed)
    RUNS=${RUNS:?} BKT=${BKT:?}
    timed_part "$2" "$3" "$4" "$5"
    exit
    ;;
  --inside)
    RUNS=$2 BKT=$4
    inside "$3"
    exit
    ;;
esac

RUNS=${1:-15}
if [[ $(id -u) -ne 0 ]]; then
  echo "bench-ssh: needs root (the namespace, the system libvirtd, sshd)" >&2
  exit 1
fi
cargo build --release --quiet
bash scripts/build-test-guest.sh target/e2e-guest >/dev/null
# The goals the parts note (they run in the namespace), reported at the end.
BENCH_GOALS=$(mktemp)
export BENCH_GOALS
trap 'rm -f "$BENCH_GOALS"' EXIT
bash scripts/libvirt-netns.sh bash "$PWD/scripts/bench-ssh.sh" --inside "$RUNS" "$PWD/target/e2e-guest" "$PWD/target/release/bkt"
goals_report
