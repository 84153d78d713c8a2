//! A sealed blob: one data chunk or one tree node, compressed and encrypted.
//!
//! On disk a blob is `nonce (12) || AES-256-GCM(payload) || tag (16)` where the payload is
//! the plaintext, zstd-compressed when that makes it smaller. The associated data is
//! `id (32) || kind (1)`, so a blob cannot be passed off under another id or kind.
//!
//! A blob knows nothing of the pack that holds it: the pack's trailer records where each
//! blob is and how its payload is compressed, and hands those to [`open_blob`].

use tresor_crypto::{ChunkIdKey, Sealer};

pub use crate::MAX_BLOB_RAW_LEN;
use crate::{ChunkId, Error, Result};

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BlobKind {
    /// A chunk of disk data.
    Data = 1,
    /// A node of a disk tree.
    Tree = 2,
}

impl BlobKind {
    pub fn from_u8(v: u8) -> Option<BlobKind> {
        match v {
            1 => Some(BlobKind::Data),
            2 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// How a blob's payload is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Compression {
    None = 0,
    Zstd = 1,
}

impl Compression {
    pub fn from_u8(v: u8) -> Option<Compression> {
        match v {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// The associated data of a blob.
pub fn blob_aad(id: &ChunkId, kind: BlobKind) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[..32].copy_from_slice(id.as_bytes());
    aad[32] = kind as u8;
    aad
}

/// What [`seal_blob`] produced, besides the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedBlob {
    pub compression: Compression,
    pub raw_len: u32,
    pub sealed_len: u32,
}

/// Compresses (when it helps) and seals `plain`, appending the sealed bytes to `out`.
///
/// `scratch` is reused between calls to hold compressed bytes. Compression is kept only
/// when it saves at least 1/32 of the size: incompressible data (already compressed
/// files, encrypted guests) is then stored as it is and restores without a decompression.
pub fn seal_blob(
    sealer: &Sealer,
    compressor: &mut zstd::bulk::Compressor<'_>,
    scratch: &mut Vec<u8>,
    kind: BlobKind,
    id: &ChunkId,
    plain: &[u8],
    out: &mut Vec<u8>,
) -> SealedBlob {
    seal_blob_with(
        compressor,
        scratch,
        kind,
        id,
        plain,
        out,
        |aad, payload, out| sealer.seal_into(aad, payload, out),
    )
}

/// [`seal_blob`] with a fixed nonce, for golden files. Never use a nonce twice with one key.
#[allow(clippy::too_many_arguments)]
pub fn seal_blob_with_nonce(
    sealer: &Sealer,
    nonce: [u8; 12],
    compressor: &mut zstd::bulk::Compressor<'_>,
    scratch: &mut Vec<u8>,
    kind: BlobKind,
    id: &ChunkId,
    plain: &[u8],
    out: &mut Vec<u8>,
) -> SealedBlob {
    seal_blob_with(
        compressor,
        scratch,
        kind,
        id,
        plain,
        out,
        |aad, payload, out| sealer.seal_into_with_nonce(nonce, aad, payload, out),
    )
}

fn seal_blob_with(
    compressor: &mut zstd::bulk::Compressor<'_>,
    scratch: &mut Vec<u8>,
    kind: BlobKind,
    id: &ChunkId,
    plain: &[u8],
    out: &mut Vec<u8>,
    seal: impl FnOnce(&[u8], &[u8], &mut Vec<u8>),
) -> SealedBlob {
    scratch.clear();
    scratch.reserve(zstd::zstd_safe::compress_bound(plain.len()));
    let compressed = compressor.compress_to_buffer(plain, scratch).is_ok()
        && scratch.len() + plain.len() / 32 < plain.len();
    let (payload, compression) = if compressed {
        (&scratch[..], Compression::Zstd)
    } else {
        (plain, Compression::None)
    };
    let before = out.len();
    seal(&blob_aad(id, kind), payload, out);
    SealedBlob {
        compression,
        raw_len: plain.len() as u32,
        sealed_len: (out.len() - before) as u32,
    }
}

/// Opens a sealed blob and checks that its plaintext really has the id it claims.
///
/// The AEAD tag proves the key holder wrote these bytes under this id; the recomputed
/// keyed hash proves they are the bytes that id was computed from. Either failing is
/// [`Error::BlobCorrupt`] naming the blob: a damaged blob never yields data.
pub fn open_blob(
    sealer: &Sealer,
    id_key: &ChunkIdKey,
    kind: BlobKind,
    id: &ChunkId,
    compression: Compression,
    raw_len: u32,
    sealed: &mut [u8],
) -> Result<Vec<u8>> {
    let corrupt = |reason: &str| Error::BlobCorrupt {
        id: *id,
        reason: reason.to_string(),
    };
    if raw_len > MAX_BLOB_RAW_LEN {
        return Err(corrupt(&format!(
            "recorded length {raw_len} exceeds the largest blob ({MAX_BLOB_RAW_LEN} bytes)"
        )));
    }
    let payload = sealer
        .open_in_place(&blob_aad(id, kind), sealed)
        .map_err(|_| corrupt("authentication failed (damaged or tampered)"))?;
    let plain = match compression {
        Compression::None => {
            if payload.len() != raw_len as usize {
                return Err(corrupt(&format!(
                    "length {} differs from the recorded {raw_len}",
                    payload.len()
                )));
            }
            payload.to_vec()
        }
        Compression::Zstd => {
            // One decompression context per thread: making a new one for every blob
            // cost restores, verify and the server's upload checks some 7 % of their CPU.
            thread_local! {
                static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                    const { std::cell::RefCell::new(None) };
            }
            DECOMPRESSOR
                .with(|d| {
                    let mut d = d.borrow_mut();
                    if d.is_none() {
                        *d = Some(zstd::bulk::Decompressor::new()?);
                    }
                    d.as_mut()
                        .expect("made above")
                        .decompress(payload, raw_len as usize)
                })
                .map_err(|e| corrupt(&format!("zstd decompression failed: {e}")))?
        }
    };
    if plain.len() != raw_len as usize {
        return Err(corrupt(&format!(
            "length {} differs from the recorded {}",
            plain.len(),
            raw_len
        )));
    }
    if id_key.id_of(&plain) != *id {
        return Err(corrupt("content does not match its id"));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_crypto::MasterKey;

    fn key() -> MasterKey {
        MasterKey::from_bytes([1; 32], [2; 32])
    }

    fn sealed(plain: &[u8], kind: BlobKind) -> (ChunkId, SealedBlob, Vec<u8>) {
        let k = key();
        let id = k.chunk_id_key().id_of(plain);
        let mut c = zstd::bulk::Compressor::new(1).unwrap();
        let mut out = Vec::new();
        let meta = seal_blob(
            &k.sealer(),
            &mut c,
            &mut Vec::new(),
            kind,
            &id,
            plain,
            &mut out,
        );
        (id, meta, out)
    }

    #[test]
    fn open_blob_refuses_raw_len_above_the_largest_blob() {
        let plain = vec![7u8; 8192];
        let (id, meta, mut bytes) = sealed(&plain, BlobKind::Data);
        assert_eq!(meta.compression, Compression::Zstd);
        let k = key();
        // A hostile trailer or index claims 4 GiB: refused before any allocation.
        let e = open_blob(
            &k.sealer(),
            &k.chunk_id_key(),
            BlobKind::Data,
            &id,
            Compression::Zstd,
            u32::MAX,
            &mut bytes.clone(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("exceeds the largest blob"), "{e}");
        // The true length still opens.
        let got = open_blob(
            &k.sealer(),
            &k.chunk_id_key(),
            BlobKind::Data,
            &id,
            Compression::Zstd,
            meta.raw_len,
            &mut bytes,
        )
        .unwrap();
        assert_eq!(got, plain);
    }

    #[test]
    fn open_blob_refuses_uncompressed_length_mismatch() {
        let mut plain = vec![0u8; 3000];
        blake3::Hasher::new()
            .update(b"incompressible")
            .finalize_xof()
            .fill(&mut plain);
        let (id, meta, bytes) = sealed(&plain, BlobKind::Data);
        assert_eq!(meta.compression, Compression::None);
        let k = key();
        let e = open_blob(
            &k.sealer(),
            &k.chunk_id_key(),
            BlobKind::Data,
            &id,
            Compression::None,
            meta.raw_len + 1,
            &mut bytes.clone(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::BlobCorrupt { .. }), "{e}");
    }
}
