//! The repository's `config` object: plain JSON, readable without a key.
//!
//! ```json
//! {"format":"tresor-repository","version":1,"id":"<32 hex>","chunk_size":65536,
//!  "tree_fanout":64,"pack_size":16777216,"created":"2026-11-26T01:00:00Z"}
//! ```
//! The chunk size and fan-out here are what new backups use; every disk of every
//! manifest records its own, so changing them never breaks old points.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{malformed, Error, FormatHeader, Result};

pub const REPOSITORY_FORMAT: &str = "tresor-repository";
pub const REPOSITORY_VERSION: u32 = 1;

/// Smallest chunk size a repository (and a manifest's disk) may use.
pub const MIN_CHUNK_SIZE: u32 = 4096;
/// Largest chunk size a repository (and a manifest's disk) may use. Readers size
/// buffers by the chunk size, so this is also what bounds the memory a hostile
/// manifest or blob can make a reader allocate per chunk.
pub const MAX_CHUNK_SIZE: u32 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: String,
    pub version: u32,
    pub id: String,
    pub chunk_size: u32,
    pub tree_fanout: u32,
    /// Target size of a pack file in bytes.
    pub pack_size: u32,
    pub created: Timestamp,
}

impl RepoConfig {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("config serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<RepoConfig> {
        const WHAT: &str = "repository config";
        // Format and version first: a later version may change the other fields.
        let h: FormatHeader =
            serde_json::from_slice(bytes).map_err(|e| malformed(WHAT, e.to_string()))?;
        if h.format != REPOSITORY_FORMAT {
            return Err(Error::BadMagic { what: WHAT });
        }
        if h.version != REPOSITORY_VERSION as u64 {
            return Err(Error::UnsupportedVersion {
                what: WHAT,
                found: h.version,
                supported: REPOSITORY_VERSION as u64,
            });
        }
        let c: RepoConfig =
            serde_json::from_slice(bytes).map_err(|e| malformed(WHAT, e.to_string()))?;
        if !c.chunk_size.is_power_of_two()
            || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&c.chunk_size)
        {
            return Err(malformed(
                WHAT,
                format!(
                    "chunk size {} is not a power of two in 4 KiB ..= 4 MiB",
                    c.chunk_size
                ),
            ));
        }
        if !(2..=crate::tree::MAX_FANOUT).contains(&c.tree_fanout) {
            return Err(malformed(
                WHAT,
                format!("tree fan-out {} outside 2..=4096", c.tree_fanout),
            ));
        }
        if !((1 << 20)..=(1 << 30)).contains(&c.pack_size) {
            return Err(malformed(
                WHAT,
                format!("pack size {} outside 1 MiB ..= 1 GiB", c.pack_size),
            ));
        }
        Ok(c)
    }
}
