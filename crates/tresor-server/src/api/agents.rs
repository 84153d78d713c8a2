//! `/api/v1/agents` (the administrator's list, registration) and `/api/v1/agent/...`
//! (what a host agent calls: ping, heartbeat, its jobs).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tresor_api::agents::{
    Agent, AgentPing, Completion, CompletionAnswer, Heartbeat, HeartbeatAnswer, NextQuery,
    Progress, ProgressAnswer, RegisterRequest, RegisterResponse,
};
use tresor_service::Service;
use tresor_web::{Admin, AgentCaller, ClientIp, HttpResult};

type S = State<Arc<Service>>;

pub async fn list(Admin(who): Admin, State(s): S) -> HttpResult<Json<Vec<Agent>>> {
    Ok(Json(s.agents(&who).await?))
}

/// No credential: the vault credentials file's one-time secret is in the body.
pub async fn register(
    State(s): S,
    ClientIp(ip): ClientIp,
    Json(req): Json<RegisterRequest>,
) -> HttpResult<(StatusCode, Json<RegisterResponse>)> {
    Ok((StatusCode::CREATED, Json(s.register_agent(ip, req).await?)))
}

pub async fn ping(AgentCaller(who): AgentCaller, State(s): S) -> HttpResult<Json<AgentPing>> {
    Ok(Json(s.agent_ping(&who)?))
}

pub async fn heartbeat(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Json(hb): Json<Heartbeat>,
) -> HttpResult<Json<HeartbeatAnswer>> {
    Ok(Json(s.heartbeat(&who, hb).await?))
}

/// 200 with the job, or 204 when none came within the wait.
pub async fn next_job(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Query(q): Query<NextQuery>,
) -> HttpResult<Response> {
    Ok(match s.next_job(&who, q).await? {
        Some(job) => Json(job).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

pub async fn progress(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Path(job): Path<String>,
    Json(p): Json<Progress>,
) -> HttpResult<Json<ProgressAnswer>> {
    Ok(Json(s.job_progress(&who, job, p).await?))
}

pub async fn complete(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Path(job): Path<String>,
    Json(c): Json<Completion>,
) -> HttpResult<Json<CompletionAnswer>> {
    Ok(Json(s.complete_job(&who, job, c).await?))
}
