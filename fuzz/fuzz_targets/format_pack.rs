//! Pack files. Mode 0: raw bytes as a stored pack (header, footer, sealed trailer).
//! Mode 1: fuzzer-chosen blob area and trailer plaintext, sealed with the test key,
//! so the entry decoder and the layout checks behind authentication are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_format::magic::{PACK_MAGIC_V1, PACK_TRAILER_AAD};
use tresor_format::pack::{check_header, decode_entries, decode_footer, read_pack_entries};
use tresor_fuzz::{mode, seal, sealer};

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else { return };
    let pack = if m & 1 == 0 {
        let _ = check_header(rest);
        if rest.len() >= 16 {
            let _ = decode_footer(&rest[rest.len() - 16..]);
        }
        let _ = decode_entries("fuzz", rest);
        rest.to_vec()
    } else {
        if rest.len() < 2 {
            return;
        }
        let area = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let (area, trailer) = rest[2..].split_at(area);
        let mut pack = PACK_MAGIC_V1.to_vec();
        pack.extend_from_slice(&[0; 8]);
        pack.extend_from_slice(area);
        let sealed = seal(PACK_TRAILER_AAD, trailer);
        pack.extend_from_slice(&sealed);
        pack.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        pack.extend_from_slice(&[0; 4]);
        pack.extend_from_slice(&PACK_MAGIC_V1);
        pack
    };
    if let Ok(entries) = read_pack_entries(sealer(), &pack) {
        // Every entry the reader accepts lies inside the pack.
        for e in entries {
            let end = e.offset as usize + e.sealed_len as usize;
            assert!(end <= pack.len());
        }
    }
});
