//! The whole NBD client against a server whose every byte the fuzzer chooses: the
//! input is what the server sends (greeting, option replies, then replies to one
//! read and one block status query), written into a socket pair before the client
//! starts. Reaches the handshake's decisions (flags, meta contexts, export info,
//! block size constraints) and the reply loops, not only the pure parser.
#![no_main]

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

use libfuzzer_sys::fuzz_target;
use tresor_nbd::{NbdClient, BASE_ALLOCATION};

fuzz_target!(|data: &[u8]| {
    // The socket buffer holds the whole input (libFuzzer inputs are a few KiB), so
    // writing first cannot block; the client then sees end of stream after it.
    if data.len() > 64 * 1024 {
        return;
    }
    let (client, mut server) = UnixStream::pair().unwrap();
    server.write_all(data).unwrap();
    server.shutdown(Shutdown::Write).unwrap();
    if let Ok(mut c) = NbdClient::from_unix_stream(client, "fuzz", &[BASE_ALLOCATION]) {
        let size = c.size();
        let mut buf = vec![0u8; size.min(4096) as usize];
        let _ = c.read_at(0, &mut buf);
        if let Ok(extents) = c.block_status(BASE_ALLOCATION, 0, size) {
            // What the client returns covers the range exactly, in order.
            let total: u64 = extents.iter().map(|e| e.0).sum();
            assert_eq!(total, size);
        }
    }
    // `server` lives until here: the client's last writes never meet a closed peer.
    drop(server);
});
