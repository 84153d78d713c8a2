//! Key files under `keys/`: the master key wrapped by a passphrase.
//!
//! ```json
//! {"format":"tresor-key","version":1,"repository":"<repository id>",
//!  "created":"2026-11-26T01:00:00Z","hostname":"kvm1",
//!  "kdf":{"algorithm":"argon2id","m_cost":65536,"t_cost":3,"p_cost":1},
//!  "salt":"<hex>","sealed_key":"<hex: nonce | AES-256-GCM(data key | id key) | tag>"}
//! ```
//! A repository may have several key files (one per passphrase); each opens the same
//! master key. Exporting one keeps the repository openable if its storage loses them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tresor_crypto::{KdfParams, WrappedKey};

use crate::{malformed, Error, FormatHeader, Result};

pub const KEY_FORMAT: &str = "tresor-key";
pub const KEY_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfSpec {
    pub algorithm: String,
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub format: String,
    pub version: u32,
    pub repository: String,
    pub created: Timestamp,
    pub hostname: String,
    pub kdf: KdfSpec,
    pub salt: String,
    pub sealed_key: String,
}

impl KeyFile {
    pub fn new(
        repository: &str,
        hostname: &str,
        created: Timestamp,
        wrapped: &WrappedKey,
    ) -> KeyFile {
        KeyFile {
            format: KEY_FORMAT.into(),
            version: KEY_VERSION,
            repository: repository.into(),
            created,
            hostname: hostname.into(),
            kdf: KdfSpec {
                algorithm: "argon2id".into(),
                m_cost: wrapped.kdf.m_cost,
                t_cost: wrapped.kdf.t_cost,
                p_cost: wrapped.kdf.p_cost,
            },
            salt: hex::encode(&wrapped.salt),
            sealed_key: hex::encode(&wrapped.sealed),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key file serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyFile> {
        const WHAT: &str = "key file";
        // Format and version first: a later version may change the other fields.
        let h: FormatHeader =
            serde_json::from_slice(bytes).map_err(|e| malformed(WHAT, e.to_string()))?;
        if h.format != KEY_FORMAT {
            return Err(Error::BadMagic { what: WHAT });
        }
        if h.version != KEY_VERSION as u64 {
            return Err(Error::UnsupportedVersion {
                what: WHAT,
                found: h.version,
                supported: KEY_VERSION as u64,
            });
        }
        let k: KeyFile =
            serde_json::from_slice(bytes).map_err(|e| malformed(WHAT, e.to_string()))?;
        if k.kdf.algorithm != "argon2id" {
            return Err(malformed(
                WHAT,
                format!("unknown key derivation {:?}", k.kdf.algorithm),
            ));
        }
        Ok(k)
    }

    pub fn wrapped(&self) -> Result<WrappedKey> {
        const WHAT: &str = "key file";
        Ok(WrappedKey {
            kdf: KdfParams {
                m_cost: self.kdf.m_cost,
                t_cost: self.kdf.t_cost,
                p_cost: self.kdf.p_cost,
            },
            salt: hex::decode(&self.salt).map_err(|_| malformed(WHAT, "salt is not hex"))?,
            sealed: hex::decode(&self.sealed_key)
                .map_err(|_| malformed(WHAT, "sealed key is not hex"))?,
        })
    }
}
