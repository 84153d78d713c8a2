//! Index files. Mode 0: raw stored bytes. Mode 1: fuzzer-chosen plaintext,
//! compressed and sealed with the test key; mode 2: fuzzer-chosen compressed bytes,
//! sealed (a hostile zstd frame behind a valid tag). Whatever opens must re-seal and
//! reopen to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_format::index::IndexFile;
use tresor_format::magic::INDEX_AAD;
use tresor_fuzz::{mode, seal, sealer};

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else { return };
    let bytes = match m % 3 {
        0 => rest.to_vec(),
        1 => seal(INDEX_AAD, &zstd::bulk::compress(rest, 1).unwrap()),
        _ => seal(INDEX_AAD, rest),
    };
    if let Ok(index) = IndexFile::open(sealer(), &bytes) {
        let (_, again) = index.seal(sealer());
        assert_eq!(IndexFile::open(sealer(), &again).unwrap(), index);
    }
});
