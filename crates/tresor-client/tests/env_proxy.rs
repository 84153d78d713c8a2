//! Proxies from the environment (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, ...).
//!
//! Environment variables belong to the whole process, so each case runs the
//! client in a child process (this test binary, running only `child`) with
//! the variables set for it alone; the server and the proxy run here.

mod common;

use std::time::Duration;

use common::{closed_port, ProxyMode, TestProxy, TestServer};
use tresor_client::{check, ApiClient, ProxyConfig, ServerAddress, Transport};

/// Tells the child what to do: `url fingerprint [proxy-host:proxy-port]`.
const CHILD_SPEC: &str = "TRESOR_CLIENT_TEST_CHILD";

const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUEST_METHOD",
];

/// The client side of a case; does nothing unless started by `run_child`.
#[tokio::test]
#[ignore = "run in a child process by the other tests of this file"]
async fn child() {
    let Ok(spec) = std::env::var(CHILD_SPEC) else {
        return;
    };
    let words: Vec<&str> = spec.split_whitespace().collect();
    let addr = ServerAddress::parse(words[0], words[1]).unwrap();
    let proxy = words.get(2).map(|p| {
        let (host, port) = p.rsplit_once(':').unwrap();
        ProxyConfig {
            host: host.into(),
            port: port.parse().unwrap(),
        }
    });
    let report = check(&addr, proxy.as_ref(), None).await;
    let transport = Transport::new(&addr, proxy.as_ref(), Duration::from_secs(5)).unwrap();
    println!("ROUTE={}", transport.route());
    println!("CHECK={}", report.code().unwrap_or("ok"));
    let api = ApiClient::new(transport, None);
    match api.get_json::<serde_json::Value>("/api/v1/ping").await {
        Ok(_) => println!("API=ok"),
        Err(e) => println!("API={}", e.failure_kind().map_or("other", |k| k.code())),
    }
    eprintln!("{report}");
}

#[derive(Debug)]
struct Outcome {
    route: String,
    check: String,
    api: String,
}

async fn run_child(
    addr: &ServerAddress,
    proxy: Option<&ProxyConfig>,
    env: &[(&str, String)],
) -> Outcome {
    let mut spec = format!("{} {}", addr.url, addr.fingerprint);
    if let Some(p) = proxy {
        spec.push_str(&format!(" {}:{}", p.host, p.port));
    }
    let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd.env(CHILD_SPEC, spec);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.split_once(&format!("{name}=")).map(|(_, v)| v))
            .unwrap_or_else(|| panic!("no {name} in:\n{stdout}\n{stderr}"))
            .to_owned()
    };
    Outcome {
        route: field("ROUTE"),
        check: field("CHECK"),
        api: field("API"),
    }
}

