//! The on-disk formats of a Tresor repository, byte by byte. `FORMAT.md` at the top of
//! the repository describes the same layouts in prose; the golden files under
//! `tests/golden/` pin them.
//!
//! One module per format:
//! - [`config`]: the repository's `config` object (JSON).
//! - [`key_file`]: a wrapped master key under `keys/` (JSON).
//! - [`blob`]: a sealed blob (a data chunk or a tree node) inside a pack.
//! - [`pack`]: a pack file: header, sealed blobs, sealed trailer listing them, footer.
//! - [`index`]: an index file: which blob is in which pack, at which offset.
//! - [`tree`]: a disk tree node: the map from disk regions to chunk ids.
//! - [`manifest`]: a recovery point.
//! - [`gc_state`]: blobs condemned by garbage collection.
//!
//! **Architecture invariant:** this crate does no I/O. It turns values into bytes and
//! bytes into values, and refuses bytes it does not understand.

pub mod blob;
pub mod config;
pub mod gc_state;
pub mod index;
pub mod key_file;
pub mod magic;
pub mod manifest;
pub mod pack;
pub mod tree;

pub use tresor_crypto::ChunkId;

use crate::config::MAX_CHUNK_SIZE;
use crate::tree::MAX_TREE_NODE_LEN;

/// Largest plaintext of a blob. A blob is one chunk (at most the largest chunk size a
/// repository config allows) or one tree node (at most the largest fan-out's worth of
/// ids); nothing a writer produces is longer. `raw_len` comes from a pack trailer or
/// an index file, which may be hostile: [`blob::open_blob`] refuses anything above this
/// before it allocates a decompression buffer of that size. (Here rather than in
/// `blob.rs`, so that the blob module depends on neither the config nor the tree.)
pub const MAX_BLOB_RAW_LEN: u32 = {
    let tree = MAX_TREE_NODE_LEN as u32;
    if MAX_CHUNK_SIZE > tree {
        MAX_CHUNK_SIZE
    } else {
        tree
    }
};
const _: () = assert!(MAX_BLOB_RAW_LEN >= MAX_CHUNK_SIZE);
const _: () = assert!(MAX_BLOB_RAW_LEN as usize >= MAX_TREE_NODE_LEN);

/// Errors when decoding stored bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{what}: wrong magic number (not a Tresor {what}, or a newer format version this program does not read)")]
    BadMagic { what: &'static str },
    #[error("{what}: unsupported format version {found} (this program reads version {supported}); upgrade tresor")]
    UnsupportedVersion {
        what: &'static str,
        found: u64,
        supported: u64,
    },
    #[error("{what}: truncated ({len} bytes, {needed} needed)")]
    Truncated {
        what: &'static str,
        len: usize,
        needed: usize,
    },
    #[error("{what}: malformed: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error(
        "{what}: authentication failed: the data was modified, damaged, or sealed with another key"
    )]
    Authentication { what: &'static str },
    #[error("blob {id}: {reason}")]
    BlobCorrupt { id: ChunkId, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Malformed {
        what,
        reason: reason.into(),
    }
}

pub(crate) fn need(what: &'static str, bytes: &[u8], needed: usize) -> Result<()> {
    if bytes.len() < needed {
        return Err(Error::Truncated {
            what,
            len: bytes.len(),
            needed,
        });
    }
    Ok(())
}

/// The fields of a JSON object that say what it is, read before the rest: a later
/// version may change every other field, and must then be refused as a newer version,
/// not as malformed. (Objects without a `format` field read it as empty.)
#[derive(serde::Deserialize)]
pub(crate) struct FormatHeader {
    #[serde(default)]
    pub format: String,
    pub version: u64,
}

/// Largest uncompressed index file or GC state. An index file lists at most a few
/// hundred thousand entries (48 bytes each) and a GC state a few million ids (67 bytes
/// of JSON each); 1 GiB is far above both and bounds what a hostile zstd frame (a few
/// bytes can claim terabytes) can make a reader allocate.
pub const MAX_METADATA_PLAIN: u64 = 1 << 30;

/// Decompresses a whole zstd stream, refusing more than `max` bytes of output
/// instead of allocating them.
pub(crate) fn zstd_decode_bounded(
    what: &'static str,
    compressed: &[u8],
    max: u64,
) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut plain = Vec::new();
    zstd::stream::read::Decoder::new(compressed)
        .and_then(|d| d.take(max + 1).read_to_end(&mut plain))
        .map_err(|e| malformed(what, format!("zstd: {e}")))?;
    if plain.len() as u64 > max {
        return Err(malformed(
            what,
            format!("more than {max} bytes uncompressed"),
        ));
    }
    Ok(plain)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn id_at(b: &[u8], at: usize) -> ChunkId {
    ChunkId(b[at..at + 32].try_into().expect("32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_decode_bounded_refuses_more_than_the_limit() {
        let compressed = zstd::bulk::compress(&[0u8; 4000], 3).unwrap();
        assert!(compressed.len() < 100, "zeros compress well");
        let e = zstd_decode_bounded("test", &compressed, 1000).unwrap_err();
        assert!(e.to_string().contains("more than 1000 bytes"), "{e}");
        assert_eq!(
            zstd_decode_bounded("test", &compressed, 4000)
                .unwrap()
                .len(),
            4000
        );
        assert!(zstd_decode_bounded("test", b"not zstd", 4000).is_err());
    }
}
