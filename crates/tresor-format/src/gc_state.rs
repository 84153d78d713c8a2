//! Garbage collection state: blobs condemned by one run, deleted by a later one.
//!
//! Stored as `gc/condemned`, bytes `seal(GC_AAD, zstd(GC_MAGIC_V1 || JSON))`:
//! ```json
//! {"version":1,"created":"...","condemned":["<blob id hex>",...],"writers":["<writer id>",...]}
//! ```
//! `writers` are the backups that were running when the blobs were condemned: they may
//! have chosen to reuse a condemned blob, so it may be deleted only once all of them
//! have ended (and it is still unreferenced then). Backups that start later read this
//! object and never reuse a condemned blob.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tresor_crypto::Sealer;

use crate::magic::{GC_AAD, GC_MAGIC_V1};
use crate::{
    malformed, zstd_decode_bounded, ChunkId, Error, FormatHeader, Result, MAX_METADATA_PLAIN,
};

pub const GC_STATE_NAME: &str = "condemned";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcState {
    pub version: u32,
    pub created: Timestamp,
    pub condemned: Vec<ChunkId>,
    pub writers: Vec<String>,
}

impl GcState {
    pub fn seal(&self, sealer: &Sealer) -> Vec<u8> {
        let mut plain = GC_MAGIC_V1.to_vec();
        serde_json::to_writer(&mut plain, self).expect("gc state serializes");
        let compressed = zstd::bulk::compress(&plain, 3).expect("zstd compression of a buffer");
        sealer.seal(GC_AAD, &compressed)
    }

    pub fn open(sealer: &Sealer, bytes: &[u8]) -> Result<GcState> {
        const WHAT: &str = "gc state";
        let compressed = sealer
            .open(GC_AAD, bytes)
            .map_err(|_| Error::Authentication { what: WHAT })?;
        let plain = zstd_decode_bounded(WHAT, &compressed, MAX_METADATA_PLAIN)?;
        if plain.len() < 8 || plain[..8] != GC_MAGIC_V1 {
            return Err(Error::BadMagic { what: WHAT });
        }
        // The version first: a later version may change the other fields.
        let h: FormatHeader =
            serde_json::from_slice(&plain[8..]).map_err(|e| malformed(WHAT, e.to_string()))?;
        if h.version != 1 {
            return Err(Error::UnsupportedVersion {
                what: WHAT,
                found: h.version,
                supported: 1,
            });
        }
        serde_json::from_slice(&plain[8..]).map_err(|e| malformed(WHAT, e.to_string()))
    }
}
