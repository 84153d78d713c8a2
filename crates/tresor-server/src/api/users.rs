//! `/api/v1/users`: users (name, password, TOTP) and their role assignments.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tresor_api::users::{ConfirmTotp, CreateUser, SetPassword, SetRoles, TotpSetup, User};
use tresor_service::Service;
use tresor_web::{Admin, HttpResult};

type S = State<Arc<Service>>;

pub async fn create(
    Admin(who): Admin,
    State(s): S,
    Json(req): Json<CreateUser>,
) -> HttpResult<(StatusCode, Json<User>)> {
    Ok((StatusCode::CREATED, Json(s.create_user(&who, req).await?)))
}

pub async fn list(Admin(who): Admin, State(s): S) -> HttpResult<Json<Vec<User>>> {
    Ok(Json(s.users(&who).await?))
}

pub async fn delete(
    Admin(who): Admin,
    State(s): S,
    Path(name): Path<String>,
) -> HttpResult<StatusCode> {
    s.delete_user(&who, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_roles(
    Admin(who): Admin,
    State(s): S,
    Path(name): Path<String>,
    Json(req): Json<SetRoles>,
) -> HttpResult<Json<User>> {
    Ok(Json(s.set_user_roles(&who, name, req).await?))
}

pub async fn set_password(
    Admin(who): Admin,
    State(s): S,
    Path(name): Path<String>,
    Json(req): Json<SetPassword>,
) -> HttpResult<StatusCode> {
    s.set_password(&who, name, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn enable_totp(
    Admin(who): Admin,
    State(s): S,
    Path(name): Path<String>,
) -> HttpResult<Json<TotpSetup>> {
    Ok(Json(s.enable_totp(&who, name).await?))
}

pub async fn confirm_totp(
    Admin(who): Admin,
    State(s): S,
    Path(name): Path<String>,
    Json(req): Json<ConfirmTotp>,
) -> HttpResult<StatusCode> {
    s.confirm_totp(&who, name, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn disable_totp(
    Admin(who): Admin,
    State(s): S,
    Path(name): Path<String>,
) -> HttpResult<StatusCode> {
    s.disable_totp(&who, name).await?;
    Ok(StatusCode::NO_CONTENT)
}
