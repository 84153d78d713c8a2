//! What host agents call: registration, heartbeats with their VM inventory, and the
//! job protocol (take the next job, report progress, report the end).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tresor_domain::{JobErrorInfo, JobStatus};
use tresor_metadata::{AgentRow, VmRow};

use crate::auth::{hash_secret, new_id, new_secret, Admin, Agent};
use crate::dto::enum_name;
use crate::dto::JobBody;
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, parse_state, BackupDone, LEASE, TASK_SNAPSHOT, TASK_TRANSFER};
use crate::rate_limit::ClientIp;
use crate::state::AppState;

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// The one-time secret of a vault credentials file.
    pub secret: String,
    pub host: String,
    /// Ignored: the agent's location is the one its vault credentials were made for.
    /// (Older agents send theirs; an agent does not decide where it is.)
    #[serde(default)]
    pub location: Option<String>,
    /// The vault the agent expects (from its credentials file), checked when given.
    #[serde(default)]
    pub vault: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    pub agent_id: String,
    /// The agent's credential from now on; shown once.
    pub credential: String,
    pub vault: String,
    /// The location the agent was registered in (its credentials').
    pub location: String,
}

/// Refusals of a vault credentials file: one code, and a message saying why.
fn bad_credentials(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "InvalidVaultCredentials",
        format!("the vault credentials file {why}"),
        "download new vault credentials (tresor vault credentials, or Host agents in the portal) and register again",
    )
}

pub async fn register(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<Response> {
    // Every attempt counts: a registration needs no credential but the secret.
    if let Err(wait) = state.limiters.register.take(ip, std::time::Instant::now()) {
        tracing::warn!(client = %ip, "agent registration refused: too many attempts");
        return Ok(wait.response("registration attempts"));
    }
    let host = req.host.trim().to_string();
    if host.is_empty() || host.len() > 253 || !is_plain_text(&host) {
        return Err(ApiError::bad_request(
            "InvalidHostName",
            "the agent must give its host name: 1 to 253 characters, no control characters",
            "set host in the agent's configuration",
        ));
    }
    check_version(req.version.as_deref())?;
    state
        .blocking(move |s| {
            let now = s.now();
            let hash = hash_secret(&req.secret);
            // Look first, to say why a file cannot be used; then take it atomically
            // (two agents racing with one file: one wins).
            let Some(found) = s.store.find_enrollment(&hash)? else {
                return Err(bad_credentials("is unknown to this server"));
            };
            if found.used {
                return Err(bad_credentials("was used already (each file registers one host)"));
            }
            if found.expires <= now {
                return Err(bad_credentials(&format!("expired at {}", found.expires)));
            }
            let vault = s.store.get_vault(&found.vault_id)?;
            if let Some(expected) = &req.vault {
                if !expected.eq_ignore_ascii_case(&vault.name) {
                    return Err(bad_credentials(&format!(
                        "belongs to another vault than {expected:?}"
                    )));
                }
            }
            let enrollment = s
                .store
                .consume_enrollment(&hash, now)?
                .ok_or_else(|| bad_credentials("was used already (each file registers one host)"))?;
            let location = enrollment.location.unwrap_or_else(|| vault.location.clone());
            if let Some(claimed) = &req.location {
                if !claimed.eq_ignore_ascii_case(&location) {
                    tracing::warn!(host = ?host, claimed = ?claimed, location = ?location,
                        "agent claimed another location than its vault credentials'; it gets the credentials' location");
                }
            }
            let credential = new_secret("tresor_agent");
            let agent = AgentRow {
                id: new_id(),
                host,
                location: location.clone(),
                credential_hash: hash_secret(&credential),
                version: req.version,
                registered: now,
                last_seen: Some(now),
            };
            s.store.insert_agent(&agent)?;
            tracing::info!(agent = %agent.id, host = ?agent.host, vault = ?vault.name, location = ?location, "agent registered");
            Ok((
                StatusCode::CREATED,
                Json(RegisterResponse {
                    agent_id: agent.id,
                    credential,
                    vault: vault.name,
                    location,
                }),
            )
                .into_response())
        })
        .await
}

/// Text from an agent may be shown in pages and written to the log: no control
/// characters (a line break would forge a log line), and within length bounds.
pub fn is_plain_text(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Longest name of a VM or a disk an agent may report.
pub const MAX_NAME: usize = 255;
/// Longest string anywhere in what an agent reports (paths, command lines, messages).
pub const MAX_TEXT: usize = 8192;
/// Most VMs one host may report.
pub const MAX_VMS: usize = 4096;

fn bad_report(field: &str, rule: &str) -> ApiError {
    ApiError::bad_request(
        "InvalidAgentReport",
        format!("the agent's report has an invalid {field}: {rule}"),
        "rename what the report names (VMs, disks) without control characters, or update the agent",
    )
}

fn check_version(v: Option<&str>) -> ApiResult<()> {
    match v {
        Some(v) if v.len() > 64 || !is_plain_text(v) => Err(bad_report(
            "version",
            "at most 64 characters, no control characters",
        )),
        _ => Ok(()),
    }
}

/// Checks a JSON value from an agent: every string (keys too) plain text and at most
/// [`MAX_TEXT`] bytes. `serde_json` already bounds the nesting depth.
fn check_json(field: &str, v: &Value) -> ApiResult<()> {
    let text = |t: &str| {
        if t.len() > MAX_TEXT || !is_plain_text(t) {
            Err(bad_report(
                field,
                "its texts must be at most 8192 bytes, without control characters",
            ))
        } else {
            Ok(())
        }
    };
    match v {
        Value::String(t) => text(t),
        Value::Array(a) => a.iter().try_for_each(|x| check_json(field, x)),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            text(k)?;
            check_json(field, x)
        }),
        _ => Ok(()),
    }
}

