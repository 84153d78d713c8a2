//! `/api/v1/resourceGuards`: resource guards (multi-user authorization), and the
//! requests for approval of critical operations.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tresor_api::guards::{
    CreateGuardRequest, CreateResourceGuard, GuardRequest, ResourceGuard, UpdateResourceGuard,
};
use tresor_service::Service;
use tresor_web::{Admin, HttpResult};

type S = State<Arc<Service>>;

pub async fn create(
    Admin(who): Admin,
    State(s): S,
    Json(req): Json<CreateResourceGuard>,
) -> HttpResult<(StatusCode, Json<ResourceGuard>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.create_resource_guard(&who, req).await?),
    ))
}

pub async fn list(Admin(who): Admin, State(s): S) -> HttpResult<Json<Vec<ResourceGuard>>> {
    Ok(Json(s.resource_guards(&who).await?))
}

pub async fn show(
    Admin(who): Admin,
    State(s): S,
    Path(guard): Path<String>,
) -> HttpResult<Json<ResourceGuard>> {
    Ok(Json(s.resource_guard(&who, guard).await?))
}

pub async fn update(
    Admin(who): Admin,
    State(s): S,
    Path(guard): Path<String>,
    Json(req): Json<UpdateResourceGuard>,
) -> HttpResult<Json<ResourceGuard>> {
    Ok(Json(s.update_resource_guard(&who, guard, req).await?))
}

pub async fn delete(
    Admin(who): Admin,
    State(s): S,
    Path(guard): Path<String>,
) -> HttpResult<StatusCode> {
    s.delete_resource_guard(&who, guard).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn create_request(
    Admin(who): Admin,
    State(s): S,
    Path(guard): Path<String>,
    Json(req): Json<CreateGuardRequest>,
) -> HttpResult<(StatusCode, Json<GuardRequest>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.create_guard_request(&who, guard, req).await?),
    ))
}

pub async fn requests(
    Admin(who): Admin,
    State(s): S,
    Path(guard): Path<String>,
) -> HttpResult<Json<Vec<GuardRequest>>> {
    Ok(Json(s.guard_requests(&who, guard).await?))
}

pub async fn request(
    Admin(who): Admin,
    State(s): S,
    Path((guard, id)): Path<(String, String)>,
) -> HttpResult<Json<GuardRequest>> {
    Ok(Json(s.guard_request(&who, guard, id).await?))
}

pub async fn approve(
    Admin(who): Admin,
    State(s): S,
    Path((guard, id)): Path<(String, String)>,
) -> HttpResult<Json<GuardRequest>> {
    Ok(Json(s.approve_guard_request(&who, guard, id).await?))
}

pub async fn reject(
    Admin(who): Admin,
    State(s): S,
    Path((guard, id)): Path<(String, String)>,
) -> HttpResult<Json<GuardRequest>> {
    Ok(Json(s.reject_guard_request(&who, guard, id).await?))
}
