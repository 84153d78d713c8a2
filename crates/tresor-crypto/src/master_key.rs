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

    /// Wraps this key with a key derived from `passphrase`.
    pub fn wrap(&self, passphrase: &[u8], params: KdfParams) -> Result<WrappedKey> {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let kek = params.derive(passphrase, &salt)?;
        let sealed = Sealer::new(&kek).seal(WRAP_AAD, &self.to_plain());
        Ok(WrappedKey {
            kdf: params,
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

/// A master key sealed under a passphrase-derived key: what a key file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kdf: KdfParams,
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
