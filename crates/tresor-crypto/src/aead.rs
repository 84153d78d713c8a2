//! Authenticated encryption of stored objects: AES-256-GCM, random 96-bit nonces.
//!
//! Sealed layout: `nonce (12) || ciphertext || tag (16)`. The associated data binds a
//! sealed object to its name (a chunk id, an object kind), so that moving a valid
//! ciphertext to another name is detected as tampering.
//!
//! Random nonces bound the number of objects one key may seal to about 2^32 before the
//! chance of a repeated nonce reaches 2^-32: 256 TiB of 64 KiB chunks.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};

use crate::{Error, Result};

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes a sealed object has more than its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Seals and opens objects with one key. Cheap to share between threads.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Sealer {
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256 key");
        Sealer {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// Appends `nonce || seal(plaintext) || tag` to `out`, with a fresh random nonce.
    pub fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system random number generator failed");
        self.seal_into_with_nonce(nonce, aad, plaintext, out);
    }

    /// Like [`Sealer::seal_into`] with a given nonce. Only for golden-file tests and
    /// for callers that guarantee the nonce is never reused with this key.
    pub fn seal_into_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) {
        out.reserve(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[start..],
            )
            .expect("AES-GCM sealing of a buffer below 64 GiB cannot fail");
        out.extend_from_slice(tag.as_ref());
    }

    /// Seals into a new buffer.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        self.seal_into(aad, plaintext, &mut out);
        out
    }

    /// Opens a sealed object in place and returns the plaintext slice of `sealed`.
    pub fn open_in_place<'a>(&self, aad: &[u8], sealed: &'a mut [u8]) -> Result<&'a [u8]> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(Error::TooShort {
                len: sealed.len(),
                min: SEAL_OVERHEAD,
            });
        }
        let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).expect("12-byte nonce");
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), rest)
            .map_err(|_| Error::Authentication)?;
        Ok(plain)
    }

    /// Opens a sealed object into a new buffer.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let mut buf = sealed.to_vec();
        let len = self.open_in_place(aad, &mut buf)?.len();
        buf.drain(..NONCE_LEN);
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal(b"aad", b"hello world");
        assert_eq!(sealed.len(), 11 + SEAL_OVERHEAD);
        assert_eq!(s.open(b"aad", &sealed).unwrap(), b"hello world");
        assert!(matches!(
            s.open(b"other", &sealed),
            Err(Error::Authentication)
        ));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(s.open(b"aad", &bad).is_err(), "flip at {i} undetected");
        }
        let other = Sealer::new(&[8; 32]);
        assert!(other.open(b"aad", &sealed).is_err());
        assert!(matches!(
            s.open(b"aad", &sealed[..20]),
            Err(Error::TooShort { .. })
        ));
    }

    #[test]
    fn nonces_differ() {
        let s = Sealer::new(&[1; 32]);
        assert_ne!(
            s.seal(b"", b"x")[..NONCE_LEN],
            s.seal(b"", b"x")[..NONCE_LEN]
        );
    }
}
