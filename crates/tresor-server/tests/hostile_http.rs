//! The server under hostile requests, over its real HTTPS listener: oversized bodies,
//! connections that send nothing, guessed secrets, stolen or stale sessions, open
//! redirects, text from agents meant to forge log lines or markup, vault credentials
//! used elsewhere or late, and the data directory's file modes.

mod common;

use common::portal::cookie_of;
use common::world::World;
use common::{client, code};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tresor_client::{ApiClient, ClientError};
use tresor_server::http_limits::HttpLimits;
use tresor_server::ServerConfig;

/// Everything the server logs in this test process (the server runs in it).
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || LogWriter(w.clone()))
            .try_init();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The common world (its clock starting at the real now), with the admin token's
/// secret and a browser that follows no redirect and keeps no cookies.
struct Hostile {
    world: World,
    token: String,
    http: reqwest::Client,
}

impl std::ops::Deref for Hostile {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

/// A server with these HTTP limits, its configuration changed by `configure` too.
async fn world_with(http: HttpLimits, configure: impl FnOnce(&mut ServerConfig)) -> Hostile {
    log();
    let world = common::world::world_with(Timestamp::now(), |config| {
        config.http = http;
        configure(config);
    })
    .await;
    let token = world.admin_token();
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(pinned_tls(&world.server.fingerprint))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Hostile { world, token, http }
}

fn pinned_tls(fingerprint: &str) -> rustls::ClientConfig {
    tresor_tls::pinned_client_config(&fingerprint.parse().unwrap())
}

async fn world() -> Hostile {
    world_with(HttpLimits::default(), |_| {}).await
}

impl Hostile {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    async fn credentials(&self, vault: &str, body: Value) -> Value {
        self.admin
            .post_json(&format!("api/v1/vaults/{vault}/credentials"), &body)
            .await
            .unwrap()
    }

    /// Registers an agent; returns its client and the registration's answer.
    async fn agent(&self, vault: &str, host: &str) -> (ApiClient, Value) {
        let creds = self.credentials(vault, json!({})).await;
        let reg: Value = client(&self.server, None)
            .post_json(
                "api/v1/agents/register",
                &json!({"secret": creds["secret"], "host": host, "location": "local"}),
            )
            .await
            .unwrap();
        (client(&self.server, reg["credential"].as_str()), reg)
    }

    /// Signs in to the portal with `token`, asking to go to `next`; returns the answer
    /// (a redirect) of the sign-in.
    async fn sign_in(&self, token: &str, next: &str) -> reqwest::Response {
        let page = self.http.get(self.url("/login")).send().await.unwrap();
        let login_cookie = cookie_of(page.headers(), "tresor_login").unwrap();
        self.http
            .post(self.url("/login"))
            .header("cookie", format!("tresor_login={login_cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "csrf={}&token={}&next={}",
                enc(&login_cookie),
                enc(token),
                enc(next)
            ))
            .send()
            .await
            .unwrap()
    }

    /// A signed-in session's cookie.
    async fn session(&self, token: &str) -> String {
        let r = self.sign_in(token, "/vaults").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        cookie_of(r.headers(), "tresor_session").expect("a session cookie")
    }

    async fn page(&self, session: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("cookie", format!("tresor_session={session}"))
            .send()
            .await
            .unwrap()
    }

