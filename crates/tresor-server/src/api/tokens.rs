//! API tokens: more admin credentials, for scripts and other tools, each with a name
//! so it can be revoked alone. The token is shown once, at creation.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tresor_metadata::TokenRow;

use crate::auth::{hash_secret, new_id, new_secret, Admin};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
}

pub async fn create(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Json(req): Json<CreateToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = req.name.trim().to_string();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad_request(
            "InvalidTokenName",
            "a token needs a name of 1 to 100 characters",
            "name it after who uses it (\"backup-reports\")",
        ));
    }
    state
        .blocking(move |s| {
            let token = new_secret("tresor_api");
            let row = TokenRow {
                id: new_id(),
                name,
                hash: hash_secret(&token),
                role: "admin".into(),
                created: s.now(),
            };
            s.store.insert_token(&row)?;
            Ok((
                StatusCode::CREATED,
                Json(
                    json!({"id": row.id, "name": row.name, "created": row.created, "token": token}),
                ),
            ))
        })
        .await
}

pub async fn list(_: Admin, State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Value>>> {
    state
        .blocking(|s| {
            Ok(Json(
                s.store
                    .list_tokens()?
                    .into_iter()
                    .map(|t| json!({"id": t.id, "name": t.name, "created": t.created}))
                    .collect(),
            ))
        })
        .await
}

pub async fn delete(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .blocking(move |s| {
            s.store.delete_token(&id)?;
            // A revoked token's portal sessions end with it.
            let ended = s.sessions.close_for_token(&id);
            tracing::info!(token = ?id, sessions_ended = ended, "token revoked");
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}
