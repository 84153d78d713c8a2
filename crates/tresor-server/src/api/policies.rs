//! `/api/v1/vaults/{vault}/policies`: backup policies.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tresor_api::policies::{BackupPolicy, Policy};
use tresor_service::Service;
use tresor_web::{Admin, HttpResult};

type S = State<Arc<Service>>;

pub async fn list(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
) -> HttpResult<Json<Vec<Policy>>> {
    Ok(Json(s.policies(&who, vault).await?))
}

pub async fn show(
    Admin(who): Admin,
    State(s): S,
    Path((vault, name)): Path<(String, String)>,
) -> HttpResult<Json<Policy>> {
    Ok(Json(s.policy(&who, vault, name).await?))
}

pub async fn default_for_vm(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
) -> HttpResult<Json<Policy>> {
    Ok(Json(s.default_policy_for_vm(&who, vault).await?))
}

pub async fn create(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
    Json(policy): Json<BackupPolicy>,
) -> HttpResult<(StatusCode, Json<Policy>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.create_policy(&who, vault, policy).await?),
    ))
}

pub async fn update(
    Admin(who): Admin,
    State(s): S,
    Path((vault, name)): Path<(String, String)>,
    Json(policy): Json<BackupPolicy>,
) -> HttpResult<Json<Policy>> {
    Ok(Json(s.update_policy(&who, vault, name, policy).await?))
}

pub async fn delete(
    Admin(who): Admin,
    State(s): S,
    Path((vault, name)): Path<(String, String)>,
) -> HttpResult<StatusCode> {
    s.delete_policy(&who, vault, name).await?;
    Ok(StatusCode::NO_CONTENT)
}
