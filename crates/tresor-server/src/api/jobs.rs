//! `/api/v1/vaults/{vault}/jobs`: list with filters, show, cancel.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use tresor_api::jobs::{Job, JobQuery};
use tresor_service::Service;
use tresor_web::{Admin, HttpResult};

type S = State<Arc<Service>>;

pub async fn list(
    Admin(who): Admin,
    State(s): S,
    Path(vault): Path<String>,
    Query(q): Query<JobQuery>,
) -> HttpResult<Json<Vec<Job>>> {
    Ok(Json(s.jobs(&who, vault, q).await?))
}

pub async fn show(
    Admin(who): Admin,
    State(s): S,
    Path((vault, job)): Path<(String, String)>,
) -> HttpResult<Json<Job>> {
    Ok(Json(s.job(&who, vault, job).await?))
}

pub async fn cancel(
    Admin(who): Admin,
    State(s): S,
    Path((vault, job)): Path<(String, String)>,
) -> HttpResult<Json<Job>> {
    Ok(Json(s.cancel_job(&who, vault, job).await?))
}
