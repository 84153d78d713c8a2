//! Who is calling: the admin (the token printed at first start, or an API token, or a
//! portal session opened with one) or a host agent (its credential). Tokens are
//! random, shown once, stored only as SHA-256.
//!
//! A [`Principal`] is made here and nowhere else: its fields are private and it has
//! no public constructor, so an adapter holds one only after the service checked a
//! credential. Every use case takes one and says what it needs of it.

pub mod passwords;
pub mod totp;

use std::net::IpAddr;

use rand::RngCore;
use tresor_domain::access::{authorize, Permission, RoleAssignment, Target};
use tresor_metadata::AgentRow;

use crate::error::{ServiceError, ServiceResult};

/// SHA-256 of a secret, hex: what the catalogue keeps.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        secret.as_bytes(),
    ))
}

/// A new secret: `PREFIX_` and 32 random bytes in hex. The prefix says what it is
/// when one turns up in a log or a file; a repository's passphrase of this form gets
/// a key file without Argon2id (`tresor_engine::is_generated_secret`).
pub fn new_secret(prefix: &str) -> String {
    tresor_engine::generate_secret(&format!("{prefix}_"))
}

/// A short random id for catalogue rows.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Compares secrets without leaking where they differ through timing.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An authenticated caller. See the module's comment: only this crate makes one.
///
/// Code outside the service cannot make one, neither by its fields nor otherwise:
///
/// ```compile_fail
/// let forged = tresor_service::Principal { who: unimplemented!(), origin: unimplemented!() };
/// ```
///
/// ```compile_fail
/// let forged = tresor_service::Principal::token("id".into(), "admin".into(), vec![], [127, 0, 0, 1].into());
/// ```
#[derive(Debug, Clone)]
pub struct Principal {
    who: Who,
    /// The client's address, as the adapter saw the connection (the audit log's
    /// "from where").
    origin: IpAddr,
}

#[derive(Debug, Clone)]
enum Who {
    /// The admin token or an API token (by id and name), or a user signed in with a
    /// password (`user_id`, and no token id), or a user's token (both), with the
    /// roles it holds.
    Token {
        token_id: String,
        name: String,
        assignments: Vec<RoleAssignment>,
        user_id: Option<String>,
    },
    /// A registered host agent.
    Agent(AgentRow),
}

impl Principal {
    /// Only `usecases/sign_in.rs` and `sessions.rs` make principals, after checking a
    /// credential.
    pub(crate) fn token(
        token_id: String,
        name: String,
        assignments: Vec<RoleAssignment>,
        origin: IpAddr,
    ) -> Principal {
        Principal {
            who: Who::Token {
                token_id,
                name,
                assignments,
                user_id: None,
            },
            origin,
        }
    }

    /// A user, after their password (and TOTP code) was checked: named by their name,
    /// holding their role assignments. Made only in `usecases/sign_in.rs` and
    /// `sessions.rs`.
    pub(crate) fn user(
        user_id: String,
        name: String,
        assignments: Vec<RoleAssignment>,
        origin: IpAddr,
    ) -> Principal {
        Principal {
            who: Who::Token {
                token_id: String::new(),
                name,
                assignments,
                user_id: Some(user_id),
            },
            origin,
        }
    }

    /// A user's API token, after its secret was checked: acting as the user, with
    /// those of the token's assignments the user still holds. Named `user (token
    /// name)`. Made only in `usecases/sign_in.rs` and `sessions.rs`.
    pub(crate) fn user_token(
        token_id: String,
        name: String,
        user_id: String,
        assignments: Vec<RoleAssignment>,
        origin: IpAddr,
    ) -> Principal {
        Principal {
            who: Who::Token {
                token_id,
                name,
                assignments,
                user_id: Some(user_id),
            },
            origin,
        }
    }

    pub(crate) fn agent(agent: AgentRow, origin: IpAddr) -> Principal {
        Principal {
            who: Who::Agent(agent),
            origin,
        }
    }

    /// The client's IP address.
    pub fn origin(&self) -> IpAddr {
        self.origin
    }

    /// `admin` or `agent`: the audit log's actor kind.
    pub fn kind(&self) -> &'static str {
        match &self.who {
            Who::Token {
                user_id: Some(_), ..
            } => "user",
            Who::Token { .. } => "admin",
            Who::Agent(_) => "agent",
        }
    }

    /// A name for logs and the portal's header: the token's name or the agent's host.
    pub fn name(&self) -> &str {
        match &self.who {
            Who::Token { name, .. } => name,
            Who::Agent(a) => &a.host,
        }
    }

    /// The token that proved it, for an administrator.
    pub fn token_id(&self) -> Option<&str> {
        match &self.who {
            Who::Token { token_id, .. } if !token_id.is_empty() => Some(token_id),
            _ => None,
        }
    }

    /// The user it is (signed in with a password, or through one of their tokens),
    /// if any.
    pub fn user_id(&self) -> Option<&str> {
        match &self.who {
            Who::Token {
                user_id: Some(u), ..
            } => Some(u),
            _ => None,
        }
    }

    /// The role assignments of a token (none for an agent).
    pub fn assignments(&self) -> &[RoleAssignment] {
        match &self.who {
            Who::Token { assignments, .. } => assignments,
            Who::Agent(_) => &[],
        }
    }

    /// May do `permission` on `target` (the domain's access model decides:
    /// `tresor_domain::access::authorize`), or `MissingPermission` (403) naming both.
    pub(crate) fn require(&self, permission: Permission, target: &Target) -> ServiceResult<()> {
        match &self.who {
            Who::Token { assignments, .. } => Ok(authorize(assignments, permission, target)?),
            // An agent's credential is no token: to a call for administrators it is
            // as good as none.
            Who::Agent(_) => Err(ServiceError::unauthorized()),
        }
    }

    /// Holds `permission` at some scope (a list then shows what its scopes cover).
    pub(crate) fn require_somewhere(&self, permission: Permission) -> ServiceResult<()> {
        match &self.who {
            Who::Token { assignments, .. }
                if assignments.iter().any(|a| a.role.grants(permission)) =>
            {
                Ok(())
            }
            _ => self.require(permission, &Target::Installation),
        }
    }

    /// Whether it may do `permission` on `target` (for filtering lists).
    pub(crate) fn may(&self, permission: Permission, target: &Target) -> bool {
        self.require(permission, target).is_ok()
    }

    /// May do `permission` on the installation as a whole.
    pub(crate) fn require_installation(&self, permission: Permission) -> ServiceResult<()> {
        self.require(permission, &Target::Installation)
    }

    /// The calls of a host agent: its jobs and its own repositories.
    pub(crate) fn require_agent(&self) -> ServiceResult<&AgentRow> {
        match &self.who {
            Who::Agent(a) => Ok(a),
            Who::Token { .. } => Err(ServiceError::unauthorized()),
        }
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
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
