//! The vault service's `Range` parser (`tresor_service::ranges`). The
//! module is pure and compiled here alone, so the fuzz build does not need the
//! whole server. Whatever it accepts lies inside the object.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/tresor-service/src/ranges.rs"]
mod range;

use libfuzzer_sys::fuzz_target;
use range::{parse_range, RangeRead};

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().unwrap());
    let header = if data[8] & 1 == 0 {
        None
    } else {
        match std::str::from_utf8(&data[9..]) {
            Ok(s) => Some(s),
            Err(_) => return,
        }
    };
    match parse_range(header, len) {
        Ok(RangeRead::Whole) => assert!(header.is_none()),
        Ok(RangeRead::Part { start, end }) => assert!(start <= end && end < len),
        Err(_) => {}
    }
});
