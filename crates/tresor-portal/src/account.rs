//! "My account", for every user signed in with a name and password: their roles, a
//! link to their API tokens (`tokens.rs`), a new password (giving the current one),
//! and the authenticator code (TOTP): turn it on (the secret in base32 and as an
//! `otpauth://` URI, confirmed with its first code) or off. A session opened with a
//! token has no account.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;
use tresor_api::users::{ConfirmTotp, SetPassword, TotpSetup, User};
use tresor_api::ErrorCode;
use tresor_service::auth::totp;
use tresor_service::{Service, ServiceError};

use crate::layout::{badge, csrf_field, error_box, notice, page, with_status, Done, Field};
use crate::session::Operator;
use crate::urls::url_encode;
use crate::vaults::error_page;
use crate::CsrfForm;

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/account", get(account))
        .route("/account/password", post(set_password))
        .route("/account/totp", post(enable_totp))
        .route("/account/totp/confirm", post(confirm_totp))
        .route("/account/totp/disable", post(disable_totp))
}

async fn account(
    op: Operator,
    State(state): State<Arc<Service>>,
    Query(q): Query<Done>,
) -> Response {
    account_page(&op, &state, None, q.done.as_deref()).await
}

async fn account_page(
    op: &Operator,
    state: &Arc<Service>,
    error: Option<&ServiceError>,
    done: Option<&str>,
) -> Response {
    let me: User = or_page!(op, state.own_user(&op.principal).await);
    let password_error = |codes: &[ErrorCode]| -> Option<String> {
        let e = error?;
        codes
            .contains(&e.code)
            .then(|| format!("{} {}", e.message, e.recommendation))
    };
    let body = html! {
        h1 { "My account" }
        p.muted { "Signed in as " strong { (me.name) } "." }
        @if let Some(d) = done { (notice(d)) }
        @if let Some(e) = error { (error_box(e)) }
        section.card aria-labelledby="my-roles-h" {
            h2 #my-roles-h { "Your roles" }
            @if me.roles.is_empty() {
                p.muted { "No role: ask an Owner for one." }
            } @else {
                ul.plain #my-roles { @for a in &me.roles { li { strong { (a.role) } " at " code { (a.scope) } } } }
            }
        }
        section.card aria-labelledby="my-tokens-h" {
            h2 #my-tokens-h { "API tokens" }
            p.muted { "Tokens for scripts and tools, acting as you with no more than your roles." }
            a.button #api-tokens href="/account/tokens" { "API tokens" }
        }
        section.card aria-labelledby="password-h" {
            h2 #password-h { "Change password" }
            form.stack #change-password method="post" action="/account/password" novalidate {
                (csrf_field(op))
                (password_field("current_password", "Current password", "current-password",
                    "The password you signed in with.", password_error(&[ErrorCode::InvalidSignIn])))
                (password_field("new_password", "New password", "new-password",
                    "12 characters at least. Every session of yours ends: sign in again with it.",
                    password_error(&[ErrorCode::WeakPassword])))
                (password_field("repeat_password", "New password again", "new-password",
                    "The same, to rule out a typing slip.", password_error(&[ErrorCode::ConfirmationMismatch])))
                div { button.primary type="submit" { "Change password" } }
            }
        }
        section.card #totp aria-labelledby="totp-h" {
            h2 #totp-h { "Authenticator code" }
            @if me.totp {
                p #totp-state { (badge("Enabled")) " Signing in needs the six-digit code of your authenticator app." }
                form method="post" action="/account/totp/disable" data-confirm="Turn the authenticator code off? Signing in then needs your password only." {
                    (csrf_field(op))
                    button.danger #disable-totp type="submit" { "Turn off" }
                }
            } @else {
                p #totp-state { "Off: signing in needs your password only. With it on, a stolen password alone does not sign in." }
                form method="post" action="/account/totp" {
                    (csrf_field(op))
                    button.primary #enable-totp type="submit" { "Turn on" }
                }
            }
        }
    };
    with_status(page("My account", Some(op), &[], body), error)
}

fn password_field(
    id: &str,
    label: &str,
    autocomplete: &str,
    hint: &str,
    error: Option<String>,
) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) type="password" name=(id) autocomplete=(autocomplete) required
                aria-describedby={ (id) "-hint " (id) "-error" } aria-invalid=[error.as_ref().map(|_| "true")];
            p.hint id={ (id) "-hint" } { (hint) }
            p.error id={ (id) "-error" } aria-live="polite" { @if let Some(m) = &error { (m) } }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    repeat_password: String,
}

