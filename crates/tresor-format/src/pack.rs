//! Pack files: many sealed blobs in one object.
//!
//! ```text
//! header   16 bytes   PACK_MAGIC_V1 (8) | reserved, zero (8)
//! blobs    ...        sealed blobs, back to back (see crate::blob)
//! trailer  n bytes    sealed with PACK_TRAILER_AAD: count u32 LE | count × PackEntry (48 bytes)
//! footer   16 bytes   trailer length n u32 LE | reserved, zero u32 | PACK_MAGIC_V1 (8)
//! ```
//! The name of a pack is the hex BLAKE3 hash of all its bytes. The trailer makes a pack
//! self-describing: index files are a cache of the trailers and can be rebuilt from them.

use tresor_crypto::Sealer;

use crate::blob::{BlobKind, Compression, SealedBlob};
use crate::magic::{PACK_MAGIC_V1, PACK_TRAILER_AAD};
use crate::{id_at, malformed, need, u32_at, ChunkId, Error, Result};

pub const PACK_HEADER_LEN: usize = 16;
pub const PACK_FOOTER_LEN: usize = 16;
pub const PACK_ENTRY_LEN: usize = 48;

/// Where one blob is inside a pack, and how to open it.
///
/// ```text
/// kind u8 | compression u8 | reserved u16 = 0 | offset u32 | sealed_len u32 | raw_len u32 | id (32)
/// ```
/// All integers little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub compression: Compression,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u32,
    /// Length of the sealed blob (nonce and tag included).
    pub sealed_len: u32,
    /// Length of the plaintext.
    pub raw_len: u32,
    pub id: ChunkId,
}

impl PackEntry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind as u8);
        out.push(self.compression as u8);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.sealed_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(self.id.as_bytes());
    }

    pub fn decode(what: &'static str, b: &[u8]) -> Result<PackEntry> {
        need(what, b, PACK_ENTRY_LEN)?;
        let kind = BlobKind::from_u8(b[0])
            .ok_or_else(|| malformed(what, format!("unknown blob kind {}", b[0])))?;
        let compression = Compression::from_u8(b[1])
            .ok_or_else(|| malformed(what, format!("unknown compression {}", b[1])))?;
        if b[2] != 0 || b[3] != 0 {
            return Err(malformed(what, "reserved bytes of an entry are not zero"));
        }
        Ok(PackEntry {
            kind,
            compression,
            offset: u32_at(b, 4),
            sealed_len: u32_at(b, 8),
            raw_len: u32_at(b, 12),
            id: id_at(b, 16),
        })
    }
}

/// Encodes a list of entries as `count u32 | entries`.
pub fn encode_entries(entries: &[PackEntry], out: &mut Vec<u8>) {
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        e.encode(out);
    }
}

/// Decodes `count u32 | entries` from the start of `b`; returns the entries and the bytes used.
pub fn decode_entries(what: &'static str, b: &[u8]) -> Result<(Vec<PackEntry>, usize)> {
    need(what, b, 4)?;
    let count = u32_at(b, 0) as usize;
    let end = count
        .checked_mul(PACK_ENTRY_LEN)
        .and_then(|n| n.checked_add(4))
        .ok_or_else(|| malformed(what, "entry count overflows"))?;
    need(what, b, end)?;
    let entries = b[4..end]
        .chunks_exact(PACK_ENTRY_LEN)
        .map(|e| PackEntry::decode(what, e))
        .collect::<Result<Vec<_>>>()?;
    Ok((entries, end))
}

