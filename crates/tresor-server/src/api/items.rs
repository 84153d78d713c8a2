//! `/api/v1/vaults/{vault}/items` and `protectable-items`: protection (enable, modify,
//! resume, stop), back up now, undelete, restore, recovery points (and deleting one).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use tresor_api::items::{
    BackupNow, Disable, EnableProtection, ModifyProtection, ProtectableVm, ProtectedItem,
    RecoveryPoint, RegionQuery, RestoreRequest,
};
use tresor_api::jobs::Job;
use tresor_service::Service;
use tresor_web::{Admin, HttpResult};

type S = State<Arc<Service>>;

pub async fn protectable(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
) -> HttpResult<Json<Vec<ProtectableVm>>> {
    Ok(Json(s.protectable_vms(&who, vault).await?))
}

pub async fn list(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
) -> HttpResult<Json<Vec<ProtectedItem>>> {
    Ok(Json(s.items(&who, vault).await?))
}

pub async fn enable(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
    Json(req): Json<EnableProtection>,
) -> HttpResult<(StatusCode, Json<ProtectedItem>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.enable_protection(&who, vault, req).await?),
    ))
}

pub async fn show(
    Admin(who): Admin,
    State(s): S,
    Path((vault, item)): Path<(String, String)>,
) -> HttpResult<Json<ProtectedItem>> {
    Ok(Json(s.item(&who, vault, item).await?))
}

pub async fn backup_now(
    Admin(who): Admin,
    State(s): S,
    Path((vault, item)): Path<(String, String)>,
    body: Option<Json<BackupNow>>,
) -> HttpResult<(StatusCode, Json<Job>)> {
    let req = body.map(|b| b.0).unwrap_or_default();
    Ok((
        StatusCode::ACCEPTED,
        Json(s.backup_now(&who, vault, item, req).await?),
    ))
}

pub async fn disable(
    Admin(who): Admin,
    State(s): S,
    Path((vault, item)): Path<(String, String)>,
    body: Option<Json<Disable>>,
) -> HttpResult<Json<Job>> {
    let req = body.map(|b| b.0).unwrap_or_default();
    Ok(Json(s.disable_protection(&who, vault, item, req).await?))
}

pub async fn undelete(
    Admin(who): Admin,
    State(s): S,
    Path((vault, item)): Path<(String, String)>,
) -> HttpResult<Json<ProtectedItem>> {
    Ok(Json(s.undelete_item(&who, vault, item).await?))
}

pub async fn restore(
    Admin(who): Admin,
    State(s): S,
    Path((vault, item)): Path<(String, String)>,
    Json(req): Json<RestoreRequest>,
) -> HttpResult<(StatusCode, Json<Job>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.restore(&who, vault, item, req).await?),
    ))
}

pub async fn points(
    Admin(who): Admin,
    State(s): S,
    Path((vault, item)): Path<(String, String)>,
    Query(q): Query<RegionQuery>,
) -> HttpResult<Json<Vec<RecoveryPoint>>> {
    Ok(Json(s.recovery_points(&who, vault, item, q).await?))
}

pub async fn point(
    Admin(who): Admin,
    State(s): S,
    Path((vault, item, point)): Path<(String, String, String)>,
    Query(q): Query<RegionQuery>,
) -> HttpResult<Json<RecoveryPoint>> {
    Ok(Json(s.recovery_point(&who, vault, item, point, q).await?))
}

pub async fn modify(
    Admin(who): Admin,
    State(s): S,
    Path((vault, item)): Path<(String, String)>,
    Json(req): Json<ModifyProtection>,
) -> HttpResult<Json<ProtectedItem>> {
    Ok(Json(s.modify_protection(&who, vault, item, req).await?))
}

pub async fn delete_point(
    Admin(who): Admin,
    State(s): S,
    Path((vault, item, point)): Path<(String, String, String)>,
) -> HttpResult<Json<RecoveryPoint>> {
    Ok(Json(
        s.delete_recovery_point(&who, vault, item, point).await?,
    ))
}

pub async fn undelete_point(
    Admin(who): Admin,
    State(s): S,
    Path((vault, item, point)): Path<(String, String, String)>,
) -> HttpResult<Json<RecoveryPoint>> {
    Ok(Json(
        s.undelete_recovery_point(&who, vault, item, point).await?,
    ))
}
