//! The error type of this crate.

use std::io;

/// Everything that can go wrong while talking to an NBD server.
///
/// Each variant names the step or request that failed, so that a message such as
/// "server does not support meta context `qemu:dirty-bitmap:b0`" can be shown as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NbdError {
    /// Connecting the socket failed.
    #[error("cannot connect to NBD server at {target}: {source}")]
    Connect {
        /// The socket path or address we tried.
        target: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading from or writing to the socket failed (including an early EOF).
    #[error("NBD I/O error while {context}: {source}")]
    Io {
        /// What the client was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server sent bytes that violate the protocol. The connection cannot be
    /// used afterwards.
    #[error("NBD protocol violation: {0}")]
    Protocol(String),
    /// The server does not speak the fixed newstyle handshake.
    #[error("NBD server does not support the fixed newstyle handshake ({0})")]
    UnsupportedHandshake(&'static str),
    /// The server refuses `NBD_OPT_GO`; this client does not fall back to
    /// `NBD_OPT_EXPORT_NAME`.
    #[error("NBD server does not support NBD_OPT_GO (old server?); this client requires it")]
    GoUnsupported,
    /// Meta contexts were requested but the server does not support structured replies.
    #[error("NBD server does not support structured replies, needed for meta contexts {0:?}")]
    StructuredRepliesUnsupported(Vec<String>),
    /// The server does not offer a requested meta context.
    #[error("NBD server does not support meta context `{name}` on export `{export}`")]
    MetaContextUnsupported {
        /// The requested context name.
        name: String,
        /// The export it was requested for.
        export: String,
    },
    /// The server does not know the export name.
    #[error("NBD server has no export named `{0}`")]
    UnknownExport(String),
    /// The server answered a handshake option with an error reply.
    #[error("NBD server refused option {option}: {reply} {message:?}")]
    OptionRefused {
        /// The option name (`NBD_OPT_...`).
        option: &'static str,
        /// The error reply name (`NBD_REP_ERR_...`).
        reply: String,
        /// The server's message, possibly empty.
        message: String,
    },
    /// A command was answered with an error.
    #[error("NBD {command} at offset {offset} length {length} failed: {} (errno {errno}){}",
        errno_name(*.errno), if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Server {
        /// The command name (`read`, `block status`).
        command: &'static str,
        /// Offset of the failed request.
        offset: u64,
        /// Length of the failed request.
        length: u64,
        /// The NBD error value (an errno such as 5 = EIO).
        errno: u32,
        /// The server's message from an error chunk, possibly empty.
        message: String,
    },
    /// The caller asked for bytes outside the export.
    #[error("request at offset {offset} length {length} is beyond the export size {size}")]
    OutOfRange {
        /// Requested offset.
        offset: u64,
        /// Requested length.
        length: u64,
        /// Export size.
        size: u64,
    },
    /// `block_status` was called with a context that was not negotiated.
    #[error("meta context `{0}` was not negotiated on this connection")]
    ContextNotNegotiated(String),
    /// An earlier protocol or I/O error left the connection in an unknown state.
    #[error("NBD connection is unusable after an earlier error")]
    Broken,
}

/// Short name of an NBD error value.
pub(crate) fn errno_name(errno: u32) -> &'static str {
    match errno {
        1 => "EPERM",
        5 => "EIO",
        12 => "ENOMEM",
        22 => "EINVAL",
        28 => "ENOSPC",
        75 => "EOVERFLOW",
        95 => "ENOTSUP",
        108 => "ESHUTDOWN",
        _ => "unknown error",
    }
}

/// Result alias for this crate.
pub type Result<T, E = NbdError> = std::result::Result<T, E>;
