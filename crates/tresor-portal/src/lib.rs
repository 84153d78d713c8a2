//! The web portal: the seed's click path in a browser, served by `tresor serve`.
//!
//! Pages are rendered on the server (maud) from the vault service's use cases, the
//! very ones the REST API calls, so a page shows exactly what the API says and a form
//! obeys exactly the API's rules: a form handler builds the `tresor-api` request,
//! calls the use case with the signed-in operator's principal, and on an error shows
//! the page again with the error's message, code and recommendation.
//!
//! - `session.rs`: the signed-in operator, from the session cookie; CSRF checks.
//! - `layout.rs`: the page shell and shared pieces; `urls.rs`: percent-encoding.
//! - `vaults.rs`: the vault list, "+ Add", a vault's overview and backup configuration.
//! - `backup.rs`: the "+ Backup" wizard (where, what, policy, VMs, enable).
//! - `items/`: backup items: the list and one item's page (`page.rs`), what those
//!   pages share (`shared.rs`), back up now (`backup_now.rs`), restore from a
//!   recovery point (`restore.rs`), stop backup (`stop.rs`), change policy and resume
//!   backup (`policy.rs`), the recovery points with delete and undelete (`points.rs`).
//! - `jobs.rs`: backup jobs, filtered, with live progress.
//! - `policies/`: backup policies: the list, details and delete (`pages.rs`), a
//!   policy in words (`summary.rs`), the create and edit form as typed and its
//!   parsing (`form.rs`), the form's page and its handlers (`edit.rs`).
//! - `agents.rs`: host agents, vault credentials, preflight per VM; `vm_page.rs`: one
//!   VM's own page (its facts, protection, points, "Back up" / "Back up now" / "Restore").
//! - `users.rs`: users, their role assignments and TOTP state (`Access.Manage`);
//!   `account.rs`: "My account" (own password and TOTP) for a signed-in user.
//! - `tokens.rs`: "My account → API tokens": one's own tokens, made and revoked.
//! - `guards.rs`: resource guards, their list and "+ Create", changing and deleting
//!   one; `guard_page.rs`: one guard's page (approvers, vaults, critical operations,
//!   requests); `guard_requests.rs`: asking for an approval, approving, rejecting.
//! - `permissions.rs`: what the operator may do, asked of the service, so that each
//!   page shows only the buttons, forms and links the operator may use.
//! - `assets/`: the style sheet (light and dark) and the one script.
//!
//! **Architecture invariant:** the portal knows HTTP and HTML and nothing of storage:
//! everything it shows or changes goes through a use case of `tresor-service`, never
//! the catalogue or the repositories, and nothing of the REST adapter.

