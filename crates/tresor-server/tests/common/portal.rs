//! The portal as a browser uses it: signing in through the sign-in form (a token, or
//! a user's name, password and TOTP code), getting pages and posting forms with the
//! session cookie and its CSRF token, and calling the API with them, as the portal's
//! scripts do.

use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;
use tresor_server::RunningServer;

/// The value of the cookie `name` a response sets, if it sets one.
pub fn cookie_of(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

fn enc(s: &str) -> String {
    tresor_portal::urls::url_encode(s)
}

/// One signed-in session: its cookie and CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// Asserts what a page shows (`present`) and does not (`absent`), by markup.
pub fn shows(who: &str, page: &str, html: &str, present: &[&str], absent: &[&str]) {
    for p in present {
        assert!(html.contains(p), "{who} on {page} does not see {p:?}");
    }
    for a in absent {
        assert!(!html.contains(a), "{who} on {page} sees {a:?}");
    }
}

/// A browser without a browser: the portal's forms sent as a browser sends them.
pub struct Portal {
    base: String,
    http: reqwest::Client,
}

impl Portal {
    /// A browser of `server`'s portal, trusting exactly its certificate, following no
    /// redirect.
    pub fn of(server: &RunningServer) -> Portal {
        Portal {
            base: server.url.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .tls_backend_preconfigured(tresor_tls::pinned_client_config(
                    &server.fingerprint.parse().unwrap(),
                ))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs in as a user through the sign-in form; the session cookie, if one was
    /// given.
    pub async fn sign_in(&self, user: &str, password: &str, totp: Option<&str>) -> Option<String> {
        self.sign_in_with(&[
            ("user", user),
            ("password", password),
            ("totp", totp.unwrap_or("")),
        ])
        .await
        .map(|s| s.cookie)
    }

    /// Signs in through the sign-in form with `fields` (a `token`, or a `user`'s
    /// name, `password` and `totp` code): the session with its CSRF token, or `None`
    /// when refused.
    pub async fn sign_in_with(&self, fields: &[(&str, &str)]) -> Option<Session> {
        let page = self.http.get(self.url("/login")).send().await.unwrap();
        let login = cookie_of(page.headers(), "tresor_login").unwrap();
        let mut body = format!("csrf={}&next=%2Fvaults", enc(&login));
        for (k, v) in fields {
            body.push_str(&format!("&{k}={}", enc(v)));
        }
        let r = self
            .http
            .post(self.url("/login"))
            .header("cookie", format!("tresor_login={login}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let session = cookie_of(r.headers(), "tresor_session");
        let to = r.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(to.starts_with("/login?failed=1"), session.is_none(), "{to}");
        let cookie = session?;
        let csrf = self.csrf(&cookie).await;
        Some(Session { cookie, csrf })
    }

    /// A page, as the session's browser gets it: the status and the HTML.
    pub async fn get(&self, s: &Session, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(self.url(path))
            .header("cookie", format!("tresor_session={}", s.cookie))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Posts a form as the session's browser does (with its CSRF token): the status,
    /// and the redirect's target or else the page.
    pub async fn post(
        &self,
        s: &Session,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut body = format!("csrf={}", enc(&s.csrf));
        for (k, v) in fields {
            body.push_str(&format!("&{k}={}", enc(v)));
        }
        let r = self
            .http
            .post(self.url(path))
            .header("cookie", format!("tresor_session={}", s.cookie))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        match location {
            Some(to) => (status, to),
            None => (status, r.text().await.unwrap()),
        }
    }

    /// The session's CSRF token, from a page's `csrf-token` meta tag.
    pub async fn csrf(&self, session: &str) -> String {
        let html = self
            .http
            .get(self.url("/vaults"))
            .header("cookie", format!("tresor_session={session}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = html.find(r#"name="csrf-token" content=""#).unwrap();
        let rest = &html[at + r#"name="csrf-token" content=""#.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    /// An API call with the session (and its CSRF token, if given): the status and
    /// the body as JSON (`Null` when it is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        session: &str,
        csrf: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .request(method, self.url(path))
            .header("cookie", format!("tresor_session={session}"));
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
