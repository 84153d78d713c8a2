//! "My account → API tokens", for a signed-in user: their own tokens (name, roles,
//! created, expires), a new one (name, expiry in days, roles: by default all of their
//! own, or fewer, or a narrower one; the secret shown once), and revoking one.
//!
//! The service decides what a token may hold (`TokenRoleNotHeld` for a role the user
//! lacks) and whose tokens one may revoke; its refusals are shown on the page.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use tresor_api::tokens::{CreateToken, NewToken, Token, MAX_EXPIRES_IN_DAYS};
use tresor_api::users::User;
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError};

use crate::layout::{
    badge, csrf_field, empty, error_box, field_error, form_value, notice, page, time, with_status,
    Done, Field,
};
use crate::session::Operator;
use crate::urls::url_encode;
use crate::users::{assignments_sent, role_options};
use crate::vaults::error_page;
use crate::CsrfForm;

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/account/tokens", get(list).post(create))
        .route("/account/tokens/{id}/revoke", post(revoke))
}

/// The trail of these pages.
const CRUMBS: &[(&str, &str)] = &[("My account", "/account")];

/// What "+ New token" was sent with, to show again after a refusal.
#[derive(Debug, Default)]
struct Typed {
    name: String,
    days: String,
    /// The own assignments kept ("Role scope"); `None`: all (the form's default).
    kept: Option<Vec<String>>,
}

/// The days a form sends: `None` (never expires) when left empty.
fn days_sent(text: &str) -> Result<Option<u32>, ServiceError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u32>().map(Some).map_err(|_| {
        ServiceError::new(
            ErrorCode::InvalidTokenExpiry,
            format!(
                "{:?} is not a whole number of days",
                text.chars().take(20).collect::<String>()
            ),
            format!("give 1 to {MAX_EXPIRES_IN_DAYS} days, or leave it empty for a token that does not expire"),
        )
    })
}

/// The caller's own tokens (the list of `Access.Manage` holds everyone's).
fn own_tokens(all: Vec<Token>, me: &User) -> Vec<Token> {
    all.into_iter()
        .filter(|t| {
            t.owner
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case(&me.name))
        })
        .collect()
}

async fn list(op: Operator, State(state): State<Arc<Service>>, Query(q): Query<Done>) -> Response {
    let typed = Typed {
        days: "90".into(),
        ..Typed::default()
    };
    tokens_page(&op, &state, &typed, None, q.done.as_deref()).await
}