/// What a heartbeat reports, checked before any of it is stored.
fn check_heartbeat(hb: &Heartbeat) -> ApiResult<()> {
    check_version(hb.version.as_deref())?;
    if hb.vms.len() > MAX_VMS {
        return Err(bad_report("VM list", "at most 4096 VMs per host"));
    }
    for v in &hb.vms {
        if v.vm.is_empty() || v.vm.len() > MAX_NAME || !is_plain_text(&v.vm) {
            return Err(bad_report(
                &format!(
                    "VM name {:?}",
                    v.vm.chars().take(MAX_NAME).collect::<String>()
                ),
                "1 to 255 bytes, no control characters",
            ));
        }
        check_json("VM description", &v.info)?;
        if let Some(p) = &v.preflight {
            check_json("preflight result", p)?;
        }
        // Disk names are names too: bounded like VM names.
        if let Some(disks) = v.info.get("disks").and_then(Value::as_array) {
            for d in disks {
                if d.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.len() > MAX_NAME)
                {
                    return Err(bad_report("disk name", "at most 255 bytes"));
                }
            }
        }
    }
    Ok(())
}

/// Free text of a job report (warnings, error messages): control characters become
/// spaces and the length is bounded, rather than refusing the end of a job.
fn clean_text(t: &str) -> String {
    let mut out: String = t
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT)
        .collect();
    out.truncate(out.trim_end().len());
    out
}

/// The same for every string in a JSON value of a job report.
fn clean_json(v: &mut Value) {
    match v {
        Value::String(t) => *t = clean_text(t),
        Value::Array(a) => a.iter_mut().for_each(clean_json),
        Value::Object(o) => {
            let cleaned: serde_json::Map<String, Value> = std::mem::take(o)
                .into_iter()
                .map(|(k, mut x)| {
                    clean_json(&mut x);
                    (clean_text(&k), x)
                })
                .collect();
            *o = cleaned;
        }
        _ => {}
    }
}

/// An authenticated no-op: `tresor agent check` proves its credential with it.
pub async fn ping(Agent(agent): Agent) -> Json<Value> {
    Json(json!({ "agentId": agent.id, "host": agent.host }))
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    #[serde(default)]
    pub version: Option<String>,
    /// Every VM the agent knows, with what it knows of it.
    pub vms: Vec<ReportedVm>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedVm {
    /// The agent's name for the VM.
    pub vm: String,
    /// `tresor_vm::VmInfo` as JSON.
    pub info: Value,
    /// `tresor_vm::CheckResult`s of the VM's preflight, when the agent ran it.
    #[serde(default)]
    pub preflight: Option<Value>,
}

pub async fn heartbeat(
    Agent(agent): Agent,
    State(state): State<Arc<AppState>>,
    Json(hb): Json<Heartbeat>,
) -> ApiResult<Json<Value>> {
    if let Err(e) = check_heartbeat(&hb) {
        tracing::warn!(agent = %agent.id, host = ?agent.host, error = ?e.message, "heartbeat refused");
        return Err(e);
    }
    state
        .blocking(move |s| {
            let now = s.now();
            s.store.touch_agent(&agent.id, now, hb.version.as_deref())?;
            let rows: Vec<VmRow> = hb
                .vms
                .into_iter()
                .map(|v| {
                    let mut body = v.info;
                    if let (Some(o), Some(p)) = (body.as_object_mut(), v.preflight) {
                        o.insert("preflight".into(), p);
                    }
                    VmRow {
                        agent_id: agent.id.clone(),
                        vm: v.vm,
                        body,
                        seen: now,
                    }
                })
                .collect();
            s.store.replace_inventory(&agent.id, &rows)?;
            Ok(Json(json!({ "serverTime": now })))
        })
        .await
}

/// A job as an agent receives it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub job_id: String,
    pub operation: String,
    pub vault_id: String,
    pub item_id: Option<String>,
    pub vm: Option<String>,
    /// The name the item's points carry in the repository (its history).
    pub point_name: Option<String>,
    /// The passphrase of the agent's repository in this vault.
    pub passphrase: String,
    pub params: Value,
}

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    /// Seconds to wait for a job (at most and by default 20).
    pub wait: Option<u64>,
}

