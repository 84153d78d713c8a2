//! `/api/v1/vaults`: vaults, backup properties, vault credentials, replicate, verify.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tresor_api::jobs::Job;
use tresor_api::vaults::{
    BackupProperties, CreateVault, CredentialsFile, CredentialsRequest, Vault, VerifyRequest,
};
use tresor_service::Service;
use tresor_web::{Admin, HttpResult};

type S = State<Arc<Service>>;

pub async fn create(
    Admin(who): Admin,
    State(s): S,
    Json(req): Json<CreateVault>,
) -> HttpResult<(StatusCode, Json<Vault>)> {
    Ok((StatusCode::CREATED, Json(s.create_vault(&who, req).await?)))
}

pub async fn list(Admin(who): Admin, State(s): S) -> HttpResult<Json<Vec<Vault>>> {
    Ok(Json(s.vaults(&who).await?))
}

pub async fn show(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
) -> HttpResult<Json<Vault>> {
    Ok(Json(s.vault(&who, vault).await?))
}

pub async fn delete(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
) -> HttpResult<StatusCode> {
    s.delete_vault(&who, vault).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_backup_properties(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
    Json(req): Json<BackupProperties>,
) -> HttpResult<Json<Vault>> {
    Ok(Json(s.set_backup_properties(&who, vault, req).await?))
}

pub async fn credentials(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
    body: Option<Json<CredentialsRequest>>,
) -> HttpResult<Json<CredentialsFile>> {
    let req = body.map(|b| b.0).unwrap_or_default();
    Ok(Json(s.vault_credentials(&who, vault, req).await?))
}

pub async fn replicate(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
) -> HttpResult<(StatusCode, Json<Job>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.replicate_vault(&who, vault).await?),
    ))
}

pub async fn verify(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
    body: Option<Json<VerifyRequest>>,
) -> HttpResult<(StatusCode, Json<Job>)> {
    let req = body.map(|b| b.0).unwrap_or_default();
    Ok((
        StatusCode::ACCEPTED,
        Json(s.verify_vault(&who, vault, req).await?),
    ))
}
