# shellcheck shell=bash
# Shared by the bench-*.sh scripts (sourced): a loopback listener standing
# in for a guest's port 3389, and the median of a column of numbers.

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
