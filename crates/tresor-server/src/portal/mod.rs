//! The web portal: the seed's click path in a browser, served by `tresor serve`.
//!
//! Pages are rendered on the server (maud) from the same API handlers the CLI calls,
//! so a page shows exactly what the API says and a form obeys exactly the API's rules:
//! a form handler builds the API's request, calls the handler, and on an error shows
//! the page again with the error's message, code and recommendation.
//!
//! - `session.rs`: sign-in, the session cookie, CSRF.
//! - `layout.rs`: the page shell and shared pieces.
//! - `vaults.rs`: the vault list, "+ Add", a vault's overview and backup configuration.
//! - `backup.rs`: the "+ Backup" wizard (where, what, policy, VMs, enable).
//! - `items.rs`: backup items, back up now, recovery points, restore.
//! - `jobs.rs`: backup jobs, filtered, with live progress.
//! - `policies.rs`: backup policies: list, details, create, edit.
//! - `agents.rs`: host agents, vault credentials, preflight per VM.
//! - `assets/`: the style sheet (light and dark) and the one script.

/// `let v = or_return!(vault_of(&state, &op, &vault).await);`: the value, or the
/// handler returns the error page at once.
///
/// Page handlers look up their vault (and item, policy...) first, through helpers that
/// return `Result<T, Response>` whose error is the page to show; this keeps each of
/// those look-ups to one line. Defined before the modules so they can use it.
macro_rules! or_return {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

pub mod agents;
pub mod backup;
pub mod items;
pub mod jobs;
pub mod layout;
pub mod policies;
pub mod session;
pub mod vaults;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use crate::auth::hash_secret;
use crate::rate_limit::ClientIp;
use crate::state::AppState;
use layout::page;
use session::{cookie, set_cookie, Operator, LOGIN_COOKIE, SESSION_COOKIE};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/vaults") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/assets/portal.css", get(css))
        .route("/assets/portal.js", get(js))
        .route("/portal/validate", get(validate))
        .merge(vaults::routes())
        .merge(backup::routes())
        .merge(items::routes())
        .merge(jobs::routes())
        .merge(policies::routes())
        .merge(agents::routes())
        // Forms are small; nothing in the portal takes a large body.
        .layer(axum::extract::DefaultBodyLimit::max(crate::api::MAX_JSON))
        .with_state(state)
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        // One style sheet: the shared rules, then each page group's own.
        concat!(
            include_str!("assets/portal.css"),
            include_str!("assets/backup.css"),
            include_str!("assets/items.css"),
            include_str!("assets/jobs.css"),
            include_str!("assets/policies.css"),
            include_str!("assets/agents.css"),
        ),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("assets/portal.js"),
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    failed: Option<String>,
}

/// Where sign-in leads when `next` is missing or not safe to follow.
pub const HOME: &str = "/vaults";

/// Only paths of this site are followed after sign-in: `next` must be an absolute
/// path, and neither it nor its percent-decoded forms may name another host
/// (`//host`, `/\host`, `/%2f%2fhost`, `/%5chost`) or carry control characters or
/// whitespace (browsers drop tabs and line breaks from URLs, so `/\t/host` would be
/// `//host`). Anything else leads home.
fn safe_next(next: Option<&str>) -> String {
    fn plain_path(p: &str) -> bool {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p.contains('\\')
            && !p.chars().any(char::is_control)
    }
    let Some(n) = next else {
        return HOME.to_string();
    };
    // As sent, printable ASCII only (it becomes a Location header as it is).
    if !n.chars().all(|c| c.is_ascii_graphic()) {
        return HOME.to_string();
    }
    // Check the value and each decoding of it: whoever reads the URL later may
    // decode once more.
    let mut form = n.to_string();
    for _ in 0..4 {
        if !plain_path(&form) {
            return HOME.to_string();
        }
        let decoded = layout::percent_decode(&form);
        if decoded == form {
            return n.to_string();
        }
        form = decoded;
    }
    // Encoded four times over: no page of this portal needs that.
    HOME.to_string()
}

