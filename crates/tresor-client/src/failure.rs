//! What goes wrong on the way to the server, named by stable codes: the kind
//! of failure, one failure explained, and an error's causes as one line.
//!
//! Architecture Invariant: this module knows nothing of addresses, routes,
//! transports, requests or the connection check; they all describe their
//! failures with it.

use std::error::Error as StdError;
use std::fmt;

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

    /// A general recommendation for the kind, when nothing more specific
    /// is known.
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

/// The messages of an error and its sources, joined by `: `, skipping
/// repeats.
pub(crate) fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let msg = e.to_string();
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        current = e.source();
    }
    parts.join(": ")
}
