//! API tokens: credentials for scripts and other tools, each with a name (so it can be
//! revoked alone), its own role assignments and, if asked, an expiry. The secret is
//! shown once, at creation.
//!
//! A token made by a user (signed in, or through one of their tokens) belongs to that
//! user, and holds no more than the caller: each of its assignments covered by one of
//! the caller's (`tresor_domain::access::within`). No one makes a token for another
//! user: a token acts as its user, and resource guards count approvals by person.
//! An installation credential with `Access.Manage` (the first admin token) makes
//! installation tokens, owned by no user.
//!
//! When a user's token authenticates, it acts with those of its assignments the user
//! still holds (`effective_roles`), so taking a role from a user takes it from their
//! tokens at once; deleting the user deletes their tokens (the catalogue cascades).

use std::collections::HashMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tresor_api::tokens::{CreateToken, NewToken, Token, MAX_EXPIRES_IN_DAYS};
use tresor_api::ErrorCode;
use tresor_domain::access::{within, Permission, Role, RoleAssignment, Scope};
use tresor_metadata::TokenRow;

use crate::audit::Target;
use crate::auth::{hash_secret, new_id, new_secret, Principal};
use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;

/// The longest token name, in characters.
pub const MAX_NAME: usize = 100;

/// A token's name: 1 to 100 characters without control characters, trimmed.
fn check_name(name: &str) -> ServiceResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ServiceError::new(
            ErrorCode::InvalidTokenName,
            format!(
                "a token needs a name of 1 to {MAX_NAME} characters, without control characters"
            ),
            "name it after who uses it (\"backup-reports\")",
        ));
    }
    Ok(name.to_string())
}

/// When a token made `now` to live `days` expires (`None`: never).
fn expiry(now: Timestamp, days: Option<u32>) -> ServiceResult<Option<Timestamp>> {
    match days {
        None => Ok(None),
        Some(d) if (1..=MAX_EXPIRES_IN_DAYS).contains(&d) => {
            Ok(Some(now + SignedDuration::from_hours(i64::from(d) * 24)))
        }
        Some(d) => Err(ServiceError::new(
            ErrorCode::InvalidTokenExpiry,
            format!("a token lives 1 to {MAX_EXPIRES_IN_DAYS} days, not {d}"),
            "give expiresInDays between 1 and 3650, or leave it out for a token that does not expire",
        )),
    }
}

/// Whether the token has expired at `now`.
pub(crate) fn expired(row: &TokenRow, now: Timestamp) -> bool {
    row.expires.is_some_and(|e| e <= now)
}

/// The refusal of an expired token, naming it.
pub(crate) fn token_expired(row: &TokenRow) -> ServiceError {
    ServiceError::new(
        ErrorCode::TokenExpired,
        format!(
            "the API token {:?} (id {}) expired at {}",
            row.name,
            row.id,
            row.expires.map(|e| e.to_string()).unwrap_or_default()
        ),
        "create a new token (tresor token create, or POST /api/v1/tokens) and use it instead; delete the expired one",
    )
}

/// What a user's token may do now: those of its own assignments that one of the
/// user's current assignments still covers.
pub(crate) fn effective_roles(
    own: Vec<RoleAssignment>,
    user_holds: &[RoleAssignment],
) -> Vec<RoleAssignment> {
    own.into_iter()
        .filter(|a| user_holds.iter().any(|h| h.covers(a)))
        .collect()
}

fn view(row: TokenRow, owners: &HashMap<String, String>) -> ServiceResult<Token> {
    Ok(Token {
        roles: roles_of(&row)?,
        owner: row.user_id.as_ref().map(|u| owner_name(owners, u)),
        id: row.id,
        name: row.name,
        created: row.created,
        expires: row.expires,
    })
}

/// A user's name by id; a user deleted meanwhile shows as their id.
fn owner_name(owners: &HashMap<String, String>, user_id: &str) -> String {
    owners
        .get(user_id)
        .cloned()
        .unwrap_or_else(|| user_id.to_string())
}

impl Service {
    /// A new token for the caller: a user's own (no more than the caller holds), or,
    /// for an installation credential with `Access.Manage`, the installation's.
    pub async fn create_token(
        self: &Arc<Self>,
        who: &Principal,
        req: CreateToken,
    ) -> ServiceResult<NewToken> {
        let target = Target::object(&req.name);
        let caller = who.clone();
        let r: ServiceResult<NewToken> = async {
            let user_id = match caller.user_id() {
                Some(u) => {
                    caller.require_installation(Permission::ManageOwnTokens)?;
                    Some(u.to_string())
                }
                None => {
                    caller.require_installation(Permission::ManageAccess)?;
                    None
                }
            };
            let name = check_name(&req.name)?;
            let roles = req.roles.unwrap_or_else(|| caller.assignments().to_vec());
            within(caller.assignments(), &roles)?;
            let role = roles_text(&roles)?;
            self.blocking(move |s| {
                let now = s.now();
                let expires = expiry(now, req.expires_in_days)?;
                let owner = match &user_id {
                    Some(u) => Some(
                        s.store
                            .get_user(u)?
                            .ok_or_else(|| ServiceError::not_found(format!("user {u}")))?
                            .name,
                    ),
                    None => None,
                };
                let token = new_secret("tresor_api");
                let row = TokenRow {
                    id: new_id(),
                    name,
                    hash: hash_secret(&token),
                    role,
                    created: now,
                    user_id,
                    expires,
                };
                s.store.insert_token(&row)?;
                Ok(NewToken {
                    id: row.id,
                    name: row.name,
                    owner,
                    created: row.created,
                    expires: row.expires,
                    roles,
                    token,
                })
            })
            .await
        }
        .await;
        let target = match &r {
            Ok(t) => target.detail(format!(
                "id {} owner {} roles {} expires {}",
                t.id,
                t.owner.as_deref().unwrap_or("(installation)"),
                roles_text(&t.roles)?,
                t.expires.map(|e| e.to_string()).unwrap_or("never".into())
            )),
            Err(_) => target,
        };
        self.audited(who, "token.create", target, r).await
    }

