//! Chunk ids: keyed BLAKE3 hashes of plaintext.

use std::fmt;

/// The key of the keyed hash that names chunks. Part of the [`crate::MasterKey`].
#[derive(Clone)]
pub struct ChunkIdKey(pub(crate) [u8; 32]);

impl ChunkIdKey {
    /// The id of `data`: BLAKE3 in keyed mode. Equal plaintext gives equal ids within
    /// one repository (this is what deduplicates), and ids differ between repositories.
    pub fn id_of(&self, data: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.0, data).as_bytes())
    }
}

/// The 32-byte name of a stored blob (a data chunk or an index node).
///
/// [`ChunkId::ZERO`] (all zero bytes) is reserved: it stands for "this region reads as
/// zeros" and is never the id of a stored blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// The sentinel for an all-zero region. Never stored.
    pub const ZERO: ChunkId = ChunkId([0; 32]);

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> crate::Result<ChunkId> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| crate::Error::BadHex {
            text: text.to_string(),
            expected: 64,
        })?;
        Ok(ChunkId(out))
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl serde::Serialize for ChunkId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for ChunkId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ChunkId, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ChunkId::from_hex(&text).map_err(serde::de::Error::custom)
    }
}
