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
//!   size is found with a small fixed-point iteration (see `refcount_layout` in the source).
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

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// `log2` of the default cluster size (64 KiB, QEMU's default).
pub const DEFAULT_CLUSTER_BITS: u32 = 16;
/// Smallest supported `cluster_bits` (4 KiB clusters).
pub const MIN_CLUSTER_BITS: u32 = 12;
/// Largest supported `cluster_bits` (2 MiB clusters, QEMU's implementation limit).
pub const MAX_CLUSTER_BITS: u32 = 21;

/// The qcow2 magic, `"QFI\xfb"`.
const QCOW_MAGIC: u32 = 0x5146_49fb;
/// L1/L2 entry flag: the referenced cluster has refcount exactly one.
const QCOW_OFLAG_COPIED: u64 = 1 << 63;
/// Incompatible feature bit written by `create` and cleared by `finish`. It is
/// reserved in the specification, so QEMU refuses to open an unfinished image.
const INCOMPLETE_MARKER: u64 = 1 << 63;
/// Length of the header structure we write: 104 bytes of version 3 fields, the
/// one-byte `compression_type` and 7 bytes of padding.
const HEADER_LENGTH: u32 = 112;
/// `refcount_order` 4: 16-bit refcounts.
const REFCOUNT_ORDER: u32 = 4;
/// Bytes per refcount entry.
const REFCOUNT_BYTES: u64 = 2;
/// QEMU's limit on the L1 table size in bytes (`QCOW_MAX_L1_SIZE`).
const MAX_L1_BYTES: u64 = 32 << 20;
/// QEMU's limit on the refcount table size in bytes (`QCOW_MAX_REFTABLE_SIZE`).
const MAX_REFTABLE_BYTES: u64 = 8 << 20;
/// Host offsets in L1/L2 entries are limited to bits 9..=55 (64 PiB).
const MAX_HOST_OFFSET: u64 = 1 << 56;
/// qcow2 (in QEMU) describes disk sizes in 512-byte sectors.
const SECTOR_SIZE: u64 = 512;

/// Errors of the qcow2 writer. Every message names the offending value.
#[derive(Debug, thiserror::Error)]
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

/// Writes a new qcow2 version 3 image: create it, write guest clusters (in any order,
/// from any number of threads), then [`finish`](Qcow2Writer::finish) it.
///
/// See the [crate documentation](crate) for the layout. Dropping the writer without
/// calling `finish` leaves an invalid image file (QEMU refuses to open it) that the
/// caller should delete.
pub struct Qcow2Writer {
    file: File,
    path: PathBuf,
    virtual_size: u64,
    cluster_bits: u32,
    /// Number of L1 entries needed to cover `virtual_size`.
    l1_size: u64,
    state: Mutex<State>,
    /// Set when a data write failed: the mapping then promises data that is missing.
    failed: AtomicBool,
}

/// The mutable part of the writer, behind a mutex.
struct State {
    /// Next free host cluster index; data clusters occupy `1 .. next_host_cluster`.
    next_host_cluster: u64,
    /// L2 ranges that have seen at least one write, by L1 index.
    tables: BTreeMap<u64, L2Map>,
}

/// The in-memory state of one L2 table's range of guest clusters.
struct L2Map {
    /// One bit per guest cluster of the range: has it been written (including all-zero writes)?
    written: Box<[u64]>,
    /// Host cluster index per guest cluster (0 = unallocated), created with the first
    /// non-zero data cluster in the range. `None` means no L2 table is needed.
    host: Option<Box<[u64]>>,
}

