//! The server identity on disk, and pinned clients against a real TLS server
//! on loopback.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tresor_tls::{
    find_fingerprint_mismatch, pinned_client_config, Fingerprint, ServerIdentity, TlsError,
    CERT_FILE, KEY_FILE,
};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn creates_then_reloads_the_same_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ident = dir.path().join("tls");
    let created =
        ServerIdentity::load_or_create(&ident, &["vault.example".into(), "10.1.2.3".into()])
            .unwrap();
    assert!(created
        .cert_pem()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        created.fingerprint(),
        Fingerprint::of_der(created.cert_der())
    );

    assert_eq!(mode(&ident.join(KEY_FILE)), 0o600);
    assert_eq!(mode(&ident.join(CERT_FILE)), 0o644);
    let key = std::fs::read_to_string(ident.join(KEY_FILE)).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    // No temporary files left behind.
    let mut names: Vec<String> = std::fs::read_dir(&ident)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec![CERT_FILE.to_owned(), KEY_FILE.to_owned()]);

    let reloaded = ServerIdentity::load_or_create(&ident, &[]).unwrap();
    assert_eq!(reloaded.fingerprint(), created.fingerprint());
    assert_eq!(reloaded.cert_pem(), created.cert_pem());

    let other = ServerIdentity::load_or_create(&dir.path().join("other"), &[]).unwrap();
    assert_ne!(other.fingerprint(), created.fingerprint());
}

#[test]
fn a_key_without_certificate_is_generated_anew_a_certificate_without_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let first = ServerIdentity::load_or_create(dir.path(), &[]).unwrap();

    std::fs::remove_file(dir.path().join(CERT_FILE)).unwrap();
    let second = ServerIdentity::load_or_create(dir.path(), &[]).unwrap();
    assert_ne!(second.fingerprint(), first.fingerprint());

    std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let err = ServerIdentity::load_or_create(dir.path(), &[]).unwrap_err();
    assert!(matches!(err, TlsError::MissingKey { .. }), "{err}");
}

#[test]
fn rejects_a_name_that_is_neither_dns_nor_ip() {
    let dir = tempfile::tempdir().unwrap();
    let err = ServerIdentity::load_or_create(dir.path(), &["not a name".into()]).unwrap_err();
    assert!(matches!(err, TlsError::InvalidName { .. }), "{err}");
}

#[test]
fn a_damaged_certificate_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    ServerIdentity::load_or_create(dir.path(), &[]).unwrap();
    std::fs::write(dir.path().join(CERT_FILE), "garbage").unwrap();
    let err = ServerIdentity::load_or_create(dir.path(), &[]).unwrap_err();
    assert!(matches!(err, TlsError::InvalidPem { .. }), "{err}");
}

/// Serves one TLS connection: reads a line and echoes it back.
async fn echo_server(
    identity: &ServerIdentity,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(identity.rustls_server_config());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut buf = [0u8; 5];
        if tls.read_exact(&mut buf).await.is_ok() {
            let _ = tls.write_all(&buf).await;
            let _ = tls.shutdown().await;
        }
    });
    (addr, task)
}

async fn connect(
    addr: std::net::SocketAddr,
    fp: &Fingerprint,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = TlsConnector::from(Arc::new(pinned_client_config(fp)));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
}

#[tokio::test]
async fn the_right_pin_connects_whatever_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let identity = ServerIdentity::load_or_create(dir.path(), &[]).unwrap();
    // The name is not in the certificate: the pin alone decides.
    for name in ["127.0.0.1", "unlisted.example"] {
        let (addr, server) = echo_server(&identity).await;
        let mut tls = connect(addr, &identity.fingerprint(), name).await.unwrap();
        tls.write_all(b"hello").await.unwrap();
        let mut back = Vec::new();
        tls.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"hello");
        server.await.unwrap();
    }
}

#[tokio::test]
async fn a_wrong_pin_fails_with_the_presented_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let identity = ServerIdentity::load_or_create(dir.path(), &[]).unwrap();
    let wrong = Fingerprint::from_bytes([7; 32]);
    let (addr, server) = echo_server(&identity).await;
    let err = connect(addr, &wrong, "localhost").await.unwrap_err();
    let mismatch = find_fingerprint_mismatch(&err).expect("a fingerprint mismatch");
    assert_eq!(mismatch.expected, wrong);
    assert_eq!(mismatch.presented, identity.fingerprint());
    assert!(
        err.to_string()
            .contains(&identity.fingerprint().to_string()),
        "{err}"
    );
    server.await.unwrap();
}

#[test]
fn server_config_offers_h2_and_http1() {
    let dir = tempfile::tempdir().unwrap();
    let identity = ServerIdentity::load_or_create(dir.path(), &[]).unwrap();
    assert_eq!(
        identity.rustls_server_config().alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

/// A server presenting `identity`'s certificate but signing with `key_pem`'s
/// key, offering only `versions`.
fn server_config_with(
    identity: &ServerIdentity,
    key_pem: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::server::ResolvesServerCert;
    use rustls::sign::CertifiedKey;

    #[derive(Debug)]
    struct Fixed(Arc<CertifiedKey>);
    impl ResolvesServerCert for Fixed {
        fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    let provider = tresor_tls::crypto_provider();
    let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
    let signing_key = provider.key_provider.load_private_key(key).unwrap();
    // CertifiedKey::new does not check that the key belongs to the certificate.
    let certified = CertifiedKey::new(vec![identity.cert_der().clone()], signing_key);
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(Arc::new(certified)))),
    )
}

async fn handshake(config: Arc<rustls::ServerConfig>, fp: &Fingerprint) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        if let Ok(mut tls) = TlsAcceptor::from(config).accept(tcp).await {
            let _ = tls.write_all(b"hi").await;
            let _ = tls.shutdown().await;
        }
    });
    let result = async {
        let mut tls = connect(addr, fp, "localhost").await?;
        let mut back = Vec::new();
        tls.read_to_end(&mut back).await?;
        assert_eq!(back, b"hi");
        Ok(())
    }
    .await;
    server.await.unwrap();
    result
}

#[tokio::test]
async fn tls12_signatures_are_verified_too() {
    let dir = tempfile::tempdir().unwrap();
    let identity = ServerIdentity::load_or_create(dir.path(), &[]).unwrap();
    let key = std::fs::read(dir.path().join(KEY_FILE)).unwrap();
    for versions in [
        &[&rustls::version::TLS12][..],
        &[&rustls::version::TLS13][..],
    ] {
        let config = server_config_with(&identity, &key, versions);
        handshake(config, &identity.fingerprint()).await.unwrap();
    }
}

#[tokio::test]
async fn the_pinned_certificate_without_its_key_fails() {
    let dir = tempfile::tempdir().unwrap();
    let identity = ServerIdentity::load_or_create(dir.path(), &[]).unwrap();
    let other = tempfile::tempdir().unwrap();
    ServerIdentity::load_or_create(other.path(), &[]).unwrap();
    let wrong_key = std::fs::read(other.path().join(KEY_FILE)).unwrap();
    for versions in [
        &[&rustls::version::TLS12][..],
        &[&rustls::version::TLS13][..],
    ] {
        let config = server_config_with(&identity, &wrong_key, versions);
        let err = handshake(config, &identity.fingerprint())
            .await
            .unwrap_err();
        let rustls_err = tresor_tls::find_rustls_error(&err).expect("a rustls error");
        assert!(
            matches!(
                rustls_err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
            ),
            "{rustls_err:?}"
        );
        assert!(find_fingerprint_mismatch(&err).is_none());
    }
}
