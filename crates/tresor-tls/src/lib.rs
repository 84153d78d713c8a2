//! Tresor's TLS: the server's self-signed certificate, and clients that pin
//! it by fingerprint.
//!
//! The vault server generates its own certificate on first start
//! ([`ServerIdentity::load_or_create`]) and shows its [`Fingerprint`]. Agents
//! and the command line are given that fingerprint with the server's address
//! and trust exactly that certificate ([`pinned_client_config`]): no
//! certificate authority is involved, and names or expiry dates don't matter.
//!
//! All configurations use rustls' `ring` crypto provider, passed explicitly;
//! no process-wide default provider is needed or installed.

mod fingerprint;
mod identity;
mod pin;

use std::path::PathBuf;

pub use fingerprint::{Fingerprint, ParseFingerprintError};
pub use identity::{hostname, ServerIdentity, CERT_FILE, KEY_FILE, VALIDITY};
pub use pin::{
    crypto_provider, find_fingerprint_mismatch, find_rustls_error, pinned_client_config,
    FingerprintMismatch,
};

/// Re-exported so that users name the same rustls version as this crate.
pub use rustls;

/// What can fail while loading or creating the server's identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{}: not a usable PEM file: {detail}", path.display())]
    InvalidPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The certificate exists but its private key does not.
    #[error("{}: the server certificate's private key is missing; restore it, or remove the certificate to generate a new identity (agents must then pin the new fingerprint)", path.display())]
    MissingKey {
        /// Where the key was expected.
        path: PathBuf,
    },
    /// A requested certificate name is neither a DNS name nor an IP address.
    #[error("{name:?} is neither a DNS name nor an IP address")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// Generating the certificate failed.
    #[error("generating the certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Result of this crate's fallible functions.
pub type Result<T, E = TlsError> = std::result::Result<T, E>;