/// Waits up to 20 s (or `?wait=N`) for a job for this agent; 204 when none came.
pub async fn next_job(
    Agent(agent): Agent,
    State(state): State<Arc<AppState>>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> ApiResult<Response> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait.unwrap_or(20).min(20));
    // One job at a time: a job this agent still holds was abandoned by a restart.
    let agent_id = agent.id.clone();
    state
        .blocking(move |s| crate::jobs::end_abandoned_jobs(s, &agent_id))
        .await?;
    loop {
        let notified = state.jobs_changed.notified();
        let agent_id = agent.id.clone();
        let claimed = state
            .blocking(move |s| {
                let now = s.now();
                s.store.touch_agent(&agent_id, now, None)?;
                let Some(mut job) = s.store.claim_job(&agent_id, now, now + LEASE)? else {
                    return Ok(None);
                };
                let item = job
                    .item_id
                    .as_deref()
                    .map(|i| s.store.get_item(i))
                    .transpose()?;
                let params = JobBody::of(&job).params;
                let from_secondary = params
                    .get("useSecondaryRegion")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let vault = s.store.get_vault(&job.vault_id)?;
                // A cross-region restore must work with the primary gone: it needs the
                // passphrase only, never a (new) primary repository.
                let ready = if from_secondary {
                    Ok(())
                } else {
                    s.repos.open_or_create(&vault, &agent_id).map(|_| ())
                };
                if let Err(e) = ready {
                    // The job cannot run: it fails with the storage's code, and the
                    // agent waits for the next one.
                    let rec = e.recommendation().to_string();
                    crate::jobs::finish(
                        s,
                        &mut job,
                        tresor_domain::JobStatus::Failed,
                        Some(tresor_domain::JobErrorInfo {
                            code: e.code.into(),
                            message: e.message,
                            recommendation: rec,
                        }),
                        Vec::new(),
                        Value::Null,
                    )?;
                    if job.operation == "Backup" {
                        if let Some(item) = &item {
                            let mut item = item.clone();
                            item.state = crate::dto::enum_name(
                                crate::jobs::parse_state(&item.state).after_backup_failed(),
                            );
                            s.store.update_item(&item)?;
                        }
                    }
                    return Ok(None);
                }
                let repo_pass = s
                    .repos
                    .passphrase(&job.vault_id, &agent_id)
                    .map_err(ApiError::internal)?;
                Ok(Some(Assignment {
                    job_id: job.id.clone(),
                    operation: job.operation.clone(),
                    vault_id: job.vault_id.clone(),
                    item_id: job.item_id.clone(),
                    vm: item.as_ref().map(|i| i.vm.clone()),
                    point_name: item.as_ref().map(|i| i.id.clone()),
                    passphrase: repo_pass,
                    params,
                }))
            })
            .await?;
        if let Some(a) = claimed {
            tracing::info!(job = %a.job_id, agent = ?agent.host, "job taken");
            return Ok(Json(a).into_response());
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// The task that has begun (its predecessors are done).
    #[serde(default)]
    pub task: Option<String>,
}

/// The agent's job, if it is its own and still running.
fn own_running_job(s: &AppState, agent: &AgentRow, id: &str) -> ApiResult<tresor_metadata::JobRow> {
    let job = s.store.get_job(id)?;
    if job.agent_id.as_deref() != Some(agent.id.as_str()) {
        return Err(ApiError::forbidden(format!("job {id} is not this agent's")));
    }
    if job.is_finished() {
        return Err(ApiError::conflict(
            "JobAlreadyEnded",
            format!("job {id} ended as {} already", job.status),
            "stop working on it; its result is final",
        ));
    }
    Ok(job)
}

/// Renews the job's lease; answers whether the job was cancelled.
pub async fn progress(
    Agent(agent): Agent,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(mut p): Json<Progress>,
) -> ApiResult<Json<Value>> {
    p.task = p.task.as_deref().map(clean_text);
    state
        .blocking(move |s| {
            let mut job = own_running_job(s, &agent, &id)?;
            let mut body = JobBody::of(&job);
            body.bytes_done = p.bytes_done;
            body.bytes_total = p.bytes_total;
            if let Some(task) = &p.task {
                for t in &mut body.tasks {
                    if &t.name == task {
                        break;
                    }
                    t.status = JobStatus::Completed;
                }
            }
            let cancel = body.cancel_requested;
            job.body = serde_json::to_value(&body).map_err(ApiError::internal)?;
            job.lease_until = Some(s.now() + LEASE);
            s.store.update_job(&job)?;
            s.store.touch_agent(&agent.id, s.now(), None)?;
            Ok(Json(json!({ "cancel": cancel })))
        })
        .await
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    /// `Completed`, `CompletedWithWarnings`, `Failed` or `Cancelled`.
    pub status: JobStatus,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub error: Option<JobErrorInfo>,
    /// A backup's recovery point.
    #[serde(default)]
    pub point_id: Option<String>,
    #[serde(default)]
    pub frozen_ms: Option<u64>,
    /// Anything else worth showing (a restore's output paths).
    #[serde(default)]
    pub result: Value,
}

pub async fn complete(
    Agent(agent): Agent,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(mut c): Json<Completion>,
) -> ApiResult<Json<Value>> {
    // What the agent says of the job's end is shown in pages and may be logged.
    c.warnings = c
        .warnings
        .iter()
        .take(1000)
        .map(|w| clean_text(w))
        .collect();
    if let Some(e) = &mut c.error {
        e.code = clean_text(&e.code);
        e.message = clean_text(&e.message);
        e.recommendation = clean_text(&e.recommendation);
    }
    if let Some(p) = &mut c.point_id {
        *p = clean_text(p);
    }
    clean_json(&mut c.result);
    state
        .blocking(move |s| {
            let mut job = own_running_job(s, &agent, &id)?;
            let succeeded = matches!(
                c.status,
                JobStatus::Completed | JobStatus::CompletedWithWarnings
            );
            let operation = job.operation.clone();
            match (operation.as_str(), succeeded, &c.point_id) {
                ("Backup", true, Some(point)) => jobs::complete_backup(
                    s,
                    &mut job,
                    BackupDone {
                        point_id: point.clone(),
                        warnings: c.warnings,
                        frozen_ms: c.frozen_ms,
                    },
                )?,
                ("Backup", true, None) => {
                    return Err(ApiError::bad_request(
                        "RecoveryPointMissing",
                        "a backup cannot complete without its recovery point",
                        "report the point id",
                    ))
                }
                (op, ok, _) => {
                    let status = if !ok && c.status != JobStatus::Cancelled {
                        JobStatus::Failed
                    } else {
                        c.status
                    };
                    jobs::finish(s, &mut job, status, c.error, c.warnings, c.result)?;
                    if op == "Backup" && status == JobStatus::Failed {
                        if let Some(item_id) = &job.item_id {
                            let mut item = s.store.get_item(item_id)?;
                            item.state = enum_name(parse_state(&item.state).after_backup_failed());
                            s.store.update_item(&item)?;
                        }
                    }
                }
            }
            Ok(Json(json!({ "status": job.status })))
        })
        .await
}

/// Tasks every backup job has, in order.
pub const BACKUP_TASKS: [&str; 2] = [TASK_SNAPSHOT, TASK_TRANSFER];

/// Whether an agent was heard from recently enough to count as online.
pub fn online(agent: &AgentRow, now: Timestamp) -> bool {
    agent
        .last_seen
        .is_some_and(|t| now.as_second() - t.as_second() <= 120)
}

/// A host agent as the API and the portal show it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentDto {
    pub id: String,
    pub host: String,
    pub location: String,
    pub version: Option<String>,
    pub registered: Timestamp,
    pub last_heartbeat: Option<Timestamp>,
    pub online: bool,
    /// The VMs it reported, each with what it knows and its preflight checks.
    pub vms: Vec<Value>,
}

/// Every registered host agent, with its VMs.
pub async fn list(_: Admin, State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<AgentDto>>> {
    state
        .blocking(|s| {
            let now = s.now();
            let inventory = s.store.list_inventory()?;
            let mut out: Vec<AgentDto> = s
                .store
                .list_agents()?
                .into_iter()
                .map(|a| AgentDto {
                    online: online(&a, now),
                    vms: inventory
                        .iter()
                        .filter(|v| v.agent_id == a.id)
                        .map(|v| json!({"vm": v.vm, "info": v.body, "seen": v.seen}))
                        .collect(),
                    id: a.id,
                    host: a.host,
                    location: a.location,
                    version: a.version,
                    registered: a.registered,
                    last_heartbeat: a.last_seen,
                })
                .collect();
            out.sort_by(|a, b| a.host.cmp(&b.host));
            Ok(Json(out))
        })
        .await
}