async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    let token = crate::auth::new_secret("login");
    let body = html! {
        section.signin {
            h1 { "Sign in to Tresor" }
            p.muted { "Use the admin token the server printed when it first started (also in DATA/cli.json), or an API token." }
            @if q.failed.is_some() {
                div.alert.bad role="alert" { "That token is not valid. Check it and try again." }
            }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(safe_next(q.next.as_deref()));
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button.primary type="submit" { "Sign in" }
            }
        }
    };
    let mut r = page("Sign in", None, &[], body);
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &token, 600));
    r
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    csrf: String,
    token: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    // An address that failed too often is refused before its token is even looked
    // at, so that guessing gets no answer.
    if let Err(wait) = state.limiters.sign_in.check(ip, std::time::Instant::now()) {
        tracing::warn!(client = %ip, "portal sign-in refused: too many failed attempts");
        return wait.response("failed sign-ins");
    }
    let ok_origin =
        cookie(&headers, LOGIN_COOKIE).is_some_and(|c| session::same_secret(c, &f.csrf));
    if !ok_origin {
        return (
            StatusCode::FORBIDDEN,
            "The sign-in form was not sent from this portal's page. Open /login again.",
        )
            .into_response();
    }
    let hash = hash_secret(f.token.trim());
    let s = state.clone();
    let found = tokio::task::spawn_blocking(move || s.store.find_token(&hash))
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten();
    let next = safe_next(f.next.as_deref());
    match found {
        Some(t) if t.role == "admin" => {
            let id = state.sessions.open(&t.id, &t.name, state.now());
            tracing::info!(token = ?t.name, client = %ip, "portal sign-in");
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &id, 12 * 3600),
            );
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0));
            r
        }
        _ => {
            tracing::warn!(client = %ip, "portal sign-in with an unknown token");
            if let Err(wait) = state.limiters.sign_in.take(ip, std::time::Instant::now()) {
                return wait.response("failed sign-ins");
            }
            Redirect::to(&format!(
                "/login?failed=1&next={}",
                layout::url_encode(&next)
            ))
            .into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<Arc<AppState>>,
    op: Operator,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        state.sessions.close(id);
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    r
}

#[derive(Debug, Deserialize)]
pub struct ValidateQuery {
    kind: String,
    value: String,
}

/// Live validation for forms: the domain's own rules, answered as you type.
async fn validate(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Query(q): Query<ValidateQuery>,
) -> Response {
    use tresor_domain::{Location, PolicyName, ResourceGroupName, VaultName};
    let rule = match q.kind.as_str() {
        "vault-name" => VaultName::parse(&q.value).map(|_| ()),
        "resource-group" => ResourceGroupName::parse(&q.value).map(|_| ()),
        "location" => Location::parse(&q.value).map(|_| ()),
        "policy-name" => PolicyName::parse(&q.value).map(|_| ()),
        _ => return (StatusCode::BAD_REQUEST, "unknown kind").into_response(),
    };
    let answer = match rule {
        Err(e) => {
            json!({"ok": false, "code": e.code, "message": e.message, "rule": e.recommendation})
        }
        Ok(()) if q.kind == "vault-name" => {
            let name = q.value.clone();
            let s = state.clone();
            let taken = tokio::task::spawn_blocking(move || s.store.find_vault_by_name(&name))
                .await
                .ok()
                .and_then(|r| r.ok())
                .flatten()
                .is_some();
            if taken {
                json!({"ok": false, "code": "VaultAlreadyExists", "message": format!("A vault named {} already exists.", q.value), "rule": "Names are unique in this installation, whatever their case."})
            } else {
                json!({"ok": true})
            }
        }
        Ok(()) => json!({"ok": true}),
    };
    Json(answer).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        for (next, expected) in [
            (Some("/vaults/v1"), "/vaults/v1"),
            (
                Some("/vaults/v1/jobs?status=Failed&x=%20"),
                "/vaults/v1/jobs?status=Failed&x=%20",
            ),
            (Some("/vaults/my%20vault"), "/vaults/my%20vault"),
            (None, HOME),
            (Some(""), HOME),
            (Some("vaults"), HOME),
            (Some("//evil.example/x"), HOME),
            (Some("https://evil.example"), HOME),
            (Some("javascript:alert(1)"), HOME),
            (Some("/\\evil.example"), HOME),
            (Some("\\\\evil.example"), HOME),
            (Some("/\t/evil.example"), HOME),
            (Some("\t//evil.example"), HOME),
            (Some("/\r\n/evil.example"), HOME),
            (Some("/vaults\r\nSet-Cookie: x=1"), HOME),
            (Some("/ /evil.example"), HOME),
            (Some("/%2f%2fevil.example"), HOME),
            (Some("/%2F%2Fevil.example"), HOME),
            (Some("%2f%2fevil.example"), HOME),
            (Some("/%5cevil.example"), HOME),
            (Some("/%5Cevil.example"), HOME),
            (Some("/%252f%252fevil.example"), HOME),
            (Some("/%09/evil.example"), HOME),
            (Some("/%0d%0aSet-Cookie:x"), HOME),
            (Some("/%25252525252f"), HOME),
        ] {
            assert_eq!(safe_next(next), expected, "next = {next:?}");
        }
    }
}
