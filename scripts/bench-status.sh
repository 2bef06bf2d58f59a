#!/usr/bin/env bash
# Benchmark: `bkt vm status --json` at 1, 10, 100 and 500 VMs, against the
# fake virsh of the fake-binary tier and against a real libvirt (the one of
# the end-to-end tier, in a network namespace of its own). For each it
# prints how many processes bkt spawned, the median wall time of status and
# of one plain `virsh list --all` of the same libvirt (the real virsh in the
# real part), and their ratio. Goal: the same spawn count at 1 and 500 VMs,
# and status within 1.5x of `virsh list --all` in the common case (every
# running VM made by bkt and holding a lease) on the real libvirt. Against
# the fake, whose `list --all` is a shell script printing a file, the ratio
# shows bkt's own cost (start, parse, probes), not the goal.
#
# Real part: one running tiny guest (scripts/build-test-guest.sh) whose MAC
# is in the manifest, and shut-off VMs with a qcow2 disk each. At 10 VMs two
# more cases: the running guest made by hand (not in the manifest), and its
# port 3389 dropping packets as a Windows firewall does (an iptables rule in
# the namespace), which costs status its whole probe timeout.
#
# Every figure is the median of RUNS runs, status and baseline alternating,
# both started the same way (`env -i`, a PATH with only virsh in it);
# each case's output is checked before it is timed, and any failed run fails
# the bench. Ends with a line per goal: "goal met: ..." or "goal NOT met:
# ..." (exit 0 either way: a bench reports). Needs root (the namespace, the
# system libvirtd):
#
#   flock /tmp/bkt-e2e.lock bash scripts/bench-status.sh [RUNS]   (default 15)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
# shellcheck source=scripts/test-domains.sh
. scripts/test-domains.sh

URI=qemu:///system
TINY_MAC=52:54:00:be:4c:01

header() { printf '%-5s %-22s %-7s %-10s %-14s %s\n' VMS CASE SPAWNS "STATUS ms" "LIST --all ms" RATIO; }

# One row: LABEL-VMS LABEL-CASE SPAWNS, timing run_status and run_baseline
# (functions the caller defines) RUNS times each, alternating. The ratio
# is left in row_ratio for the goals.
row() {
  local vms=$1 case=$2 spawns=$3 s=() b=() i
  for ((i = 0; i < RUNS; i++)); do
    s+=("$(time_us run_status)")
    b+=("$(time_us run_baseline)")
  done
  local sm bm
  sm=$(printf '%s\n' "${s[@]}" | median_ms)
  bm=$(printf '%s\n' "${b[@]}" | median_ms)
  row_ratio=$(awk -v s="$sm" -v b="$bm" 'BEGIN { printf "%.2f", s / b }')
  printf '%-5s %-22s %-7s %-10s %-14s %sx\n' "$vms" "$case" "$spawns" "$sm" "$bm" "$row_ratio"
}

# spawn_goal WHERE CASE AT-1 AT-500: the goal of the same spawn count at 1
# and 500 VMs.
spawn_goal() {
  goal "$4" '==' "$3" "the same spawn count at 1 and 500 VMs, $2, $1" "$3 and $4"
}

# check_status N [NAME IP RDP] <JSON: N rows; NAME's address and port state.
check_status() {
  python3 -c '
import json, sys
doc = json.load(sys.stdin); n = int(sys.argv[1])
vms = doc["vms"]
if len(vms) != n:
    sys.exit(f"bench: expected {n} VMs in the status, got {len(vms)}")
if len(sys.argv) > 2:
    name, ip, rdp = sys.argv[2:5]
    row = next(v for v in vms if v["name"] == name)
    got = (row["ip"], row["rdp_port"])
    if got != (ip, rdp):
        sys.exit(f"bench: {name}: expected {(ip, rdp)}, got {got}")
' "$@"
}

# check_spawns N LOG: the run spawned N processes (LOG has a line each).
check_spawns() {
  local got
  got=$(wc -l <"$2")
  [[ $got == "$1" ]] || { echo "bench: expected $1 spawns, got $got:" >&2; cat "$2" >&2; return 1; }
}

# The manifest of NAME=MAC... (an empty MAC: none on record).
manifest() {
  python3 - "$@" <<'PY'
import json, sys
vms = []
for a in sys.argv[1:]:
    name, mac = a.split("=")
    e = {"name": name, "type": "windows11", "disk": f"/var/lib/libvirt/images/{name}.qcow2",
         "created": "2026-11-28", "uri": "qemu:///system", "rdp_enabled": True}
    if mac:
        e["mac"] = mac
    vms.append(e)
print(json.dumps({"vms": vms}))
PY
}

