#!/usr/bin/env bash
# Build the tiny Linux test guest of the end-to-end tier from Debian packages:
# the Debian cloud kernel and a busybox initramfs. Nothing here is committed as
# a binary; the result is cached in OUT_DIR (default target/e2e-guest).
#
#   scripts/build-test-guest.sh --fetch   (provisioning) the pinned packages
#   scripts/build-test-guest.sh [OUT_DIR]
#     -> OUT_DIR/vmlinuz, OUT_DIR/initrd.gz      the tiny guest
#     -> OUT_DIR/win-standin.iso                 stand-in Windows install ISO
#     -> OUT_DIR/virtio-standin.iso              stand-in virtio-win ISO
#
# The guest stands in for a booted Windows: it takes a DHCP lease on its
# virtio NIC, answers TCP 3389, and powers off on an ACPI power-button event.
# With `bkt.acpi=off` on the kernel command line it ignores ACPI, which is how
# the tests exercise `bkt vm stop --timeout`; with `bkt.rdp=hold` it keeps
# connections to 3389 open, like a Remote Desktop session. With `bkt.qga=on` it runs the
# real QEMU guest agent (Debian's qemu-guest-agent, with the libraries it
# needs), and a stand-in `powershell.exe` on its path prints what bkt's
# program discovery script prints for a fixed set of programs
# (fixtures/guest/apps-script-output.json), so `bkt vm apps` makes a real
# guest-exec round trip.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PINS=$HERE/test-guest-packages.txt
APPS=$HERE/../fixtures/guest/apps-script-output.json
# Where provisioning keeps the fetched packages (root's; the tests only read).
DEBS=${BKT_TEST_GUEST_DEBS:-/var/cache/bkt/test-guest}

pins() { awk '!/^[[:space:]]*(#|$)/' "$PINS"; }

# --fetch: download the pinned packages into $DEBS (provisioning does this;
# the only step that needs the network).
if [[ ${1:-} == --fetch ]]; then
  mkdir -p "$DEBS"
  while read -r pkg ver fallback; do
    if compgen -G "$DEBS/${pkg}_*.deb" >/dev/null && [[ $(dpkg-deb -f "$(compgen -G "$DEBS/${pkg}_*.deb" | head -1)" Version) == "$ver" ]]; then
      continue
    fi
    rm -f "$DEBS/${pkg}_"*.deb
    if (cd "$DEBS" && apt-get download -qq "$pkg=$ver" 2>/dev/null); then
      echo "build-test-guest: fetched $pkg $ver" >&2
      continue
    fi
    # The pinned version left the mirror: the fallback's current one.
    got=$fallback
    if [[ $fallback != "$pkg" ]]; then
      got=$(apt-cache depends "$fallback" | awk '/Depends: / {print $2; exit}')
    fi
    [[ -n $got ]] || { echo "build-test-guest: cannot resolve $fallback (run apt-get update)" >&2; exit 1; }
    (cd "$DEBS" && apt-get download -qq "$got")
    f=$(compgen -G "$DEBS/${got}_*.deb" | head -1)
    echo "build-test-guest: WARNING: $pkg $ver is no longer on the mirror; using $got $(dpkg-deb -f "$f" Version) instead: update scripts/test-guest-packages.txt" >&2
    # Keep the pinned name findable: the build takes whatever stands for it.
    [[ $got == "$pkg" ]] || mv "$f" "$DEBS/${pkg}_fallback_$(basename "$f")"
  done < <(pins)
  exit 0
fi

OUT_DIR=${1:-target/e2e-guest}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

deb_of() {
  local f
  f=$(compgen -G "$DEBS/${1}_*.deb" | head -1 || true)
  [[ -n $f ]] || { echo "build-test-guest: no $1 package in $DEBS: run scripts/provision-virt-stack.sh (as root), which fetches it" >&2; exit 1; }
  printf '%s\n' "$f"
}
kdeb=$(deb_of "$(pins | awk 'NR==1 {print $1}')")
qdeb=$(deb_of "$(pins | awk 'NR==2 {print $1}')")

