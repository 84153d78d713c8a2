//! API tokens: more admin credentials, for scripts and other tools, each with a name
//! so it can be revoked alone. The token is shown once, at creation.

use std::sync::Arc;
use tresor_domain::access::{Permission, Role, RoleAssignment, Scope};

use tresor_api::tokens::{CreateToken, NewToken, Token};
use tresor_api::ErrorCode;
use tresor_metadata::TokenRow;

use crate::audit::Target;
use crate::auth::{hash_secret, new_id, new_secret, Principal};
use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;

impl Service {
    pub async fn create_token(
        self: &Arc<Self>,
        who: &Principal,
        req: CreateToken,
    ) -> ServiceResult<NewToken> {
        let target = Target::object(&req.name);
        let r: ServiceResult<NewToken> = async {
            who.require_installation(Permission::ManageAccess)?;
            let name = req.name.trim().to_string();
            if name.is_empty() || name.len() > 100 {
                return Err(ServiceError::new(
                    ErrorCode::InvalidTokenName,
                    "a token needs a name of 1 to 100 characters",
                    "name it after who uses it (\"backup-reports\")",
                ));
            }
            let roles = req.roles.unwrap_or_else(owner_of_installation);
            let role = roles_text(&roles)?;
            self.blocking(move |s| {
                let token = new_secret("tresor_api");
                let row = TokenRow {
                    id: new_id(),
                    name,
                    hash: hash_secret(&token),
                    role,
                    created: s.now(),
                };
                s.store.insert_token(&row)?;
                Ok(NewToken {
                    id: row.id,
                    name: row.name,
                    created: row.created,
                    roles,
                    token,
                })
            })
            .await
        }
        .await;
        let target = match &r {
            Ok(t) => target.detail(format!("id {}", t.id)),
            Err(_) => target,
        };
        self.audited(who, "token.create", target, r).await
    }

    pub async fn tokens(self: &Arc<Self>, who: &Principal) -> ServiceResult<Vec<Token>> {
        who.require_installation(Permission::ManageAccess)?;
        self.blocking(|s| {
            s.store
                .list_tokens()?
                .into_iter()
                .map(|t| {
                    Ok(Token {
                        roles: roles_of(&t)?,
                        id: t.id,
                        name: t.name,
                        created: t.created,
                    })
                })
                .collect()
        })
        .await
    }

    /// Revokes a token; its portal sessions end with it.
    pub async fn delete_token(self: &Arc<Self>, who: &Principal, id: String) -> ServiceResult<()> {
        let target = Target::object(&id);
        let r: ServiceResult<()> = async {
            who.require_installation(Permission::ManageAccess)?;
            self.blocking(move |s| {
                s.store.delete_token(&id)?;
                let ended = s.sessions.close_for_token(&id);
                tracing::info!(token = ?id, sessions_ended = ended, "token revoked");
                Ok(())
            })
            .await
        }
        .await;
        self.audited(who, "token.delete", target, r).await
    }
}

/// What every token was before roles, and what a token gets when none are named.
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

    /// The catalogue's migration writes this literal for every token made before roles.
    #[test]
    fn tokens_made_before_roles_are_owners_of_the_installation() {
        let row = TokenRow {
            id: "t".into(),
            name: "admin".into(),
            hash: String::new(),
            role: r#"[{"role":"Owner","scope":"/"}]"#.into(),
            created: jiff::Timestamp::UNIX_EPOCH,
        };
        assert_eq!(roles_of(&row).unwrap(), owner_of_installation());
        assert_eq!(roles_text(&owner_of_installation()).unwrap(), row.role);
    }
}