impl Qcow2Writer {
    /// Creates `path` (it must not exist yet) as an empty qcow2 v3 image of
    /// `virtual_size` bytes with clusters of `1 << cluster_bits` bytes.
    ///
    /// `cluster_bits` must be in `12 ..= 21` (4 KiB to 2 MiB clusters);
    /// [`DEFAULT_CLUSTER_BITS`] (64 KiB) is QEMU's default and a good choice.
    /// `virtual_size` must be a multiple of 512 bytes (qcow2 in QEMU counts sectors)
    /// and may be 0. The file receives a placeholder header that QEMU rejects until
    /// [`finish`](Self::finish) succeeds.
    pub fn create(path: &Path, virtual_size: u64, cluster_bits: u32) -> Result<Qcow2Writer> {
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(Error::InvalidClusterBits(cluster_bits));
        }
        if virtual_size & (SECTOR_SIZE - 1) != 0 {
            return Err(Error::UnalignedVirtualSize(virtual_size));
        }
        let cluster_size = 1u64 << cluster_bits;
        let l1_size = l1_entries(virtual_size, cluster_bits);
        if l1_size * 8 > MAX_L1_BYTES {
            return Err(Error::VirtualSizeTooLarge {
                virtual_size,
                cluster_size,
            });
        }

        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| Error::Io {
                path: path.to_owned(),
                action: "create the file".into(),
                source,
            })?;
        let writer = Qcow2Writer {
            file,
            path: path.to_owned(),
            virtual_size,
            cluster_bits,
            l1_size,
            state: Mutex::new(State {
                next_host_cluster: 1, // cluster 0 is the header
                tables: BTreeMap::new(),
            }),
            failed: AtomicBool::new(false),
        };
        let placeholder = encode_header(&Header {
            cluster_bits,
            virtual_size,
            l1_size: 0,
            l1_table_offset: 0,
            refcount_table_offset: 0,
            refcount_table_clusters: 0,
            incompatible_features: INCOMPLETE_MARKER,
        });
        if let Err(e) = writer.write_at(&placeholder, 0, || "write the placeholder header".into()) {
            // We created the file and it holds nothing useful: do not leave it behind.
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(writer)
    }

    /// The cluster size in bytes (`1 << cluster_bits`).
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// The virtual disk size in bytes, as passed to [`create`](Self::create).
    pub fn virtual_size(&self) -> u64 {
        self.virtual_size
    }

    /// Writes the guest cluster at `guest_offset` (a multiple of the cluster size
    /// below the virtual size).
    ///
    /// `data.len()` must equal the cluster size. Only for the last cluster of a disk
    /// whose size is not a multiple of the cluster size it may instead be the
    /// remaining length up to the virtual size; the cluster is padded with zeros
    /// (bytes of a full-length buffer beyond the virtual size are dropped).
    ///
    /// Callable from several threads at once and in any order. Each cluster may be
    /// written only once. An all-zero cluster is recorded but not stored (it reads as
    /// zeros anyway). Clusters never written read as zeros.
    pub fn write_cluster(&self, guest_offset: u64, data: &[u8]) -> Result<()> {
        let cluster_size = self.cluster_size();
        if guest_offset & (cluster_size - 1) != 0 {
            return Err(Error::MisalignedOffset {
                guest_offset,
                cluster_size,
            });
        }
        if guest_offset >= self.virtual_size {
            return Err(Error::BeyondVirtualSize {
                guest_offset,
                virtual_size: self.virtual_size,
            });
        }
        let tail = (self.virtual_size - guest_offset).min(cluster_size);
        let len = data.len();
        if len as u64 != cluster_size && len as u64 != tail {
            return Err(if tail == cluster_size {
                Error::WrongLength {
                    guest_offset,
                    len,
                    expected: cluster_size,
                }
            } else {
                Error::WrongTailLength {
                    guest_offset,
                    len,
                    tail,
                    cluster_size,
                }
            });
        }
        if self.failed.load(Ordering::Relaxed) {
            return Err(Error::EarlierWriteFailed {
                path: self.path.clone(),
            });
        }
        // Only the part inside the virtual disk is stored.
        let data = &data[..tail as usize];
        let zero = is_zero(data);

        let host_cluster = {
            let guest_cluster = guest_offset >> self.cluster_bits;
            let l2_bits = self.cluster_bits - 3;
            let l1_index = guest_cluster >> l2_bits;
            let l2_index = (guest_cluster & ((1 << l2_bits) - 1)) as usize;
            let l2_entries = 1usize << l2_bits;

            let mut state = self.lock_state();
            let State {
                next_host_cluster,
                tables,
            } = &mut *state;
            let map = tables.entry(l1_index).or_insert_with(|| L2Map {
                written: vec![0u64; l2_entries.div_ceil(64)].into_boxed_slice(),
                host: None,
            });
            let (word, bit) = (l2_index / 64, 1u64 << (l2_index % 64));
            if map.written[word] & bit != 0 {
                return Err(Error::ClusterWrittenTwice { guest_offset });
            }
            map.written[word] |= bit;
            if zero {
                return Ok(());
            }
            let host_cluster = *next_host_cluster;
            if (host_cluster + 1) << self.cluster_bits > MAX_HOST_OFFSET {
                // Undo the mark: nothing was written for this cluster.
                map.written[word] &= !bit;
                return Err(Error::ImageTooLarge {
                    path: self.path.clone(),
                    what: "data would reach beyond the 64 PiB host offset limit".into(),
                });
            }
            *next_host_cluster += 1;
            map.host
                .get_or_insert_with(|| vec![0u64; l2_entries].into_boxed_slice())[l2_index] =
                host_cluster;
            host_cluster
        };

        // The data write runs outside the lock, in parallel with other writers.
        let host_offset = host_cluster << self.cluster_bits;
        let mut result = self.write_at(data, host_offset, || {
            format!("write data cluster at host offset {host_offset}")
        });
        if result.is_ok() && (data.len() as u64) < cluster_size {
            // Pad the last partial cluster so that every host cluster is complete.
            let padding = vec![0u8; (cluster_size - data.len() as u64) as usize];
            let offset = host_offset + data.len() as u64;
            result = self.write_at(&padding, offset, || {
                format!("write cluster padding at host offset {offset}")
            });
        }
        if result.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Writes the L2 tables, the L1 table, the refcount blocks and table and finally
    /// the valid header, `fsync`ing the file before and after the header (and the
    /// parent directory at the end), and closes the file.
    ///
    /// Fails if an earlier [`write_cluster`](Self::write_cluster) failed with an I/O
    /// error. On error the file stays an invalid image.
    pub fn finish(self) -> Result<()> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(Error::EarlierWriteFailed {
                path: self.path.clone(),
            });
        }
        let bits = self.cluster_bits;
        let cluster_size = self.cluster_size();
        let state = std::mem::replace(
            &mut *self.lock_state(),
            State {
                next_host_cluster: 0,
                tables: BTreeMap::new(),
            },
        );

        // Lay out the metadata after the data.
        let mut next = state.next_host_cluster;
        let mut l1 = vec![0u64; self.l1_size as usize];
        let mut l2_tables = Vec::new();
        for (&l1_index, map) in &state.tables {
            if let Some(host) = &map.host {
                l1[l1_index as usize] = (next << bits) | QCOW_OFLAG_COPIED;
                l2_tables.push((next, host));
                next += 1;
            }
        }
        let l1_cluster = next;
        let l1_clusters = (self.l1_size * 8).div_ceil(cluster_size);
        next += l1_clusters;
        let layout = refcount_layout(next, bits);
        let refcount_table_cluster = next;
        let first_refcount_block = next + layout.table_clusters;
        let total = first_refcount_block + layout.blocks;
        debug_assert_eq!(total, layout.total_clusters);
        if layout.table_clusters * cluster_size > MAX_REFTABLE_BYTES {
            return Err(self.too_large("the refcount table would exceed QEMU's 8 MiB limit"));
        }
        if total > MAX_HOST_OFFSET >> bits {
            return Err(self.too_large("metadata would reach beyond the 64 PiB host offset limit"));
        }

        // L2 tables.
        let mut buf = vec![0u8; cluster_size as usize];
        for (cluster, host) in l2_tables {
            for (slot, &h) in buf.chunks_exact_mut(8).zip(host.iter()) {
                let entry = if h == 0 {
                    0
                } else {
                    (h << bits) | QCOW_OFLAG_COPIED
                };
                slot.copy_from_slice(&entry.to_be_bytes());
            }
            let offset = cluster << bits;
            self.write_at(&buf, offset, || {
                format!("write L2 table at host offset {offset}")
            })?;
        }

        // L1 table, padded to whole clusters.
        let l1_table_offset = if self.l1_size == 0 {
            0
        } else {
            l1_cluster << bits
        };
        if l1_clusters > 0 {
            let bytes = encode_u64_table(&l1, l1_clusters * cluster_size);
            self.write_at(&bytes, l1_table_offset, || {
                format!("write L1 table at host offset {l1_table_offset}")
            })?;
        }

        // Refcount blocks: refcount 1 for clusters 0 .. total, 0 after.
        let per_block = cluster_size / REFCOUNT_BYTES;
        for block in 0..layout.blocks {
            let used = (total - block * per_block).min(per_block) as usize;
            buf.fill(0);
            for entry in buf.chunks_exact_mut(REFCOUNT_BYTES as usize).take(used) {
                entry.copy_from_slice(&1u16.to_be_bytes());
            }
            let offset = (first_refcount_block + block) << bits;
            self.write_at(&buf, offset, || {
                format!("write refcount block at host offset {offset}")
            })?;
        }

        // Refcount table.
        let refcount_table: Vec<u64> = (0..layout.blocks)
            .map(|block| (first_refcount_block + block) << bits)
            .collect();
        let refcount_table_offset = refcount_table_cluster << bits;
        let bytes = encode_u64_table(&refcount_table, layout.table_clusters * cluster_size);
        self.write_at(&bytes, refcount_table_offset, || {
            format!("write refcount table at host offset {refcount_table_offset}")
        })?;

        // Everything the header points to must be durable before the header is.
        self.sync("fsync the image before writing the header")?;
        let header = encode_header(&Header {
            cluster_bits: bits,
            virtual_size: self.virtual_size,
            l1_size: self.l1_size as u32,
            l1_table_offset,
            refcount_table_offset,
            refcount_table_clusters: layout.table_clusters as u32,
            incompatible_features: 0,
        });
        self.write_at(&header, 0, || "write the header".into())?;
        self.sync("fsync the image after writing the header")?;
        sync_parent_dir(&self.path)
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-updated in a way
        // that matters more than the panic itself; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_at(&self, data: &[u8], offset: u64, action: impl FnOnce() -> String) -> Result<()> {
        self.file
            .write_all_at(data, offset)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                action: action(),
                source,
            })
    }

    fn sync(&self, action: &str) -> Result<()> {
        self.file.sync_all().map_err(|source| Error::Io {
            path: self.path.clone(),
            action: action.into(),
            source,
        })
    }

    fn too_large(&self, what: &str) -> Error {
        Error::ImageTooLarge {
            path: self.path.clone(),
            what: what.into(),
        }
    }
}