# The cache is keyed on everything that goes into the guest and the ISOs:
# this script, the two packages, the busybox and libraries copied from this
# machine, the apps output put in the initrd, and the wimcapture that makes
# the stand-in install.wim.
command -v wimcapture >/dev/null || { echo "build-test-guest: wimcapture missing: apt install wimtools (scripts/packages.txt)" >&2; exit 1; }
key=$(sha256sum "${BASH_SOURCE[0]}" "$kdeb" "$qdeb" "$APPS" "$(command -v busybox)" "$(command -v wimcapture)" | sha256sum | cut -c1-64)
if [[ -s $OUT_DIR/virtio-standin.iso && "$(cat "$OUT_DIR/key" 2>/dev/null)" == "$key" ]]; then
  echo "build-test-guest: cached in $OUT_DIR" >&2
  exit 0
fi
rm -f "$OUT_DIR/key"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kpkg=$(dpkg-deb -f "$kdeb" Package)
dpkg -x "$kdeb" "$work/k"
cp "$work"/k/boot/vmlinuz-* "$OUT_DIR/vmlinuz"

root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,run,tmp,lib/modules,etc/acpi/PWRF,usr/share/udhcpc}
cp "$(command -v busybox)" "$root/bin/busybox"
# In load order. Kernels differ in what is built in (6.1 has virtio itself as
# modules, 6.12 does not): a module that is not shipped is taken as built in.
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_console button evdev"
: >"$root/lib/modules/load-order"
for m in $MODULES; do
  f=$(find "$work/k/lib/modules" -name "$m.ko*" | head -1)
  [[ -n $f ]] || continue
  [[ $m == button ]] || echo "$m" >>"$root/lib/modules/load-order"
  case $f in
    *.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
    *.zst) zstd -dcq "$f" >"$root/lib/modules/$m.ko" ;;
    *) cp "$f" "$root/lib/modules/$m.ko" ;;
  esac
done

# The guest agent and every library it loads, at the paths ldd names.
dpkg -x "$qdeb" "$work/qga"
cp "$work/qga/usr/sbin/qemu-ga" "$root/sbin/qemu-ga"
ldd "$root/sbin/qemu-ga" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
  while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
mkdir -p "$root/etc/bkt"
cp "$APPS" "$root/etc/bkt/apps.json"
cat >"$root/bin/powershell.exe" <<'SCRIPT'
#!/bin/busybox sh
# Stand-in for Windows PowerShell running bkt's program discovery script
# (-EncodedCommand ...): what that script prints, for a fixed set of programs.
cat /etc/bkt/apps.json
SCRIPT
chmod +x "$root/bin/powershell.exe"

cat >"$root/usr/share/udhcpc/default.script" <<'SCRIPT'
#!/bin/busybox sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    echo "bkt-guest: lease $ip" > /dev/console
    ;;
esac
exit 0
SCRIPT

cat >"$root/etc/acpi/PWRF/00000080" <<'SCRIPT'
#!/bin/busybox sh
echo "bkt-guest: ACPI power button, powering off" > /dev/console
poweroff -f
SCRIPT

cat >"$root/init" <<'SCRIPT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/load-order); do insmod /lib/modules/$m.ko; done
if grep -q 'bkt.acpi=off' /proc/cmdline; then
  echo "bkt-guest: ignoring ACPI" > /dev/console
else
  [ -e /lib/modules/button.ko ] && insmod /lib/modules/button.ko
  # acpid opens /dev/input/event* once at start: wait until devtmpfs shows
  # the power button's node, or the event is never seen.
  i=0
  until grep -qs 'Power Button' /sys/class/input/event*/device/name && \
        [ -e "/dev/input/$(basename "$(dirname "$(dirname "$(grep -ls 'Power Button' /sys/class/input/event*/device/name | head -1)")")")" ] || [ $i -ge 50 ]; do
    i=$((i + 1)); usleep 100000
  done
  acpid -c /etc/acpi -l /dev/console
fi
ip link set lo up
ip link set eth0 up
udhcpc -b -i eth0 -s /usr/share/udhcpc/default.script
# Stand-in for Remote Desktop: accept and close connections on 3389; with
# `bkt.rdp=hold`, keep each one open until the client closes it, as a real
# session does (the idle watcher must see it as in use).
if grep -q 'bkt.rdp=hold' /proc/cmdline; then
  nc -ll -p 3389 -e /bin/cat &
else
  nc -ll -p 3389 -e /bin/true &
