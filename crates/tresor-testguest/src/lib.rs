//! A tiny Linux guest for Tresor's integration tests, and a QEMU launcher.
//!
//! Tresor backs up running QEMU/KVM virtual machines, and some of what it must get
//! right only shows with a real guest OS: a guest that keeps writing while a backup
//! runs, `qemu-ga` freezing and thawing its file systems for an
//! application-consistent backup, a restored disk whose file system must mount and
//! hold exactly what the guest wrote. This crate gives tests such a guest, cheaply
//! and without network access:
//!
//! * [`GuestImage::build`] assembles a kernel + initramfs **from packages installed
//!   on the host** (Debian's `linux-image-cloud-amd64`, `busybox-static` and
//!   `qemu-guest-agent`; `scripts/install-deps.sh` installs them). Nothing is
//!   downloaded at test time. The initramfs holds busybox, `qemu-ga` with its
//!   shared libraries, the few kernel modules needed (virtio-pci, virtio-blk,
//!   virtio-console, ext4 and their dependencies, unless built in) and a `/init`
//!   script. It is written in the `newc` cpio format by this crate (no `cpio`
//!   package needed, and device nodes need no root) and compressed with `gzip`.
//!   The guest is up about three seconds after QEMU starts (TCG, idle host) and
//!   has no root file system besides the initramfs; its disks are the VM's
//!   virtio-blk disks.
//! * `/init` does one of the [`GuestMode`]s: write numbered files with known
//!   content onto an ext4 `/dev/vda` forever ([`GuestMode::Writer`]), list those
//!   files with their checksums and power off ([`GuestMode::Check`]), or idle. It
//!   reports on the serial console, in lines starting with `TRESOR-GUEST: `, which
//!   [`parse_check_report`], [`last_written`] and [`expected_file_content`] help
//!   tests read.
//! * [`TestVm`] starts `qemu-system-x86_64` with the disks as named block nodes
//!   (so QMP backup commands can use them), a QMP socket, optionally the guest
//!   agent's virtio-serial port, and the guest, or no guest at all
//!   (`-machine none`). It is killed when dropped.
//!
//! QEMU always runs with TCG (`-accel tcg`), never KVM: on the machines these
//! tests run on, KVM stops a Linux guest with an emulation failure, and tests must
//! not depend on `/dev/kvm`. With TCG the guest still boots in seconds: the kernel
//! command line skips the crypto self-tests, and the firmware is qboot when
//! QEMU ships it (`/usr/share/qemu/qboot.rom`), which starts the kernel sooner
//! than SeaBIOS.
//!
//! A missing package is an error naming the Debian package to install, never a
//! skipped test.
//!
//! # Cache
//!
//! Building an image takes one to three seconds; the result is cached and later
//! calls only compare the inputs (a few milliseconds). The cache lives in
//!
//! 1. `$TRESOR_TEST_CACHE/guest-<key>/` if `TRESOR_TEST_CACHE` is set,
//! 2. else `$CARGO_TARGET_DIR/test-cache/guest-<key>/` if `CARGO_TARGET_DIR` is set,
//! 3. else `<workspace root>/target/test-cache/guest-<key>/`.
//!
//! `<key>` is a hash of the kernel version and the size and mtime of the kernel,
//! busybox, `qemu-ga` and each of its libraries, the `/init` script and a layout
//! version, so upgrading any of those packages or editing `/init` builds a new
//! image. Each directory holds `vmlinuz` (a copy of the host's), `initrd.img` and
//! `modules.txt` (the modules in load order). Old directories are never removed;
//! deleting `test-cache` is always safe. Builds go to a temporary directory that is
//! renamed into place, so parallel test processes never see a half-built image.

#![warn(missing_docs)]

mod cpio;
mod guest;
mod image;
mod vm;

pub use guest::{
    crc32, expected_file_content, guest_lines, last_written, parse_check_report, GuestFile,
    GuestMode, DEFAULT_WRITER_PAUSE_MS, FILE_SIZE, SERIAL_PREFIX,
};
pub use image::{cache_root, GuestImage};
pub use vm::{TestDisk, TestVm, TestVmConfig};
