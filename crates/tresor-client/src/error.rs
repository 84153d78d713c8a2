//! What goes wrong on the way to the server, named by stable codes.

use std::fmt;

use serde::Deserialize;

/// Why the server could not be reached or used, in the order a request
/// meets the obstacles. Each kind has a stable [code](FailureKind::code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The server address is not usable (not `https`, no host).
    InvalidAddress,
    /// The proxy cannot be reached, or it refuses to open a tunnel.
    ProxyUnreachable,
    /// The server's host name does not resolve.
    DnsFailed,
    /// No TCP connection to the server: refused, unreachable or timed out.
    TcpConnectFailed,
    /// The TLS handshake failed (other than a certificate mismatch).
    TlsFailed,
    /// The server presented a certificate other than the pinned one.
    CertificateMismatch,
    /// The server refused the credential (HTTP 401 or 403).
    CredentialRejected,
    /// The server failed (5xx), or answered something unexpected.
    ServerError,
}

impl FailureKind {
    /// The stable code: the variant's name.
    pub const fn code(self) -> &'static str {
        match self {
            FailureKind::InvalidAddress => "InvalidAddress",
            FailureKind::ProxyUnreachable => "ProxyUnreachable",
            FailureKind::DnsFailed => "DnsFailed",
            FailureKind::TcpConnectFailed => "TcpConnectFailed",
            FailureKind::TlsFailed => "TlsFailed",
            FailureKind::CertificateMismatch => "CertificateMismatch",
            FailureKind::CredentialRejected => "CredentialRejected",
            FailureKind::ServerError => "ServerError",
        }
    }

    /// A general recommendation; [`check`](crate::check) gives more specific
    /// ones.
    pub const fn recommendation(self) -> &'static str {
        match self {
            FailureKind::InvalidAddress => {
                "Give the server's address as https://host:port, as the vault server shows it."
            }
            FailureKind::ProxyUnreachable => {
                "Check the proxy's host and port (the agent's configuration or HTTPS_PROXY), that the proxy runs, and that it allows CONNECT to the vault server's port; run the connection check for details."
            }
            FailureKind::DnsFailed => {
                "Check the server's host name and this machine's DNS configuration (or the proxy's), or give the server's IP address instead."
            }
            FailureKind::TcpConnectFailed => {
                "Check that the vault server runs and listens on that address and port, and that no firewall between here and there blocks the port."
            }
            FailureKind::TlsFailed => {
                "Check that the address is the vault server's HTTPS port and that nothing in between (a TLS-inspecting proxy or firewall) intercepts the connection."
            }
            FailureKind::CertificateMismatch => {
                "Compare the presented fingerprint with the one the vault server shows. If the server's certificate was replaced, pin the new fingerprint; if not, something intercepts the connection (a TLS-inspecting proxy): exempt the vault server from inspection."
            }
            FailureKind::CredentialRejected => {
                "The server does not accept this credential: register the agent again, or issue a new token on the vault server."
            }
            FailureKind::ServerError => {
                "The server answered but failed: look at the vault server's log."
            }
        }
    }

    /// Whether trying again later may succeed without changing anything
    /// here: the network, the proxy or the server may come back. Wrong
    /// addresses, certificates and credentials are not transient.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            FailureKind::ProxyUnreachable
                | FailureKind::DnsFailed
                | FailureKind::TcpConnectFailed
                | FailureKind::ServerError
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The first failure on the way to the server, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFailure {
    /// What failed.
    pub kind: FailureKind,
    /// Its stable code, `kind.code()`.
    pub code: &'static str,
    /// What happened, naming hosts, ports, statuses and fingerprints.
    pub message: String,
    /// What to do about it.
    pub recommendation: String,
}

impl ConnectFailure {
    /// A failure with the kind's general recommendation.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> ConnectFailure {
        ConnectFailure::with_recommendation(kind, message, kind.recommendation())
    }

    /// A failure with a specific recommendation.
    pub fn with_recommendation(
        kind: FailureKind,
        message: impl Into<String>,
        recommendation: impl Into<String>,
    ) -> ConnectFailure {
        ConnectFailure {
            kind,
            code: kind.code(),
            message: message.into(),
            recommendation: recommendation.into(),
        }
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("the server answered {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's error code (`Http<status>` when the body was not the
        /// server's JSON error).
        code: String,
        /// The server's message.
        message: String,
        /// The server's recommendation, if it gave one.
        recommendation: Option<String>,
    },
    /// The request did not get an answer.
    #[error("{kind}: {detail}")]
    Transport {
        /// Where it failed.
        kind: FailureKind,
        /// The underlying errors.
        detail: String,
    },
    /// A successful answer that is not what was expected.
    #[error("unexpected answer from the server (HTTP {status}): {detail}")]
    UnexpectedAnswer {
        /// HTTP status.
        status: u16,
        /// What was wrong with it.
        detail: String,
    },
    /// The server address or proxy setting is not usable.
    #[error("invalid server address: {0}")]
    InvalidAddress(String),
    /// The request cannot be made (a path that is no URL, a body that
    /// cannot be encoded).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ClientError {
    /// The HTTP status of an answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::UnexpectedAnswer { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The failure kind of a transport error.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            ClientError::Transport { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: transient transport failures,
    /// and answers 408, 429, 502, 503 and 504. Whether and how often to
    /// retry is the caller's decision.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { kind, .. } => kind.is_transient(),
            ClientError::Api { status, .. } => matches!(status, 408 | 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}

/// The server's JSON error body.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub recommendation: Option<String>,
}

/// Turns an error answer into [`ClientError::Api`]: the server's JSON error
/// when the body is one, else the status with the start of the body.
pub(crate) fn api_error(status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiErrorBody>(body) {
        Ok(e) => ClientError::Api {
            status,
            code: e.code,
            message: e.message,
            recommendation: e.recommendation.filter(|r| !r.is_empty()),
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("no reason given")
                    .to_owned()
            } else {
                truncate(text, 512)
            };
            ClientError::Api {
                status,
                code: format!("Http{status}"),
                message,
                recommendation: None,
            }
        }
    }
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_servers_json_error() {
        let body = br#"{"code":"RepositoryLocked","message":"locked by a backup","recommendation":"wait"}"#;
        match api_error(409, body) {
            ClientError::Api {
                status,
                code,
                message,
                recommendation,
            } => {
                assert_eq!(status, 409);
                assert_eq!(code, "RepositoryLocked");
                assert_eq!(message, "locked by a backup");
                assert_eq!(recommendation.as_deref(), Some("wait"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_bodies_keep_the_status() {
        match api_error(502, b"<html>Bad Gateway</html>") {
            ClientError::Api { code, message, .. } => {
                assert_eq!(code, "Http502");
                assert_eq!(message, "<html>Bad Gateway</html>");
            }
            other => panic!("{other:?}"),
        }
        match api_error(404, b"") {
            ClientError::Api { message, .. } => assert_eq!(message, "Not Found"),
            other => panic!("{other:?}"),
        }
        let long = "é".repeat(600);
        match api_error(500, long.as_bytes()) {
            ClientError::Api { message, .. } => assert!(message.len() <= 515),
            other => panic!("{other:?}"),
        }
    }
}