    async fn finish(self) {
        self.world.finish().await;
    }
}

fn enc(s: &str) -> String {
    tresor_portal::urls::url_encode(s)
}

async fn error_code(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["code"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_route_limit_are_refused() {
    let w = world().await;
    w.create_vault("v1").await;
    // Unauthenticated routes take 64 KiB at most.
    let big = "x".repeat(100 << 10);
    let r = w
        .http
        .post(w.url("/api/v1/agents/register"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"secret":"{big}","host":"h"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(r).await, "RequestTooLarge");
    let r = w
        .http
        .post(w.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf=a&token={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Admin JSON too.
    let r = w
        .http
        .post(w.url("/api/v1/tokens"))
        .bearer_auth(&w.token)
        .header("content-type", "application/json")
        .body(format!(r#"{{"name":"{big}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Object uploads take up to MAX_OBJECT_UPLOAD.
    let (agent, reg) = w.agent("v1", "kvm1").await;
    let credential = agent_credential(&reg);
    let put = |len: usize| {
        w.http
            .put(w.url(
                "/api/v1/agent/repos/v1/objects/data/00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa",
            ))
            .bearer_auth(&credential)
            .body(vec![0u8; len])
            .send()
    };
    let over = put(tresor_server::api::MAX_OBJECT_UPLOAD + 1)
        .await
        .unwrap();
    assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = over.json().await.unwrap();
    assert_eq!(v["code"], "RequestTooLarge");
    assert!(v["message"].as_str().unwrap().contains("67108864"), "{v}");
    // A pack-sized upload is not refused for its size (whatever the storage says).
    let ok = put(17 << 20).await.unwrap();
    assert_ne!(ok.status(), StatusCode::PAYLOAD_TOO_LARGE);
    drop(agent);
    w.finish().await;
}

fn agent_credential(reg: &Value) -> String {
    reg["credential"].as_str().unwrap().to_string()
}

/// A TLS connection to the server, handshake done.
async fn tls_connect(w: &Hostile) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(w.server.addr).await.unwrap();
    let mut cfg = pinned_tls(&w.server.fingerprint);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Whether the server closed the connection within `within` (EOF or an error).
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_do_not_keep_clients_out() {
    let w = world().await;
    // 200 connections that never start TLS, and 200 that finish it and send nothing.
    let mut idle_tcp = Vec::new();
    for _ in 0..200 {
        idle_tcp.push(tokio::net::TcpStream::connect(w.server.addr).await.unwrap());
    }
    let mut idle_tls = Vec::new();
    for _ in 0..200 {
        idle_tls.push(tls_connect(&w).await);
    }
    let t = Instant::now();
    let _: Value = client(&w.server, None)
        .get_json("api/v1/ping")
        .await
        .unwrap();
    let _: Value = w.admin.get_json("api/v1/vaults").await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    drop((idle_tcp, idle_tls));
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_surplus_connections_are_closed() {
    let limits = HttpLimits {
        max_connections: 20,
        tls_handshake: Duration::from_millis(700),
        first_request: Duration::from_millis(700),
        header_read: Duration::from_millis(700),
        idle: Duration::from_secs(3),
    };
    let w = world_with(limits, |_| {}).await;
    let slack = Duration::from_secs(3);

    // No TLS handshake: closed after the handshake timeout.
    let mut tcp = tokio::net::TcpStream::connect(w.server.addr).await.unwrap();
    assert!(
        closed_within(&mut tcp, slack).await,
        "silent TCP connection kept"
    );
    // Handshake, then nothing: closed after the first-request timeout.
    let mut tls = tls_connect(&w).await;
    assert!(
        closed_within(&mut tls, slack).await,
        "silent TLS connection kept"
    );
    // Headers trickled and never finished: closed after the header timeout.
    let mut slow = tls_connect(&w).await;
    slow.write_all(b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let mut closed = false;
    for _ in 0..10 {
        if slow.write_all(b"X-A: b\r\n").await.is_err() {
            closed = true;
            break;
        }
        if closed_within(&mut slow, Duration::from_millis(300)).await {
            closed = true;
            break;
        }
    }
    assert!(
        closed && t.elapsed() < slack,
        "trickled headers kept the connection"
    );
    // A keep-alive connection left idle after a request is closed too.
    let mut kept = tls_connect(&w).await;
    kept.write_all(b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut kept, slack).await,
        "idle keep-alive kept"
    );

    // Beyond max_connections, new connections are closed at once, and the slots come
    // back when the holders go.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::net::TcpStream::connect(w.server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut surplus = tokio::net::TcpStream::connect(w.server.addr).await.unwrap();
    assert!(closed_within(&mut surplus, Duration::from_millis(500)).await);
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _: Value = client(&w.server, None)
        .get_json("api/v1/ping")
        .await
        .unwrap();
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_and_registrations_are_rate_limited() {
    let w = world().await;
    // Registrations: every attempt counts; the eleventh at once is refused.
    let anon = client(&w.server, None);
    for _ in 0..10 {
        let r = anon
            .post_json::<_, Value>(
                "api/v1/agents/register",
                &json!({"secret": "tresor_enroll_guess", "host": "h"}),
            )
            .await;
        assert_eq!(code(r), "InvalidVaultCredentials");
    }
    let r = w
        .http
        .post(w.url("/api/v1/agents/register"))
        .json(&json!({"secret": "tresor_enroll_guess", "host": "h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&wait), "{wait}");
    assert_eq!(error_code(r).await, "TooManyAttempts");

    // Sign-ins: failures count, and once out of attempts even the right token waits.
    for _ in 0..10 {
        let r = w.sign_in("tresor_admin_guess", "/vaults").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(r.headers()[LOCATION].to_str().unwrap().contains("failed=1"));
    }
    let r = w.sign_in("tresor_admin_guess", "/vaults").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let r = w.sign_in(&w.token.clone(), "/vaults").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(r).await, "TooManyAttempts");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_revoked_idle_or_too_old() {
    let w = world().await;
    // An API token signs in twice; revoking it ends both sessions, not the admin's.
    let t: Value = w
        .admin
        .post_json("api/v1/tokens", &json!({"name": "ops"}))
        .await
        .unwrap();
    let ops = t["token"].as_str().unwrap().to_string();
    let s1 = w.session(&ops).await;
    let s2 = w.session(&ops).await;
    let admin = w.session(&w.token.clone()).await;
    for s in [&s1, &s2, &admin] {
        assert_eq!(w.page(s, "/vaults").await.status(), StatusCode::OK);
    }
    w.admin
        .delete(&format!("api/v1/tokens/{}", t["id"].as_str().unwrap()))
        .await
        .unwrap();
    for s in [&s1, &s2] {
        let r = w.page(s, "/vaults").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(r.headers()[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/login"));
    }
    assert_eq!(w.page(&admin, "/vaults").await.status(), StatusCode::OK);

    // Idle for more than an hour: gone.
    w.clock.advance(SignedDuration::from_mins(61));
    assert_eq!(
        w.page(&admin, "/vaults").await.status(),
        StatusCode::SEE_OTHER
    );
    // Used every 50 minutes, a session still ends 12 hours after sign-in.
    let s = w.session(&w.token.clone()).await;
    let mut alive_for = SignedDuration::ZERO;
    loop {
        w.clock.advance(SignedDuration::from_mins(50));
        if w.page(&s, "/vaults").await.status() != StatusCode::OK {
            break;
        }
        alive_for += SignedDuration::from_mins(50);
        assert!(alive_for < SignedDuration::from_hours(13));
    }
    assert!(alive_for >= SignedDuration::from_hours(11), "{alive_for:?}");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sign_in_next_leads_only_to_this_server() {
    let w = world().await;
    let home = "/vaults";
    for (next, expected) in [
        (
            "/vaults/v1/jobs?status=Failed",
            "/vaults/v1/jobs?status=Failed",
        ),
        ("/agents", "/agents"),
        ("//evil.example/x", home),
        ("https://evil.example/", home),
        ("/\\evil.example", home),
        ("\\\\evil.example", home),
        ("/\t/evil.example", home),
        ("/\r\n/evil.example", home),
        ("\t//evil.example", home),
        ("/%2f%2fevil.example", home),
        ("/%2F/evil.example", home),
        ("/%5cevil.example", home),
        ("/%252f%252fevil.example", home),
        ("/%0d%0aSet-Cookie:%20x=1", home),
        ("javascript:alert(1)", home),
        ("", home),
    ] {
        let r = w.sign_in(&w.token.clone(), next).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "next = {next:?}");
        assert_eq!(r.headers()[LOCATION], expected, "next = {next:?}");
    }
    w.finish().await;
}

fn assert_guarded(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    let get = |n: &str| {
        h.get(n)
            .unwrap_or_else(|| panic!("{what}: no {n}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let csp = get("content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert!(
        get("strict-transport-security").starts_with("max-age="),
        "{what}"
    );
    assert_eq!(get("x-request-id").len(), 16, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_the_security_headers() {
    let w = world().await;
    let session = w.session(&w.token.clone()).await;
    let cases: Vec<(&str, reqwest::Response, StatusCode)> = vec![
        (
            "ping",
            w.http.get(w.url("/api/v1/ping")).send().await.unwrap(),
            StatusCode::OK,
        ),
        (
            "401",
            w.http.get(w.url("/api/v1/vaults")).send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "API 404",
            w.http.get(w.url("/api/v1/nothing")).send().await.unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            "page 404",
            w.http.get(w.url("/nothing")).send().await.unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            "login",
            w.http.get(w.url("/login")).send().await.unwrap(),
            StatusCode::OK,
        ),
        (
            "redirect",
            w.http.get(w.url("/vaults")).send().await.unwrap(),
            StatusCode::SEE_OTHER,
        ),
        ("portal", w.page(&session, "/vaults").await, StatusCode::OK),
        (
            "script",
            w.http.get(w.url("/assets/portal.js")).send().await.unwrap(),
            StatusCode::OK,
        ),
        (
            "style",
            w.http
                .get(w.url("/assets/portal.css"))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        ),
    ];
    for (what, r, status) in cases {
        assert_eq!(r.status(), status, "{what}");
        assert_guarded(&r, what);
    }
    let r = w.http.get(w.url("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(error_code(r).await, "NotFound");
    // The pages hold no inline script or style the policy would block.
    let html = w.page(&session, "/vaults").await.text().await.unwrap();
    assert!(
        !html.contains(" style=") && !html.contains("<script>"),
        "{html}"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_text_cannot_forge_log_lines_or_markup() {
    let w = world().await;
    w.create_vault("v1").await;
    let forged = "web\n2026-01-01 INFO forged";
    // A host name with a line break is refused at registration.
    let creds = w.credentials("v1", json!({})).await;
    let r = client(&w.server, None)
        .post_json::<_, Value>(
            "api/v1/agents/register",
            &json!({"secret": creds["secret"], "host": forged}),
        )
        .await;
    assert_eq!(code(r), "InvalidHostName");
    let (agent, _) = w.agent("v1", "kvm1").await;
    let vm = |name: &str, disk: &str| json!({"vm": name, "info": {"name": name, "state": "running", "guest_agent": {"state": "not-configured"}, "disks": [{"name": disk, "format": "raw", "image": "/x", "virtual_size": 1}]}});
    for vms in [
        json!([vm(forged, "vda")]),
        json!([vm("web", "vda\r\nforged")]),
        json!([vm(&"v".repeat(300), "vda")]),
        // More disks or interfaces than any VM has.
        json!([{"vm": "many", "info": {"name": "many", "state": "running", "guest_agent": {"state": "not-configured"},
            "disks": (0..257).map(|i| json!({"name": format!("d{i}"), "format": "raw", "image": "/x", "virtual_size": 1})).collect::<Vec<_>>()}}]),
    ] {
        let r = agent
            .post_json::<_, Value>("api/v1/agent/heartbeat", &json!({ "vms": vms }))
            .await;
        assert_eq!(code(r), "InvalidAgentReport", "{vms}");
    }
    let r = agent
        .post_json::<_, Value>(
            "api/v1/agent/heartbeat",
            &json!({"version": "1.0\nforged", "vms": []}),
        )
        .await;
    assert_eq!(code(r), "InvalidAgentReport");
    // Markup is text: accepted, and shown escaped.
    let script = "<script>alert(1)</script>";
    let _: Value = agent
        .post_json(
            "api/v1/agent/heartbeat",
            &json!({"vms": [vm(script, "<img src=x onerror=alert(2)>")]}),
        )
        .await
        .unwrap();
    let session = w.session(&w.token.clone()).await;
    let html = w.page(&session, "/agents").await.text().await.unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains(script) && !html.contains("<img src=x"));

    let log = String::from_utf8_lossy(&log().lock()).to_string();
    assert!(log.contains("heartbeat refused"), "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01 INFO forged")),
        "a forged log line: {log}"
    );
    drop(agent);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_credentials_place_the_agent_and_expire() {
    let w = world().await;
    w.create_vault("v1").await;
    // Without a location, the agent is in the vault's, whatever it claims.
    let creds = w.credentials("v1", json!({})).await;
    assert_eq!(creds["location"], "local");
    let anon = client(&w.server, None);
    let reg: Value = anon
        .post_json(
            "api/v1/agents/register",
            &json!({"secret": creds["secret"], "host": "kvm1", "location": "elsewhere"}),
        )
        .await
        .unwrap();
    assert_eq!(reg["location"], "local");
    // With one, the agent is there.
    let creds = w
        .credentials("v1", json!({"location": "branch-office", "validDays": 1}))
        .await;
    let reg: Value = anon
        .post_json(
            "api/v1/agents/register",
            &json!({"secret": creds["secret"], "host": "kvm2", "location": "local", "vault": "v1"}),
        )
        .await
        .unwrap();
    assert_eq!(reg["location"], "branch-office");
    let agents: Vec<Value> = w.admin.get_json("api/v1/agents").await.unwrap();
    let loc = |host: &str| {
        agents.iter().find(|a| a["host"] == host).unwrap()["location"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        (loc("kvm1"), loc("kvm2")),
        ("local".into(), "branch-office".into())
    );

    // Used, expired, or for another vault: refused, each saying so.
    let refusal = |r: Result<Value, ClientError>| match r {
        Err(ClientError::Api {
            code,
            message,
            recommendation,
            ..
        }) => {
            assert_eq!(code, "InvalidVaultCredentials");
            assert!(recommendation
                .unwrap_or_default()
                .contains("download new vault credentials"));
            message
        }
        other => panic!("{other:?}"),
    };
    let again = anon
        .post_json(
            "api/v1/agents/register",
            &json!({"secret": creds["secret"], "host": "kvm3"}),
        )
        .await;
    assert!(refusal(again).contains("used already"));
    let late = w.credentials("v1", json!({})).await;
    w.clock.advance(SignedDuration::from_hours(49));
    let r = anon
        .post_json(
            "api/v1/agents/register",
            &json!({"secret": late["secret"], "host": "kvm3"}),
        )
        .await;
    assert!(refusal(r).contains("expired"));
    let other = w.credentials("v1", json!({})).await;
    let r = anon
        .post_json(
            "api/v1/agents/register",
            &json!({"secret": other["secret"], "host": "kvm3", "vault": "v2"}),
        )
        .await;
    assert!(refusal(r).contains("another vault"));
    let r = anon
        .post_json(
            "api/v1/agents/register",
            &json!({"secret": "tresor_enroll_x", "host": "kvm3"}),
        )
        .await;
    assert!(refusal(r).contains("unknown"));
    // A bad location is refused when the credentials are made.
    let r = w
        .admin
        .post_json::<_, Value>(
            "api/v1/vaults/v1/credentials",
            &json!({"location": "no place!"}),
        )
        .await;
    assert_ne!(code(r), "");
    w.finish().await;
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private() {
    // A directory left open by hand (or restored from a copy) is closed at start.
    let w = world_with(HttpLimits::default(), |config| {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.join("secrets")).unwrap();
        std::fs::set_permissions(dir.join("secrets"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(dir.join("secrets").join("old"), "x").unwrap();
        std::fs::set_permissions(
            dir.join("secrets").join("old"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    })
    .await;
    w.create_vault("v1").await;
    let d = &w.data();
    assert_eq!(mode(d), 0o700);
    assert_eq!(mode(&d.join("secrets")), 0o700);
    assert_eq!(mode(&d.join("secrets").join("old")), 0o600);
    assert_eq!(mode(&d.join("cli.json")), 0o600);
    assert_eq!(mode(&d.join("tls").join("key.pem")), 0o600);
    for f in ["metadata.db", "metadata.db-wal", "metadata.db-shm"] {
        if d.join(f).exists() || f == "metadata.db" {
            assert_eq!(mode(&d.join(f)), 0o600, "{f}");
        }
    }
    assert!(
        d.join("metadata.db-wal").exists(),
        "WAL mode makes a -wal file"
    );
    w.finish().await;
}
