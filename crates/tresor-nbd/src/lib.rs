//! A small, synchronous NBD client for reading QEMU's point-in-time disk exports.
//!
//! Tresor reads virtual disks of running VMs from the NBD exports QEMU (or
//! `qemu-nbd`) provides during a backup. This crate speaks the client side of the
//! [NBD protocol](https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md)
//! needed for that:
//!
//! * the fixed newstyle handshake over a Unix socket or TCP
//!   ([`NbdClient::connect_unix`], [`NbdClient::connect_tcp`]), negotiating
//!   structured replies (`NBD_OPT_STRUCTURED_REPLY`), meta contexts
//!   (`NBD_OPT_SET_META_CONTEXT`, e.g. `base:allocation` and
//!   `qemu:dirty-bitmap:NAME`) and opening the export with `NBD_OPT_GO`, asking for
//!   the block size constraints;
//! * reads ([`NbdClient::read_at`]) with structured replies (data, holes as zeros,
//!   error chunks), split into requests no larger than the server's maximum block
//!   size (at most 32 MiB) and widened to its minimum block size;
//! * block status ([`NbdClient::block_status`]) for one negotiated context, looping
//!   until the requested range is covered because servers may answer for less;
//! * clean disconnects (`NBD_CMD_DISC`, also on drop);
//! * [`NbdPool`], N connections handed out one per thread for parallel reads.
//!
//! Each [`NbdClient`] sends one request at a time and waits for its reply
//! (blocking I/O, no request pipelining). The reply parser in [`proto`] is pure and
//! separates "need more bytes" from "bad bytes".
//!
//! It does **not** do: writes, trim, flush or any other modifying command; TLS
//! (`NBD_OPT_STARTTLS`); oldstyle or non-fixed newstyle servers, or servers without
//! `NBD_OPT_GO` (these fail with a clear error rather than falling back to
//! `NBD_OPT_EXPORT_NAME`); extended headers (64-bit requests); listing exports or
//! meta contexts; timeouts or reconnects.

#![warn(missing_docs)]

mod client;
mod error;
mod pool;
pub mod proto;

pub use client::{BlockSize, NbdClient, DEFAULT_MAX_REQUEST};
pub use error::{NbdError, Result};
pub use pool::{NbdPool, PooledClient};

/// `base:allocation` flag: the extent is a hole (not allocated).
pub const STATE_HOLE: u32 = 1;
/// `base:allocation` flag: the extent reads as zeros.
pub const STATE_ZERO: u32 = 2;
/// `qemu:dirty-bitmap:*` flag: the extent is dirty.
pub const STATE_DIRTY: u32 = 1;
/// Name of the standard allocation meta context.
pub const BASE_ALLOCATION: &str = "base:allocation";

/// Name of the meta context exposing QEMU dirty bitmap `bitmap`
/// (`qemu:dirty-bitmap:BITMAP`).
pub fn dirty_bitmap_context(bitmap: &str) -> String {
    format!("qemu:dirty-bitmap:{bitmap}")
}
