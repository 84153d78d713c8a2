//! Opening a blob. The first bytes choose the mode, the kind, the compression and
//! the recorded `raw_len` (as a pack entry from a hostile trailer or index would).
//! Mode 0: the rest is the sealed blob as stored. Mode 1: the rest is a payload
//! sealed with the test key, so decompression of hostile zstd and the length and
//! id checks behind authentication are reached. Mode 2: the rest is a plaintext,
//! sealed the way the engine seals it, which must open to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_format::blob::{blob_aad, open_blob, seal_blob, BlobKind, Compression};
use tresor_fuzz::{master_key, seal, sealer};

fuzz_target!(|data: &[u8]| {
    if data.len() < 7 {
        return;
    }
    let (head, rest) = data.split_at(7);
    let kind = if head[1] & 1 == 0 {
        BlobKind::Data
    } else {
        BlobKind::Tree
    };
    let compression = if head[2] & 1 == 0 {
        Compression::None
    } else {
        Compression::Zstd
    };
    let raw_len = u32::from_le_bytes(head[3..7].try_into().unwrap());
    let ids = master_key().chunk_id_key();
    match head[0] % 3 {
        0 | 1 => {
            // An id the fuzzer can hit: the id of the payload itself in mode 1.
            let id = ids.id_of(rest);
            let mut sealed = if head[0] % 3 == 0 {
                rest.to_vec()
            } else {
                seal(&blob_aad(&id, kind), rest)
            };
            if let Ok(plain) =
                open_blob(sealer(), &ids, kind, &id, compression, raw_len, &mut sealed)
            {
                assert_eq!(plain.len(), raw_len as usize);
                assert_eq!(ids.id_of(&plain), id);
            }
        }
        _ => {
            let id = ids.id_of(rest);
            let mut compressor = zstd::bulk::Compressor::new(1).unwrap();
            let mut out = Vec::new();
            let meta = seal_blob(
                sealer(),
                &mut compressor,
                &mut Vec::new(),
                kind,
                &id,
                rest,
                &mut out,
            );
            let plain = open_blob(
                sealer(),
                &ids,
                kind,
                &id,
                meta.compression,
                meta.raw_len,
                &mut out,
            );
            match plain {
                Ok(plain) => assert_eq!(plain, rest),
                // Only a plaintext above the largest blob may be refused.
                Err(_) => assert!(rest.len() > tresor_format::blob::MAX_BLOB_RAW_LEN as usize),
            }
        }
    }
});
