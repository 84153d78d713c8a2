//! Recovery point manifests. Mode 0: raw stored bytes. Mode 1: fuzzer-chosen
//! plaintext (magic and JSON) sealed with the test key under the golden point id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_format::magic::POINT_AAD;
use tresor_format::manifest::Manifest;
use tresor_fuzz::{mode, seal, sealer, POINT_ID};

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else { return };
    let bytes = if m & 1 == 0 {
        rest.to_vec()
    } else {
        seal(&[POINT_AAD, POINT_ID.as_bytes()].concat(), rest)
    };
    if let Ok(manifest) = Manifest::open(sealer(), POINT_ID, &bytes) {
        let _ = manifest.total_size();
        for d in &manifest.disks {
            let shape = d.shape();
            for level in 0..shape.depth {
                let _ = shape.span(level);
            }
        }
        let again = manifest.seal(sealer());
        assert_eq!(
            Manifest::open(sealer(), POINT_ID, &again).unwrap(),
            manifest
        );
    }
});