fn url(proxy: &TestProxy) -> String {
    format!("http://{}", proxy.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_from_the_environment_is_used() {
    let server = TestServer::start().await;
    for var in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"] {
        let proxy = TestProxy::start(ProxyMode::Tunnel).await;
        let out = run_child(&server.address(), None, &[(var, url(&proxy))]).await;
        assert_eq!(
            out.route,
            format!("through proxy {} (from {var})", url(&proxy))
        );
        assert_eq!(
            (out.check.as_str(), out.api.as_str()),
            ("ok", "ok"),
            "{out:?}"
        );
        // The check's own tunnel, the check's HTTP step and the API call.
        assert!(proxy.tunnels() >= 3, "{var}: {} tunnels", proxy.tunnels());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_bypasses_the_environments_proxy() {
    let server = TestServer::start().await;
    let proxy = TestProxy::start(ProxyMode::Tunnel).await;
    for (host, no_proxy) in [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1", "example.org, 127.0.0.0/8"),
        ("localhost", "localhost"),
        ("localhost", ".localhost"),
        ("127.0.0.1", "*"),
    ] {
        let out = run_child(
            &server.address_with_host(host),
            None,
            &[("HTTPS_PROXY", url(&proxy)), ("NO_PROXY", no_proxy.into())],
        )
        .await;
        assert!(
            out.route
                .starts_with("direct (the proxy from HTTPS_PROXY is bypassed: NO_PROXY matches"),
            "{host} {no_proxy}: {out:?}"
        );
        assert_eq!(
            (out.check.as_str(), out.api.as_str()),
            ("ok", "ok"),
            "{out:?}"
        );
    }
    // Lowercase works too.
    let out = run_child(
        &server.address(),
        None,
        &[
            ("https_proxy", url(&proxy)),
            ("no_proxy", "127.0.0.1".into()),
        ],
    )
    .await;
    assert!(out.route.starts_with("direct"), "{out:?}");
    assert_eq!(proxy.tunnels(), 0);

    // Nothing is exempt by itself: localhost is not 127.0.0.1.
    let out = run_child(
        &server.address(),
        None,
        &[
            ("HTTPS_PROXY", url(&proxy)),
            ("NO_PROXY", "localhost".into()),
        ],
    )
    .await;
    assert!(out.route.starts_with("through proxy"), "{out:?}");
    assert_eq!(out.check, "ok");
    assert!(proxy.tunnels() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_proxy_wins_over_the_environment_and_respects_no_proxy() {
    let server = TestServer::start().await;
    let proxy = TestProxy::start(ProxyMode::Tunnel).await;
    let dead_env_proxy = format!("http://127.0.0.1:{}", closed_port());

    let out = run_child(
        &server.address(),
        Some(&proxy.config()),
        &[("HTTPS_PROXY", dead_env_proxy.clone())],
    )
    .await;
    assert_eq!(
        out.route,
        format!("through proxy {} (configured)", url(&proxy))
    );
    assert_eq!(
        (out.check.as_str(), out.api.as_str()),
        ("ok", "ok"),
        "{out:?}"
    );
    let tunnels = proxy.tunnels();
    assert!(tunnels >= 3);

    let out = run_child(
        &server.address(),
        Some(&proxy.config()),
        &[("NO_PROXY", "127.0.0.1".into())],
    )
    .await;
    assert!(
        out.route
            .starts_with("direct (the configured proxy is bypassed"),
        "{out:?}"
    );
    assert_eq!(
        (out.check.as_str(), out.api.as_str()),
        ("ok", "ok"),
        "{out:?}"
    );
    assert_eq!(proxy.tunnels(), tunnels);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_environment_proxy_is_proxy_unreachable_and_http_proxy_is_not_used() {
    let server = TestServer::start().await;
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let out = run_child(&server.address(), None, &[("HTTPS_PROXY", dead.clone())]).await;
    assert_eq!(out.check, "ProxyUnreachable", "{out:?}");
    assert_eq!(out.api, "ProxyUnreachable", "{out:?}");

    // HTTP_PROXY is for http URLs; the server is https.
    let out = run_child(&server.address(), None, &[("HTTP_PROXY", dead.clone())]).await;
    assert_eq!(out.route, "direct");
    assert_eq!(
        (out.check.as_str(), out.api.as_str()),
        ("ok", "ok"),
        "{out:?}"
    );

    // CGI guard: with REQUEST_METHOD set the environment's proxy is ignored.
    let out = run_child(
        &server.address(),
        None,
        &[("HTTPS_PROXY", dead), ("REQUEST_METHOD", "GET".into())],
    )
    .await;
    assert_eq!(
        out.route,
        "direct (HTTPS_PROXY is ignored because REQUEST_METHOD is set)"
    );
    assert_eq!(
        (out.check.as_str(), out.api.as_str()),
        ("ok", "ok"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_proxy_url_are_sent_and_not_shown() {
    let server = TestServer::start().await;
    let proxy = TestProxy::start(ProxyMode::Tunnel).await;
    let with_auth = format!("http://agent:pa%3Ass@{}", proxy.addr);
    let out = run_child(&server.address(), None, &[("HTTPS_PROXY", with_auth)]).await;
    assert_eq!(
        out.route,
        format!(
            "through proxy {} (from HTTPS_PROXY, with credentials)",
            url(&proxy)
        )
    );
    assert_eq!(
        (out.check.as_str(), out.api.as_str()),
        ("ok", "ok"),
        "{out:?}"
    );
    let auths = proxy.authorizations();
    // The check's CONNECT and the HTTP client's, at least; "agent:pa:ss".
    assert!(auths.len() >= 2, "{auths:?}");
    assert!(
        auths.iter().all(|a| a == "Basic YWdlbnQ6cGE6c3M="),
        "{auths:?}"
    );
}
