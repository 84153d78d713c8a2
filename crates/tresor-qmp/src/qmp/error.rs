//! The errors of the QMP client, each naming the command or step that failed.

use std::path::PathBuf;
use std::time::Duration;

/// Errors of the QMP client. Each names the command or step that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QmpError {
    /// The unix socket could not be connected.
    #[error("connecting to QMP socket {path}: {source}")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// No (complete) answer within the timeout.
    #[error("QMP {what}: no answer within {timeout:?}")]
    Timeout {
        /// The command or step that timed out (`greeting`, `connect`, a command name, an event name).
        what: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection was closed, typically because QEMU exited.
    #[error("QMP {what}: connection closed (QEMU exited or closed the monitor)")]
    Disconnected {
        /// The command or step during which the connection was found closed.
        what: String,
    },
    /// QEMU answered the command with an `error` object.
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        /// The command that failed.
        command: String,
        /// QMP error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotFound`.
        class: String,
        /// Human-readable description from QEMU.
        desc: String,
    },
    /// `human-monitor-command` succeeded at the QMP level but its text output
    /// reports an error (HMP has no structured errors).
    #[error("HMP command {command:?} reported: {output}")]
    Hmp {
        /// The HMP command line.
        command: String,
        /// The output, trimmed.
        output: String,
    },
    /// QEMU sent something that is not valid QMP.
    #[error("QMP {what}: protocol error: {message}")]
    Protocol {
        /// The step in which the bad message arrived.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// A reply did not have the shape the typed wrapper expects.
    #[error("QMP command {command}: unexpected reply shape: {source}")]
    Decode {
        /// The command whose reply could not be decoded.
        command: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// Writing to the socket failed for a reason other than a closed connection.
    #[error("QMP command {command}: socket I/O: {source}")]
    Io {
        /// The command being sent.
        command: String,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Result type of this module.
pub type Result<T, E = QmpError> = std::result::Result<T, E>;
