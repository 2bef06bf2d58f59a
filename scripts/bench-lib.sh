# shellcheck shell=bash
# Shared by the bench-*.sh scripts (sourced): a loopback listener standing
# in for a guest's port 3389, the median of a column of numbers, and the
# wall time of a run. Its own checks, which tier 2 runs (tests/it/bench_lib.rs):
#
#   bash scripts/bench-lib.sh --self-test

# listen_3389 IP OUTFILE: accept and close connections on IP:3389 until
# killed; returns once it listens, its PID in listener_pid. Fails when the
# listener ends first (the port taken) or is not up within 10 s.
listen_3389() {
  python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 3389))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
' "$1" >"$2" &
  # shellcheck disable=SC2034  # read by the script that sources this
  listener_pid=$!
  local i
  for ((i = 0; i < 1000; i++)); do
    grep -q ready "$2" 2>/dev/null && return 0
    kill -0 "$listener_pid" 2>/dev/null || break
    sleep 0.01
  done
  echo "bench: no listener on $1:3389 (is the port taken?)" >&2
  return 1
}

# The median of the numbers on stdin, one a line: the middle one, or for an
# even count the mean of the two middle ones. Printed without trailing
# zeros (2, 2.5, 2000000000.5); no numbers at all is an error.
median() {
  sort -g | awk '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "median: no numbers" > "/dev/stderr"; exit 1 }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      s = sprintf("%.6f", m); sub(/0+$/, "", s); sub(/\.$/, "", s); print s
    }'
}

# Wall time of one run of "$@" in microseconds; the run must succeed.
time_us() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null || return 1
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}

# Median, in ms, of the numbers (µs) on stdin.
median_ms() { median | awk '{ printf "%.1f", $1 / 1000 }'; }

# wait_until SECS WHAT CMD...: poll CMD every 10 ms until it succeeds (the
# real condition, not a guessed sleep); after SECS whole seconds, name WHAT
# and fail.
wait_until() {
  local secs=$1 what=$2 now deadline
  shift 2
  now=${EPOCHREALTIME//[!0-9]/}
  deadline=$((now + secs * 1000000))
  until "$@"; do
    now=${EPOCHREALTIME//[!0-9]/}
    if ((now >= deadline)); then
      echo "bench: gave up after $secs s waiting for $what" >&2
      return 1
    fi
    sleep 0.01
  done
}

# stamp_ready FILE: FILE holds a whole time stamp (`date +%s%N`).
stamp_ready() { [[ -s $1 && $(<"$1") =~ ^[0-9]+$ ]]; }

# read_stamp FILE [SECS]: the time stamp (ns) the measured run writes into
# FILE when it gets there (the RDP client's start). The caller removes FILE
# before each run, so the stamp read is this run's and never the previous
# run's; it is waited for (at most SECS, default 10 s), not assumed.
read_stamp() {
  wait_until "${2:-10}" "a fresh time stamp in $1" stamp_ready "$1" || return 1
  echo "$(<"$1")"
}

# ms_of_us US: microseconds as milliseconds, one decimal.
ms_of_us() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'; }

# goal VALUE OP LIMIT WHAT SHOWN: whether a figure met its goal (OP is one
# of < <= == >= >), noted as "goal met: WHAT (SHOWN)" or "goal NOT met: WHAT
# (SHOWN)" in the file $BENCH_GOALS (the parts of a bench may run in other
# processes); goals_report prints the notes at the end. A bench reports: a
# goal not met does not fail it, a figure that is not a number does.
goal() {
  local value=$1 op=$2 limit=$3 what=$4 shown=$5 num='^-?[0-9]+(\.[0-9]+)?$' verdict
  if ! [[ $value =~ $num && $limit =~ $num ]]; then
    echo "bench: goal \"$what\": not numbers: '$value' $op '$limit'" >&2
    return 1
  fi
  case $op in
    '<' | '<=' | '==' | '>=' | '>') ;;
    *) echo "bench: goal \"$what\": no such comparison: $op" >&2; return 1 ;;
  esac
  verdict=$(awk -v v="$value" -v l="$limit" "BEGIN { if (v + 0 $op l + 0) print \"goal met\"; else print \"goal NOT met\" }")
  printf '%s: %s (%s)\n' "$verdict" "$what" "$shown" >>"${BENCH_GOALS:?goal: BENCH_GOALS names no file}"
}

