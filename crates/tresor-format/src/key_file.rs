//! Key files under `keys/`: the master key wrapped by a passphrase.
//!
//! ```json
//! {"format":"tresor-key","version":1,"repository":"<repository id>",
//!  "created":"2026-11-26T01:00:00Z","hostname":"kvm1",
//!  "kdf":{"algorithm":"argon2id","m_cost":65536,"t_cost":3,"p_cost":1},
//!  (or "kdf":{"algorithm":"hkdf-sha256"} for a secret Tresor generated)
//!  "salt":"<hex>","sealed_key":"<hex: nonce | AES-256-GCM(data key | id key) | tag>"}
//! ```
//! A repository may have several key files (one per passphrase); each opens the same
//! master key. Exporting one keeps the repository openable if its storage loses them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tresor_crypto::{Kdf, KdfParams, WrappedKey};

use crate::{malformed, Error, FormatHeader, Result};

pub const KEY_FORMAT: &str = "tresor-key";
pub const KEY_VERSION: u32 = 1;

/// `"argon2id"` with its three costs, or `"hkdf-sha256"` (a generated secret's key
/// file) with none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfSpec {
    pub algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_cost: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_cost: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_cost: Option<u32>,
}

const ARGON2ID: &str = "argon2id";
const HKDF_SHA256: &str = "hkdf-sha256";

impl KdfSpec {
    fn of(kdf: &Kdf) -> KdfSpec {
        match kdf {
            Kdf::Argon2id(p) => KdfSpec {
                algorithm: ARGON2ID.into(),
                m_cost: Some(p.m_cost),
                t_cost: Some(p.t_cost),
                p_cost: Some(p.p_cost),
            },
            Kdf::HkdfSha256 => KdfSpec {
                algorithm: HKDF_SHA256.into(),
                m_cost: None,
                t_cost: None,
                p_cost: None,
            },
        }
    }

    /// The derivation it names; costs missing or present where they do not belong
    /// are refused.
    pub fn kdf(&self) -> Result<Kdf> {
        const WHAT: &str = "key file";
        match (
            self.algorithm.as_str(),
            self.m_cost,
            self.t_cost,
            self.p_cost,
        ) {
            (ARGON2ID, Some(m_cost), Some(t_cost), Some(p_cost)) => Ok(Kdf::Argon2id(KdfParams {
                m_cost,
                t_cost,
                p_cost,
            })),
            (ARGON2ID, ..) => Err(malformed(
                WHAT,
                "argon2id without m_cost, t_cost and p_cost",
            )),
            (HKDF_SHA256, None, None, None) => Ok(Kdf::HkdfSha256),
            (HKDF_SHA256, ..) => Err(malformed(WHAT, "hkdf-sha256 takes no costs")),
            (other, ..) => Err(malformed(WHAT, format!("unknown key derivation {other:?}"))),
        }
    }
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
            kdf: KdfSpec::of(&wrapped.kdf),
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
        k.kdf.kdf()?;
        Ok(k)
    }

    pub fn wrapped(&self) -> Result<WrappedKey> {
        const WHAT: &str = "key file";
        Ok(WrappedKey {
            kdf: self.kdf.kdf()?,
            salt: hex::decode(&self.salt).map_err(|_| malformed(WHAT, "salt is not hex"))?,
            sealed: hex::decode(&self.sealed_key)
                .map_err(|_| malformed(WHAT, "sealed key is not hex"))?,
        })
    }
}