    /// Every token with `Access.Manage`; otherwise the caller's own.
    pub async fn tokens(self: &Arc<Self>, who: &Principal) -> ServiceResult<Vec<Token>> {
        let own = match who.require_installation(Permission::ManageAccess) {
            Ok(()) => None,
            Err(denied) => {
                who.require_installation(Permission::ManageOwnTokens)?;
                // An installation token without Access.Manage owns no tokens.
                Some(who.user_id().ok_or(denied)?.to_string())
            }
        };
        self.blocking(move |s| {
            let owners: HashMap<String, String> = s
                .store
                .list_users()?
                .into_iter()
                .map(|u| (u.id, u.name))
                .collect();
            s.store
                .list_tokens()?
                .into_iter()
                .filter(|t| own.is_none() || t.user_id == own)
                .map(|t| view(t, &owners))
                .collect()
        })
        .await
    }

    /// Revokes a token: one's own, or any with `Access.Manage`. Its portal sessions
    /// end with it.
    pub async fn delete_token(self: &Arc<Self>, who: &Principal, id: String) -> ServiceResult<()> {
        let target = Target::object(&id);
        let caller = who.clone();
        let r: ServiceResult<()> = self
            .blocking(move |s| {
                if let Err(denied) = caller.require_installation(Permission::ManageAccess) {
                    caller.require_installation(Permission::ManageOwnTokens)?;
                    // Not one's own, or no such token: the same refusal, so that no
                    // one learns which ids exist.
                    let own = s.store.list_tokens()?.into_iter().any(|t| {
                        t.id == id
                            && t.user_id.is_some()
                            && t.user_id.as_deref() == caller.user_id()
                    });
                    if !own {
                        return Err(denied);
                    }
                }
                s.store.delete_token(&id)?;
                let ended = s.sessions.close_for_token(&id);
                tracing::info!(token = ?id, sessions_ended = ended, "token revoked");
                Ok(())
            })
            .await;
        self.audited(who, "token.delete", target, r).await
    }
}

/// What every token was before roles, and what the first admin token is.
pub fn owner_of_installation() -> Vec<RoleAssignment> {
    vec![RoleAssignment::new(Role::Owner, Scope::Installation)]
}

/// A token's role assignments as the catalogue keeps them (JSON in `role`).
pub fn roles_text(roles: &[RoleAssignment]) -> ServiceResult<String> {
    serde_json::to_string(roles).map_err(ServiceError::internal)
}

/// The role assignments of a token row; a row that does not read grants nothing.
pub fn roles_of(row: &TokenRow) -> ServiceResult<Vec<RoleAssignment>> {
    serde_json::from_str(&row.role)
        .map_err(|e| ServiceError::internal(format!("token {}'s roles do not read: {e}", row.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(role: Role, scope: &str) -> RoleAssignment {
        RoleAssignment::new(role, scope.parse().unwrap())
    }

    /// The catalogue's migration writes this literal for every token made before roles.
    #[test]
    fn tokens_made_before_roles_are_owners_of_the_installation() {
        let row = TokenRow {
            id: "t".into(),
            name: "admin".into(),
            hash: String::new(),
            role: r#"[{"role":"Owner","scope":"/"}]"#.into(),
            created: Timestamp::UNIX_EPOCH,
            user_id: None,
            expires: None,
        };
        assert_eq!(roles_of(&row).unwrap(), owner_of_installation());
        assert_eq!(roles_text(&owner_of_installation()).unwrap(), row.role);
    }

    #[test]
    fn a_users_token_keeps_only_what_the_user_still_holds() {
        let own = vec![
            a(Role::BackupOperator, "/resourceGroups/rg1"),
            a(Role::Reader, "/resourceGroups/rg2/vaults/v2"),
        ];
        assert_eq!(effective_roles(own.clone(), &[a(Role::Owner, "/")]), own);
        assert_eq!(
            effective_roles(own.clone(), &[a(Role::Reader, "/")]),
            vec![own[1].clone()]
        );
        assert_eq!(
            effective_roles(own.clone(), &[a(Role::Contributor, "/resourceGroups/rg1")]),
            vec![own[0].clone()]
        );
        assert!(effective_roles(own, &[]).is_empty());
    }

    #[test]
    fn names_and_lifetimes_are_bounded() {
        assert_eq!(check_name("  ci  ").unwrap(), "ci");
        for bad in ["", "   ", "a\nb", &"x".repeat(MAX_NAME + 1)] {
            assert_eq!(
                check_name(bad).unwrap_err().code,
                ErrorCode::InvalidTokenName
            );
        }
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(expiry(now, None).unwrap(), None);
        assert_eq!(
            expiry(now, Some(1)).unwrap(),
            Some("2026-01-02T00:00:00Z".parse().unwrap())
        );
        assert!(expiry(now, Some(3650)).unwrap().is_some());
        for bad in [0, 3651, u32::MAX] {
            assert_eq!(
                expiry(now, Some(bad)).unwrap_err().code,
                ErrorCode::InvalidTokenExpiry
            );
        }
    }
}