fi
if grep -q 'bkt.qga=on' /proc/cmdline; then
  # The agent's port may be plugged in later (virsh attach-device --live).
  (
    until grep -qs '^org.qemu.guest_agent.0$' /sys/class/virtio-ports/*/name; do usleep 200000; done
    port=$(grep -ls '^org.qemu.guest_agent.0$' /sys/class/virtio-ports/*/name | head -1)
    port=$(basename "$(dirname "$port")")
    PATH=/bin:/sbin qemu-ga -m virtio-serial -p "/dev/$port" -t /run -f /run/qemu-ga.pid -d
    echo "bkt-guest: guest agent on /dev/$port" > /dev/console
  ) &
fi
echo "bkt-guest: up" > /dev/console
exec sh -c 'while true; do sleep 3600; done'
SCRIPT
chmod +x "$root/init" "$root/usr/share/udhcpc/default.script" "$root/etc/acpi/PWRF/00000080"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) >"$OUT_DIR/initrd.gz.tmp"
mv "$OUT_DIR/initrd.gz.tmp" "$OUT_DIR/initrd.gz"

# The stand-in Windows ISO boots under UEFI like the real one (an El Torito
# EFI image with \EFI\BOOT\BOOTX64.EFI), but its boot loader is the Debian
# kernel: signed by Debian, not by Microsoft. Firmware that enforces Secure
# Boot with Microsoft's keys must refuse it, which the tests watch for.
iso_root=$work/iso
mkdir -p "$iso_root"
mkfs.vfat -C "$iso_root/efiboot.img" 20480 >/dev/null
mmd -i "$iso_root/efiboot.img" ::/EFI ::/EFI/BOOT
mcopy -i "$iso_root/efiboot.img" "$OUT_DIR/vmlinuz" ::/EFI/BOOT/BOOTX64.EFI
echo "bkt end-to-end stand-in for a Windows 11 install ISO" >"$iso_root/README.TXT"
# bkt vm create reads what Windows the ISO holds and refuses all but
# Windows 11 x64: a real WIM (a few KiB, one file in it) whose metadata says
# Windows 11 24H2 x64 Pro, as Microsoft's install.wim says it.
mkdir -p "$work/wim" "$iso_root/sources"
echo "stand-in" >"$work/wim/readme.txt"
wimcapture "$work/wim" "$iso_root/sources/install.wim" "Windows 11 Pro" \
  --image-property WINDOWS/ARCH=9 --image-property WINDOWS/VERSION/MAJOR=10 \
  --image-property WINDOWS/VERSION/MINOR=0 --image-property WINDOWS/VERSION/BUILD=26100 \
  --image-property WINDOWS/INSTALLATIONTYPE=Client \
  --image-property WINDOWS/EDITIONID=Professional >/dev/null
xorriso -as mkisofs -quiet -V BKT_WIN11_STANDIN -e efiboot.img -no-emul-boot \
  -o "$OUT_DIR/win-standin.iso" "$iso_root" 2>/dev/null
virtio_root=$work/virtio
# The layout of the real virtio-win ISO, for the drivers an unattended
# install copies into $WinPEDriver$, and the guest tools at the root.
for d in viostor NetKVM vioscsi; do
  mkdir -p "$virtio_root/$d/w11/amd64"
  echo "stand-in $d driver" >"$virtio_root/$d/w11/amd64/$d.inf"
  echo "stand-in" >"$virtio_root/$d/w11/amd64/$d.sys"
done
printf 'MZ stand-in guest tools' >"$virtio_root/virtio-win-guest-tools.exe"
# Past the 1 MiB sanity floor bkt applies to a downloaded virtio ISO.
head -c 2097152 /dev/zero >"$virtio_root/padding.bin"
xorriso -as mkisofs -quiet -V BKT_VIRTIO_STANDIN -o "$OUT_DIR/virtio-standin.iso.tmp" "$virtio_root" 2>/dev/null
mv "$OUT_DIR/virtio-standin.iso.tmp" "$OUT_DIR/virtio-standin.iso"
printf '%s\n' "$key" >"$OUT_DIR/key"
echo "build-test-guest: built $OUT_DIR from $kpkg $(dpkg-deb -f "$kdeb" Version) and qemu-guest-agent $(dpkg-deb -f "$qdeb" Version)" >&2
