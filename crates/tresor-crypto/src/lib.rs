//! Keys and cryptography of a Tresor repository.
//!
//! - A repository has one [`MasterKey`]: a 32-byte AEAD key that seals every stored
//!   object, and a separate 32-byte key for [`ChunkId`]s. Ids are keyed hashes so that
//!   someone who can read the storage but has no key cannot test whether a known
//!   plaintext (a well-known disk image block) is stored.
//! - The master key is stored only wrapped ([`WrappedKey`]) by a key derived from a
//!   passphrase with Argon2id, or from a secret Tresor generated (256 random bits)
//!   with HKDF-SHA256.
//! - Sealing is AES-256-GCM with a random 96-bit nonce per object ([`Sealer`]).
//!
//! **Architecture invariant:** no I/O, no formats. Callers decide what bytes mean.

mod aead;
mod chunk_id;
mod master_key;

pub use aead::{Sealer, NONCE_LEN, SEAL_OVERHEAD, TAG_LEN};
pub use chunk_id::{ChunkId, ChunkIdKey};
pub use master_key::{generate_secret, is_generated_secret, Kdf, KdfParams, MasterKey, WrappedKey};

/// Errors of the cryptographic layer. Messages say what failed, never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The AEAD tag did not verify: the bytes were changed, or another key sealed them.
    #[error("authentication failed: the data was modified or sealed with another key")]
    Authentication,
    /// The sealed object is shorter than a nonce and a tag.
    #[error("sealed data too short ({len} bytes, at least {min} needed)")]
    TooShort { len: usize, min: usize },
    /// Unwrapping the master key failed: almost always a wrong passphrase.
    #[error("wrong passphrase: the key could not be unwrapped with it")]
    WrongPassphrase,
    /// The key derivation parameters are out of the accepted range.
    #[error("invalid key derivation parameters: {0}")]
    KdfParams(String),
    /// A hex string did not decode to the expected number of bytes.
    #[error("invalid id {text:?}: expected {expected} hex digits")]
    BadHex { text: String, expected: usize },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
