//! Guest agent lines: the input is split at newlines like the client's reader
//! does; every line is parsed as a line read while resynchronising (with an id
//! taken from the input) and as the reply to a command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_qmp::guest_agent::{parse_reply_line, parse_sync_line};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let id = u64::from_le_bytes(data[..8].try_into().unwrap()) & ((1 << 53) - 1);
    for line in data[8..].split(|&b| b == b'\n') {
        let _ = parse_sync_line(line, id);
        let _ = parse_reply_line("guest-ping", line);
    }
});