async fn set_password(
    op: Operator,
    State(state): State<Arc<Service>>,
    Form(f): Form<PasswordForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    if f.new_password != f.repeat_password {
        let e = ServiceError::new(
            ErrorCode::ConfirmationMismatch,
            "The new password and its repetition differ, so the password was not changed.",
            "Type the same new password twice.",
        );
        return account_page(&op, &state, Some(&e), None).await;
    }
    let req = SetPassword {
        password: f.new_password,
        current_password: Some(f.current_password),
    };
    match state
        .set_password(&op.principal, op.principal.name().to_string(), req)
        .await
    {
        // The change ended every session of the user, this one too.
        Ok(()) => Redirect::to("/login?next=%2Faccount").into_response(),
        Err(e) => account_page(&op, &state, Some(&e), None).await,
    }
}

/// The setup of a new secret: base32 for typing in, the URI for an app that reads
/// one, and the form for the first code.
fn totp_setup_page(op: &Operator, setup: &TotpSetup, error: Option<&ServiceError>) -> Response {
    let body = html! {
        h1 { "Turn on the authenticator code" }
        @if let Some(e) = error { (error_box(e)) }
        section.card aria-labelledby="secret-h" {
            h2 #secret-h { "1. Add Tresor to your authenticator app" }
            p { "Enter this key in the app (time-based, 6 digits, 30 seconds):" }
            p { code #totp-secret { (setup.secret) } }
            p { "Or give the app this link:" }
            p { code #totp-uri { (setup.uri) } }
            p.muted.small { "Keep the key secret: whoever holds it makes your codes. It is shown only now." }
        }
        section.card aria-labelledby="confirm-h" {
            h2 #confirm-h { "2. Confirm with the code the app shows" }
            form.stack #confirm-totp method="post" action="/account/totp/confirm" novalidate {
                (csrf_field(op))
                // Only to show the key again if the code is refused; the key that
                // counts is the one the server keeps.
                input type="hidden" name="secret" value=(setup.secret);
                (Field::new("code", "Code", "", "The six digits the app shows now.",
                    error.map(|e| e.message.as_str())).required().no_autocomplete())
                div { button.primary type="submit" { "Confirm" } " " a.button href="/account" { "Cancel" } }
            }
        }
    };
    with_status(
        page(
            "Authenticator code",
            Some(op),
            &[("My account", "/account")],
            body,
        ),
        error,
    )
}

async fn enable_totp(
    op: Operator,
    State(state): State<Arc<Service>>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    match state
        .enable_totp(&op.principal, op.principal.name().to_string())
        .await
    {
        Ok(setup) => totp_setup_page(&op, &setup, None),
        Err(e) => account_page(&op, &state, Some(&e), None).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    secret: String,
}

async fn confirm_totp(
    op: Operator,
    State(state): State<Arc<Service>>,
    Form(f): Form<ConfirmForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let name = op.principal.name().to_string();
    let req = ConfirmTotp {
        code: f.code.trim().to_string(),
    };
    match state.confirm_totp(&op.principal, name.clone(), req).await {
        Ok(()) => Redirect::to(&format!(
            "/account?done={}",
            url_encode("Authenticator code turned on: signing in now needs a code.")
        ))
        .into_response(),
        // The key shown again, if what came back is one (it is only shown).
        Err(e) if is_secret(&f.secret) => {
            let setup = TotpSetup {
                uri: totp::uri(&f.secret, &name),
                secret: f.secret,
            };
            totp_setup_page(&op, &setup, Some(&e))
        }
        Err(e) => account_page(&op, &state, Some(&e), None).await,
    }
}

/// A base32 TOTP key as `totp::new_secret` makes them (20 bytes: 32 characters).
fn is_secret(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

async fn disable_totp(
    op: Operator,
    State(state): State<Arc<Service>>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    match state
        .disable_totp(&op.principal, op.principal.name().to_string())
        .await
    {
        Ok(()) => Redirect::to(&format!(
            "/account?done={}",
            url_encode("Authenticator code turned off.")
        ))
        .into_response(),
        Err(e) => error_page(&op, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_of_the_service_shape_are_shown_again() {
        assert!(is_secret(&totp::new_secret()));
        for bad in [
            "",
            "abc",
            &"A".repeat(33),
            &"a".repeat(32),
            &"1".repeat(32),
            &"<".repeat(32),
        ] {
            assert!(!is_secret(bad), "{bad}");
        }
    }
}
