//! QEMU disks as Tresor block sources.
//!
//! - [`image_info`]: what `qemu-img info` says of an image (format, virtual size,
//!   persistent dirty bitmaps and whether they are consistent).
//! - [`QemuNbdServer`]: a stopped VM's image served read-only by `qemu-nbd` on a
//!   private Unix socket. `qemu-nbd` takes QEMU's image lock, so an image a running
//!   VM writes to is refused ([`Error::ImageLocked`]) and a VM cannot start writing to
//!   an image while it is being read.
//! - [`ServedImage`]: the two together, an image of any format as a block source.
//! - [`NbdSource`]: any NBD export as a [`BlockSource`]: extents from
//!   `base:allocation`, reads through a pool of connections, and dirty extents from a
//!   `qemu:dirty-bitmap:NAME` context.
//!
//! - [`QemuProvider`]: the [`VmProvider`] for QEMU: VMs named by their QMP socket
//!   (and guest agent socket), found in a folder of sockets, or defined by their disk
//!   images when stopped. A running VM is read through a [`PointInTimeView`]
//!   (fleecing; see `fleece.rs` for the sequence), a stopped one through
//!   [`OfflineView`].
//!
//! **Architecture invariant:** knows nothing of repositories, chunks or keys; it turns
//! QEMU's VMs and disks into block sources and dirty extents.
//!
//! [`VmProvider`]: tresor_vm::VmProvider
//!
//! [`BlockSource`]: tresor_blocksource::BlockSource

mod fleece;
mod image;
mod image_lock;
mod nbd_source;
mod new_vm;
mod offline;
mod provider;
mod qemu_nbd;
mod running;
mod scratch;
mod served_image;

pub use fleece::PointInTimeView;
pub use image::{
    ensure_not_in_use, image_info, point_bitmap_name, start_point_bitmap, BitmapInfo, ImageInfo,
};
pub use image_lock::ImageReadLock;
pub use nbd_source::NbdSource;
pub use new_vm::{
    new_vm_definition, sanitize_command_line, shell_command, shell_quote, start_script,
    validate_disk_name, validate_vm_name, NewVm, NewVmError, RestoredDisk,
};
pub use offline::{open_offline_disk, OfflineDisk};
pub use provider::{OfflineView, QemuProvider, QemuVmConfig};
pub use qemu_nbd::QemuNbdServer;
pub use served_image::ServedImage;

/// Errors of this crate. Each names the image or socket concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{image} is in use by a running VM (QEMU holds its lock); back it up through the VM instead, or stop the VM first")]
    ImageLocked { image: String },
    #[error("cannot run {program}: {source}. Install QEMU's tools (Debian: qemu-utils)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed for {image}: {message}")]
    Tool {
        program: String,
        image: String,
        message: String,
    },
    #[error("qemu-nbd for {image} did not open its socket within {seconds} s")]
    StartTimeout { image: String, seconds: u64 },
    #[error("NBD export {export}: {source}")]
    Nbd {
        export: String,
        source: tresor_nbd::NbdError,
    },
    #[error("{image} has no dirty bitmap {bitmap:?}; its bitmaps are: {available}")]
    NoSuchBitmap {
        image: String,
        bitmap: String,
        available: String,
    },
    #[error("dirty bitmap {bitmap:?} of {image} is inconsistent (QEMU stopped without saving it): a full backup is needed")]
    InconsistentBitmap { image: String, bitmap: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
