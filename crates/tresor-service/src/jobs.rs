//! The job engine: creating jobs, finishing them, turning a finished backup into a
//! catalogued recovery point, retention, and jobs whose agent went away.
//!
//! Every job ends. A job an agent took carries a lease that the agent's progress
//! reports renew; a lease that runs out (the agent died, the network is cut) fails
//! the job with `AgentUnreachable`. After the server itself was down, leases are
//! extended once at start-up so that agents can come back and report.
//!
//! A job no agent takes (its agent is gone, or calls a server address that is no
//! longer this one) fails with `AgentDidNotStart` once it waited [`START_TIMEOUT`]
//! by the server's clock, counted from the job's creation or the server's last
//! start, whichever is later (a server that was down gave the agent no chance). A job
//! waiting behind one its agent is running (one job at a time) waits on.

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use tresor_api::jobs::{BackupResult, JobParams};
use tresor_api::ErrorCode;
use tresor_domain::{BackupPolicy, JobErrorInfo, JobOperation, JobStatus, JobTask};
use tresor_metadata::{ItemRow, JobRow, PointRow};

use crate::auth::new_id;
use crate::catalogue::{parse_policy, parse_state};
use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;
use crate::views::{self, enum_name, JobBody};

/// How long a taken job lives without a report from its agent.
pub const LEASE: SignedDuration = SignedDuration::from_secs(120);

/// How long a job waits for its agent to take it before it fails with
/// `AgentDidNotStart`.
pub const START_TIMEOUT: SignedDuration = SignedDuration::from_mins(30);

/// The code of a job its agent did not take within [`START_TIMEOUT`].
pub const AGENT_DID_NOT_START: &str = "AgentDidNotStart";

/// The setting holding the server's last start (when queued jobs began to wait).
const SERVER_STARTED: &str = "server_started";

/// At most this many waiting jobs are looked at by one sweep (the next sweep takes
/// the rest).
const SWEEP_BATCH: u32 = 10_000;

pub const TASK_SNAPSHOT: &str = "Take snapshot";
pub const TASK_TRANSFER: &str = "Transfer data to vault";
/// Tasks every backup job has, in order.
pub const BACKUP_TASKS: [&str; 2] = [TASK_SNAPSHOT, TASK_TRANSFER];

/// A new job, `InProgress`, for `target_agent` to take (or none: done by the server).
pub fn new_job(
    state: &Service,
    vault_id: &str,
    item: Option<&ItemRow>,
    operation: JobOperation,
    target_agent: Option<&str>,
    params: JobParams,
    tasks: &[&str],
) -> ServiceResult<JobRow> {
    new_job_at(
        state,
        state.now(),
        vault_id,
        item,
        operation,
        target_agent,
        params,
        tasks,
    )
}

/// A new job that began at `created` (a run the server recorded after it started).
#[allow(clippy::too_many_arguments)]
pub fn new_job_at(
    state: &Service,
    created: Timestamp,
    vault_id: &str,
    item: Option<&ItemRow>,
    operation: JobOperation,
    target_agent: Option<&str>,
    params: JobParams,
    tasks: &[&str],
) -> ServiceResult<JobRow> {
    let mut params = params;
    if operation == JobOperation::Backup {
        // Every backup (on demand or scheduled) leaves out the disks its item excludes
        // as they are when it is made; the agent passes them to the provider.
        // It follows the item's newest point the catalogue holds: never a point
        // the server did not accept (an agent killed after writing a manifest).
        if let Some(i) = item {
            params.excluded_disks = i.excluded_disks.clone();
            params.parent_point = state.store.list_points(&i.id)?.pop().map(|p| p.id);
        }
    }
    let body = JobBody {
        vm_name: item.map(|i| i.vm_name.clone()).unwrap_or_default(),
        params,
        tasks: tasks
            .iter()
            .map(|t| JobTask {
                name: t.to_string(),
                status: JobStatus::InProgress,
            })
            .collect(),
        ..JobBody::default()
    };
    let job = JobRow {
        id: new_id(),
        vault_id: vault_id.to_string(),
        item_id: item.map(|i| i.id.clone()),
        operation: operation.as_str().to_string(),
        status: enum_name(JobStatus::InProgress),
        agent_id: None,
        target_agent: target_agent.map(str::to_string),
        created,
        started: None,
        ended: None,
        lease_until: None,
        body: serde_json::to_value(&body).map_err(ServiceError::internal)?,
    };
    state.store.insert_job(&job).map_err(|e| match e {
        tresor_metadata::StoreError::Conflict { .. } => ServiceError::new(
            ErrorCode::BackupAlreadyInProgress,
            "a backup of this item is already running",
            "wait for it to finish (tresor job wait), then back up again",
        ),
        e => e.into(),
    })?;
    state.jobs_changed.notify_waiters();
    Ok(job)
}