/// `let v = or_return!(vault_of(&state, &op, &vault).await);`: the value, or the
/// handler returns the error page at once.
///
/// Page handlers look up their vault (and item, policy...) first, through helpers that
/// return `Result<T, Response>` whose error is the page to show; this keeps each of
/// those look-ups to one line. Defined before the modules so they can use it (as
/// `or_page!`).
macro_rules! or_return {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// `let jobs = or_page!(&op, state.jobs(&op.principal, ..).await);`: a use case's
/// answer, or the handler returns the page for its error (`vaults::error_page`).
macro_rules! or_page {
    ($op:expr, $answer:expr) => {
        match $answer {
            Ok(v) => v,
            Err(e) => return $crate::vaults::error_page($op, &e),
        }
    };
}

pub mod account;
pub mod agents;
pub mod audit;
pub mod backup;
pub mod guard_page;
pub mod guard_requests;
pub mod guards;
pub mod items;
pub mod jobs;
pub mod layout;
pub mod permissions;
pub mod policies;
pub mod session;
pub mod tokens;
pub mod urls;
pub mod users;
pub mod vaults;
pub mod vm_page;
pub mod vm_words;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use maud::html;
use serde::{Deserialize, Serialize};
use tresor_api::ErrorCode;
use tresor_service::auth::{new_secret, same_secret};
use tresor_service::Service;
use tresor_web::cookies::{cookie, set_cookie, LOGIN_COOKIE, SESSION_COOKIE};
use tresor_web::{ClientIp, HttpError};

use layout::page;
use session::Operator;
use urls::{percent_decode, url_encode};

/// The largest body a portal request may carry: forms are small.
const MAX_FORM: usize = 64 << 10;

pub fn router(state: Arc<Service>) -> Router {
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
        .merge(vm_page::routes())
        .merge(audit::routes())
        .merge(users::routes())
        .merge(account::routes())
        .merge(tokens::routes())
        .merge(guards::routes())
        .merge(guard_requests::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
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
        let decoded = percent_decode(&form);
        if decoded == form {
            return n.to_string();
        }
        form = decoded;
    }
    // Encoded four times over: no page of this portal needs that.
    HOME.to_string()
}

async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    let token = new_secret("login");
    let body = html! {
        section.signin {
            h1 { "Sign in to Tresor" }
            p.muted { "Use the admin token the server printed when it first started (also in DATA/cli.json), or an API token." }
            @if q.failed.is_some() {
                div.alert.bad role="alert" { "That token, or that user name, password or code, is not valid. Check it and try again." }
            }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(safe_next(q.next.as_deref()));
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button.primary type="submit" { "Sign in" }
            }
            h2 { "Or as a user" }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(safe_next(q.next.as_deref()));
                label for="user" { "User name" }
                input #user type="text" name="user" autocomplete="username" required;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                label for="totp" { "Authenticator code (if enabled)" }
                input #totp type="text" name="totp" inputmode="numeric" pattern="[0-9]{6}" autocomplete="one-time-code";
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
    /// A token; or, instead, a user's name, password and TOTP code.
    #[serde(default)]
    token: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

async fn login(
    State(state): State<Arc<Service>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    // An address that failed too often is refused before its token is even looked
    // at, so that guessing gets no answer.
    if let Err(e) = state.sign_in_allowed(ip) {
        return HttpError(e).into_response();
    }
    let ok_origin = cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same_secret(c, &f.csrf));
    if !ok_origin {
        return (
            StatusCode::FORBIDDEN,
            "The sign-in form was not sent from this portal's page. Open /login again.",
        )
            .into_response();
    }
    let next = safe_next(f.next.as_deref());
    let signed_in = if f.user.trim().is_empty() {
        state.sign_in(f.token.trim(), ip).await
    } else {
        state
            .sign_in_user(&f.user, &f.password, f.totp.as_deref(), ip)
            .await
    };
    match signed_in {
        Ok(id) => {
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &id, 12 * 3600),
            );
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0));
            r
        }
        Err(e) if e.code == ErrorCode::TooManyAttempts => HttpError(e).into_response(),
        Err(_) => {
            Redirect::to(&format!("/login?failed=1&next={}", url_encode(&next))).into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<Arc<Service>>,
    op: Operator,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        state.sign_out(id);
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

/// The answer of `/portal/validate`: whether the value keeps the rule, and if not,
/// the rule's code, message and recommendation.
#[derive(Debug, Default, Serialize)]
struct Verdict {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
}

impl Verdict {
    fn refused(code: &str, message: String, rule: String) -> Verdict {
        Verdict {
            ok: false,
            code: Some(code.to_string()),
            message: Some(message),
            rule: Some(rule),
        }
    }
}

/// Live validation for forms: the domain's own rules, answered as you type.
async fn validate(
    op: Operator,
    State(state): State<Arc<Service>>,
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
        Err(e) => Verdict::refused(e.code, e.message, e.recommendation),
        Ok(()) if q.kind == "vault-name" => {
            let taken = state
                .vault_name_taken(&op.principal, q.value.clone())
                .await
                .unwrap_or(false);
            if taken {
                Verdict::refused(
                    ErrorCode::VaultAlreadyExists.as_str(),
                    format!("A vault named {} already exists.", q.value),
                    "Names are unique in this installation, whatever their case.".into(),
                )
            } else {
                Verdict {
                    ok: true,
                    ..Verdict::default()
                }
            }
        }
        Ok(()) => Verdict {
            ok: true,
            ..Verdict::default()
        },
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
