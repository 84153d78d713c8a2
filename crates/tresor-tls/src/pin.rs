//! Clients that trust exactly one certificate, named by its fingerprint.

use std::error::Error as StdError;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::Fingerprint;

/// The server presented a certificate other than the pinned one.
///
/// Carried inside the `rustls::Error` of a failed handshake; find it in any
/// error chain with [`find_fingerprint_mismatch`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server's certificate has fingerprint {presented}, but {expected} is pinned")]
pub struct FingerprintMismatch {
    /// The pinned fingerprint.
    pub expected: Fingerprint,
    /// The fingerprint of the certificate the server presented.
    pub presented: Fingerprint,
}

/// The crypto provider Tresor uses for TLS: rustls' `ring` provider.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration that accepts exactly the certificate whose SHA-256
/// fingerprint is `fp`, whatever its names, issuer or validity dates: the pin
/// is the trust. The handshake's signatures are still verified against that
/// certificate's key, so a server must hold the private key to pass.
///
/// No ALPN protocols are set; callers that speak HTTP set their own.
pub fn pinned_client_config(fp: &Fingerprint) -> rustls::ClientConfig {
    let provider = crypto_provider();
    let verifier = Arc::new(PinnedVerifier {
        expected: *fp,
        provider: provider.clone(),
    });
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

#[derive(Debug)]
struct PinnedVerifier {
    expected: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_der(end_entity);
        if presented == self.expected {
            tracing::trace!(server = ?server_name, fingerprint = %presented, "pinned certificate presented");
            Ok(ServerCertVerified::assertion())
        } else {
            tracing::debug!(
                server = ?server_name,
                expected = %self.expected,
                presented = %presented,
                "certificate does not match the pinned fingerprint"
            );
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(FingerprintMismatch {
                    expected: self.expected,
                    presented,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Finds a [`FingerprintMismatch`] anywhere in an error chain: directly, in a
/// `rustls::Error`, or in an `std::io::Error` wrapping one (as TLS streams and
/// HTTP clients report handshake failures).
pub fn find_fingerprint_mismatch<'a>(
    err: &'a (dyn StdError + 'static),
) -> Option<&'a FingerprintMismatch> {
    find_in_chain(err, &|e| {
        if let Some(m) = e.downcast_ref::<FingerprintMismatch>() {
            return Some(m);
        }
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
            e.downcast_ref::<rustls::Error>()
        {
            return other.0.downcast_ref::<FingerprintMismatch>();
        }
        None
    })
}

/// Finds the first `rustls::Error` in an error chain, looking inside
/// `std::io::Error`s too.
pub fn find_rustls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    find_in_chain(err, &|e| e.downcast_ref::<rustls::Error>())
}

fn find_in_chain<'a, T: ?Sized>(
    err: &'a (dyn StdError + 'static),
    pick: &dyn Fn(&'a (dyn StdError + 'static)) -> Option<&'a T>,
) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = pick(e) {
            return Some(found);
        }
        // `io::Error::source` skips the error it wraps, so look at it directly.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(found) = find_in_chain(inner, pick) {
                return Some(found);
            }
        }
        current = e.source();
    }
    None
}
