//! The errors of the qcow2 writer.

use std::io;
use std::path::PathBuf;

use crate::layout::{MAX_CLUSTER_BITS, MIN_CLUSTER_BITS};

/// Errors of the qcow2 writer. Every message names the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on the image file failed.
    #[error("qcow2 image {path}: cannot {action}: {source}")]
    Io {
        /// The image file (or, for the final directory sync, its directory).
        path: PathBuf,
        /// What was being done, e.g. "write data cluster at host offset 65536".
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `cluster_bits` is outside the supported range.
    #[error(
        "invalid qcow2 cluster_bits {0}: the cluster size must be a power of two \
         from 4 KiB (cluster_bits {MIN_CLUSTER_BITS}) to 2 MiB (cluster_bits {MAX_CLUSTER_BITS})"
    )]
    InvalidClusterBits(u32),
    /// The virtual size is not a multiple of 512 bytes, which qcow2 (QEMU) cannot represent.
    #[error(
        "invalid qcow2 virtual size {0} bytes: it must be a multiple of 512 bytes \
         (round it up if the disk may grow)"
    )]
    UnalignedVirtualSize(u64),
    /// The virtual size needs an L1 table larger than QEMU accepts.
    #[error(
        "qcow2 virtual size {virtual_size} bytes is too large for cluster size {cluster_size}: \
         the L1 table would exceed QEMU's 32 MiB limit; use larger clusters"
    )]
    VirtualSizeTooLarge {
        /// The requested virtual size.
        virtual_size: u64,
        /// The requested cluster size.
        cluster_size: u64,
    },
    /// A guest offset is not a multiple of the cluster size.
    #[error("qcow2 guest offset {guest_offset} is not aligned to the cluster size {cluster_size}")]
    MisalignedOffset {
        /// The offending guest offset.
        guest_offset: u64,
        /// The image's cluster size.
        cluster_size: u64,
    },
    /// A guest offset lies at or beyond the end of the virtual disk.
    #[error("qcow2 guest offset {guest_offset} is beyond the virtual size {virtual_size}")]
    BeyondVirtualSize {
        /// The offending guest offset.
        guest_offset: u64,
        /// The image's virtual size.
        virtual_size: u64,
    },
    /// The data for a (non-final) cluster is not exactly one cluster long.
    #[error(
        "wrong data length for the qcow2 cluster at guest offset {guest_offset}: \
         got {len} bytes, expected {expected} (the cluster size)"
    )]
    WrongLength {
        /// Guest offset of the cluster.
        guest_offset: u64,
        /// Length of the data passed.
        len: usize,
        /// The required length.
        expected: u64,
    },
    /// The data for the last, partial cluster of the disk has a wrong length.
    #[error(
        "wrong data length for the last qcow2 cluster at guest offset {guest_offset}: \
         got {len} bytes, expected {tail} (up to the virtual size) or {cluster_size} (a full cluster)"
    )]
    WrongTailLength {
        /// Guest offset of the cluster.
        guest_offset: u64,
        /// Length of the data passed.
        len: usize,
        /// Bytes between the guest offset and the end of the virtual disk.
        tail: u64,
        /// The image's cluster size.
        cluster_size: u64,
    },
    /// The same guest cluster was written a second time.
    #[error("qcow2 cluster at guest offset {guest_offset} was written twice")]
    ClusterWrittenTwice {
        /// Guest offset of the cluster.
        guest_offset: u64,
    },
    /// The image file would grow beyond what qcow2 or QEMU can address.
    #[error("qcow2 image {path} is too large: {what}")]
    ImageTooLarge {
        /// The image file.
        path: PathBuf,
        /// Which limit was hit.
        what: String,
    },
    /// An earlier data write failed, so the image lacks data and cannot be finished.
    #[error("qcow2 image {path} is incomplete: an earlier cluster write failed")]
    EarlierWriteFailed {
        /// The image file.
        path: PathBuf,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