fake_part() {
  local n i dir name state mac out kind spawns
  local -A spawned=()
  echo "fake virsh (tests/fakes/fake.sh), half of the VMs running:"
  header
  for n in 1 10 100 500; do
    dir=$work/$n
    mkdir -p "$dir/bin" "$dir/rules"
    cp tests/fakes/fake.sh "$dir/bin/virsh"
    chmod +x "$dir/bin/virsh"
    local leases=$dir/leases.txt stats=$dir/stats.txt list=$dir/list.txt addrs=$dir/addrs.txt
    local -a entries=() bare=()
    printf ' Expiry Time           MAC address         Protocol   IP address         Hostname   Client ID or DUID\n%s\n' \
      "----------------------------------------------------------------------------------------------------------" >"$leases"
    printf ' Id   Name   State\n----------------------\n' >"$list"
    : >"$stats"
    : >"$addrs"
    for ((i = 0; i < n; i++)); do
      name=vm$i
      mac=$(printf '52:54:00:00:%02x:%02x' $((i / 256)) $((i % 256)))
      entries+=("$name=$mac")
      bare+=("$name=")
      state=5
      if ((i % 2 == 0)); then
        state=1
        # Loopback addresses: status probes port 3389 of each, and a
        # benchmark only ever talks to this machine.
        ip=127.0.$((i / 250)).$((i % 250 + 2))
        printf ' 2026-11-28 13:24:49   %s   ipv4       %s/8   -          01:%s\n' "$mac" "$ip" "$mac" >>"$leases"
        printf '@@bkt %s\n Name       MAC address          Protocol     Address\n%s\n vnet%-6s %s    ipv4         %s/8\n\n' \
          "$name" "-------------------------------------------------------------------------------" "$i" "$mac" "$ip" >>"$addrs"
      fi
      printf "Domain: '%s'\n  state.state=%s\n  state.reason=1\n  balloon.current=4194304\n  balloon.maximum=4194304\n  vcpu.current=2\n  vcpu.maximum=2\n  block.count=1\n  block.0.name=vda\n  block.0.path=/var/lib/libvirt/images/%s.qcow2\n  block.0.allocation=1073741824\n  block.0.capacity=68719476736\n  block.0.physical=1073741824\n\n" \
        "$name" "$state" "$name" >>"$stats"
      printf ' %-4s %-6s %s\n' "$i" "$name" "$([[ $state == 1 ]] && echo running || echo 'shut off')" >>"$list"
    done
    { echo "@@bkt leases"; cat "$leases"; echo; echo "@@bkt saved"; echo; echo "@@bkt domstats"; cat "$stats"; } >"$dir/rules/0.out"
    printf 'virsh\t-c * echo @@bkt leases; *' >"$dir/rules/0.match"
    printf 'virsh\t-c * echo @@bkt vm*' >"$dir/rules/1.match"
    cp "$addrs" "$dir/rules/1.out"
    printf 'virsh\t-c * list --all' >"$dir/rules/2.match"
    cp "$list" "$dir/rules/2.out"

    run_status() {
      env -i PATH="$dir/bin" HOME="$dir" FAKE_DIR="$dir" BKT_VM_MANIFEST="$dir/vms.json" "$BKT" vm status --json
    }
    run_baseline() { env -i PATH="$dir/bin" FAKE_DIR="$dir" "$dir/bin/virsh" -c "$URI" list --all; }
    for kind in common hand-made; do
      if [[ $kind == common ]]; then manifest "${entries[@]}" >"$dir/vms.json"; else manifest "${bare[@]}" >"$dir/vms.json"; fi
      : >"$dir/log"
      out=$(run_status)
      check_status "$n" vm0 127.0.0.2 refused <<<"$out"
      spawns=1
      [[ $kind == common ]] || spawns=2
      check_spawns "$spawns" "$dir/log"
      row "$n" "$kind" "$spawns"
      spawned[$n-$kind]=$spawns
    done
  done
  for kind in common hand-made; do
    spawn_goal "fake virsh" "$kind" "${spawned[1-$kind]}" "${spawned[500-$kind]}"
  done
}

