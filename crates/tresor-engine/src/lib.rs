//! The Tresor repository engine: turns disks into recovery points and back.
//!
//! - [`Repository`]: an opened repository (storage, keys, the blob index).
//! - [`backup`]: the pipeline that reads a [`BlockSource`], deduplicates, compresses,
//!   seals and packs its chunks and commits a recovery point.
//! - [`restore`]: writes a recovery point's disk to a raw file, a qcow2 image or a
//!   block device, in parallel and sparse.
//! - [`verify`]: re-reads what points reference and names the damaged ones.
//! - [`gc`]: forgets points and reclaims what nothing references.
//! - [`intake`]: what a server checks before it accepts an object a writer uploaded.
//! - [`replicate`]: copies a repository to a second backend, never a manifest before
//!   the data it references.
//! - [`bench`]: speeds of the primitives and of the whole pipeline on this machine.
//!
//! **Architecture invariant:** the engine knows nothing of HTTP, vaults, policies or
//! QEMU. A VM is a list of named [`BlockSource`]s here; the QEMU reader lives elsewhere
//! and plugs in through that trait.
//!
//! [`BlockSource`]: tresor_blocksource::BlockSource

pub mod backup;
pub mod bench;
mod blob_index;
pub mod gc;
pub mod intake;
mod pack_writer;
pub mod progress;
pub mod replicate;
mod repository;
pub mod restore;
mod tree;
pub mod verify;

pub use repository::{InitOptions, PointScan, Repository};
pub use tresor_blocksource as blocksource;
pub use tresor_crypto::{generate_secret, is_generated_secret, KdfParams};
pub use tresor_format::manifest::{Consistency, DiskEntry, Manifest};
pub use tresor_format::ChunkId;
pub use tresor_storage::{Backend, LocalDir};

/// Errors of the engine. Each says what happened and, where there is one, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] tresor_storage::Error),
    #[error(transparent)]
    Format(#[from] tresor_format::Error),
    #[error(transparent)]
    Source(#[from] tresor_blocksource::Error),
    #[error("wrong passphrase: none of the repository's keys opens with it")]
    WrongPassphrase,
    #[error(
        "{path} is not a Tresor repository (no config object); create one with `tresor repo init`"
    )]
    NotARepository { path: String },
    #[error("{path} already holds a Tresor repository; choose an empty folder")]
    AlreadyExists { path: String },
    #[error("recovery point {id} not found; `tresor repo list` shows the points")]
    PointNotFound { id: String },
    #[error("recovery point {point} has no disk {disk:?}; its disks are: {available}")]
    DiskNotFound {
        point: String,
        disk: String,
        available: String,
    },
    #[error("blob {id} is referenced by {context} but no index lists it: the storage lost data. Run `tresor repo verify` to see which points are affected")]
    MissingBlob { id: ChunkId, context: String },
    #[error("damaged chunk {id} at disk offset {offset} of disk {disk:?} (pack {pack}): {reason}. The restore was stopped; no wrong data was written. Run `tresor repo verify` to see every damaged point")]
    DamagedChunk {
        id: ChunkId,
        disk: String,
        offset: u64,
        pack: String,
        reason: String,
    },
    #[error("{path}: {what}: {source}")]
    Output {
        path: String,
        what: String,
        source: std::io::Error,
    },
    #[error("qcow2 output: {0}")]
    Qcow2(#[from] tresor_qcow2::Error),
    #[error("another garbage collection is running on this repository; try again when it ends")]
    GcBusy,
    #[error("{0}")]
    Invalid(String),
    #[error("cancelled")]
    Cancelled,
    /// An uploaded object that is not what it claims to be (see [`intake`]).
    #[error("{object} refused: {reason}")]
    Rejected { object: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
