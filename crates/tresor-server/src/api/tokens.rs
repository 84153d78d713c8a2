//! `/api/v1/tokens`: API tokens.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tresor_api::tokens::{CreateToken, NewToken, Token};
use tresor_service::Service;
use tresor_web::{Admin, HttpResult};

type S = State<Arc<Service>>;

pub async fn create(
    Admin(who): Admin,
    State(s): S,
    Json(req): Json<CreateToken>,
) -> HttpResult<(StatusCode, Json<NewToken>)> {
    Ok((StatusCode::CREATED, Json(s.create_token(&who, req).await?)))
}

pub async fn list(Admin(who): Admin, State(s): S) -> HttpResult<Json<Vec<Token>>> {
    Ok(Json(s.tokens(&who).await?))
}

pub async fn delete(
    Admin(who): Admin,
    State(s): S,
    Path(id): Path<String>,
) -> HttpResult<StatusCode> {
    s.delete_token(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
