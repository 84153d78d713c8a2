//! Signing in: a bearer token or an agent's credential proven, a portal session
//! opened, found, closed. The only place besides `sessions.rs` that makes a
//! [`Principal`].

use std::net::IpAddr;

use crate::auth::{hash_secret, Principal};
use crate::error::{ServiceError, ServiceResult};
use crate::sessions::SignedIn;
use crate::state::Service;

impl Service {
    /// The administrator behind a bearer token (the admin token or an API token).
    pub async fn authenticate_admin(&self, token: &str) -> ServiceResult<Principal> {
        let hash = hash_secret(token);
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || store.find_token(&hash))
            .await
            .map_err(ServiceError::internal)??;
        match found {
            Some(t) if t.role == "admin" => Ok(Principal::admin(t.id, t.name)),
            Some(_) => Err(ServiceError::forbidden("this token may not manage vaults")),
            None => Err(ServiceError::unauthorized()),
        }
    }

    /// The host agent behind a bearer credential.
    pub async fn authenticate_agent(&self, credential: &str) -> ServiceResult<Principal> {
        let hash = hash_secret(credential);
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || store.find_agent_by_credential(&hash))
            .await
            .map_err(ServiceError::internal)??;
        found
            .map(Principal::agent)
            .ok_or_else(ServiceError::unauthorized)
    }
}

impl Service {
    /// Signs in with a token from `client`: a new session's id. Failed attempts are
    /// limited per address (`TooManyAttempts`).
    pub async fn sign_in(&self, token: &str, client: IpAddr) -> ServiceResult<String> {
        self.sign_in_allowed(client)?;
        match self.authenticate_admin(token).await {
            Ok(p) => {
                let token_id = p.token_id().unwrap_or_default().to_string();
                tracing::info!(token = ?p.name(), %client, "portal sign-in");
                Ok(self.sessions.open(&token_id, p.name(), self.now()))
            }
            Err(e) => {
                tracing::warn!(%client, "portal sign-in with an unknown token");
                if let Err(wait) = self
                    .limiters
                    .sign_in
                    .take(client, std::time::Instant::now())
                {
                    return Err(wait.error("failed sign-ins"));
                }
                Err(e)
            }
        }
    }

    /// Whether `client` may try to sign in now: an address that failed too often is
    /// refused before its token is even looked at, so that guessing gets no answer.
    pub fn sign_in_allowed(&self, client: IpAddr) -> ServiceResult<()> {
        self.limiters
            .sign_in
            .check(client, std::time::Instant::now())
            .map_err(|wait| {
                tracing::warn!(%client, "portal sign-in refused: too many failed attempts");
                wait.error("failed sign-ins")
            })
    }

    /// The live session of `id`, if any.
    pub fn session(&self, id: &str) -> Option<SignedIn> {
        self.sessions.find(id, self.now())
    }

    /// Ends the session of `id`.
    pub fn sign_out(&self, id: &str) {
        self.sessions.close(id)
    }
}

/// The refusal of a session request whose CSRF token is missing or wrong.
pub fn csrf_mismatch() -> ServiceError {
    ServiceError::forbidden("a portal session's writes need its CSRF token (X-CSRF-Token)")
}
