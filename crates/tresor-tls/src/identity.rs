//! The vault server's own certificate and key, generated once and kept on disk.

use std::fs;

use std::net::IpAddr;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use ring::rand::SecureRandom;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{crypto_provider, Fingerprint, TlsError};

/// File name of the certificate inside the identity directory.
pub const CERT_FILE: &str = "cert.pem";
/// File name of the private key inside the identity directory.
pub const KEY_FILE: &str = "key.pem";

/// How long a generated certificate is valid: 10 years.
pub const VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600 + 3 * 24 * 3600);

/// The server's self-signed certificate and its private key.
pub struct ServerIdentity {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    fingerprint: Fingerprint,
    server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Loads the identity kept in `dir` (`cert.pem` and `key.pem`), or, when
    /// there is none yet, generates one and writes it there.
    ///
    /// A generated certificate is an ECDSA P-256 certificate valid for 10
    /// years whose subject alternative names are `localhost`, `127.0.0.1`,
    /// `::1`, this machine's host name and `names` (each a DNS name or an IP
    /// address). `names` only matter at generation: clients pin the
    /// certificate by fingerprint, so an existing one is kept as it is.
    ///
    /// `cert.pem` is written with mode 0644 and `key.pem` with mode 0600, each
    /// atomically (a temporary file renamed into place), key first: a
    /// directory holding a key but no certificate is an interrupted
    /// generation and is generated anew; a certificate without its key is an
    /// error.
    pub fn load_or_create(dir: &Path, names: &[String]) -> Result<ServerIdentity, TlsError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let have_cert = exists(&cert_path)?;
        let have_key = exists(&key_path)?;
        match (have_cert, have_key) {
            (true, true) => Self::load(&cert_path, &key_path),
            (true, false) => Err(TlsError::MissingKey { path: key_path }),
            (false, _) => {
                if have_key {
                    tracing::warn!(
                        path = %key_path.display(),
                        "a key without a certificate (interrupted generation): generating a new identity"
                    );
                }
                Self::create(dir, &cert_path, &key_path, names)
            }
        }
    }

    /// The certificate, PEM-encoded.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate, DER-encoded.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The fingerprint clients pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// A rustls server configuration presenting this certificate, offering
    /// ALPN `h2` and `http/1.1`, with the `ring` crypto provider.
    pub fn rustls_server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config.clone()
    }

    fn load(cert_path: &Path, key_path: &Path) -> Result<ServerIdentity, TlsError> {
        let cert_pem = fs::read_to_string(cert_path).map_err(|e| io_err(cert_path, e))?;
        let key_pem = fs::read(key_path).map_err(|e| io_err(key_path, e))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
            TlsError::InvalidPem {
                path: cert_path.to_owned(),
                detail: e.to_string(),
            }
        })?;
        let key_der =
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::InvalidPem {
                path: key_path.to_owned(),
                detail: e.to_string(),
            })?;
        let identity = Self::assemble(cert_pem, cert_der, key_der)?;
        tracing::debug!(
            path = %cert_path.display(),
            fingerprint = %identity.fingerprint,
            "loaded the server certificate"
        );
        Ok(identity)
    }

    fn create(
        dir: &Path,
        cert_path: &Path,
        key_path: &Path,
        names: &[String],
    ) -> Result<ServerIdentity, TlsError> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;

        let mut alt_names: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            let name = name.trim();
            if !name.is_empty() && !alt_names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                alt_names.push(name.to_owned());
            }
        };
        add("localhost");
        add("127.0.0.1");
        add("::1");
        let host = hostname();
        match &host {
            Some(h) if is_dns_name(h) => add(h),
            Some(h) => {
                tracing::warn!(hostname = %h, "the host name is not a DNS name; leaving it out of the certificate")
            }
            None => {
                tracing::warn!("could not read the host name; leaving it out of the certificate")
            }
        }
        for name in names {
            if name.parse::<IpAddr>().is_err() && !is_dns_name(name) {
                return Err(TlsError::InvalidName { name: name.clone() });
            }
            add(name);
        }

        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(alt_names.clone())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Tresor");
        dn.push(
            DnType::CommonName,
            format!("Tresor vault {}", host.as_deref().unwrap_or("server")),
        );
        params.distinguished_name = dn;
        let now = SystemTime::now();
        // A day of slack for clocks slightly behind.
        params.not_before = offset_date_time(now - Duration::from_secs(24 * 3600));
        params.not_after = offset_date_time(now + VALIDITY);
        params.serial_number = Some(random_serial()?);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.self_signed(&key)?;

        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        write_atomically(key_path, key_pem.as_bytes(), 0o600)?;
        write_atomically(cert_path, cert_pem.as_bytes(), 0o644)?;
        sync_dir(dir)?;

        let key_der =
            PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| TlsError::InvalidPem {
                path: key_path.to_owned(),
                detail: e.to_owned(),
            })?;
        let identity = Self::assemble(cert_pem, cert.der().clone(), key_der)?;
        tracing::info!(
            path = %cert_path.display(),
            fingerprint = %identity.fingerprint,
            names = ?alt_names,
            "generated the server certificate"
        );
        Ok(identity)
    }

    fn assemble(
        cert_pem: String,
        cert_der: CertificateDer<'static>,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<ServerIdentity, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key_der)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerIdentity {
            fingerprint: Fingerprint::of_der(&cert_der),
            cert_pem,
            cert_der,
            server_config: Arc::new(config),
        })
    }
}

fn io_err(path: &Path, source: std::io::Error) -> TlsError {
    TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn exists(path: &Path) -> Result<bool, TlsError> {
    path.try_exists().map_err(|e| io_err(path, e))
}

/// Writes `contents` to `path` atomically with `mode` (see
/// [`tresor_storage::write_file_atomic`]).
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    tresor_storage::write_file_atomic(path, contents, mode).map_err(|e| io_err(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), TlsError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

fn offset_date_time(t: SystemTime) -> time::OffsetDateTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn random_serial() -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TlsError::Random)?;
    // A positive DER integer with no leading zero byte.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// This machine's host name, as `gethostname(2)` gives it.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole
    // call, and gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..len]).ok()?.trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// Whether `name` can stand in a certificate as a DNS name: ASCII labels of
/// letters, digits, `-` and `_`, separated by dots; a leading `*.` is allowed.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns_name("vault.example.org"));
        assert!(is_dns_name("host-1"));
        assert!(is_dns_name("*.example.org"));
        assert!(!is_dns_name(""));
        assert!(!is_dns_name("a..b"));
        assert!(!is_dns_name("bad name"));
        assert!(!is_dns_name("tr\u{e9}sor"));
    }

    #[test]
    fn hostname_is_read() {
        assert!(hostname().is_some_and(|h| !h.is_empty()));
    }
}