/// Makes the new file's directory entry durable.
fn sync_parent_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let err = |source| Error::Io {
        path: dir.to_owned(),
        action: "fsync the directory containing the image".into(),
        source,
    };
    let handle = File::open(dir).map_err(err)?;
    match handle.sync_all() {
        // Some file systems cannot fsync directories; the file itself is synced.
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        r => r.map_err(err),
    }
}

/// Number of L1 entries needed for a disk of `virtual_size` bytes: each L1 entry
/// points to an L2 table of `cluster_size / 8` entries.
fn l1_entries(virtual_size: u64, cluster_bits: u32) -> u64 {
    let clusters = virtual_size.div_ceil(1 << cluster_bits);
    clusters.div_ceil(1 << (cluster_bits - 3))
}

/// Sizes of the refcount structures, see [`refcount_layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RefcountLayout {
    /// Clusters of the refcount table.
    table_clusters: u64,
    /// Number of refcount blocks.
    blocks: u64,
    /// Clusters in the whole file, including the refcount structures.
    total_clusters: u64,
}

/// Computes how many refcount blocks and refcount table clusters are needed when
/// `used_clusters` clusters precede them and they themselves must be counted too.
///
/// A refcount block (16-bit entries) covers `cluster_size / 2` clusters, a refcount
/// table cluster points to `cluster_size / 8` blocks. Adding blocks can require more
/// blocks and table clusters, so iterate until the sizes no longer change; the sizes
/// only grow and are bounded, so this converges (in at most a few rounds).
fn refcount_layout(used_clusters: u64, cluster_bits: u32) -> RefcountLayout {
    let cluster_size = 1u64 << cluster_bits;
    let per_block = cluster_size / REFCOUNT_BYTES;
    let per_table_cluster = cluster_size / 8;
    let (mut table_clusters, mut blocks) = (0u64, 0u64);
    loop {
        let total = used_clusters + table_clusters + blocks;
        let new_blocks = total.div_ceil(per_block);
        let new_table_clusters = new_blocks.div_ceil(per_table_cluster);
        if (new_blocks, new_table_clusters) == (blocks, table_clusters) {
            return RefcountLayout {
                table_clusters,
                blocks,
                total_clusters: total,
            };
        }
        (blocks, table_clusters) = (new_blocks, new_table_clusters);
    }
}

