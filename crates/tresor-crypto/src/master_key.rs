//! The master key and its passphrase wrapping.

use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::{ChunkIdKey, Error, Result, Sealer};

/// Associated data of a wrapped master key; changing it makes old key files unreadable.
const WRAP_AAD: &[u8] = b"tresor master key v1";

/// The keys of one repository. Never stored in clear; see [`WrappedKey`].
#[derive(Clone)]
pub struct MasterKey {
    data_key: [u8; 32],
    id_key: [u8; 32],
}

impl MasterKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> MasterKey {
        let mut rng = rand::rngs::OsRng;
        let mut data_key = [0u8; 32];
        let mut id_key = [0u8; 32];
        rng.fill_bytes(&mut data_key);
        rng.fill_bytes(&mut id_key);
        MasterKey { data_key, id_key }
    }

    /// A key from known bytes: for golden-file tests only.
    pub fn from_bytes(data_key: [u8; 32], id_key: [u8; 32]) -> MasterKey {
        MasterKey { data_key, id_key }
    }

    pub fn sealer(&self) -> Sealer {
        Sealer::new(&self.data_key)
    }

    pub fn chunk_id_key(&self) -> ChunkIdKey {
        ChunkIdKey(self.id_key)
    }

    fn to_plain(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.data_key);
        out[32..].copy_from_slice(&self.id_key);
        out
    }

    /// Wraps this key with a key derived from `passphrase`: by HKDF-SHA256 when it is a
    /// secret Tresor generated ([`is_generated_secret`]), else by Argon2id with `params`.
    pub fn wrap(&self, passphrase: &[u8], params: KdfParams) -> Result<WrappedKey> {
        let kdf = if is_generated_secret(passphrase) {
            Kdf::HkdfSha256
        } else {
            Kdf::Argon2id(params)
        };
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let kek = kdf.derive(passphrase, &salt)?;
        let sealed = Sealer::new(&kek).seal(WRAP_AAD, &self.to_plain());
        Ok(WrappedKey {
            kdf,
            salt: salt.to_vec(),
            sealed,
        })
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about a quarter second on one core here, the OWASP
    /// recommendation's order of magnitude.
    fn default() -> Self {
        KdfParams {
            m_cost: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Refuses parameters out of the accepted range, without deriving anything.
    pub fn check(&self) -> Result<()> {
        // Refuse parameters so weak that a stored key file could be a downgrade attack,
        // and so large that opening would exhaust memory.
        if self.m_cost < 8 * 1024 || self.m_cost > 4 * 1024 * 1024 {
            return Err(Error::KdfParams(format!(
                "memory cost {} KiB outside 8 MiB ..= 4 GiB",
                self.m_cost
            )));
        }
        if !(1..=64).contains(&self.t_cost) || !(1..=16).contains(&self.p_cost) {
            return Err(Error::KdfParams(format!(
                "time cost {} or lanes {} out of range",
                self.t_cost, self.p_cost
            )));
        }
        Ok(())
    }

    fn derive(&self, passphrase: &[u8], salt: &[u8]) -> Result<[u8; 32]> {
        self.check()?;
        let params = Params::new(self.m_cost, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| Error::KdfParams(e.to_string()))?;
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase, salt, &mut out)
            .map_err(|e| Error::KdfParams(e.to_string()))?;
        Ok(out)
    }
}

/// The prefix-free tail of a generated secret: 32 random bytes as 64 hex digits.
const GENERATED_HEX_DIGITS: usize = 64;

/// Whether `secret` is one Tresor generated: a prefix of at most 32 lowercase letters
/// and underscores ending in `_` (`tresor_repo_`), then 64 lowercase hex digits, 256
/// random bits. Guessing one is as hard as guessing the key it wraps, so it needs no
/// slow derivation; a passphrase a person chose never has this form by accident.
pub fn is_generated_secret(secret: &[u8]) -> bool {
    let Some(split) = secret.len().checked_sub(GENERATED_HEX_DIGITS) else {
        return false;
    };
    let (prefix, digits) = secret.split_at(split);
    (2..=32).contains(&prefix.len())
        && prefix.ends_with(b"_")
        && prefix.iter().all(|b| b.is_ascii_lowercase() || *b == b'_')
        && digits
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// A new generated secret: `prefix` (lowercase letters and underscores, ending in
/// `_`) and 32 bytes of the operating system's generator as hex.
pub fn generate_secret(prefix: &str) -> String {
    let mut bytes = [0u8; GENERATED_HEX_DIGITS / 2];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{prefix}{}", hex::encode(bytes));
    debug_assert!(is_generated_secret(secret.as_bytes()), "{prefix:?}");
    secret
}

/// How a wrapped key's key-encryption key comes from its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// A passphrase a person chose: Argon2id, slow on purpose against guessing.
    Argon2id(KdfParams),
    /// A generated secret ([`is_generated_secret`]): HKDF-SHA256, no work factor,
    /// since its 256 random bits cannot be guessed. An agent opening its repository
    /// for every job is spared a quarter second and 64 MiB each time.
    HkdfSha256,
}

/// HKDF's `info` for a key-encryption key; changing it makes old key files unreadable.
const HKDF_INFO: &[u8] = b"tresor key-encryption key v1";

struct Len32;

impl ring::hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl Kdf {
    fn derive(&self, secret: &[u8], salt: &[u8]) -> Result<[u8; 32]> {
        match self {
            Kdf::Argon2id(params) => params.derive(secret, salt),
            Kdf::HkdfSha256 => {
                // Tried only with a generated secret: a person's passphrase must never
                // meet a derivation this fast (a stolen key file would test guesses
                // at millions a second).
                if !is_generated_secret(secret) {
                    return Err(Error::WrongPassphrase);
                }
                let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(secret);
                let mut out = [0u8; 32];
                prk.expand(&[HKDF_INFO], Len32)
                    .and_then(|okm| okm.fill(&mut out))
                    .map_err(|_| Error::KdfParams("HKDF-SHA256 expansion failed".into()))?;
                Ok(out)
            }
        }
    }

    /// The cost of trying a secret against it: key files are tried cheapest first.
    pub fn is_slow(&self) -> bool {
        matches!(self, Kdf::Argon2id(_))
    }
}

/// A master key sealed under a passphrase-derived key: what a key file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kdf: Kdf,
    pub salt: Vec<u8>,
    pub sealed: Vec<u8>,
}

