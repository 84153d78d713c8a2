//! [`Qcow2Writer`]: the file, the guest-to-host cluster map in memory, data
//! written from several threads, and the metadata written at `finish`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::layout::*;

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
