#!/usr/bin/env bash
# Benchmark: how long reading the editions of a 5 GiB Windows-sized ISO takes.
#
# Builds a ~5 GiB ISO (xorriso, ISO 9660 level 3: a 5 GiB filler file, which
# xorriso writes out in full, then sources/install.wim, a real WIM from
# fixtures/wim/win11-24h2-x64.wim, placed after it) in /var/tmp, and times
#   1. `bkt vm iso-info ISO`: the ISO 9660 walk, the WIM header and its XML
#      read in place by positioned reads (a few KiB);
#   2. `xorriso -osirrox on -indev ISO -extract /sources/install.wim OUT`
#      then `wiminfo OUT`: what one does by hand.
# Both read from the page cache once the ISO is written (the 5 GiB are
# never read by either: xorriso reads its directory tree and the file).
# Prints the median of RUNS runs of each, and removes the ISO at the end.
#
#   scripts/bench-iso-editions.sh [RUNS]    (default 5)
#   BKT=target/debug/bkt scripts/bench-iso-editions.sh   (skip the release build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-5}
WIM=fixtures/wim/win11-24h2-x64.wim

if [[ -z ${BKT:-} ]]; then
  cargo build --release --quiet
  BKT=$PWD/target/release/bkt
fi
BKT=$(realpath "$BKT")
for p in xorriso wiminfo; do
  command -v "$p" >/dev/null || { echo "bench: $p missing (scripts/packages.txt)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/bkt-bench-iso.XXXXXX)
trap 'rm -rf "$work"' EXIT

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

props=(--image-property WINDOWS/ARCH=9 --image-property WINDOWS/VERSION/MAJOR=10
  --image-property WINDOWS/VERSION/MINOR=0 --image-property WINDOWS/VERSION/BUILD=26100
  --image-property WINDOWS/INSTALLATIONTYPE=Client --image-property WINDOWS/EDITIONID=Professional)

# scenario NAME RUNS_MANUAL: make $work/big.iso of $work/tree, time both
# readers, remove the ISO.
scenario() {
  local name=$1 manual_runs=$2 t0 t1 iso_bytes wim_lba wim_bytes
  echo "== $name"
  t0=$(date +%s%N)
  xorriso -as mkisofs -quiet -iso-level 3 -J -R -V BKT_BENCH_5G \
    -o "$work/big.iso" "$work/tree" 2>/dev/null
  t1=$(date +%s%N)
  iso_bytes=$(stat -c %s "$work/big.iso")
  wim_bytes=$(stat -c %s "$work/tree/sources/install.wim")
  # Where install.wim's data starts: xorriso's own listing of its extents.
  wim_lba=$(xorriso -indev "$work/big.iso" -find /sources/install.wim -exec report_lba -- 2>/dev/null |
    awk '/File data lba:/ {print $6; exit}')
  awk -v b="$iso_bytes" -v ns="$((t1 - t0))" -v w="$wim_bytes" -v at="$((wim_lba * 2048))" \
    'BEGIN { printf "ISO: %.0f bytes (%.2f GiB), written in %.1f s; sources/install.wim: %.0f bytes from byte %.0f\n", b, b / 1073741824, ns / 1e9, w, at }'
  # The same answer from both, before timing either.
  "$BKT" vm iso-info "$work/big.iso" | sed 's/^/  /'
  manual_run | awk '/^(Index|Name|Build):/ { printf "  %s", $0; if ($1 == "Build:") print "" }'
  bkt_ms=$(for ((i = 0; i < RUNS; i++)); do time_us bkt_run; done | median_ms)
  manual_ms=$(for ((i = 0; i < manual_runs; i++)); do time_us manual_run; done | median_ms)
  echo "bkt vm iso-info:             median $bkt_ms ms of $RUNS runs"
  echo "xorriso -extract + wiminfo:  median $manual_ms ms of $manual_runs runs"
  rm -f "$work/big.iso" "$work/install.wim"
}
bkt_run() { "$BKT" vm iso-info "$work/big.iso"; }
manual_run() {
  rm -f "$work/install.wim"
  xorriso -osirrox on -indev "$work/big.iso" -extract /sources/install.wim "$work/install.wim" 2>/dev/null &&
    wiminfo "$work/install.wim"
}

# 1. A 5 GiB filler, then a small install.wim (directory records sort by
# name, and xorriso lays the files' data out in that order: a-filler.bin
# first, SOURCES/INSTALL.WIM after it).
mkdir -p "$work/tree/sources"
truncate -s 5G "$work/tree/a-filler.bin"
cp "$WIM" "$work/tree/sources/install.wim"
scenario "5 GiB filler, then an 8 KiB install.wim (fixtures/wim/win11-24h2-x64.wim)" "$RUNS"
rm -rf "$work/tree"

# 2. As Microsoft's ISOs are: install.wim itself is the gigabytes (here
# 5 GiB of stored, uncompressed data; its XML after the data, as wimlib and
# DISM write it).
mkdir -p "$work/tree/sources" "$work/wimsrc"
truncate -s 5G "$work/wimsrc/data.bin"
wimcapture "$work/wimsrc" "$work/tree/sources/install.wim" "Windows 11 Pro" \
  --compress=none "${props[@]}" >/dev/null
rm -rf "$work/wimsrc"
scenario "a 5 GiB install.wim (wimcapture --compress=none)" 3
