//! Block sources: where a backup reads a virtual disk from.
//!
//! A [`BlockSource`] is a fixed-size, randomly readable disk that can say which of its
//! regions hold data and which are known to read as zeros. Raw image files and block
//! devices are implemented here ([`RawFile`]); the QEMU NBD reader plugs into the same
//! trait. [`DirtyExtents`] is the set of byte ranges that changed since a parent
//! recovery point (from a dirty bitmap, or a file given by an operator).
//!
//! **Architecture invariant:** this crate knows nothing of chunks, packs, keys or
//! repositories. It only describes and reads disks.

mod dirty;
mod extent;
mod raw;

pub use dirty::DirtyExtents;
pub use extent::{Extent, ExtentKind};
pub use raw::RawFile;

use std::io;

/// Errors of block sources.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A disk or an input file could not be opened (or its size determined).
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path as given.
        path: String,
        /// Why the operating system refused.
        source: io::Error,
    },
    /// An I/O error while reading a disk or querying its layout.
    #[error("cannot read {what} at offset {offset}: {source}")]
    Read {
        /// What was being read ([`BlockSource::describe`] and, if needed, which part).
        what: String,
        /// Where the read or query started.
        offset: u64,
        /// Why it failed.
        source: io::Error,
    },
    /// A read reached past the disk size: a caller bug, never silently padded.
    #[error(
        "{what}: read past the end of the disk (offset {offset}, length {len}, disk size {size})"
    )]
    OutOfRange {
        /// The disk ([`BlockSource::describe`]).
        what: String,
        /// Start of the requested read.
        offset: u64,
        /// Length of the requested read.
        len: u64,
        /// The disk size it exceeds.
        size: u64,
    },
    /// The path is neither a regular file nor a block device (a directory, a FIFO, ...).
    #[error("{path} is not a regular file or a block device")]
    NotADisk {
        /// The path as given.
        path: String,
    },
    /// A dirty extents file could not be parsed; `reason` names the line or entry.
    #[error("dirty extents file {path}: {reason}. Expected one extent per line as `OFFSET LENGTH` (bytes, decimal or 0x-hex), or a JSON array of {{\"start\":N,\"length\":N}}")]
    DirtyExtentsFile {
        /// The file as given.
        path: String,
        /// What is wrong, starting with the line (`line N:`) or JSON entry (`entry N`).
        reason: String,
    },
    /// An output file (such as a saved dirty extents file) could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file as given.
        path: String,
        /// Why the operating system refused.
        source: io::Error,
    },
}

/// The result type of this crate, defaulting to its [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A disk that a backup can read.
///
/// Implementations must be safe to read from several threads at once: the backup
/// pipeline reads different ranges in parallel.
pub trait BlockSource: Send + Sync {
    /// A short human-readable name (a path, a QEMU node name) for messages.
    fn describe(&self) -> String;

    /// The virtual size of the disk in bytes.
    fn size(&self) -> u64;

    /// The extents covering `offset .. offset + len` (clamped to the disk size), in
    /// order, without gaps. Regions a source cannot classify must be reported as
    /// [`ExtentKind::Data`]: claiming zero for a region that is not is data loss.
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>>;

    /// Fills `buf` with the bytes at `offset`. Reading past [`BlockSource::size`] is an error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
}