async fn tokens_page(
    op: &Operator,
    state: &Arc<Service>,
    f: &Typed,
    error: Option<&ServiceError>,
    done: Option<&str>,
) -> Response {
    let me = or_page!(op, state.own_user(&op.principal).await);
    let tokens = own_tokens(or_page!(op, state.tokens(&op.principal).await), &me);
    let now = state.now();
    let body = html! {
        h1 { "API tokens" }
        p.muted { "Tokens let scripts and tools call Tresor's API as you, with the roles you give them (never more than yours; a role taken from you is taken from them). Each is shown once, when made." }
        @if let Some(d) = done { (notice(d)) }
        @if let Some(e) = error { (error_box(e)) }
        @if tokens.is_empty() {
            (empty("You have no API token.", None))
        } @else {
            table #tokens {
                caption.sr-only { "Your API tokens" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Roles" } th scope="col" { "Created" }
                    th scope="col" { "Expires" } th scope="col" { span.sr-only { "Actions" } }
                } }
                tbody {
                    @for t in &tokens {
                        tr data-token=(t.id) {
                            td { (t.name) }
                            td { ul.plain.roles { @for a in &t.roles { li { strong { (a.role) } " at " code { (a.scope) } } } } }
                            td { (time(Some(t.created))) }
                            td {
                                @match t.expires {
                                    Some(e) if e <= now => { (badge("Expired")) " " (time(Some(e))) },
                                    Some(e) => (time(Some(e))),
                                    None => span.muted { "Never" },
                                }
                            }
                            td.actions {
                                form.inline method="post" action={ "/account/tokens/" (url_encode(&t.id)) "/revoke" }
                                    data-confirm={ "Revoke token " (t.name) "? Whatever uses it stops working." } {
                                    (csrf_field(op))
                                    button.danger type="submit" aria-label={ "Revoke " (t.name) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card #add-token aria-labelledby="add-token-h" {
            h2 #add-token-h { "+ New token" }
            form.stack #new-token method="post" action="/account/tokens" novalidate {
                (csrf_field(op))
                (Field::new("name", "Name", &f.name, "Who uses it, to tell tokens apart: 1 to 100 characters.",
                    field_error(error, &[ErrorCode::InvalidTokenName]).as_deref()).required().no_autocomplete())
                (Field::new("expires_in_days", "Expires in (days)", &f.days,
                    "1 to 3650; empty for a token that does not expire. Short-lived tokens are safer.",
                    field_error(error, &[ErrorCode::InvalidTokenExpiry]).as_deref()).number(Some("3650"), None))
                fieldset #token-roles {
                    legend { "Roles" }
                    p.hint { "By default all of yours. Uncheck those it does not need, or give a narrower one." }
                    @for (n, a) in me.roles.iter().enumerate() {
                        @let value = format!("{} {}", a.role, a.scope);
                        label.choice for={ "keep-" (n) } {
                            input type="checkbox" id={ "keep-" (n) } name="keep" value=(value)
                                checked[f.kept.as_ref().is_none_or(|k| k.contains(&value))];
                            span { strong { (a.role) } " at " code { (a.scope) } }
                        }
                    }
                    div.field {
                        label for="role" { "Or also a role" }
                        select #role name="role" { option value="" { "(none)" } (role_options("")) }
                    }
                    (Field::new("scope", "at the scope", "/",
                        "/ (everything), /resourceGroups/GROUP, or /resourceGroups/GROUP/vaults/VAULT: within one of your own.",
                        field_error(error, &[ErrorCode::InvalidScope, ErrorCode::TokenRoleNotHeld]).as_deref()).no_autocomplete())
                }
                div { button.primary #create-token type="submit" { "Create token" } }
            }
        }
    };
    with_status(page("API tokens", Some(op), CRUMBS, body), error)
}

/// The new token, its secret shown this once.
fn secret_page(op: &Operator, t: &NewToken) -> Response {
    let body = html! {
        h1 { "Token " (t.name) " created" }
        div.alert.warn role="status" { "Copy the token now: it is shown only this once. Whoever holds it acts as you, with its roles." }
        section.card aria-labelledby="secret-h" {
            h2 #secret-h { "The token" }
            p { code #new-token-secret { (t.token) } }
            dl.props {
                dt { "Roles" } dd { ul.plain { @for a in &t.roles { li { strong { (a.role) } " at " code { (a.scope) } } } } }
                dt { "Expires" } dd { @match t.expires { Some(e) => (time(Some(e))), None => "Never" } }
            }
            p { "Scripts send it as " code { "Authorization: Bearer …" } "; the portal's sign-in form takes it too." }
        }
        a.button.primary href="/account/tokens" { "Done" }
    };
    let mut r = page(
        "New API token",
        Some(op),
        &[
            ("My account", "/account"),
            ("API tokens", "/account/tokens"),
        ],
        body,
    );
    // The secret stays out of every cache.
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

async fn create(
    op: Operator,
    State(state): State<Arc<Service>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = op.csrf_rejection(form_value(&pairs, "csrf")) {
        return r;
    }
    let typed = Typed {
        name: form_value(&pairs, "name").trim().to_string(),
        days: form_value(&pairs, "expires_in_days").trim().to_string(),
        kept: Some(
            pairs
                .iter()
                .filter(|(k, _)| k == "keep")
                .take(64)
                .map(|(_, v)| v.clone())
                .collect(),
        ),
    };
    let sent = assignments_sent(&pairs).and_then(|roles| {
        if roles.is_empty() {
            return Err(ServiceError::new(
                ErrorCode::InvalidRequest,
                "no role was chosen for the token, so it could do nothing",
                "check at least one of your roles, or give a role at a scope",
            ));
        }
        Ok((roles, days_sent(&typed.days)?))
    });
    let result = match sent {
        Ok((roles, expires_in_days)) => {
            let req = CreateToken {
                name: typed.name.clone(),
                roles: Some(roles),
                expires_in_days,
            };
            state.create_token(&op.principal, req).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(t) => secret_page(&op, &t),
        Err(e) => tokens_page(&op, &state, &typed, Some(&e), None).await,
    }
}

async fn revoke(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    match state.delete_token(&op.principal, id).await {
        Ok(()) => Redirect::to(&format!(
            "/account/tokens?done={}",
            url_encode("Token revoked: it no longer signs in or calls the API.")
        ))
        .into_response(),
        Err(e) => error_page(&op, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_read() {
        assert_eq!(days_sent("").unwrap(), None);
        assert_eq!(days_sent(" 30 ").unwrap(), Some(30));
        for bad in ["-1", "soon", "1e3"] {
            assert_eq!(
                days_sent(bad).unwrap_err().code,
                ErrorCode::InvalidTokenExpiry
            );
        }
    }
}
