//! A vault-like HTTPS server and a CONNECT proxy on loopback, for tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tresor_client::{Fingerprint, ServerAddress, Url};
use tresor_tls::ServerIdentity;

pub const GOOD_TOKEN: &str = "good";

/// An HTTPS server answering like the vault server's API.
pub struct TestServer {
    pub addr: SocketAddr,
    pub fingerprint: Fingerprint,
    _dir: tempfile::TempDir,
    handle: axum_server::Handle<SocketAddr>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let identity = ServerIdentity::load_or_create(dir.path(), &[]).unwrap();
        let blobs: Blobs = Arc::default();
        let app = Router::new()
            .route(
                "/api/v1/ping",
                get(|| async { Json(serde_json::json!({"ok": true})) }),
            )
            .route("/api/v1/agent/ping", get(agent_ping))
            .route(
                "/api/v1/echo",
                post(|Json(v): Json<serde_json::Value>| async { Json(v) }),
            )
            .route("/api/v1/empty", post(|| async { StatusCode::NO_CONTENT }))
            .route("/api/v1/conflict", get(conflict))
            .route(
                "/api/v1/plain-error",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "it broke") }),
            )
            .route("/api/v1/not-json", get(|| async { "this is not json" }))
            .route(
                "/api/v1/blobs/{name}",
                get(get_blob).put(put_blob).delete(delete_blob),
            )
            .with_state(blobs);

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let config =
            axum_server::tls_rustls::RustlsConfig::from_config(identity.rustls_server_config());
        let handle = axum_server::Handle::new();
        let server = axum_server::tls_rustls::from_tcp_rustls(listener, config)
            .unwrap()
            .handle(handle.clone());
        tokio::spawn(async move {
            server.serve(app.into_make_service()).await.unwrap();
        });
        TestServer {
            addr,
            fingerprint: identity.fingerprint(),
            _dir: dir,
            handle,
        }
    }

    /// `https://127.0.0.1:port` with the right fingerprint.
    pub fn address(&self) -> ServerAddress {
        self.address_with_host("127.0.0.1")
    }

    pub fn address_with_host(&self, host: &str) -> ServerAddress {
        ServerAddress {
            url: Url::parse(&format!("https://{host}:{}", self.addr.port())).unwrap(),
            fingerprint: self.fingerprint,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

type Blobs = Arc<Mutex<HashMap<String, Vec<u8>>>>;

fn error(status: StatusCode, code: &str, message: &str, recommendation: &str) -> Response {
    (
        status,
        Json(serde_json::json!({
            "code": code,
            "message": message,
            "recommendation": recommendation,
        })),
    )
        .into_response()
}

async fn agent_ping(headers: HeaderMap) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth == format!("Bearer {GOOD_TOKEN}") {
        Json(serde_json::json!({"agent": "ok"})).into_response()
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "AgentTokenInvalid",
            "the agent token is not known",
            "Register the agent again.",
        )
    }
}

async fn conflict() -> Response {
    error(
        StatusCode::CONFLICT,
        "RepositoryLocked",
        "the repository is locked by a running backup",
        "Wait for the backup to finish.",
    )
}

async fn put_blob(State(blobs): State<Blobs>, Path(name): Path<String>, body: Bytes) -> StatusCode {
    blobs.lock().unwrap().insert(name, body.to_vec());
    StatusCode::CREATED
}

async fn delete_blob(State(blobs): State<Blobs>, Path(name): Path<String>) -> Response {
    match blobs.lock().unwrap().remove(&name) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(StatusCode::NOT_FOUND, "NotFound", "no such blob", ""),
    }
}

/// Serves `Range: bytes=a-b` for names starting with `ranged-`; others get
/// the whole blob, as a server ignoring ranges would.
async fn get_blob(
    State(blobs): State<Blobs>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(data) = blobs.lock().unwrap().get(&name).cloned() else {
        return error(StatusCode::NOT_FOUND, "NotFound", "no such blob", "");
    };
    let range = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()));
    match range {
        Some((start, end)) if name.starts_with("ranged-") => {
            if start >= data.len() {
                return StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            }
            let end = end.min(data.len() - 1);
            (StatusCode::PARTIAL_CONTENT, data[start..=end].to_vec()).into_response()
        }
        _ => data.into_response(),
    }
}

/// How the test proxy answers CONNECT.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Opens tunnels.
    Tunnel,
    /// Answers every CONNECT with 403.
    Deny,
}

/// A CONNECT proxy that counts the tunnels it opened.
pub struct TestProxy {
    pub addr: SocketAddr,
    tunnels: Arc<AtomicUsize>,
    authorizations: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestProxy {
    pub async fn start(mode: ProxyMode) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnels = Arc::new(AtomicUsize::new(0));
        let authorizations: Arc<Mutex<Vec<String>>> = Arc::default();
        let counter = tunnels.clone();
        let seen = authorizations.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let counter = counter.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let _ = serve_connect(client, mode, &counter, &seen).await;
                });
            }
        });
        TestProxy {
            addr,
            tunnels,
            authorizations,
            task,
        }
    }

    /// The `Proxy-Authorization` values of the CONNECT requests received.
    pub fn authorizations(&self) -> Vec<String> {
        self.authorizations.lock().unwrap().clone()
    }

    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }

    pub fn config(&self) -> tresor_client::ProxyConfig {
        tresor_client::ProxyConfig {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
        }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connect(
    mut client: TcpStream,
    mode: ProxyMode,
    tunnels: &AtomicUsize,
    authorizations: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    for line in head.lines() {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("proxy-authorization") {
                authorizations.lock().unwrap().push(value.trim().to_owned());
            }
        }
    }
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let reply = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    if mode == ProxyMode::Deny {
        client
            .write_all(reply("403 Forbidden", "CONNECT is not allowed").as_bytes())
            .await?;
        return Ok(());
    }
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(target).await {
        Ok(a) => a.collect(),
        Err(e) => {
            let body = format!("DNS lookup of {target} failed: {e}");
            client
                .write_all(reply("502 Bad Gateway", &body).as_bytes())
                .await?;
            return Ok(());
        }
    };
    let mut upstream = None;
    let mut last_error = String::from("no address");
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => {
                upstream = Some(s);
                break;
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    let Some(mut upstream) = upstream else {
        let body = format!("connecting to {target} failed: {last_error}");
        client
            .write_all(reply("502 Bad Gateway", &body).as_bytes())
            .await?;
        return Ok(());
    };
    tunnels.fetch_add(1, Ordering::SeqCst);
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