/// Header fields that vary between images.
struct Header {
    cluster_bits: u32,
    virtual_size: u64,
    l1_size: u32,
    l1_table_offset: u64,
    refcount_table_offset: u64,
    refcount_table_clusters: u32,
    incompatible_features: u64,
}

/// Encodes the version 3 header (112 bytes) followed by the end-of-extensions
/// marker, zero-padded to a whole cluster.
fn encode_header(h: &Header) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 << h.cluster_bits);
    b.extend_from_slice(&QCOW_MAGIC.to_be_bytes()); // 0: magic
    b.extend_from_slice(&3u32.to_be_bytes()); // 4: version
    b.extend_from_slice(&0u64.to_be_bytes()); // 8: backing_file_offset
    b.extend_from_slice(&0u32.to_be_bytes()); // 16: backing_file_size
    b.extend_from_slice(&h.cluster_bits.to_be_bytes()); // 20: cluster_bits
    b.extend_from_slice(&h.virtual_size.to_be_bytes()); // 24: size
    b.extend_from_slice(&0u32.to_be_bytes()); // 32: crypt_method
    b.extend_from_slice(&h.l1_size.to_be_bytes()); // 36: l1_size
    b.extend_from_slice(&h.l1_table_offset.to_be_bytes()); // 40: l1_table_offset
    b.extend_from_slice(&h.refcount_table_offset.to_be_bytes()); // 48: refcount_table_offset
    b.extend_from_slice(&h.refcount_table_clusters.to_be_bytes()); // 56: refcount_table_clusters
    b.extend_from_slice(&0u32.to_be_bytes()); // 60: nb_snapshots
    b.extend_from_slice(&0u64.to_be_bytes()); // 64: snapshots_offset
    b.extend_from_slice(&h.incompatible_features.to_be_bytes()); // 72: incompatible_features
    b.extend_from_slice(&0u64.to_be_bytes()); // 80: compatible_features
    b.extend_from_slice(&0u64.to_be_bytes()); // 88: autoclear_features
    b.extend_from_slice(&REFCOUNT_ORDER.to_be_bytes()); // 96: refcount_order
    b.extend_from_slice(&HEADER_LENGTH.to_be_bytes()); // 100: header_length
    b.push(0); // 104: compression_type (zlib; no compressed clusters are written)
    b.extend_from_slice(&[0; 7]); // 105: padding to a multiple of 8
    debug_assert_eq!(b.len(), HEADER_LENGTH as usize);
    b.extend_from_slice(&[0; 8]); // end of header extensions: type 0, length 0
    b.resize(1 << h.cluster_bits, 0);
    b
}

