//! Signing in: a bearer token or an agent's credential proven, a portal session
//! opened (with a token, or a user's name, password and TOTP code), found, closed. The only place besides `sessions.rs` that makes a
//! [`Principal`].

use std::net::IpAddr;

use jiff::Timestamp;
use tresor_api::ErrorCode;

use crate::audit::{Actor, Target};
use crate::auth::{hash_secret, Principal};
use crate::error::{ServiceError, ServiceResult};
use crate::sessions::SignedIn;
use crate::state::Service;
use crate::usecases::tokens;

impl Service {
    /// The administrator behind a bearer token (the admin token or an API token),
    /// calling from `origin`. An expired token is refused (`TokenExpired`); a user's
    /// token acts as the user, with those of its assignments the user still holds.
    pub async fn authenticate_admin(
        &self,
        token: &str,
        origin: IpAddr,
    ) -> ServiceResult<Principal> {
        Ok(self.token_principal(token, origin).await?.0)
    }

    /// [`Service::authenticate_admin`], and when the token expires.
    async fn token_principal(
        &self,
        token: &str,
        origin: IpAddr,
    ) -> ServiceResult<(Principal, Option<Timestamp>)> {
        let hash = hash_secret(token);
        let store = self.store.clone();
        let now = self.now();
        tokio::task::spawn_blocking(move || {
            let Some(t) = store.find_token(&hash)? else {
                return Err(ServiceError::unauthorized());
            };
            if tokens::expired(&t, now) {
                return Err(tokens::token_expired(&t));
            }
            // What a token may do is its role assignments'; a row that does not
            // read as such grants nothing.
            let own = tokens::roles_of(&t)?;
            let principal = match &t.user_id {
                None => Principal::token(t.id, t.name, own, origin),
                Some(user_id) => {
                    // Deleting a user deletes their tokens; a token whose user is
                    // gone all the same is no credential.
                    let user = store
                        .get_user(user_id)?
                        .ok_or_else(ServiceError::unauthorized)?;
                    let holds = crate::usecases::users::user_roles(&user)?;
                    Principal::user_token(
                        t.id,
                        format!("{} (token {})", user.name, t.name),
                        user.id,
                        tokens::effective_roles(own, &holds),
                        origin,
                    )
                }
            };
            Ok((principal, t.expires))
        })
        .await
        .map_err(ServiceError::internal)?
    }

    /// The host agent behind a bearer credential, calling from `origin`.
    pub async fn authenticate_agent(
        &self,
        credential: &str,
        origin: IpAddr,
    ) -> ServiceResult<Principal> {
        let hash = hash_secret(credential);
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || store.find_agent_by_credential(&hash))
            .await
            .map_err(ServiceError::internal)??;
        found
            .map(|a| Principal::agent(a, origin))
            .ok_or_else(ServiceError::unauthorized)
    }
}

impl Service {
    /// Signs in with a token from `client`: a new session's id. Failed attempts are
    /// limited per address (`TooManyAttempts`). Both are recorded in the audit log
    /// (`signin`; an address refused before its token is looked at is not: that
    /// refusal is what keeps a guesser from filling the log).
    pub async fn sign_in(&self, token: &str, client: IpAddr) -> ServiceResult<String> {
        self.sign_in_allowed(client)?;
        match self.token_principal(token, client).await {
            Ok((p, expires)) => {
                tracing::info!(token = ?p.name(), %client, "portal sign-in");
                // Recorded before the session opens: a sign-in that cannot be
                // recorded opens none.
                let target = Target::object(p.name()).detail("portal");
                self.audited(&p, "signin", target, Ok(())).await?;
                Ok(self.sessions.open(&p, self.now(), expires))
            }
            Err(e) => {
                tracing::warn!(%client, "portal sign-in with an unknown token");
                let refused = match self
                    .limiters
                    .sign_in
                    .take(client, std::time::Instant::now())
                {
                    Err(wait) => wait.error("failed sign-ins"),
                    Ok(()) => e,
                };
                let target = Target::object("").detail("portal");
                self.audited_as(Actor::anonymous(client), "signin", target, Err(refused))
                    .await
            }
        }
    }

