//! What the fuzz targets share: the fixed test key (the golden files' key, so the
//! seed corpus made from them opens) and small helpers to split fuzzer input.

use tresor_crypto::{MasterKey, Sealer};

/// Data key 00 01 .. 1f, chunk id key 80 81 .. 9f: the key of
/// `crates/tresor-format/tests/golden`.
pub fn master_key() -> MasterKey {
    MasterKey::from_bytes(
        std::array::from_fn(|i| i as u8),
        std::array::from_fn(|i| 0x80 + i as u8),
    )
}

/// The sealer of [`master_key`], built once per process.
pub fn sealer() -> &'static Sealer {
    static SEALER: std::sync::OnceLock<Sealer> = std::sync::OnceLock::new();
    SEALER.get_or_init(|| master_key().sealer())
}

/// A fixed nonce: targets seal with one so that a run is reproducible.
pub const NONCE: [u8; 12] = [0x42; 12];

/// Seals `plain` with the fixed key and nonce.
pub fn seal(aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    sealer().seal_into_with_nonce(NONCE, aad, plain, &mut out);
    out
}

/// The recovery point id the manifest target opens its input under (the golden one).
pub const POINT_ID: &str = "0123456789abcdef0123456789abcdef";

/// Splits the first byte off as a mode selector.
pub fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(m, rest)| (*m, rest))
}