/// Ends `job` with `status`; every task still running ends with it.
pub fn finish(
    state: &Service,
    job: &mut JobRow,
    status: JobStatus,
    error: Option<JobErrorInfo>,
    warnings: Vec<String>,
    result: Value,
) -> ServiceResult<()> {
    let mut body = JobBody::of(job);
    for t in &mut body.tasks {
        if !t.status.is_terminal() {
            t.status = status;
        }
    }
    body.error = error;
    body.warnings.extend(warnings);
    if !result.is_null() {
        body.result = result;
    }
    job.status = enum_name(status);
    job.ended = Some(state.now());
    job.lease_until = None;
    job.body = serde_json::to_value(&body).map_err(ServiceError::internal)?;
    state.store.update_job(job)?;
    // The agent's writer registrations end with its last running job.
    if let Some(agent) = &job.agent_id {
        if no_running_job(state, agent) {
            state.writers.lock().retain(|_, w| &w.agent_id != agent);
        }
    }
    tracing::info!(job = %job.id, operation = %job.operation, status = %job.status, "job finished");
    Ok(())
}

/// Whether the agent has no running job (so its registrations can go).
fn no_running_job(state: &Service, agent: &str) -> bool {
    state
        .store
        .running_jobs_of_agent(agent)
        .map(|j| j.is_empty())
        .unwrap_or(false)
}

/// What an agent reports when a backup ends well.
pub struct BackupDone {
    pub point_id: String,
    pub warnings: Vec<String>,
    pub frozen_ms: Option<u64>,
}

/// Catalogues the recovery point a backup job made, after the server checked it with
/// its own key (`tresor_engine::intake::check_point`): the manifest opens, names this
/// item, and every tree node and chunk it references is stored and valid. A point
/// that fails the check is not catalogued: its manifest is removed (so no later backup
/// builds on it) and the job fails with `RecoveryPointRejected`. A job never lists a
/// point that is not there, or one that lies.
pub fn complete_backup(state: &Service, job: &mut JobRow, done: BackupDone) -> ServiceResult<()> {
    let item_id = job
        .item_id
        .clone()
        .ok_or_else(|| ServiceError::internal("backup job without item"))?;
    let mut item = state.store.get_item(&item_id)?;
    let agent = job.agent_id.clone().unwrap_or_default();
    let mut vault = state.store.get_vault(&job.vault_id)?;
    let began = job.started.unwrap_or(job.created);
    // A report retried after the server stopped between cataloguing this job's point
    // and ending the job: the point is this item's and no older than the job.
    let point = match state.store.get_point(&done.point_id) {
        Ok(p) if p.item_id == item.id && p.created >= began => p,
        _ => {
            let repo = state.repos.open_or_create(&vault, &agent)?;
            let manifest = match accept_point(state, &repo, &item, &done.point_id)? {
                Ok(m) => m,
                Err(refusal) => {
                    tracing::warn!(job = %job.id, item = ?item.vm_name, code = refusal.code, "{}", refusal.message);
                    finish(
                        state,
                        job,
                        JobStatus::Failed,
                        Some(refusal),
                        done.warnings,
                        Value::Null,
                    )?;
                    item.state = enum_name(parse_state(&item.state).after_backup_failed());
                    state.store.update_item(&item)?;
                    return Ok(());
                }
            };
            let point = catalogue_point(state, job, &item, &manifest, &done, began)?;
            state.store.insert_point(&point)?;
            point
        }
    };
    if !vault.redundancy_locked {
        vault.redundancy_locked = true;
        state.store.update_vault(&vault)?;
    }
    item.state = enum_name(parse_state(&item.state).after_backup_succeeded());
    item.last_backup = Some(point.created);
    state.store.update_item(&item)?;
    let status = if done.warnings.is_empty() {
        JobStatus::Completed
    } else {
        JobStatus::CompletedWithWarnings
    };
    let stat = |name: &str| point.body["stats"][name].as_u64();
    let result = views::result(&BackupResult {
        recovery_point: point.id.clone(),
        consistency: point.consistency.clone(),
        bytes_read: stat("bytes_read"),
        bytes_added: stat("bytes_added"),
        frozen_ms: done.frozen_ms,
    })?;
    finish(state, job, status, None, done.warnings, result)?;
    apply_retention(state, &item)?;
    state.replication_wake.notify_one();
    Ok(())
}

