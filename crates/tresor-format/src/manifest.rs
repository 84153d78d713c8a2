//! Recovery point manifests.
//!
//! Stored as `points/ID`, bytes `seal(POINT_AAD || ID, POINT_MAGIC_V1 || JSON)`. Binding
//! the id into the associated data means a manifest cannot be copied under another name,
//! and the AEAD tag means any change to it is detected. The JSON carries a `version`;
//! readers refuse versions they do not know.
//!
//! A manifest is written last, after every blob it references is in a durable pack
//! listed by a durable index file: a manifest that exists never lies.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tresor_crypto::Sealer;

use crate::config::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::magic::{POINT_AAD, POINT_MAGIC_V1};
use crate::tree::TreeShape;
use crate::{malformed, ChunkId, Error, Result};

pub const MANIFEST_VERSION: u32 = 1;

/// How consistent the disks of a recovery point are with each other and with the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// Applications were told to flush (guest agent hooks ran) and file systems frozen.
    AppConsistent,
    /// File systems were frozen by the guest agent; no application hooks ran.
    FileSystemConsistent,
    /// As if the power was cut at one instant (a stopped VM, or no guest agent).
    CrashConsistent,
}

impl std::fmt::Display for Consistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Consistency::AppConsistent => "AppConsistent",
            Consistency::FileSystemConsistent => "FileSystemConsistent",
            Consistency::CrashConsistent => "CrashConsistent",
        })
    }
}

/// One disk of a recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskEntry {
    /// The disk's name within the VM (`vda`, `disk0`, an image's file name).
    pub name: String,
    /// Virtual size in bytes.
    pub size: u64,
    /// Bytes per chunk; the last chunk may be shorter.
    pub chunk_size: u32,
    /// Fan-out of the disk tree.
    pub fanout: u32,
    /// Levels of the disk tree.
    pub depth: u8,
    /// The root node, or [`ChunkId::ZERO`] for a disk that reads as zeros.
    pub root: ChunkId,
}

impl DiskEntry {
    pub fn chunks(&self) -> u64 {
        self.size.div_ceil(self.chunk_size as u64)
    }

    pub fn shape(&self) -> TreeShape {
        TreeShape {
            chunks: self.chunks(),
            fanout: self.fanout,
            depth: self.depth,
        }
    }
}

/// Figures about the backup that made a point, for reports. Not needed to restore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStats {
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Bytes of the disks that hold data (not zero).
    pub data_bytes: u64,
    /// Sealed bytes of blobs this backup added to the storage.
    pub bytes_added: u64,
    /// Chunks this backup stored.
    pub chunks_added: u64,
    /// Chunks found already stored.
    pub chunks_reused: u64,
    /// Tree nodes this backup stored.
    pub tree_nodes_added: u64,
    /// Wall time of the backup, milliseconds.
    pub duration_ms: u64,
}

/// A recovery point: the disks of one VM (or one set of images) at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// 32 hex digits, random.
    pub id: String,
    /// What was backed up: the protected item's name.
    pub name: String,
    /// The instant the disks were read at.
    pub created: Timestamp,
    pub consistency: Consistency,
    /// The recovery point this one was made incrementally from.
    pub parent: Option<String>,
    /// When retention may delete this point (on-demand backups carry their own date).
    #[serde(default)]
    pub expires: Option<Timestamp>,
    pub disks: Vec<DiskEntry>,
    /// The host that made the point.
    #[serde(default)]
    pub host: String,
    /// A saved copy of the VM's configuration, for "create a new VM" restores.
    #[serde(default)]
    pub vm_config: Option<serde_json::Value>,
    #[serde(default)]
    pub stats: BackupStats,
}

impl Manifest {
    fn aad(id: &str) -> Vec<u8> {
        let mut aad = POINT_AAD.to_vec();
        aad.extend_from_slice(id.as_bytes());
        aad
    }

    fn plaintext(&self) -> Vec<u8> {
        let mut plain = POINT_MAGIC_V1.to_vec();
        serde_json::to_writer(&mut plain, self).expect("a manifest serializes");
        plain
    }

    pub fn seal(&self, sealer: &Sealer) -> Vec<u8> {
        sealer.seal(&Self::aad(&self.id), &self.plaintext())
    }

