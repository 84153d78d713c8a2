//! Jobs of a vault: list with filters, show, cancel.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use tresor_domain::JobStatus;
use tresor_metadata::JobFilter;

use crate::api::vaults::find_vault;
use crate::auth::Admin;
use crate::dto::{enum_name, JobBody, JobDto};
use crate::error::{ApiError, ApiResult};
use crate::jobs;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobQuery {
    pub status: Option<String>,
    pub operation: Option<String>,
    pub item: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: Option<u32>,
}

pub async fn list(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    Query(q): Query<JobQuery>,
) -> ApiResult<Json<Vec<JobDto>>> {
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let jobs = s.store.list_jobs(&JobFilter {
                vault_id: Some(v.id),
                item_id: q.item,
                status: q.status,
                operation: q.operation,
                from: q.from,
                to: q.to,
                limit: q.limit,
            })?;
            let now = s.now();
            Ok(Json(jobs.iter().map(|j| JobDto::new(j, now)).collect()))
        })
        .await
}

fn find_job(s: &AppState, vault: &str, id: &str) -> ApiResult<tresor_metadata::JobRow> {
    let v = find_vault(s, vault)?;
    let job = s.store.get_job(id)?;
    if job.vault_id != v.id {
        return Err(ApiError::not_found(format!("job {id} in vault {vault}")));
    }
    Ok(job)
}

pub async fn show(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((vault, id)): Path<(String, String)>,
) -> ApiResult<Json<JobDto>> {
    state
        .blocking(move |s| Ok(Json(JobDto::new(&find_job(s, &vault, &id)?, s.now()))))
        .await
}

/// Cancels a job: at once if no agent took it yet, else the agent (or, for the
/// server's own runs, replication and verify, the server) is told and ends the job as
/// Cancelled.
pub async fn cancel(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((vault, id)): Path<(String, String)>,
) -> ApiResult<Json<JobDto>> {
    state
        .blocking(move |s| {
            let mut job = find_job(s, &vault, &id)?;
            if job.is_finished() {
                return Err(ApiError::conflict(
                    "JobAlreadyEnded",
                    format!("job {id} already ended as {}", job.status),
                    "nothing to cancel",
                ));
            }
            let servers_own = job.agent_id.is_none() && job.target_agent.is_none();
            if job.agent_id.is_none() && !servers_own {
                jobs::finish(
                    s,
                    &mut job,
                    JobStatus::Cancelled,
                    None,
                    Vec::new(),
                    Value::Null,
                )?;
            } else {
                let mut body = JobBody::of(&job);
                body.cancel_requested = true;
                job.body = serde_json::to_value(&body).map_err(ApiError::internal)?;
                job.status = enum_name(JobStatus::Cancelling);
                s.store.update_job(&job)?;
            }
            Ok(Json(JobDto::new(&job, s.now())))
        })
        .await
}
