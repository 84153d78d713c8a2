//! The connection check and the API client against a test server and a test
//! proxy on loopback. Nothing here reads or changes proxy variables of this
//! process (see `env_proxy.rs` for those).

mod common;

use std::time::Duration;

use common::{closed_port, ProxyMode, TestProxy, TestServer, GOOD_TOKEN};
use tresor_client::{
    check, check_with_timeout, ApiClient, ClientError, FailureKind, Fingerprint, ProxyConfig,
    ServerAddress, Transport, Url,
};

const TIMEOUT: Duration = Duration::from_secs(5);

fn step_names(report: &tresor_client::CheckReport) -> Vec<&'static str> {
    report.steps.iter().map(|s| s.name).collect()
}

fn api(addr: &ServerAddress, proxy: Option<&ProxyConfig>, token: Option<&str>) -> ApiClient {
    ApiClient::new(
        Transport::new(addr, proxy, TIMEOUT).unwrap(),
        token.map(str::to_owned),
    )
}

fn transport_kind(err: ClientError) -> FailureKind {
    match err {
        ClientError::Transport { kind, .. } => kind,
        other => panic!("not a transport error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_check_passes_every_step() {
    let server = TestServer::start().await;
    let report = check(&server.address(), None, Some(GOOD_TOKEN)).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        step_names(&report),
        [
            "address",
            "route",
            "dns",
            "tcp",
            "tls",
            "http",
            "credential"
        ]
    );
    assert!(report.steps.iter().all(|s| s.ok));
    let text = report.to_string();
    assert!(text.contains("The vault server is reachable."), "{text}");
    assert!(
        !text.contains(GOOD_TOKEN),
        "the credential is shown: {text}"
    );

    // By name too, and without a credential only the public ping.
    let report = check(&server.address_with_host("localhost"), None, None).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(step_names(&report).last(), Some(&"http"));
    assert!(
        report.steps[2].detail.contains("localhost resolves to"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_requests_go_through_an_explicit_proxy() {
    let server = TestServer::start().await;
    let proxy = TestProxy::start(ProxyMode::Tunnel).await;
    let config = proxy.config();

    let report = check(&server.address(), Some(&config), Some(GOOD_TOKEN)).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        step_names(&report),
        [
            "address",
            "route",
            "proxy",
            "tunnel",
            "tls",
            "http",
            "credential"
        ]
    );
    assert!(report.steps[1].detail.contains("through proxy"), "{report}");
    let after_check = proxy.tunnels();
    assert!(
        after_check >= 2,
        "the check's own tunnel and the client's: {after_check}"
    );

    let client = api(&server.address(), Some(&config), Some(GOOD_TOKEN));
    assert!(client.transport().route().is_proxy());
    let answer: serde_json::Value = client.get_json("/api/v1/agent/ping").await.unwrap();
    assert_eq!(answer["agent"], "ok");
    assert!(proxy.tunnels() > after_check);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_fingerprint_is_a_certificate_mismatch() {
    let server = TestServer::start().await;
    let wrong = Fingerprint::from_bytes([0x5a; 32]);
    let addr = ServerAddress {
        fingerprint: wrong,
        ..server.address()
    };
    let report = check(&addr, None, None).await;
    let failure = report.failure.as_ref().expect("a failure");
    assert_eq!(failure.code, "CertificateMismatch");
    assert_eq!(failure.kind, FailureKind::CertificateMismatch);
    assert!(failure.message.contains(&wrong.to_string()), "{report}");
    assert!(
        failure.message.contains(&server.fingerprint.to_string()),
        "{report}"
    );
    assert!(failure
        .recommendation
        .contains(&server.fingerprint.to_string()));
    assert_eq!(step_names(&report).last(), Some(&"tls"));
    assert!(!report.steps.last().unwrap().ok);

    let err = api(&addr, None, None)
        .get_json::<serde_json::Value>("/api/v1/ping")
        .await
        .unwrap_err();
    let detail = err.to_string();
    assert_eq!(transport_kind(err), FailureKind::CertificateMismatch);
    assert!(detail.contains(&server.fingerprint.to_string()), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_a_tcp_connect_failure() {
    let port = closed_port();
    let addr =
        ServerAddress::parse(&format!("https://127.0.0.1:{port}"), &"ab".repeat(32)).unwrap();
    let report = check(&addr, None, None).await;
    let failure = report.failure.as_ref().expect("a failure");
    assert_eq!(failure.code, "TcpConnectFailed", "{report}");
    assert!(
        failure.message.contains(&format!("127.0.0.1:{port}")),
        "{report}"
    );
    assert_eq!(step_names(&report), ["address", "route", "dns", "tcp"]);

    let err = api(&addr, None, None)
        .delete("/api/v1/blobs/x")
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(transport_kind(err), FailureKind::TcpConnectFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_name_is_a_dns_failure() {
    let addr = ServerAddress::parse("https://nonexistent.invalid:8443", &"ab".repeat(32)).unwrap();
    let report = check(&addr, None, None).await;
    let failure = report.failure.as_ref().expect("a failure");
    assert_eq!(failure.code, "DnsFailed", "{report}");
    assert!(failure.message.contains("nonexistent.invalid"), "{report}");
    assert_eq!(step_names(&report).last(), Some(&"dns"));

    let err = api(&addr, None, None)
        .get_json::<serde_json::Value>("/api/v1/ping")
        .await
        .unwrap_err();
    assert_eq!(transport_kind(err), FailureKind::DnsFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_proxy_port_is_proxy_unreachable() {
    let server = TestServer::start().await;
    let proxy = ProxyConfig {
        host: "127.0.0.1".into(),
        port: closed_port(),
    };
    let report = check(&server.address(), Some(&proxy), None).await;
    let failure = report.failure.as_ref().expect("a failure");
    assert_eq!(failure.code, "ProxyUnreachable", "{report}");
    assert!(
        failure
            .message
            .contains(&format!("127.0.0.1:{}", proxy.port)),
        "{report}"
    );
    assert_eq!(step_names(&report).last(), Some(&"proxy"));

    let err = api(&server.address(), Some(&proxy), None)
        .get_json::<serde_json::Value>("/api/v1/ping")
        .await
        .unwrap_err();
    assert_eq!(transport_kind(err), FailureKind::ProxyUnreachable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_refusing_connect_is_proxy_unreachable_with_its_status_line() {
    let server = TestServer::start().await;
    let proxy = TestProxy::start(ProxyMode::Deny).await;
    let report = check(&server.address(), Some(&proxy.config()), None).await;
    let failure = report.failure.as_ref().expect("a failure");
    assert_eq!(failure.code, "ProxyUnreachable", "{report}");
    assert!(
        failure.message.contains("HTTP/1.1 403 Forbidden"),
        "{report}"
    );
    assert_eq!(step_names(&report).last(), Some(&"tunnel"));

    let err = api(&server.address(), Some(&proxy.config()), None)
        .get_json::<serde_json::Value>("/api/v1/ping")
        .await
        .unwrap_err();
    assert_eq!(transport_kind(err), FailureKind::ProxyUnreachable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_proxy_its_gateway_errors_tell_dns_from_tcp() {
    let proxy = TestProxy::start(ProxyMode::Tunnel).await;
    let unknown =
        ServerAddress::parse("https://nonexistent.invalid:8443", &"ab".repeat(32)).unwrap();
    let report = check(&unknown, Some(&proxy.config()), None).await;
    assert_eq!(report.code(), Some("DnsFailed"), "{report}");
    assert!(
        report
            .failure
            .as_ref()
            .unwrap()
            .message
            .contains("502 Bad Gateway"),
        "{report}"
    );

    let port = closed_port();
    let closed =
        ServerAddress::parse(&format!("https://127.0.0.1:{port}"), &"ab".repeat(32)).unwrap();
    let report = check(&closed, Some(&proxy.config()), None).await;
    assert_eq!(report.code(), Some("TcpConnectFailed"), "{report}");
    assert!(report
        .failure
        .as_ref()
        .unwrap()
        .message
        .contains(&format!("127.0.0.1:{port}")));
    assert_eq!(proxy.tunnels(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_credential_is_rejected() {
    let server = TestServer::start().await;
    let report = check(&server.address(), None, Some("bad")).await;
    let failure = report.failure.as_ref().expect("a failure");
    assert_eq!(failure.code, "CredentialRejected", "{report}");
    assert!(failure.message.contains("401"), "{report}");
    assert!(failure.message.contains("AgentTokenInvalid"), "{report}");
    // The server's own recommendation is passed on.
    assert_eq!(failure.recommendation, "Register the agent again.");
    assert_eq!(step_names(&report).last(), Some(&"credential"));
    assert!(report.steps[..report.steps.len() - 1].iter().all(|s| s.ok));

    let err = api(&server.address(), None, Some("bad"))
        .get_json::<serde_json::Value>("/api/v1/agent/ping")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_not_speaking_tls_is_a_tls_failure() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let addr =
        ServerAddress::parse(&format!("https://127.0.0.1:{port}"), &"ab".repeat(32)).unwrap();
    let report = check_with_timeout(&addr, None, None, Duration::from_secs(3)).await;
    assert_eq!(report.code(), Some("TlsFailed"), "{report}");
    let err = api(&addr, None, None)
        .get_json::<serde_json::Value>("/api/v1/ping")
        .await
        .unwrap_err();
    assert_eq!(transport_kind(err), FailureKind::TlsFailed);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_address_is_reported_first() {
    let addr = ServerAddress {
        url: Url::parse("http://127.0.0.1:1").unwrap(),
        fingerprint: Fingerprint::from_bytes([1; 32]),
    };
    let report = check(&addr, None, None).await;
    assert_eq!(report.code(), Some("InvalidAddress"));
    assert_eq!(step_names(&report), ["address"]);
    assert!(matches!(
        Transport::new(&addr, None, TIMEOUT),
        Err(ClientError::InvalidAddress(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_client_decodes_answers_and_errors() {
    let server = TestServer::start().await;
    let client = api(&server.address(), None, Some(GOOD_TOKEN));

    // JSON both ways; an empty answer decodes as null.
    let sent = serde_json::json!({"vm": "web-1", "disks": [1, 2]});
    let back: serde_json::Value = client.post_json("/api/v1/echo", &sent).await.unwrap();
    assert_eq!(back, sent);
    let nothing: Option<serde_json::Value> = client.post_json("api/v1/empty", &()).await.unwrap();
    assert_eq!(nothing, None);

    // The server's JSON error.
    match client
        .get_json::<serde_json::Value>("/api/v1/conflict")
        .await
        .unwrap_err()
    {
        ClientError::Api {
            status,
            code,
            message,
            recommendation,
        } => {
            assert_eq!(status, 409);
            assert_eq!(code, "RepositoryLocked");
            assert_eq!(message, "the repository is locked by a running backup");
            assert_eq!(
                recommendation.as_deref(),
                Some("Wait for the backup to finish.")
            );
        }
        other => panic!("{other:?}"),
    }
    // An error that is not the server's JSON.
    match client
        .get_json::<serde_json::Value>("/api/v1/plain-error")
        .await
        .unwrap_err()
    {
        err @ ClientError::Api { .. } => {
            assert!(err.is_transient() || err.status() == Some(500));
            let ClientError::Api {
                status,
                code,
                message,
                recommendation,
            } = err
            else {
                unreachable!()
            };
            assert_eq!(
                (status, code.as_str(), message.as_str()),
                (500, "Http500", "it broke")
            );
            assert_eq!(recommendation, None);
        }
        other => panic!("{other:?}"),
    }
    // A success that is not JSON.
    match client
        .get_json::<serde_json::Value>("/api/v1/not-json")
        .await
        .unwrap_err()
    {
        ClientError::UnexpectedAnswer { status, detail } => {
            assert_eq!(status, 200);
            assert!(detail.contains("this is not json"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // An unknown path: axum's empty 404.
    match client
        .get_json::<serde_json::Value>("/api/v1/nowhere")
        .await
        .unwrap_err()
    {
        ClientError::Api { status, code, .. } => {
            assert_eq!((status, code.as_str()), (404, "Http404"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_client_puts_gets_ranges_and_deletes_bytes() {
    let server = TestServer::start().await;
    let client = api(&server.address(), None, Some(GOOD_TOKEN));
    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();

    for name in ["ranged-pack", "whole-pack"] {
        let path = format!("/api/v1/blobs/{name}");
        client.put_bytes(&path, data.clone()).await.unwrap();
        assert_eq!(client.get_bytes(&path, None).await.unwrap(), data);
        assert_eq!(
            client.get_bytes(&path, Some((1000, 5000))).await.unwrap(),
            data[1000..6000]
        );
        // Past the end: what is there.
        assert_eq!(
            client.get_bytes(&path, Some((99_990, 100))).await.unwrap(),
            data[99_990..]
        );
        assert!(client
            .get_bytes(&path, Some((5, 0)))
            .await
            .unwrap()
            .is_empty());
        client.delete(&path).await.unwrap();
        match client.get_bytes(&path, None).await.unwrap_err() {
            ClientError::Api { status, code, .. } => {
                assert_eq!((status, code.as_str()), (404, "NotFound"))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn debug_output_hides_the_token() {
    let addr = ServerAddress::parse("https://vault.example:8443", &"ab".repeat(32)).unwrap();
    let transport = Transport::new(&addr, None, TIMEOUT).unwrap();
    let client = ApiClient::new(transport, Some("s3cret-token".into()));
    let shown = format!("{client:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}