impl WrappedKey {
    /// Recovers the master key. A wrong passphrase is [`Error::WrongPassphrase`].
    pub fn unwrap_key(&self, passphrase: &[u8]) -> Result<MasterKey> {
        let kek = self.kdf.derive(passphrase, &self.salt)?;
        let plain = Sealer::new(&kek)
            .open(WRAP_AAD, &self.sealed)
            .map_err(|_| Error::WrongPassphrase)?;
        if plain.len() != 64 {
            return Err(Error::WrongPassphrase);
        }
        let mut data_key = [0u8; 32];
        let mut id_key = [0u8; 32];
        data_key.copy_from_slice(&plain[..32]);
        id_key.copy_from_slice(&plain[32..]);
        Ok(MasterKey { data_key, id_key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_cost: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn wrap_unwrap() {
        let key = MasterKey::generate();
        let wrapped = key.wrap(b"correct horse", FAST).unwrap();
        let back = wrapped.unwrap_key(b"correct horse").unwrap();
        assert_eq!(back.to_plain(), key.to_plain());
        assert!(matches!(
            wrapped.unwrap_key(b"wrong"),
            Err(Error::WrongPassphrase)
        ));
    }

    #[test]
    fn generated_secrets_use_hkdf_and_nothing_else_does() {
        let key = MasterKey::generate();
        let secret = generate_secret("tresor_repo_");
        assert!(secret.starts_with("tresor_repo_") && secret.len() == 12 + 64);
        let wrapped = key.wrap(secret.as_bytes(), FAST).unwrap();
        assert_eq!(wrapped.kdf, Kdf::HkdfSha256);
        let back = wrapped.unwrap_key(secret.as_bytes()).unwrap();
        assert_eq!(back.to_plain(), key.to_plain());
        let other = generate_secret("tresor_repo_");
        assert!(matches!(
            wrapped.unwrap_key(other.as_bytes()),
            Err(Error::WrongPassphrase)
        ));
        // A person's passphrase is never tried against HKDF, even one that unwraps
        // nothing: it stays Argon2id when wrapping.
        for p in [
            &b"correct horse"[..],
            b"TRESOR_REPO_0123456789abcdef0123456789abcdef0123456789abcdef01234567",
            b"tresor_repo_0123456789abcdef0123456789abcdef0123456789abcdef0123456",
            b"tresor_repo_0123456789ABCDEF0123456789abcdef0123456789abcdef01234567",
            b"_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(!is_generated_secret(p), "{}", String::from_utf8_lossy(p));
            assert!(matches!(key.wrap(p, FAST).unwrap().kdf, Kdf::Argon2id(_)));
            assert!(matches!(wrapped.unwrap_key(p), Err(Error::WrongPassphrase)));
        }
    }

    #[test]
    fn weak_params_refused() {
        let key = MasterKey::generate();
        let weak = KdfParams {
            m_cost: 16,
            t_cost: 1,
            p_cost: 1,
        };
        assert!(matches!(key.wrap(b"x", weak), Err(Error::KdfParams(_))));
    }

    #[test]
    fn ids_are_keyed() {
        let a = MasterKey::generate().chunk_id_key();
        let b = MasterKey::generate().chunk_id_key();
        assert_ne!(a.id_of(b"same"), b.id_of(b"same"));
        assert_eq!(a.id_of(b"same"), a.id_of(b"same"));
    }
}
