//! API tokens: more admin credentials, for scripts and other tools, each with a name
//! so it can be revoked alone. The token is shown once, at creation.

use std::sync::Arc;

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
            who.require_admin()?;
            let name = req.name.trim().to_string();
            if name.is_empty() || name.len() > 100 {
                return Err(ServiceError::new(
                    ErrorCode::InvalidTokenName,
                    "a token needs a name of 1 to 100 characters",
                    "name it after who uses it (\"backup-reports\")",
                ));
            }
            self.blocking(move |s| {
                let token = new_secret("tresor_api");
                let row = TokenRow {
                    id: new_id(),
                    name,
                    hash: hash_secret(&token),
                    role: "admin".into(),
                    created: s.now(),
                };
                s.store.insert_token(&row)?;
                Ok(NewToken {
                    id: row.id,
                    name: row.name,
                    created: row.created,
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
        who.require_admin()?;
        self.blocking(|s| {
            Ok(s.store
                .list_tokens()?
                .into_iter()
                .map(|t| Token {
                    id: t.id,
                    name: t.name,
                    created: t.created,
                })
                .collect())
        })
        .await
    }

    /// Revokes a token; its portal sessions end with it.
    pub async fn delete_token(self: &Arc<Self>, who: &Principal, id: String) -> ServiceResult<()> {
        let target = Target::object(&id);
        let r: ServiceResult<()> = async {
            who.require_admin()?;
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
