//! QMP client: greeting, capabilities negotiation, commands matched to replies by
//! id, and an event channel.
//!
//! One [`Qmp`] owns one unix-socket connection. A reader task owns the read half:
//! it parses every line QEMU sends, hands replies to the waiting caller (by the
//! `id` sent with the command) and broadcasts events. Commands may be issued
//! concurrently from several tasks through `&Qmp`.
//!
//! The parts: `connection` owns the socket, the reader task, matching replies
//! to commands and the event channel; `wire` parses the greeting and each line
//! QEMU sends (pure functions); `commands` holds the typed commands and the
//! shapes of their replies, wrappers over [`Qmp::execute`]; `error` the
//! errors all of them return.

mod commands;
mod connection;
mod error;
mod wire;

pub use commands::{
    BlockDeviceInfo, BlockInfo, DirtyBitmapInfo, ImageInfo, RunState, StatusInfo, TransactionAction,
};
pub use connection::{Events, Qmp, MAX_QMP_EVENT_LINE, MAX_QMP_LINE};
pub use error::{QmpError, Result};
pub use wire::{parse_greeting, parse_message, Message, QmpEvent, QmpVersion, Reply};