# goals_report: every goal noted, one line each, after a blank line.
goals_report() {
  echo
  cat "${BENCH_GOALS:?goals_report: BENCH_GOALS names no file}"
}

# --self-test (run, not sourced): check the helpers above; exits 1 on the
# first wrong answer.
bench_lib_self_test() {
  local checks=0
  expect() { # WHAT WANT GOT
    checks=$((checks + 1))
    if [[ $3 != "$2" ]]; then
      echo "bench-lib.sh self-test: $1: want '$2', got '$3'" >&2
      exit 1
    fi
  }
  m() { printf '%s\n' "$@" | median; }
  expect "median of 1 2 3 4" 2.5 "$(m 1 2 3 4)"
  expect "median of 3 1 2" 2 "$(m 3 1 2)"
  expect "median of 7" 7 "$(m 7)"
  expect "median of 4 1 3 2 6 5" 3.5 "$(m 4 1 3 2 6 5)"
  expect "median of 2 2 4 4" 3 "$(m 2 2 4 4)"
  expect "median of 10 9 100 (sorted as numbers)" 10 "$(m 10 9 100)"
  expect "median of -1 1" 0 "$(m -1 1)"
  expect "median of 0.5 1.5 2.5" 1.5 "$(m 0.5 1.5 2.5)"
  expect "median of 1000000000 3000000001 (ns)" 2000000000.5 "$(m 1000000000 3000000001)"
  expect "median of 4123456789 4123456790 4123456795" 4123456790 "$(m 4123456789 4123456790 4123456795)"
  expect "median of nothing fails" fails "$(median </dev/null 2>/dev/null || echo fails)"
  expect "median_ms of 1000 2000 (µs)" 1.5 "$(printf '%s\n' 1000 2000 | median_ms)"
  expect "median_ms of 1500 2500 1000 (µs)" 1.5 "$(printf '%s\n' 1500 2500 1000 | median_ms)"
  expect "wait_until a true condition" ok "$(wait_until 1 x true && echo ok)"
  expect "wait_until a false one fails at its deadline" fails "$(wait_until 1 x false 2>/dev/null || echo fails)"
  local d
  d=$(mktemp -d)
  (sleep 0.2 && date +%s%N >"$d/started") &
  expect "read_stamp waits for the stamp" yes "$([[ $(read_stamp "$d/started" 2) =~ ^[0-9]{19}$ ]] && echo yes)"
  wait
  rm -f "$d/started"
  : >"$d/started"
  expect "read_stamp of an empty stamp fails" fails "$(read_stamp "$d/started" 1 2>/dev/null || echo fails)"
  expect "ms_of_us 1234567.5" 1234.6 "$(ms_of_us 1234567.5)"
  BENCH_GOALS=$d/goals
  goal 1.38 '<=' 2 "status within 2x of virsh list" 1.38x
  goal 2.5 '<=' 2 "status within 2x of virsh list" 2.50x
  goal 1 '==' 1 "one ssh handshake" 1
  goal 300 '<' 300 "under 300 ms" "300 ms"
  goal 10 '>' 9 "ten over nine" 10
  expect "goal of a figure that is no number fails" fails "$(goal "" '<' 1 x y 2>/dev/null || echo fails)"
  expect "goal with no such comparison fails" fails "$(goal 1 '=' 1 x y 2>/dev/null || echo fails)"
  expect "goals_report" "
goal met: status within 2x of virsh list (1.38x)
goal NOT met: status within 2x of virsh list (2.50x)
goal met: one ssh handshake (1)
goal NOT met: under 300 ms (300 ms)
goal met: ten over nine (10)" "$(goals_report)"
  rm -rf "$d"
  echo "bench-lib.sh self-test: $checks checks passed"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  case ${1:-} in
    --self-test) bench_lib_self_test ;;
    *)
      echo "usage: bash ${0##*/} --self-test   (otherwise sourced by the bench-*.sh scripts)" >&2
      exit 2
      ;;
  esac
fi
