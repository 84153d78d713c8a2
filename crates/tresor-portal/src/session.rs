//! Signing in to the portal: a token (the admin token or an API token), or a user's
//! name and password (and TOTP code), buys a session
//! (`tresor_service::sessions`), whose id travels in the `tresor_session` cookie.
//!
//! - Every session has a CSRF token. Every form carries it in a hidden field and every
//!   state-changing request is refused without it; the portal's scripts send it as
//!   `X-CSRF-Token` when they call the API with the session.
//! - The sign-in form itself is protected by a double-submit cookie (`tresor_login`),
//!   so that no other site can sign a browser in with a token of its choosing.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use tresor_service::auth::same_secret;
use tresor_service::usecases::permissions::PermissionSet;
use tresor_service::{Principal, Service};
use tresor_web::session_of;

use crate::urls::url_encode;

/// A signed-in operator. Extracting it from a request without a live session sends
/// the browser to the sign-in page.
#[derive(Debug, Clone)]
pub struct Operator {
    /// Who signed in, for every use case the pages call.
    pub principal: Principal,
    /// The session's CSRF token, for forms.
    pub csrf: String,
    /// The name of the token or user that signed in (shown in the header).
    pub who: String,
    /// What it may do on the installation as a whole (the navigation's links, "+ Add"
    /// a vault, users); a vault's pages ask `permissions::on_vault`.
    pub can: PermissionSet,
    /// Whether it sees resource guards (reads vaults somewhere, or approves for one):
    /// the navigation's link.
    pub sees_guards: bool,
}

impl Operator {
    /// Whether a user (not a token) signed in: only users have "My account".
    pub fn is_user(&self) -> bool {
        self.principal.user_id().is_some()
    }

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

impl FromRequestParts<Arc<Service>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<Operator, Response> {
        match session_of(service, parts) {
            Some(s) => Ok(Operator {
                sees_guards: service.sees_resource_guards(&s.principal).await,
                who: s.principal.name().to_string(),
                can: service.permissions(&s.principal, None),
                principal: s.principal,
                csrf: s.csrf,
            }),
            None => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                Err(Redirect::to(&format!("/login?next={}", url_encode(next))).into_response())
            }
        }
    }
}