/// The catalogue's row for an accepted point. Its time, and the base of its expiry, is
/// within the job's run by the server's clock: an agent cannot date a point into the
/// past to have retention delete it early.
fn catalogue_point(
    state: &Service,
    job: &JobRow,
    item: &ItemRow,
    manifest: &tresor_engine::Manifest,
    done: &BackupDone,
    began: Timestamp,
) -> ServiceResult<PointRow> {
    let created = manifest.created.clamp(began, state.now().max(began));
    let body = JobBody::of(job);
    let on_demand = body.params.on_demand;
    let policy = item
        .policy_id
        .as_deref()
        .map(|p| state.store.get_policy(p))
        .transpose()?
        .map(|p| parse_policy(&p))
        .transpose()?;
    let expires = if on_demand {
        body.params.retain_until
    } else {
        policy
            .as_ref()
            .map(|p: &BackupPolicy| p.retain_until(created))
            .transpose()?
    };
    Ok(PointRow {
        id: manifest.id.clone(),
        vault_id: job.vault_id.clone(),
        item_id: item.id.clone(),
        created,
        consistency: manifest.consistency.to_string(),
        expires,
        on_demand,
        size: manifest.total_size(),
        body: json!({
            "disks": manifest.disks.iter().map(|d| json!({"name": d.name, "size": d.size})).collect::<Vec<_>>(),
            "stats": manifest.stats,
            "parent": manifest.parent,
            "warnings": done.warnings,
            "frozenMs": done.frozen_ms,
            "host": manifest.host,
        }),
        replicated: None,
        primary_deleted: None,
        soft_deleted: None,
        soft_delete_until: None,
    })
}

/// Checks the point an agent reported: `Ok(Err(why))` is a refusal (the job fails
/// with it, and a manifest that is there but wrong is removed, unless the catalogue
/// holds a point of that id: an agent naming another item's point must not delete
/// it); `Err` is the server's own trouble (storage unavailable), for which the agent
/// retries its report.
fn accept_point(
    state: &Service,
    repo: &tresor_engine::Repository,
    item: &ItemRow,
    point_id: &str,
) -> ServiceResult<Result<tresor_engine::Manifest, JobErrorInfo>> {
    let refuse = |code: &str, message: String| {
        JobErrorInfo {
        code: code.into(),
        message,
        recommendation: "back up again; if it happens again, check the host agent (a damaged or tampered agent sends points the vault refuses)".into(),
    }
    };
    let catalogued = !matches!(
        state.store.get_point(point_id),
        Err(tresor_metadata::StoreError::NotFound { .. })
    );
    let why = match tresor_engine::intake::check_point(repo, point_id) {
        Ok(_) if catalogued => {
            format!("recovery point {point_id} was catalogued before; a backup makes a new one")
        }
        Ok(m) if m.name == item.id => return Ok(Ok(m)),
        Ok(m) => format!(
            "recovery point {point_id} is named {:?}, not after this item ({})",
            m.name, item.id
        ),
        Err(tresor_engine::Error::PointNotFound { .. }) => {
            return Ok(Err(refuse(
                "RecoveryPointMissing",
                format!(
                    "the agent reported recovery point {point_id}, but the vault does not hold it"
                ),
            )))
        }
        Err(e @ tresor_engine::Error::Rejected { .. }) => e.to_string(),
        Err(e) => return Err(e.into()),
    };
    // Only a well-formed id names an object (not a prefix of another point's id).
    if tresor_engine::intake::is_point_id(point_id) && !catalogued {
        if let Err(e) = repo.forget(point_id) {
            tracing::warn!(point = %point_id, error = %e, "a refused recovery point's manifest could not be removed");
        }
    }
    Ok(Err(refuse("RecoveryPointRejected", why)))
}

