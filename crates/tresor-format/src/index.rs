//! Index files: which blobs are in which packs.
//!
//! Stored bytes: `seal(INDEX_AAD, zstd(plaintext))`, plaintext:
//! ```text
//! INDEX_MAGIC_V1 (8) | pack count u32 LE | reserved u32 = 0
//! per pack: pack id (32, the raw BLAKE3 hash that names it) | count u32 | count × PackEntry (48)
//! ```
//! An index file is written only after every pack it lists is durable. The name of an
//! index file is the hex BLAKE3 hash of its stored bytes. The same blob may be listed by
//! several index files (after a repack, or when two backups stored it at once): any
//! listed copy is valid.

use tresor_crypto::Sealer;

use crate::magic::{INDEX_AAD, INDEX_MAGIC_V1};
use crate::pack::{decode_entries, encode_entries, PackEntry};
use crate::{malformed, need, u32_at, zstd_decode_bounded, Error, Result, MAX_METADATA_PLAIN};

/// The packs one index file lists, with their entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexFile {
    pub packs: Vec<IndexedPack>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    /// The raw 32-byte BLAKE3 hash that names the pack (its name is the hex form).
    pub pack_id: [u8; 32],
    pub entries: Vec<PackEntry>,
}

impl IndexedPack {
    pub fn name(&self) -> String {
        hex::encode(self.pack_id)
    }
}

impl IndexFile {
    fn plaintext(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&INDEX_MAGIC_V1);
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        for p in &self.packs {
            out.extend_from_slice(&p.pack_id);
            encode_entries(&p.entries, &mut out);
        }
        out
    }

    /// Encodes and seals; returns the file's name and bytes.
    pub fn seal(&self, sealer: &Sealer) -> (String, Vec<u8>) {
        let compressed =
            zstd::bulk::compress(&self.plaintext(), 3).expect("zstd compression of a buffer");
        let bytes = sealer.seal(INDEX_AAD, &compressed);
        (blake3::hash(&bytes).to_hex().to_string(), bytes)
    }

    /// [`IndexFile::seal`] with a fixed nonce, for golden files.
    pub fn seal_with_nonce(&self, sealer: &Sealer, nonce: [u8; 12]) -> Vec<u8> {
        let compressed =
            zstd::bulk::compress(&self.plaintext(), 3).expect("zstd compression of a buffer");
        let mut out = Vec::new();
        sealer.seal_into_with_nonce(nonce, INDEX_AAD, &compressed, &mut out);
        out
    }

    /// Opens and decodes stored bytes.
    pub fn open(sealer: &Sealer, bytes: &[u8]) -> Result<IndexFile> {
        const WHAT: &str = "index file";
        let compressed = sealer
            .open(INDEX_AAD, bytes)
            .map_err(|_| Error::Authentication { what: WHAT })?;
        let plain = zstd_decode_bounded(WHAT, &compressed, MAX_METADATA_PLAIN)?;
        need(WHAT, &plain, 16)?;
        if plain[..8] != INDEX_MAGIC_V1 {
            return Err(Error::BadMagic { what: WHAT });
        }
        if plain[12..16] != [0u8; 4] {
            return Err(malformed(WHAT, "reserved bytes are not zero"));
        }
        let count = u32_at(&plain, 8) as usize;
        let mut at = 16;
        // Each pack takes at least 36 bytes (id and count): the bytes present bound the
        // capacity, not the count they claim.
        let mut packs = Vec::with_capacity(count.min((plain.len() - 16) / 36));
        for _ in 0..count {
            need(WHAT, &plain[at..], 32)?;
            let pack_id: [u8; 32] = plain[at..at + 32].try_into().expect("32 bytes");
            at += 32;
            let (entries, used) = decode_entries(WHAT, &plain[at..])?;
            at += used;
            packs.push(IndexedPack { pack_id, entries });
        }
        if at != plain.len() {
            return Err(malformed(WHAT, "bytes after the last pack"));
        }
        Ok(IndexFile { packs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_claiming_four_billion_packs_is_truncated_not_allocated() {
        let sealer = Sealer::new(&[3; 32]);
        let mut plain = INDEX_MAGIC_V1.to_vec();
        plain.extend_from_slice(&u32::MAX.to_le_bytes());
        plain.extend_from_slice(&[0; 4]);
        plain.extend_from_slice(&[0xab; 32]);
        let bytes = sealer.seal(INDEX_AAD, &zstd::bulk::compress(&plain, 3).unwrap());
        assert!(matches!(
            IndexFile::open(&sealer, &bytes),
            Err(Error::Truncated { .. })
        ));
        // A pack claiming four billion entries: the same.
        plain[8..12].copy_from_slice(&1u32.to_le_bytes());
        plain.extend_from_slice(&u32::MAX.to_le_bytes());
        let bytes = sealer.seal(INDEX_AAD, &zstd::bulk::compress(&plain, 3).unwrap());
        assert!(matches!(
            IndexFile::open(&sealer, &bytes),
            Err(Error::Truncated { .. })
        ));
    }
}