/// Encodes big-endian 64-bit entries, zero-padded to `len` bytes.
fn encode_u64_table(entries: &[u64], len: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(len as usize);
    for e in entries {
        b.extend_from_slice(&e.to_be_bytes());
    }
    b.resize(len as usize, 0);
    b
}

/// Whether `data` consists of zero bytes only.
fn is_zero(data: &[u8]) -> bool {
    let mut chunks = data.chunks_exact(16);
    chunks.all(|c| u128::from_ne_bytes(c.try_into().unwrap()) == 0)
        && chunks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcount_layout_counts_itself() {
        for bits in MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS {
            let per_block = (1u64 << bits) / 2;
            let per_table = (1u64 << bits) / 8;
            for used in [
                1,
                2,
                100,
                per_block - 2,
                per_block - 1,
                per_block,
                per_block + 1,
            ]
            .into_iter()
            .chain([per_block * per_table - 3, per_block * per_table * 3 + 7])
            {
                let l = refcount_layout(used, bits);
                assert_eq!(l.total_clusters, used + l.table_clusters + l.blocks);
                assert!(l.blocks * per_block >= l.total_clusters, "{bits} {used}");
                assert!(l.table_clusters * per_table >= l.blocks, "{bits} {used}");
                // Minimal: one block fewer would not suffice.
                assert!((l.blocks - 1) * per_block < l.total_clusters);
                assert!((l.table_clusters - 1) * per_table < l.blocks);
            }
        }
    }

    #[test]
    fn refcount_layout_boundary() {
        // 4 KiB clusters: a block covers 2048 clusters. 2046 used + 1 table + 1 block fit.
        let l = refcount_layout(2046, 12);
        assert_eq!((l.table_clusters, l.blocks, l.total_clusters), (1, 1, 2048));
        // One more used cluster needs a second block.
        let l = refcount_layout(2047, 12);
        assert_eq!((l.table_clusters, l.blocks, l.total_clusters), (1, 2, 2050));
    }

    #[test]
    fn header_layout() {
        let h = encode_header(&Header {
            cluster_bits: 16,
            virtual_size: 0x1234_5678_9000,
            l1_size: 7,
            l1_table_offset: 0x30000,
            refcount_table_offset: 0x40000,
            refcount_table_clusters: 1,
            incompatible_features: 0,
        });
        assert_eq!(h.len(), 65536);
        assert_eq!(&h[0..4], b"QFI\xfb");
        assert_eq!(&h[4..8], &3u32.to_be_bytes());
        assert_eq!(&h[20..24], &16u32.to_be_bytes());
        assert_eq!(&h[24..32], &0x1234_5678_9000u64.to_be_bytes());
        assert_eq!(&h[36..40], &7u32.to_be_bytes());
        assert_eq!(&h[40..48], &0x30000u64.to_be_bytes());
        assert_eq!(&h[48..56], &0x40000u64.to_be_bytes());
        assert_eq!(&h[56..60], &1u32.to_be_bytes());
        assert_eq!(&h[96..100], &4u32.to_be_bytes());
        assert_eq!(&h[100..104], &112u32.to_be_bytes());
        assert!(h[104..].iter().all(|&b| b == 0));
    }

    #[test]
    fn l1_size_rounds_up() {
        // 64 KiB clusters: one L2 table covers 8192 * 64 KiB = 512 MiB.
        assert_eq!(l1_entries(0, 16), 0);
        assert_eq!(l1_entries(512, 16), 1);
        assert_eq!(l1_entries(512 << 20, 16), 1);
        assert_eq!(l1_entries((512 << 20) + 512, 16), 2);
        assert_eq!(l1_entries(1 << 40, 16), 2048);
    }

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 4099]));
        let mut v = vec![0u8; 4099];
        v[4098] = 1;
        assert!(!is_zero(&v));
        v[4098] = 0;
        v[17] = 1;
        assert!(!is_zero(&v));
    }
}
