#!/usr/bin/env bash
# Installs the system packages Tresor's tests use: qemu-img (qemu-utils) for qcow2
# checks, qemu-system-x86_64 (qemu-system-x86, with qemu-guest-agent) for the QMP and
# guest-agent tests of tresor-qmp, mkfs.ext4 (e2fsprogs) to build test disks with real
# file systems, losetup (mount) for block-device restores; for the test guest of
# tresor-testguest, a kernel (linux-image-cloud-amd64) and busybox (busybox-static),
# from which the guest's initramfs is built at test time (with qemu-ga); for the
# portal's end-to-end tests, a headless browser (chromium with chromium-driver); for
# tresor-libvirt, libvirt's daemon (libvirt-daemon-system: libvirtd and virtlogd, which
# its discovery test starts when none runs) and its C library's headers (libvirt-dev,
# with pkg-config, which the `virt` crate builds against), and swtpm (swtpm,
# swtpm-tools: libvirt's emulated TPM, whose state the libvirt tests see saved with a
# point and restored) and OVMF (ovmf: the UEFI firmware of the test domain whose
# variable store is saved and restored; they touch no QEMU package). libvirt-daemon-system goes
# without recommends (no dnsmasq, firewall or ebtables: the tests use no libvirt
# network) and after QEMU is in place: it depends on the qemu-system-x86 already there.
# qemu-system-x86, qemu-utils and qemu-guest-agent go in one apt-get call, all at the
# version of the distribution's qemu-system-x86: installing qemu-system-x86 alone can
# remove an installed qemu-utils, and a newer qemu-utils already on the machine (a
# backport) conflicts with it, so qemu-utils is aligned to that version, downgrading
# if need be.
# The kernel is installed without recommends (firmware, apparmor: not needed to
# boot it under QEMU); its package hooks build an initramfs in /boot, which takes a
# few seconds, is not used by the tests and is harmless in a container. On a
# machine that boots with GRUB, note that a newer cloud kernel becomes its default
# boot entry.
# Needs root (apt-get); does nothing for packages already present.
set -euo pipefail

need=()
qemu=0
if ! command -v qemu-system-x86_64 >/dev/null 2>&1 || ! command -v qemu-img >/dev/null 2>&1 \
   || ! command -v qemu-ga >/dev/null 2>&1; then
  qemu=1
fi
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
command -v cmp >/dev/null 2>&1 || need+=(diffutils)
command -v losetup >/dev/null 2>&1 || need+=(mount)
[ -e /bin/busybox ] || need+=(busybox-static)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
kernel=0
ls /boot/vmlinuz-*-cloud-amd64 >/dev/null 2>&1 || kernel=1
libvirt=()
command -v libvirtd >/dev/null 2>&1 || libvirt+=(libvirt-daemon-system)
pkg-config --exists libvirt 2>/dev/null || libvirt+=(libvirt-dev pkg-config)
command -v swtpm_setup >/dev/null 2>&1 || libvirt+=(swtpm swtpm-tools)
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || libvirt+=(ovmf)

if [ ${#need[@]} -eq 0 ] && [ "$qemu" -eq 0 ] && [ "$kernel" -eq 0 ] && [ ${#libvirt[@]} -eq 0 ]; then
  echo "install-deps: everything present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${need[*]} ${libvirt[*]} $( [ "$qemu" -eq 1 ] && echo QEMU) $( [ "$kernel" -eq 1 ] && echo linux-image-cloud-amd64); run this script as root (it uses apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
if [ "$qemu" -eq 1 ]; then
  version=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ { print $2 }')
  need+=("qemu-system-x86=$version" "qemu-utils=$version" "qemu-guest-agent=$version")
fi
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y -q --allow-downgrades "${need[@]}"
fi
if [ "$kernel" -eq 1 ]; then
  apt-get install -y -q --no-install-recommends linux-image-cloud-amd64
fi
if [ ${#libvirt[@]} -gt 0 ]; then
  apt-get install -y -q --no-install-recommends "${libvirt[@]}"
fi