    /// [`Manifest::seal`] with a fixed nonce, for golden files.
    pub fn seal_with_nonce(&self, sealer: &Sealer, nonce: [u8; 12]) -> Vec<u8> {
        let mut out = Vec::new();
        sealer.seal_into_with_nonce(nonce, &Self::aad(&self.id), &self.plaintext(), &mut out);
        out
    }

    /// Opens the manifest stored under `id`, checking that it is that point's.
    pub fn open(sealer: &Sealer, id: &str, bytes: &[u8]) -> Result<Manifest> {
        const WHAT: &str = "recovery point manifest";
        let plain = sealer
            .open(&Self::aad(id), bytes)
            .map_err(|_| Error::Authentication { what: WHAT })?;
        if plain.len() < 8 || plain[..8] != POINT_MAGIC_V1 {
            return Err(Error::BadMagic { what: WHAT });
        }
        let version: VersionOnly =
            serde_json::from_slice(&plain[8..]).map_err(|e| malformed(WHAT, e.to_string()))?;
        if version.version != MANIFEST_VERSION {
            return Err(Error::UnsupportedVersion {
                what: WHAT,
                found: version.version as u64,
                supported: MANIFEST_VERSION as u64,
            });
        }
        let m: Manifest =
            serde_json::from_slice(&plain[8..]).map_err(|e| malformed(WHAT, e.to_string()))?;
        if m.id != id {
            return Err(malformed(
                WHAT,
                format!("stored as {id} but names itself {}", m.id),
            ));
        }
        for d in &m.disks {
            // Restores allocate buffers of the chunk size: refuse what no repository
            // configuration allows, as the config decoder does.
            if !d.chunk_size.is_power_of_two()
                || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&d.chunk_size)
            {
                return Err(malformed(
                    WHAT,
                    format!(
                        "disk {}: chunk size {} is not a power of two in 4 KiB ..= 4 MiB",
                        d.name, d.chunk_size
                    ),
                ));
            }
            d.shape().check()?;
        }
        Ok(m)
    }

    /// Total virtual size of the disks.
    pub fn total_size(&self) -> u64 {
        // Saturating: sizes come from stored bytes and may add up past u64.
        self.disks
            .iter()
            .fold(0u64, |total, d| total.saturating_add(d.size))
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// Validates a recovery point id: 32 lowercase hex digits.
pub fn is_point_id(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(chunk_size: u32) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            id: "0123456789abcdef0123456789abcdef".into(),
            name: "vm".into(),
            created: "2026-11-26T01:00:00Z".parse().unwrap(),
            consistency: Consistency::CrashConsistent,
            parent: None,
            expires: None,
            disks: vec![DiskEntry {
                name: "vda".into(),
                size: 1 << 30,
                chunk_size,
                fanout: 64,
                depth: TreeShape::for_chunks((1u64 << 30).div_ceil(chunk_size as u64), 64).depth,
                root: ChunkId::ZERO,
            }],
            host: String::new(),
            vm_config: None,
            stats: BackupStats::default(),
        }
    }

    #[test]
    fn manifest_chunk_size_outside_the_config_range_is_refused() {
        let sealer = Sealer::new(&[4; 32]);
        let ok = manifest(1 << 16);
        assert_eq!(
            Manifest::open(&sealer, &ok.id, &ok.seal(&sealer)).unwrap(),
            ok
        );
        // A 2 GiB chunk would make a restore allocate 2 GiB per buffer.
        for bad in [1u32 << 31, 1024, 0, 3 << 12] {
            let m = manifest(bad.max(1));
            let m = Manifest {
                disks: vec![DiskEntry {
                    chunk_size: bad,
                    ..m.disks[0].clone()
                }],
                ..m
            };
            let e = Manifest::open(&sealer, &m.id, &m.seal(&sealer)).unwrap_err();
            assert!(e.to_string().contains("chunk size"), "{bad}: {e}");
        }
    }

    #[test]
    fn total_size_saturates() {
        let mut m = manifest(1 << 16);
        m.disks[0].size = u64::MAX;
        m.disks.push(m.disks[0].clone());
        assert_eq!(m.total_size(), u64::MAX);
    }
}
