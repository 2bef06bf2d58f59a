# shellcheck shell=bash
# Shared by the bench-*.sh scripts (sourced): a loopback listener standing
# in for a guest's port 3389, the median of a column of numbers, and the
# wall time of a run. Its own checks, which tier 2 runs (tests/it/bench_lib.rs):
#
#   bash scripts/bench-lib.sh --self-test

# listen_3389 IP OUTFILE: accept and close connections on IP:3389 until
# killed; returns once it listens, its PID in listener_pid.
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
  until grep -q ready "$2" 2>/dev/null; do sleep 0.01; done
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
