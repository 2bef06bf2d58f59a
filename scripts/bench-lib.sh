# shellcheck shell=bash
# Shared by the bench-*.sh scripts (sourced): a loopback listener standing
# in for a guest's port 3389, the median of a column of numbers, and the
# wall time of a run.

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

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Wall time of one run of "$@" in microseconds; the run must succeed.
time_us() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null || return 1
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}

# Median, in ms, of the numbers (µs) on stdin.
median_ms() {
  sort -n | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.1f", m / 1000 }'
}
