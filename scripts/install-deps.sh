#!/usr/bin/env bash
# Installs the system packages Tresor's tests use: qemu-img (qemu-utils) for qcow2
# checks, mkfs.ext4 (e2fsprogs) to build test disks with real file systems, losetup
# (mount) for block-device restores.
# Needs root (apt-get); does nothing for packages already present.
set -euo pipefail

need=()
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
command -v cmp >/dev/null 2>&1 || need+=(diffutils)
command -v losetup >/dev/null 2>&1 || need+=(mount)

if [ ${#need[@]} -eq 0 ]; then
  echo "install-deps: everything present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${need[*]}; run this script as root (it uses apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q "${need[@]}"
