//! Signing in to the portal: a token (the admin token or an API token) buys a session.
//!
//! - The session id travels in a cookie that is `HttpOnly` (no script reads it),
//!   `Secure` (HTTPS only; the server speaks nothing else) and `SameSite=Strict` (no
//!   other site's page can send it). The server keeps only its SHA-256.
//! - Every session has a CSRF token. Every form carries it in a hidden field and every
//!   state-changing request is refused without it; the portal's scripts send it as
//!   `X-CSRF-Token` when they call the API with the session.
//! - The sign-in form itself is protected by a double-submit cookie (`tresor_login`),
//!   so that no other site can sign a browser in with a token of its choosing.
//! - Sessions live in memory: a server restart signs everyone out. They end after
//!   12 hours, or 1 hour without a request, or at sign-out, or when the token that
//!   opened them is revoked (`DELETE /api/v1/tokens/{id}`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;

use crate::auth::{hash_secret, new_secret};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "tresor_session";
pub const LOGIN_COOKIE: &str = "tresor_login";
const MAX_AGE: SignedDuration = SignedDuration::from_hours(12);
const IDLE: SignedDuration = SignedDuration::from_hours(1);

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    /// The name of the token that signed in (shown in the header).
    who: String,
    /// The id of that token: revoking it ends the session.
    token_id: String,
    created: Timestamp,
    last_seen: Timestamp,
}

/// The signed-in sessions, by SHA-256 of their id.
#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session; returns its id (for the cookie).
    pub fn open(&self, token_id: &str, who: &str, now: Timestamp) -> String {
        let id = new_secret("tresor_session");
        let mut map = self.by_hash.lock();
        map.retain(|_, s| alive(s, now));
        map.insert(
            hash_secret(&id),
            Session {
                csrf: new_secret("csrf"),
                who: who.to_string(),
                token_id: token_id.to_string(),
                created: now,
                last_seen: now,
            },
        );
        id
    }

    /// The operator behind a session id, if it is alive (and marks it used).
    fn find(&self, id: &str, now: Timestamp) -> Option<Operator> {
        let mut map = self.by_hash.lock();
        let key = hash_secret(id);
        let s = map.get_mut(&key)?;
        if !alive(s, now) {
            map.remove(&key);
            return None;
        }
        s.last_seen = now;
        Some(Operator {
            csrf: s.csrf.clone(),
            who: s.who.clone(),
        })
    }

    pub fn close(&self, id: &str) {
        self.by_hash.lock().remove(&hash_secret(id));
    }

    /// Ends every session opened with the token `token_id`; returns how many.
    pub fn close_for_token(&self, token_id: &str) -> usize {
        let mut map = self.by_hash.lock();
        let before = map.len();
        map.retain(|_, s| s.token_id != token_id);
        before - map.len()
    }
}

fn alive(s: &Session, now: Timestamp) -> bool {
    now < s.created + MAX_AGE && now < s.last_seen + IDLE
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the portal's attributes.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age_secs}"
    ))
    .expect("cookie values are ASCII")
}

/// Compares secrets without leaking where they differ through timing.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A signed-in operator. Extracting it from a request without a live session sends
/// the browser to the sign-in page.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The session's CSRF token, for forms.
    pub csrf: String,
    pub who: String,
}

impl Operator {
    /// Checks a form's CSRF field: `Some(answer)` refuses the request.
    pub fn csrf_rejection(&self, sent: &str) -> Option<Response> {
        (!same_secret(&self.csrf, sent)).then(|| {
            (
                axum::http::StatusCode::FORBIDDEN,
                "The form was not sent from this portal's page (its CSRF token does not match). Reload the page and try again.",
            )
                .into_response()
        })
    }
}

/// The operator of the request's session, if any (for the API's cookie access).
pub fn operator_of(state: &AppState, headers: &HeaderMap) -> Option<Operator> {
    let id = cookie(headers, SESSION_COOKIE)?;
    state.sessions.find(id, state.now())
}

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Operator, Response> {
        operator_of(state, &parts.headers).ok_or_else(|| {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            Redirect::to(&format!("/login?next={}", super::layout::url_encode(next)))
                .into_response()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::default();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let id = s.open("t1", "admin", t0);
        assert!(s.find(&id, t0 + SignedDuration::from_mins(30)).is_some());
        // Idle for more than an hour: gone.
        assert!(s.find(&id, t0 + SignedDuration::from_mins(91)).is_none());
        let id = s.open("t1", "admin", t0);
        let mut t = t0;
        for _ in 0..13 {
            t += SignedDuration::from_mins(55);
            let alive = s.find(&id, t).is_some();
            assert_eq!(alive, t < t0 + MAX_AGE, "{t}");
        }
        let id = s.open("t1", "admin", t0);
        s.close(&id);
        assert!(s.find(&id, t0).is_none());
        let a = s.open("t-ops", "ops", t0);
        let b = s.open("t-ops", "ops", t0);
        let c = s.open("t-scripts", "scripts", t0);
        assert_eq!(s.close_for_token("t-ops"), 2);
        assert!(s.find(&a, t0).is_none() && s.find(&b, t0).is_none());
        assert!(s.find(&c, t0).is_some());
        assert!(s.find("tresor_session_forged", t0).is_none());
    }

    #[test]
    fn cookies_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; tresor_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