/// Builds one pack in memory.
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    pub fn new() -> PackBuilder {
        let mut buf = Vec::with_capacity(PACK_HEADER_LEN);
        buf.extend_from_slice(&PACK_MAGIC_V1);
        buf.extend_from_slice(&[0u8; 8]);
        PackBuilder {
            buf,
            entries: Vec::new(),
        }
    }

    /// Bytes so far (header and blobs).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[PackEntry] {
        &self.entries
    }

    /// Appends an already sealed blob.
    pub fn add(&mut self, kind: BlobKind, id: ChunkId, meta: SealedBlob, sealed: &[u8]) {
        debug_assert_eq!(meta.sealed_len as usize, sealed.len());
        self.entries.push(PackEntry {
            kind,
            compression: meta.compression,
            offset: self.buf.len() as u32,
            sealed_len: meta.sealed_len,
            raw_len: meta.raw_len,
            id,
        });
        self.buf.extend_from_slice(sealed);
    }

    /// Seals the trailer, appends the footer, and returns the pack's name, bytes and entries.
    pub fn finish(self, sealer: &Sealer) -> FinishedPack {
        self.finish_with(|plain, out| sealer.seal_into(PACK_TRAILER_AAD, plain, out))
    }

    /// [`PackBuilder::finish`] with a fixed trailer nonce, for golden files.
    pub fn finish_with_nonce(self, sealer: &Sealer, nonce: [u8; 12]) -> FinishedPack {
        self.finish_with(|plain, out| {
            sealer.seal_into_with_nonce(nonce, PACK_TRAILER_AAD, plain, out)
        })
    }

    fn finish_with(mut self, seal: impl FnOnce(&[u8], &mut Vec<u8>)) -> FinishedPack {
        let mut trailer = Vec::with_capacity(4 + self.entries.len() * PACK_ENTRY_LEN);
        encode_entries(&self.entries, &mut trailer);
        let before = self.buf.len();
        seal(&trailer, &mut self.buf);
        let trailer_len = (self.buf.len() - before) as u32;
        self.buf.extend_from_slice(&trailer_len.to_le_bytes());
        self.buf.extend_from_slice(&[0u8; 4]);
        self.buf.extend_from_slice(&PACK_MAGIC_V1);
        FinishedPack {
            name: pack_name(&self.buf),
            bytes: self.buf,
            entries: self.entries,
        }
    }
}

/// A pack ready to be stored.
pub struct FinishedPack {
    /// Hex BLAKE3 of `bytes`.
    pub name: String,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}

/// The name of a pack: the hex BLAKE3 hash of its bytes.
pub fn pack_name(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Checks a pack's header.
pub fn check_header(b: &[u8]) -> Result<()> {
    need("pack header", b, PACK_HEADER_LEN)?;
    if b[..8] != PACK_MAGIC_V1 {
        return Err(Error::BadMagic { what: "pack" });
    }
    if b[8..16] != [0u8; 8] {
        return Err(malformed("pack header", "reserved bytes are not zero"));
    }
    Ok(())
}

/// Reads the footer (the last 16 bytes of a pack) and returns the trailer's length.
pub fn decode_footer(b: &[u8]) -> Result<u32> {
    need("pack footer", b, PACK_FOOTER_LEN)?;
    if b[8..16] != PACK_MAGIC_V1 {
        return Err(Error::BadMagic {
            what: "pack footer",
        });
    }
    if b[4..8] != [0u8; 4] {
        return Err(malformed("pack footer", "reserved bytes are not zero"));
    }
    Ok(u32_at(b, 0))
}

/// Opens a sealed trailer and decodes its entries.
pub fn decode_trailer(sealer: &Sealer, sealed: &mut [u8]) -> Result<Vec<PackEntry>> {
    let plain = sealer
        .open_in_place(PACK_TRAILER_AAD, sealed)
        .map_err(|_| Error::Authentication {
            what: "pack trailer",
        })?;
    let (entries, used) = decode_entries("pack trailer", plain)?;
    if used != plain.len() {
        return Err(malformed("pack trailer", "bytes after the last entry"));
    }
    Ok(entries)
}

/// Decodes the entries of a whole pack held in memory, checking the layout.
pub fn read_pack_entries(sealer: &Sealer, pack: &[u8]) -> Result<Vec<PackEntry>> {
    check_header(pack)?;
    need("pack", pack, PACK_HEADER_LEN + PACK_FOOTER_LEN)?;
    let footer_at = pack.len() - PACK_FOOTER_LEN;
    let trailer_len = decode_footer(&pack[footer_at..])? as usize;
    if trailer_len > footer_at - PACK_HEADER_LEN {
        return Err(malformed("pack", "trailer longer than the pack"));
    }
    let mut trailer = pack[footer_at - trailer_len..footer_at].to_vec();
    let entries = decode_trailer(sealer, &mut trailer)?;
    for e in &entries {
        let end = e.offset as u64 + e.sealed_len as u64;
        if (e.offset as usize) < PACK_HEADER_LEN || end > (footer_at - trailer_len) as u64 {
            return Err(malformed(
                "pack",
                format!("blob {} lies outside the blob area", e.id),
            ));
        }
    }
    Ok(entries)
}
