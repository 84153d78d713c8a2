//! QMP lines as QEMU sends them: the input is split at newlines like the client's
//! reader does, and every line goes through the greeting parser and the message
//! classifier (event, reply by id, ignored) that the reader task uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_qmp::qmp::{parse_greeting, parse_message};

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let _ = parse_greeting(line);
        let _ = parse_message(line);
    }
});