    /// Signs in a user with their name and password, and a TOTP code if they enabled
    /// one (each code once: a replayed one is refused), from `client`: a new session's
    /// id, the session holding the user's role assignments. Refusals say not which part
    /// was wrong (`InvalidSignIn`), are counted per address like failed token sign-ins
    /// and, when they carry a code, per name tried (`attempts::CodeLimiter`: five in 15
    /// minutes, then `TooManyAttempts` for that name from any address), and are
    /// recorded in the audit log with the name tried.
    pub async fn sign_in_user(
        self: &std::sync::Arc<Self>,
        name: &str,
        password: &str,
        totp: Option<&str>,
        client: IpAddr,
    ) -> ServiceResult<String> {
        self.sign_in_allowed(client)?;
        let (name, password) = (name.trim().to_string(), password.to_string());
        let code = totp.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
        let tried = name.clone();
        let with_code = code.is_some();
        if with_code {
            // Refused before the password is looked at, so the refusal tells nothing
            // of it; it costs the address an attempt, so hammering stays bounded.
            if let Err(wait) = self.limiters.codes.check(&tried, self.now()) {
                tracing::warn!(%client, user = %tried, "sign-in with a TOTP code refused: too many failed for this user");
                let refused = match self
                    .limiters
                    .sign_in
                    .take(client, std::time::Instant::now())
                {
                    Err(address) => address.error("failed sign-ins"),
                    Ok(()) => wait.user_error(&tried),
                };
                let target = Target::object(&tried).detail("portal, password");
                return self
                    .audited_as(Actor::anonymous(client), "signin", target, Err(refused))
                    .await;
            }
        }
        let user = self
            .blocking(move |s| {
                let found = s.store.find_user_by_name(&name)?;
                // An unknown name costs as much time as a wrong password.
                let hash = found.as_ref().map_or(crate::auth::passwords::decoy(), |u| {
                    u.password_hash.as_str()
                });
                let password_ok = crate::auth::passwords::verify(&password, hash);
                let Some(user) = found.filter(|_| password_ok) else {
                    return Ok(None);
                };
                let now = s.now().as_second().max(0) as u64;
                // A code is taken once: its time step must be later than the last
                // one this user signed in with (so a code seen over a shoulder, or
                // replayed from a recording, is worth nothing).
                let second_ok = match (&user.totp_secret, &code) {
                    (None, _) => true,
                    (Some(secret), Some(code)) => {
                        match crate::auth::totp::matching_step(secret, code, now) {
                            Some(step) => s.store.accept_totp_step(&user.id, step)?,
                            None => false,
                        }
                    }
                    (Some(_), None) => false,
                };
                if !second_ok {
                    return Ok(None);
                }
                let roles = crate::usecases::users::user_roles(&user)?;
                Ok(Some((user, roles)))
            })
            .await?;
        match user {
            Some((user, roles)) => {
                let p = Principal::user(user.id, user.name, roles, client);
                tracing::info!(user = ?p.name(), %client, "portal sign-in");
                let target = Target::object(p.name()).detail("portal, password");
                self.audited(&p, "signin", target, Ok(())).await?;
                Ok(self.sessions.open(&p, self.now(), None))
            }
            None => {
                tracing::warn!(%client, "portal sign-in of a user refused");
                if with_code {
                    self.limiters.codes.fail(&tried, self.now());
                }
                let refused = match self
                    .limiters
                    .sign_in
                    .take(client, std::time::Instant::now())
                {
                    Err(wait) => wait.error("failed sign-ins"),
                    Ok(()) => ServiceError::new(
                        ErrorCode::InvalidSignIn,
                        "the user name, password or TOTP code is wrong",
                        "check them and try again; a TOTP code changes every 30 seconds",
                    ),
                };
                let target = Target::object(&tried).detail("portal, password");
                self.audited_as(Actor::anonymous(client), "signin", target, Err(refused))
                    .await
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

    /// The live session of `id`, if any, for a request from `origin`.
    pub fn session(&self, id: &str, origin: IpAddr) -> Option<SignedIn> {
        self.sessions.find(id, self.now(), origin)
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