# The real part's domains, files and firewall rule go on any exit.
rule=()
# shellcheck disable=SC2317  # invoked through the EXIT trap
real_cleanup() {
  set +e
  ((${#rule[@]})) && iptables -D "${rule[@]}"
  local d script=""
  for d in $(virsh -q -c "$URI" list --all --name | grep '^bench-'); do
    script+="destroy $d; undefine $d --nvram; "
  done
  [[ -z $script ]] || virsh -q -c "$URI" "$script" >/dev/null 2>&1
  rm -rf "$work"
}

# Inside the namespace of scripts/libvirt-netns.sh: the real part.
real_part() {
  local guest=$1 ip n have=1 i

  install -m 644 "$guest/vmlinuz" "$guest/initrd.gz" "$work/"
  td_start_tiny bench-tiny "$TINY_MAC" "$work"
  ip=$(td_wait_up "$TINY_MAC")
  # bkt sees only virsh: in spy/ a script that counts the spawns (for the
  # checked run), in bin/ the real one (for the timed runs, which the
  # baseline's virsh runs the same way: `env -i`, PATH=bin).
  mkdir -p "$work/spy" "$work/bin"
  printf '#!/bin/sh\necho "$*" >>"%s/spawns"\nexec /usr/bin/virsh "$@"\n' "$work" >"$work/spy/virsh"
  chmod +x "$work/spy/virsh"
  ln -s /usr/bin/virsh "$work/bin/virsh"
  status_on() { env -i PATH="$work/$1" HOME="$work" BKT_VM_MANIFEST="$work/vms.json" "$BKT" vm status --json; }
  run_status() { status_on bin; }
  run_baseline() { env -i PATH="$work/bin" virsh -c "$URI" list --all; }
  # Check the output, count the spawns of one run, then time.
  measure() {
    local vms=$1 case=$2 rdp=$3 spawns=$4 out
    : >"$work/spawns"
    out=$(status_on spy)
    check_status "$vms" bench-tiny "$ip" "$rdp" <<<"$out"
    check_spawns "$spawns" "$work/spawns"
    check_status "$vms" bench-tiny "$ip" "$rdp" <<<"$(run_status)"
    [[ $(run_baseline | grep -c ' bench-') == "$vms" ]] || { echo "bench: virsh list --all does not list $vms VMs" >&2; return 1; }
    row "$vms" "$case" "$spawns"
  }

  echo "real libvirt $(virsh -c "$URI" version | awk -F': ' '/^Using library/ {sub(/libvirt /, "", $2); v = $2} /^Running hypervisor/ {h = $2} END {print v " (" h ", TCG)"}'), one running tiny guest, the other VMs shut off with a qcow2 each:"
  header
  local -a entries=("bench-tiny=$TINY_MAC")
  local -A spawned=()
  for n in 1 10 100 500; do
    local script=""
    for ((i = have; i < n; i++)); do
      qemu-img create -q -f qcow2 "$work/bench-off-$i.qcow2" 1G
      td_off_xml "bench-off-$i" "$work/bench-off-$i.qcow2" >"$work/bench-off-$i.xml"
      script+="define $work/bench-off-$i.xml; "
      entries+=("bench-off-$i=52:54:00:be:$(printf '%02x:%02x' $((i / 256)) $((i % 256)))")
    done
    [[ -z $script ]] || virsh -q -c "$URI" "$script" >/dev/null
    have=$n
    manifest "${entries[@]}" >"$work/vms.json"
    measure "$n" common open 1
    spawned[$n]=$(wc -l <"$work/spawns")
    goal "$row_ratio" '<=' 1.5 "status within 1.5x of virsh list --all, common case, real libvirt, $n VM$( ((n == 1)) || echo s)" "${row_ratio}x"
    if ((n == 10)); then
      manifest "${entries[@]:1}" >"$work/vms.json"
      measure "$n" "hand-made running VM" open 2
      manifest "${entries[@]}" >"$work/vms.json"
      # The probe's SYN never reaches the guest: for the host, a guest
      # whose firewall drops it.
      rule=(OUTPUT -d "$ip" -p tcp --dport 3389 -j DROP)
      iptables -I "${rule[@]}"
      measure "$n" "3389 drops packets" no_answer 1
      iptables -D "${rule[@]}"
      rule=()
    fi
  done
  spawn_goal "real libvirt" common "${spawned[1]}" "${spawned[500]}"
  # What status's probe timeout has to cover: how fast the guest answers
  # one probe. The connects are 200 ms apart: back to back, the stand-in's
  # busybox nc, busy forking, lets some SYNs go unanswered (a 1 s
  # retransmit), which says nothing about a single probe.
  python3 - "$ip" <<'PY'
import socket, statistics, sys, time
t = []
for _ in range(100):
    t0 = time.perf_counter()
    socket.create_connection((sys.argv[1], 3389), timeout=5).close()
    t.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.2)
t.sort()
print(f"the guest's port 3389 accepts a connect in {statistics.median(t):.2f} ms median, "
      f"{t[94]:.2f} ms at the 95th percentile, {t[-1]:.2f} ms at most "
      f"(100 connects 200 ms apart; {sum(x > 150 for x in t)} over 150 ms)")
PY
}

if [[ ${1:-} == --inside ]]; then
  RUNS=$2 BKT=$4
  work=$(mktemp -d /var/tmp/bkt-bench.XXXXXX)
  chmod 755 "$work"
  trap real_cleanup EXIT
  real_part "$3"
  exit
fi

RUNS=${1:-15}
if [[ $(id -u) -ne 0 ]]; then
  echo "bench-status: needs root (the real part runs libvirtd in a namespace)" >&2
  exit 1
fi
cargo build --release --quiet
BKT=$PWD/target/release/bkt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The goals both parts note (the real one in the namespace), reported at
# the end.
export BENCH_GOALS=$work/goals
fake_part
echo
bash scripts/build-test-guest.sh target/e2e-guest
bash scripts/libvirt-netns.sh bash "$PWD/scripts/bench-status.sh" --inside "$RUNS" "$PWD/target/e2e-guest" "$BKT"
goals_report
