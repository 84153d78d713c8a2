//! Who is calling: the admin (the token printed at first start, or an API token) or a
//! host agent (its credential). Tokens are random, shown once, stored only as SHA-256.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use tresor_metadata::AgentRow;

use crate::error::ApiError;
use crate::state::AppState;

/// SHA-256 of a secret, hex: what the catalogue keeps.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        secret.as_bytes(),
    ))
}

/// A new secret: `PREFIX_` and 32 random bytes in hex. The prefix says what it is
/// when one turns up in a log or a file.
pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{prefix}_{}", hex::encode(b))
}

/// A short random id for catalogue rows.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// An administrator (admin token or API token, or a portal session: see
/// `portal/session.rs`; a session's writes must carry its CSRF token in `X-CSRF-Token`).
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Admin, ApiError> {
        let Some(token) = bearer(parts) else {
            let op = crate::portal::session::operator_of(state, &parts.headers)
                .ok_or_else(ApiError::unauthorized)?;
            let safe = matches!(
                parts.method,
                axum::http::Method::GET | axum::http::Method::HEAD
            );
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !safe && !crate::portal::session::same_secret(&op.csrf, sent) {
                return Err(ApiError::forbidden(
                    "a portal session's writes need its CSRF token (X-CSRF-Token)",
                ));
            }
            return Ok(Admin);
        };
        let hash = hash_secret(token);
        let store = state.store.clone();
        let found = tokio::task::spawn_blocking(move || store.find_token(&hash))
            .await
            .map_err(ApiError::internal)??;
        match found {
            Some(t) if t.role == "admin" => Ok(Admin),
            Some(_) => Err(ApiError::forbidden("this token may not manage vaults")),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// A registered host agent.
pub struct Agent(pub AgentRow);

impl FromRequestParts<Arc<AppState>> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Agent, ApiError> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        let hash = hash_secret(token);
        let store = state.store.clone();
        let found = tokio::task::spawn_blocking(move || store.find_agent_by_credential(&hash))
            .await
            .map_err(ApiError::internal)??;
        found.map(Agent).ok_or_else(ApiError::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = new_secret("tresor_admin");
        assert!(a.starts_with("tresor_admin_"));
        assert_ne!(a, new_secret("tresor_admin"));
        assert_eq!(hash_secret("x").len(), 64);
        assert_ne!(hash_secret(&a), a);
    }
}
