#!/usr/bin/env bash
# Benchmark: `bkt vm download --windows` against a plain `curl --cacert` of
# the same file, both from scripts/ms-standin.py (the local HTTPS stand-in
# for Microsoft's download service) on 127.0.0.1. bkt's figure is the whole
# command: the five steps of the flow (with the protocol's 0.2 s pause),
# the download, and the SHA-256 check against the page's published hash;
# curl's is the transfer alone, then curl plus `sha256sum` (what a careful
# user does by hand). Prints the figures and bkt's overhead over both.
# Needs python3, openssl and curl; no root, nothing leaves loopback.
#
#   bash scripts/bench-windows-download.sh [SIZE_MIB]   (default 1024)
#   BKT=target/debug/bkt bash scripts/bench-windows-download.sh   (skip the
#   release build; a debug build hashes about 15 times slower)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

size_mib=${1:-1024}
[[ $size_mib =~ ^[0-9]+$ ]] || { echo "bench: SIZE_MIB must be a number" >&2; exit 2; }
work=$(mktemp -d)
standin_pid=
cleanup() {
  if [[ -n $standin_pid ]]; then kill "$standin_pid" 2>/dev/null || true; wait "$standin_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z ${BKT:-} ]]; then
  cargo build --offline --release --quiet
  BKT=$PWD/target/release/bkt
fi
bkt=$(realpath "$BKT")

# The ISO: SIZE_MIB of random bytes with the ISO 9660 signature in place.
head -c "$((size_mib << 20))" /dev/urandom >"$work/w.iso"
printf 'CD001' | dd of="$work/w.iso" bs=1 seek=32769 conv=notrunc status=none

python3 scripts/ms-standin.py --fixtures fixtures/microsoft --iso "$work/w.iso" \
  --tls-dir "$work" --port-file "$work/port" --log "$work/log" &
standin_pid=$!
port_ready() { [[ -s $work/port ]]; }
wait_until 120 "the stand-in's port" port_ready
port=$(<"$work/port")
base=https://127.0.0.1:$port
iso=Win11_25H2_English_x64.iso

run_bkt() {
  rm -rf "$work/cache"
  env -i PATH="$PATH" HOME="$work" XDG_CACHE_HOME="$work/cache" NO_COLOR=1 \
    BKT_VM_CA_FILE="$work/ca.pem" BKT_VM_MS_WWW_URL="$base/www" \
    BKT_VM_MS_VLSCPPE_URL="$base/vlscppe" BKT_VM_MS_OVDF_URL="$base/ovdf" \
    "$bkt" vm download --windows 2>/dev/null
}
run_curl() {
  rm -f "$work/curl.iso"
  curl -sS --fail --cacert "$work/ca.pem" -o "$work/curl.iso" "$base/dbazure/$iso"
}
run_curl_sha() { run_curl && sha256sum "$work/curl.iso" >/dev/null; }

# Checked before timed: both get the whole file.
run_bkt >/dev/null
cmp -s "$work/w.iso" "$work/cache/bkt/vm/$iso" || { echo "bench: bkt's copy differs" >&2; exit 1; }
run_curl
cmp -s "$work/w.iso" "$work/curl.iso" || { echo "bench: curl's copy differs" >&2; exit 1; }

bkt_us=$(time_us run_bkt)
curl_us=$(time_us run_curl)
curl_sha_us=$(time_us run_curl_sha)
mib_s() { awk -v m="$size_mib" -v us="$1" 'BEGIN { printf "%.0f", m / (us / 1e6) }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (a - b) * 100 / b }'; }

printf 'file: %d MiB from %s (HTTPS, loopback)\n' "$size_mib" "$base"
printf 'bkt: %s\n' "${bkt#"$PWD"/}"
printf '%-34s %10s ms  %5s MiB/s\n' "bkt vm download --windows" "$(ms_of_us "$bkt_us")" "$(mib_s "$bkt_us")"
printf '%-34s %10s ms  %5s MiB/s\n' "curl --cacert" "$(ms_of_us "$curl_us")" "$(mib_s "$curl_us")"
printf '%-34s %10s ms  %5s MiB/s\n' "curl --cacert + sha256sum" "$(ms_of_us "$curl_sha_us")" "$(mib_s "$curl_sha_us")"
printf 'bkt overhead: %s ms (%s) over curl, %s ms (%s) over curl + sha256sum\n' \
  "$(ms_of_us "$((bkt_us - curl_us))")" "$(pct "$bkt_us" "$curl_us")" \
  "$(ms_of_us "$((bkt_us - curl_sha_us))")" "$(pct "$bkt_us" "$curl_sha_us")"
