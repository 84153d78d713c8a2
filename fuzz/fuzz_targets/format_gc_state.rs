//! The GC state. Mode 0: raw stored bytes. Mode 1: fuzzer-chosen plaintext,
//! compressed and sealed with the test key. Mode 2: fuzzer-chosen compressed bytes,
//! sealed (a hostile zstd frame behind a valid tag).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_format::gc_state::GcState;
use tresor_format::magic::GC_AAD;
use tresor_fuzz::{mode, seal, sealer};

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else { return };
    let bytes = match m % 3 {
        0 => rest.to_vec(),
        1 => seal(GC_AAD, &zstd::bulk::compress(rest, 1).unwrap()),
        _ => seal(GC_AAD, rest),
    };
    if let Ok(state) = GcState::open(sealer(), &bytes) {
        assert_eq!(
            GcState::open(sealer(), &state.seal(sealer())).unwrap(),
            state
        );
    }
});
