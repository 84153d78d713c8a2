//! Portal sessions: a token (the admin token or an API token), or a user's name and
//! password (and TOTP code), buys a session.
//!
//! - The session id is random; the service keeps only its SHA-256. (How it travels,
//!   in an `HttpOnly; Secure; SameSite=Strict` cookie, is the portal's business.)
//! - Every session has a CSRF token that the portal puts in its forms and checks on
//!   every state-changing request.
//! - Sessions live in memory: a server restart signs everyone out. They end after
//!   12 hours, or 1 hour without a request, or at sign-out, or when the token that
//!   opened them is revoked (`DELETE /api/v1/tokens/{id}`) or expires, or the user
//!   who opened them (with a password or one of their tokens) is deleted, changes
//!   their password or has their roles changed.
//! - Failed sign-ins are limited per client address (`attempts.rs`); signing in
//!   and out are use cases (`usecases/sign_in.rs`).

use std::collections::HashMap;
use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;

use tresor_domain::access::RoleAssignment;

use crate::auth::{hash_secret, new_secret, Principal};

const MAX_AGE: SignedDuration = SignedDuration::from_hours(12);
const IDLE: SignedDuration = SignedDuration::from_hours(1);

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    /// The name of the token that signed in (shown in the header).
    who: String,
    /// The id of that token: revoking it ends the session (empty for a user).
    token_id: String,
    /// The user who signed in, with a password or one of their tokens: deleting
    /// them ends the session.
    user_id: Option<String>,
    /// When the token that opened it expires: the session ends then too.
    expires: Option<Timestamp>,
    /// The token's role assignments when the session opened.
    assignments: Vec<RoleAssignment>,
    created: Timestamp,
    last_seen: Timestamp,
}

/// A live session: who it is, and its CSRF token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub principal: Principal,
    /// The CSRF token of the session's forms and script calls.
    pub csrf: String,
}

/// The signed-in sessions, by SHA-256 of their id.
#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session, which ends at `expires` at the latest (the expiry of the
    /// token that opened it); returns its id.
    pub(crate) fn open(
        &self,
        by: &Principal,
        now: Timestamp,
        expires: Option<Timestamp>,
    ) -> String {
        let (token_id, who) = (by.token_id().unwrap_or_default(), by.name());
        let id = new_secret("tresor_session");
        let mut map = self.by_hash.lock();
        map.retain(|_, s| alive(s, now));
        map.insert(
            hash_secret(&id),
            Session {
                csrf: new_secret("csrf"),
                who: who.to_string(),
                token_id: token_id.to_string(),
                user_id: by.user_id().map(str::to_string),
                assignments: by.assignments().to_vec(),
                expires,
                created: now,
                last_seen: now,
            },
        );
        id
    }

    /// The session of `id`, if it is alive (and marks it used), for a request from
    /// `origin`.
    pub(crate) fn find(&self, id: &str, now: Timestamp, origin: IpAddr) -> Option<SignedIn> {
        let mut map = self.by_hash.lock();
        let key = hash_secret(id);
        let s = map.get_mut(&key)?;
        if !alive(s, now) {
            map.remove(&key);
            return None;
        }
        s.last_seen = now;
        let principal = match &s.user_id {
            Some(user) if !s.token_id.is_empty() => Principal::user_token(
                s.token_id.clone(),
                s.who.clone(),
                user.clone(),
                s.assignments.clone(),
                origin,
            ),
            Some(user) => {
                Principal::user(user.clone(), s.who.clone(), s.assignments.clone(), origin)
            }
            None => Principal::token(
                s.token_id.clone(),
                s.who.clone(),
                s.assignments.clone(),
                origin,
            ),
        };
        Some(SignedIn {
            principal,
            csrf: s.csrf.clone(),
        })
    }

    pub(crate) fn close(&self, id: &str) {
        self.by_hash.lock().remove(&hash_secret(id));
    }

    /// Ends every session opened with the token `token_id`; returns how many.
    pub(crate) fn close_for_token(&self, token_id: &str) -> usize {
        let mut map = self.by_hash.lock();
        let before = map.len();
        map.retain(|_, s| s.token_id != token_id);
        before - map.len()
    }

    /// Ends every session of the user `user_id`; returns how many.
    pub(crate) fn close_for_user(&self, user_id: &str) -> usize {
        let mut map = self.by_hash.lock();
        let before = map.len();
        map.retain(|_, s| s.user_id.as_deref() != Some(user_id));
        before - map.len()
    }
}

fn alive(s: &Session, now: Timestamp) -> bool {
    now < s.created + MAX_AGE && now < s.last_seen + IDLE && s.expires.is_none_or(|e| now < e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by(token_id: &str, name: &str) -> Principal {
        Principal::token(
            token_id.into(),
            name.into(),
            Vec::new(),
            IpAddr::from([127, 0, 0, 1]),
        )
    }

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::default();
        let ip = IpAddr::from([127, 0, 0, 1]);
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let id = s.open(&by("t1", "admin"), t0, None);
        assert!(s
            .find(&id, t0 + SignedDuration::from_mins(30), ip)
            .is_some());
        // Idle for more than an hour: gone.
        assert!(s
            .find(&id, t0 + SignedDuration::from_mins(91), ip)
            .is_none());
        let id = s.open(&by("t1", "admin"), t0, None);
        let mut t = t0;
        for _ in 0..13 {
            t += SignedDuration::from_mins(55);
            let alive = s.find(&id, t, ip).is_some();
            assert_eq!(alive, t < t0 + MAX_AGE, "{t}");
        }
        let id = s.open(&by("t1", "admin"), t0, None);
        s.close(&id);
        assert!(s.find(&id, t0, ip).is_none());
        let a = s.open(&by("t-ops", "ops"), t0, None);
        let b = s.open(&by("t-ops", "ops"), t0, None);
        let c = s.open(&by("t-scripts", "scripts"), t0, None);
        assert_eq!(s.close_for_token("t-ops"), 2);
        assert!(s.find(&a, t0, ip).is_none() && s.find(&b, t0, ip).is_none());
        assert!(s.find(&c, t0, ip).is_some());
        assert!(s.find("tresor_session_forged", t0, ip).is_none());
        // A session ends when the token that opened it expires.
        let expires = t0 + SignedDuration::from_mins(10);
        let id = s.open(&by("t-short", "short"), t0, Some(expires));
        assert!(s
            .find(&id, expires - SignedDuration::from_secs(1), ip)
            .is_some());
        assert!(s.find(&id, expires, ip).is_none());
    }
}
