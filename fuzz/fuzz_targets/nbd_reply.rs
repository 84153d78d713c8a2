//! NBD transmission replies and handshake option replies through the pure parser:
//! messages back to back as a client reads them, with a fuzzer-chosen request
//! length bounding the data chunks. `needed` must always grow past what is there,
//! and never beyond the limits of the request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_nbd::proto::{
    parse_option_reply, parse_reply_for, Parse, MAX_OPTION_REPLY_PAYLOAD, MAX_PAYLOAD,
};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let max_data = u32::from_le_bytes(data[..4].try_into().unwrap());
    let data = &data[4..];
    let mut at = 0;
    while at < data.len() {
        match parse_reply_for(&data[at..], max_data) {
            Ok(Parse::Complete { consumed, .. }) => {
                assert!(consumed > 0 && consumed <= data.len() - at);
                at += consumed;
            }
            Ok(Parse::Incomplete { needed }) => {
                assert!(needed > data.len() - at);
                assert!(needed <= 20 + MAX_PAYLOAD);
                break;
            }
            Err(_) => break,
        }
    }
    let mut at = 0;
    while at < data.len() {
        match parse_option_reply(&data[at..]) {
            Ok(Parse::Complete { consumed, .. }) => {
                assert!(consumed > 0 && consumed <= data.len() - at);
                at += consumed;
            }
            Ok(Parse::Incomplete { needed }) => {
                assert!(needed > data.len() - at);
                assert!(needed <= 20 + MAX_OPTION_REPLY_PAYLOAD);
                break;
            }
            Err(_) => break,
        }
    }
});
