//! What the server's HTTP tests share: a quiet server on a free port, API clients
//! that trust exactly its certificate, tokens with a role, the code of a refusal; and
//! (`world`) a server with host agents and real recovery points.

#![allow(dead_code)]

pub mod portal;
pub mod world;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use tresor_api::audit::{AuditEntry, AuditQuery};
use tresor_api::tokens::{CreateToken, Role, RoleAssignment, Scope};
use tresor_client::{ApiClient, ClientError, ServerAddress, Transport};
use tresor_server::{RunningServer, ServerConfig};

/// A client of `server` sending `token`, if any.
pub fn client(server: &RunningServer, token: Option<&str>) -> ApiClient {
    let addr = ServerAddress::parse(&server.url, &server.fingerprint).unwrap();
    ApiClient::new(
        Transport::new(&addr, None, Duration::from_secs(30)).unwrap(),
        token.map(str::to_string),
    )
}

/// A server on a free port of 127.0.0.1, with its data in `dir`, without background
/// loops (tests run their steps themselves).
pub async fn quiet_server(dir: &Path) -> RunningServer {
    let mut config = ServerConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.background = false;
    tresor_server::start(config).await.unwrap()
}

/// The code of an API error answer; anything else fails the test.
pub fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> String {
    refusal(r).1
}

/// The status, code and message of an API error answer; anything else fails the test.
pub fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String, String) {
    match r {
        Err(ClientError::Api {
            status,
            code,
            message,
            ..
        }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The newest 1000 entries of the audit log, as `admin` reads them.
pub async fn audit_log(admin: &ApiClient) -> Vec<AuditEntry> {
    let query = AuditQuery {
        limit: Some(1000),
        ..Default::default()
    };
    admin.audit(&query).await.unwrap()
}

/// The entries of `log` that record `action` with `result` (`Succeeded` or a code).
pub fn entries<'a>(log: &'a [AuditEntry], action: &str, result: &str) -> Vec<&'a AuditEntry> {
    log.iter()
        .filter(|e| e.action == action && e.result == result)
        .collect()
}

/// A user signed in to the portal with their password, calling the API with the
/// session and its CSRF token, as the portal's scripts do.
pub struct SignedIn {
    pub portal: portal::Portal,
    pub session: portal::Session,
}

impl SignedIn {
    pub async fn new(
        server: &RunningServer,
        user: &str,
        password: &str,
        totp: Option<&str>,
    ) -> SignedIn {
        let portal = portal::Portal::of(server);
        let session = portal
            .sign_in_with(&[
                ("user", user),
                ("password", password),
                ("totp", totp.unwrap_or("")),
            ])
            .await
            .unwrap_or_else(|| panic!("{user} signs in"));
        SignedIn { portal, session }
    }

    /// An API call: the status and the body as JSON (`Null` when it is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let s = &self.session;
        self.portal
            .call(method, path, &s.cookie, Some(&s.csrf), body)
            .await
    }
}

/// What the portal's sign-in form answered.
#[derive(Debug)]
pub struct SignInAnswer {
    pub status: reqwest::StatusCode,
    /// The session cookie, when one was given.
    pub session: Option<String>,
    /// The error code of a refusal that is not the form's "failed" redirect.
    pub code: Option<String>,
    /// `Retry-After`, in seconds, if sent.
    pub retry_after: Option<u64>,
}

/// Signs a user in through the portal's form from the local address `from` (any of
/// 127.0.0.0/8 reaches a server on 127.0.0.1): the server counts failed attempts by
/// the connection's address, and takes it from no header.
pub async fn sign_in_from(
    server: &RunningServer,
    from: IpAddr,
    user: &str,
    password: &str,
    totp: Option<&str>,
) -> SignInAnswer {
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tresor_tls::pinned_client_config(
            &server.fingerprint.parse().unwrap(),
        ))
        .redirect(reqwest::redirect::Policy::none())
        .local_address(from)
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", server.url.trim_end_matches('/'));
    let page = http.get(url("/login")).send().await.unwrap();
    let login = portal::cookie_of(page.headers(), "tresor_login").unwrap();
    let enc = tresor_portal::urls::url_encode;
    let r = http
        .post(url("/login"))
        .header("cookie", format!("tresor_login={login}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={}&user={}&password={}&totp={}&next=%2Fvaults",
            enc(&login),
            enc(user),
            enc(password),
            enc(totp.unwrap_or("")),
        ))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let session = portal::cookie_of(r.headers(), "tresor_session");
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    SignInAnswer {
        status,
        session,
        code: body["code"].as_str().map(str::to_string),
        retry_after,
    }
}

/// A new API token, made by `admin`, holding `role` at `scope`: its secret.
pub async fn token_with(admin: &ApiClient, name: &str, role: Role, scope: &str) -> String {
    admin
        .create_token(&CreateToken {
            name: name.into(),
            roles: Some(vec![RoleAssignment::new(
                role,
                scope.parse::<Scope>().unwrap(),
            )]),
            expires_in_days: None,
        })
        .await
        .unwrap()
        .token
}