/// Deletes the item's expired points: from the repository first, then the catalogue
/// (where a GeoRedundant vault's replicated points stay for the soft-delete window:
/// see `replication.rs`). Storage is reclaimed by the next garbage collection.
pub fn apply_retention(state: &Service, item: &ItemRow) -> ServiceResult<usize> {
    if !parse_state(&item.state).applies_retention() {
        return Ok(0);
    }
    let now = state.now();
    let points = state.store.list_points(&item.id)?;
    // A soft-deleted point waits for its purge (soft_delete.rs), whatever its expiry.
    let expired: Vec<&PointRow> = points
        .iter()
        .filter(|p| p.soft_deleted.is_none() && p.expires.is_some_and(|e| e <= now))
        .collect();
    if expired.is_empty() {
        return Ok(0);
    }
    let vault = state.store.get_vault(&item.vault_id)?;
    forget_points(state, &vault, &item.agent_id, &expired)?;
    for p in &expired {
        tracing::info!(point = %p.id, item = %item.vm_name, "recovery point expired and deleted");
    }
    Ok(expired.len())
}

/// Removes points from the primary repository, then from the catalogue's primary view.
pub fn forget_points(
    state: &Service,
    vault: &tresor_metadata::VaultRow,
    agent: &str,
    points: &[&PointRow],
) -> ServiceResult<()> {
    if points.is_empty() {
        return Ok(());
    }
    let repo = state.repos.open_or_create(vault, agent)?;
    for p in points {
        match repo.forget(&p.id) {
            Ok(_) | Err(tresor_engine::Error::PointNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        crate::catalogue::delete_points(state, vault, std::slice::from_ref(*p))?;
    }
    Ok(())
}

/// Fails the jobs whose agent stopped reporting.
pub fn sweep_leases(state: &Service) -> ServiceResult<usize> {
    let now = state.now();
    let jobs = state.store.jobs_with_expired_lease(now)?;
    let n = jobs.len();
    for job in jobs {
        let host = host_of(state, &job);
        abandon(
            state,
            job,
            "AgentUnreachable",
            format!(
                "the agent on host {host} stopped reporting on this job for more than {} s",
                LEASE.as_secs()
            ),
            "check that the agent runs and reaches the server (tresor agent check), then run the job again",
        )?;
    }
    Ok(n)
}

/// Fails the jobs that waited longer than `timeout` (by the server's clock, from
/// their creation or the server's last start, whichever is later) for an agent that
/// did not take them, naming the host and when it last reported. A job whose agent is
/// running another one (its lease alive) keeps waiting: the agent takes jobs one at a
/// time. How many failed.
pub fn sweep_unstarted(state: &Service, timeout: SignedDuration) -> ServiceResult<usize> {
    let now = state.now();
    let started = state
        .store
        .get_setting(SERVER_STARTED)?
        .and_then(|t| t.parse::<Timestamp>().ok());
    let cutoff = now - timeout;
    if started.is_some_and(|s| s > cutoff) {
        return Ok(0);
    }
    let waiting = state.store.list_jobs(&tresor_metadata::JobFilter {
        status: Some(enum_name(JobStatus::InProgress)),
        to: Some(cutoff),
        limit: Some(SWEEP_BATCH),
        ..Default::default()
    })?;
    let mut n = 0;
    for job in waiting {
        let Some(target) = job.target_agent.clone() else {
            continue; // the server's own work
        };
        if job.agent_id.is_some() {
            continue; // taken: its lease decides
        }
        let busy = state
            .store
            .running_jobs_of_agent(&target)?
            .iter()
            .any(|j| j.lease_until.is_some_and(|l| l >= now));
        if busy {
            continue;
        }
        let agent = state.store.get_agent(&target).ok();
        let host = agent.as_ref().map_or("(unregistered)", |a| a.host.as_str());
        let last = match agent.as_ref().and_then(|a| a.last_seen) {
            Some(t) => format!(
                "it last reported at {t} ({} minutes before)",
                now.duration_since(t).as_mins()
            ),
            None => "it never reported".into(),
        };
        tracing::warn!(job = %job.id, host = ?host, "no agent took this job in time");
        abandon(
            state,
            job,
            AGENT_DID_NOT_START,
            format!(
                "the agent on host {host} did not take this job within {} minutes; {last}",
                timeout.as_mins()
            ),
            "check that the agent runs and reaches this server (on the host: tresor agent check; its agent.toml and state folder name the server's address), then run the job again",
        )?;
        n += 1;
    }
    Ok(n)
}

/// An agent runs one job at a time: when it asks for its next job, a job it still
/// holds was abandoned (the agent restarted: killed, crashed or its host rebooted in
/// the middle of it). That job ends now, `Failed` with `AgentRestarted` (`Cancelled`
/// if a cancel was asked for), instead of when its lease runs out; until then it would
/// also hold the item's one running backup, refusing "back up now".
pub fn end_abandoned_jobs(state: &Service, agent_id: &str) -> ServiceResult<usize> {
    let jobs = state.store.running_jobs_of_agent(agent_id)?;
    let n = jobs.len();
    for job in jobs {
        let host = host_of(state, &job);
        tracing::warn!(job = %job.id, host = ?host, "the agent asked for a new job while holding this one: it restarted");
        abandon(
            state,
            job,
            "AgentRestarted",
            format!("the agent on host {host} asked for a new job while this one was still its own: it restarted (killed or crashed) while running it, or never received it; what it did is discarded"),
            "run the job again; if the agent keeps restarting, see its log",
        )?;
    }
    Ok(n)
}

fn host_of(state: &Service, job: &JobRow) -> String {
    job.agent_id
        .as_deref()
        .and_then(|a| state.store.get_agent(a).ok())
        .map(|a| a.host)
        .unwrap_or_default()
}

/// Ends a job its agent no longer works on: `Cancelled` if a cancel was asked for,
/// else `Failed` with `code`; a backup's item records the failure.
fn abandon(
    state: &Service,
    mut job: JobRow,
    code: &str,
    message: String,
    recommendation: &str,
) -> ServiceResult<()> {
    let cancelled = job.status == "Cancelling";
    finish(
        state,
        &mut job,
        if cancelled {
            JobStatus::Cancelled
        } else {
            JobStatus::Failed
        },
        (!cancelled).then(|| JobErrorInfo {
            code: code.into(),
            message,
            recommendation: recommendation.into(),
        }),
        Vec::new(),
        Value::Null,
    )?;
    if let Some(item_id) = &job.item_id {
        if job.operation == JobOperation::Backup.as_str() {
            let mut item = state.store.get_item(item_id)?;
            item.state = enum_name(parse_state(&item.state).after_backup_failed());
            state.store.update_item(&item)?;
        }
    }
    Ok(())
}

/// At start-up: jobs taken before the server stopped get a fresh lease, so their
/// agents can report again instead of finding them failed for the server's absence;
/// jobs not taken yet wait [`START_TIMEOUT`] from now.
pub fn extend_leases_after_restart(state: &Service) -> ServiceResult<()> {
    let now = state.now();
    // Queued jobs wait for their agents from now on (see `sweep_unstarted`).
    state.store.set_setting(SERVER_STARTED, &now.to_string())?;
    for mut job in state.store.jobs_with_expired_lease(now + LEASE + LEASE)? {
        job.lease_until = Some(now + LEASE);
        state.store.update_job(&job)?;
    }
    Ok(())
}
