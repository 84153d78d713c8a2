//! A small, append-only writer for qcow2 (version 3) images.
//!
//! Tresor restores a backed-up virtual disk straight into a qcow2 image, without a
//! temporary raw copy. The restore knows every guest cluster's content up front and
//! writes each cluster exactly once, in any order and from several threads, so this
//! crate implements only that: [`Qcow2Writer::create`] an empty image,
//! [`Qcow2Writer::write_cluster`] guest clusters (concurrently, through `&self`), and
//! [`Qcow2Writer::finish`] to write the metadata. It cannot open, read or modify
//! existing images, and it writes no backing files, snapshots, compression, encryption
//! or extended L2 entries. The format is described in QEMU's `docs/interop/qcow2.txt`.
//!
//! # File layout
//!
//! All structures are whole clusters (`cluster_size` bytes, a power of two between
//! 4 KiB and 2 MiB), numbered by host cluster index:
//!
//! ```text
//! cluster 0              header (written last, see below)
//! 1 .. D                 guest data clusters, in the order they were written
//! D .. D+n               the n L2 tables that map at least one data cluster
//! next l1_clusters       the L1 table (absent for a zero-sized disk)
//! next rt_clusters       the refcount table
//! next rb_count          the refcount blocks
//! ```
//!
//! * **Data is appended.** Each `write_cluster` takes the next free host cluster
//!   under a short mutex and then writes its data with a positioned write
//!   (`pwrite`), outside the lock, so data writes from several threads run in
//!   parallel and need no shared file cursor. The guest → host mapping is kept in
//!   memory until `finish`.
//! * **Unwritten clusters stay unallocated** (L2 entry 0, or no L2 table at all) and
//!   read as zeros because there is no backing file. A cluster whose data is all zeros
//!   is treated the same way: it is recorded as written (so writing it again is still
//!   an error) but takes no space in the file. The image is therefore sparse in the
//!   qcow2 sense: its size is the non-zero data plus a little metadata, however large
//!   the virtual disk is.
//! * **Memory is proportional to the data**, not to the virtual size: the in-memory
//!   map is a sorted map from L1 index to a small "written" bitmap (one bit per guest
//!   cluster of that L2 range) plus, only once a non-zero cluster lands in the range,
//!   the L2 table's entries. A 1 TiB disk with a few clusters of data needs a few
//!   hundred KiB.
//! * **Metadata goes after the data** because its size is only known at the end.
//!   L2 entries are `host_offset | QCOW_OFLAG_COPIED` (bit 63: refcount is exactly one),
//!   L1 entries likewise point to the L2 tables with bit 63 set.
//! * **Refcounts** are 16 bit (`refcount_order` 4). Every cluster of the file – header,
//!   data, L2 tables, L1 table, refcount table and the refcount blocks themselves – has
//!   refcount 1, and there are no holes, so the refcount blocks simply hold `1` for
//!   clusters `0 .. total`. Because the refcount structures must count themselves, their
//!   size is found with a small fixed-point iteration (see `refcount_layout` in `layout.rs`).
//! * **Crash safety.** `create` writes a header with the real magic and version but
//!   with an unknown *incompatible feature* bit (bit 63) set, which makes QEMU refuse to
//!   open the file ("Unsupported qcow2 feature(s)"). A plain zero-filled cluster 0 would
//!   be worse: QEMU would probe the file as a raw image and show garbage. `finish`
//!   writes all metadata, `fsync`s, only then overwrites the header with the valid one
//!   and `fsync`s again (plus the parent directory). A crash or an error at any point
//!   before that leaves a file that QEMU rejects, never one it reads wrongly. Such a
//!   leftover file should be deleted by the caller; the writer does not remove it.
//!
//! The header is the 104-byte version 3 header plus the `compression_type` byte
//! (0 = zlib, unused) padded to `header_length` 112, as current QEMU writes it,
//! followed by the end-of-header-extensions marker (type 0, length 0). No feature
//! name table is written; it is optional.
//!
//! # Example
//!
//! ```no_run
//! use std::path::Path;
//! use tresor_qcow2::{Qcow2Writer, DEFAULT_CLUSTER_BITS};
//!
//! # fn main() -> tresor_qcow2::Result<()> {
//! let writer = Qcow2Writer::create(Path::new("disk.qcow2"), 10 << 30, DEFAULT_CLUSTER_BITS)?;
//! let cluster = vec![0xab; writer.cluster_size() as usize];
//! writer.write_cluster(5 * writer.cluster_size(), &cluster)?;
//! writer.finish()?;
//! # Ok(())
//! # }
//! ```

//! # Code map
//!
//! `layout` holds every constant of the format and encodes its structures
//! (header, tables, the refcount sizes); `writer` is [`Qcow2Writer`], which
//! knows the file and the threads, and nothing of byte layouts beyond calling
//! `layout`; `error` the errors.

mod error;
mod layout;
mod writer;

pub use error::{Error, Result};
pub use layout::{DEFAULT_CLUSTER_BITS, MAX_CLUSTER_BITS, MIN_CLUSTER_BITS};
pub use writer::Qcow2Writer;
