//! Geo-redundant vaults: copying each host repository to the secondary target, and
//! the secondary's delayed deletes.
//!
//! A run (one per vault at a time; runs of all vaults are serialised with garbage
//! collection, which removes what a run may be copying):
//!
//! 1. Points the catalogue has on the primary but not yet on the secondary are handed
//!    to [`tresor_engine::replicate::run`], which copies what the secondary lacks (packs,
//!    then index files) and only then the manifests. A point is marked `replicated` in
//!    the catalogue after its manifest is on the secondary: the secondary never lists a
//!    half-copied point, and a run that stops anywhere resumes from what is there.
//! 2. Deletes are not copied at once. A point deleted from the primary (retention, a
//!    delete with the item's data) stays in the catalogue with `primary_deleted` set,
//!    restorable from the secondary, until the soft-delete window ends; then its
//!    manifest goes from the secondary and its row from the catalogue. Packs and index
//!    files that garbage collection removed from the primary go from the secondary one
//!    window after a run first saw them missing, and only while the primary still holds
//!    every point the catalogue says it holds: a primary that lost data never makes the
//!    secondary delete anything.
//!
//! Each run that copies or deletes something is a `Replication` job with progress.
//! A run that fails (the secondary unreachable) is a failed job; the next attempt waits
//! `retry_min`, doubling per failure up to `retry_max`. A completed backup wakes the
//! loop at once, so the lag after a backup is the copy time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tresor_api::jobs::{JobParams, ReplicationResult};
use tresor_api::ErrorCode;
use tresor_domain::JobOperation;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tresor_domain::{JobErrorInfo, JobStatus};
use tresor_engine::progress::Progress;
use tresor_engine::replicate::{self, ReplicateOptions};
use tresor_metadata::{JobRow, PointRow, VaultRow};
use tresor_storage::ObjectKind;

use crate::catalogue::is_geo;
use crate::error::{ServiceError, ServiceResult};
use crate::jobs;
use crate::repos::{Region, RepoError};
use crate::state::Service;
use crate::views::{self, JobBody};
use tresor_api::vaults::{
    ReplicationError, ReplicationHealth, ReplicationProgress, ReplicationStatus,
};

pub const TASK_COPY: &str = "Copy data to secondary region";

/// How often a run looks for deletions to make on the secondary even when no new
/// point waits.
const RECONCILE_EVERY: SignedDuration = SignedDuration::from_hours(1);

/// What the catalogue keeps of a vault's replication (a JSON document).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicationState {
    pub last_attempt: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    pub last_error: Option<ReplicationError>,
    /// Failed runs since the last one that worked.
    pub failures: u32,
    /// No run before this (after failures).
    pub next_attempt: Option<Timestamp>,
    /// Bytes the secondary lacks, as the last run measured them (0 after a full copy).
    pub bytes_pending: u64,
    /// Bytes copied to the secondary, in all.
    pub bytes_replicated: u64,
    pub last_reconcile: Option<Timestamp>,
    /// Per host agent: objects on the secondary that the primary no longer has
    /// (`data/NAME`, `index/NAME`, `points/ID`), with when a run first saw that.
    pub pending_deletes: BTreeMap<String, BTreeMap<String, Timestamp>>,
}

pub fn load_state(state: &Service, vault_id: &str) -> ServiceResult<ReplicationState> {
    Ok(state
        .store
        .get_replication(vault_id)?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

fn save_state(state: &Service, vault_id: &str, st: &ReplicationState) -> ServiceResult<()> {
    state.store.put_replication(
        vault_id,
        &serde_json::to_value(st).map_err(ServiceError::internal)?,
    )?;
    Ok(())
}

/// What a point's catalogue row says of the data a backup added (for bytes pending
/// before a run has measured them).
fn bytes_added(p: &PointRow) -> u64 {
    p.body
        .pointer("/stats/bytes_added")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The vault's (or one item's) replication as the API shows it.
pub fn status(
    state: &Service,
    vault: &VaultRow,
    item_id: Option<&str>,
    now: Timestamp,
) -> ServiceResult<ReplicationStatus> {
    let without = |status| ReplicationStatus {
        status,
        secondary_location: None,
        progress: None,
    };
    if !is_geo(vault) {
        return Ok(without(ReplicationHealth::NotApplicable));
    }
    let Ok(target) = state.repos.target(vault, Region::Secondary) else {
        return Ok(without(ReplicationHealth::NoPairedLocation));
    };
    let st = load_state(state, &vault.id)?;
    let points: Vec<PointRow> = state
        .store
        .list_vault_points_with_deleted(&vault.id)?
        .into_iter()
        .filter(|p| item_id.is_none_or(|i| p.item_id == i))
        .collect();
    let pending: Vec<&PointRow> = points
        .iter()
        .filter(|p| p.replicated.is_none() && p.primary_deleted.is_none())
        .collect();
    let lag = pending
        .iter()
        .map(|p| p.created)
        .min()
        .map(|oldest| now.duration_since(oldest).as_secs_f64().max(0.0))
        .unwrap_or(0.0);
    let estimate: u64 = pending.iter().map(|p| bytes_added(p)).sum();
    let bytes_pending = if item_id.is_some() {
        estimate
    } else {
        st.bytes_pending.max(estimate)
    };
    let on_secondary = points.iter().filter(|p| p.replicated.is_some()).count();
    let soft_deleted = points
        .iter()
        .filter(|p| p.primary_deleted.is_some() && p.replicated.is_some())
        .count();
    let status = if st.last_error.is_some() {
        ReplicationHealth::Failing
    } else if pending.is_empty() {
        ReplicationHealth::UpToDate
    } else {
        ReplicationHealth::Replicating
    };
    Ok(ReplicationStatus {
        status,
        secondary_location: Some(target.location),
        progress: Some(ReplicationProgress {
            lag_seconds: lag,
            pending_recovery_points: pending.len(),
            bytes_pending,
            recovery_points_on_secondary: on_secondary,
            soft_deleted_recovery_points: soft_deleted,
            last_success: st.last_success,
            last_error: st.last_error,
            next_attempt: st.next_attempt,
            bytes_replicated: st.bytes_replicated,
        }),
    })
}

/// One pass over every GeoRedundant vault (the background loop's step).
pub fn run_all(state: &Service) -> ServiceResult<usize> {
    let mut jobs = 0;
    for vault in state.store.list_vaults()? {
        if !is_geo(&vault) {
            continue;
        }
        // A vault whose run cannot even start (its state unreadable, say) is logged;
        // the other vaults still replicate.
        match run_vault(state, &vault, false) {
            Ok(Some(_)) => jobs += 1,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(vault = %vault.name, error = %e, "replication of this vault could not run")
            }
        }
    }
    Ok(jobs)
}

/// Replicates one vault if anything waits (or `force`), returning the run's job.
pub fn run_vault(state: &Service, vault: &VaultRow, force: bool) -> ServiceResult<Option<JobRow>> {
    let now = state.now();
    let st = load_state(state, &vault.id)?;
    if !force && st.next_attempt.is_some_and(|t| t > now) {
        return Ok(None);
    }
    let window = state.repos.locations().replication.soft_delete;
    let points = state.store.list_vault_points_with_deleted(&vault.id)?;
    let waiting = points
        .iter()
        .any(|p| p.replicated.is_none() && p.primary_deleted.is_none());
    let deletes_due = points
        .iter()
        .any(|p| p.primary_deleted.is_some_and(|t| t + window <= now))
        || st
            .pending_deletes
            .values()
            .flat_map(|m| m.values())
            .any(|t| *t + window <= now);
    let reconcile_due = st.last_reconcile.is_none_or(|t| t + RECONCILE_EVERY <= now);
    if !(force || waiting || deletes_due || reconcile_due) {
        return Ok(None);
    }
    // A run with points to copy or deletes to make is a job from its start, with
    // progress; an hourly look that finds nothing to do leaves no job behind.
    let job = if force || waiting || deletes_due {
        Some(new_run_job(state, vault)?)
    } else {
        None
    };
    execute(state, vault, job)
}

/// Starts a replication run of `vault` now, in the background; returns its job.
pub fn start_now(state: &Arc<Service>, vault: &VaultRow) -> ServiceResult<JobRow> {
    if !is_geo(vault) {
        return Err(ServiceError::new(
            ErrorCode::NotGeoRedundant,
            format!(
                "vault {} is {}: it is not replicated",
                vault.name, vault.redundancy
            ),
            "only GeoRedundant vaults have a copy in the paired location",
        ));
    }
    state.repos.target(vault, Region::Secondary)?;
    let job = new_run_job(state, vault)?;
    let (s, v, j) = (state.clone(), vault.clone(), job.clone());
    tokio::task::spawn_blocking(move || {
        if let Err(e) = execute(&s, &v, Some(j)) {
            tracing::warn!(vault = %v.name, error = %e, "replication run failed");
        }
    });
    Ok(job)
}

fn new_run_job(state: &Service, vault: &VaultRow) -> ServiceResult<JobRow> {
    new_run_job_at(state, vault, state.now())
}

fn new_run_job_at(state: &Service, vault: &VaultRow, started: Timestamp) -> ServiceResult<JobRow> {
    let secondary = state
        .repos
        .target(vault, Region::Secondary)
        .map(|t| t.location)
        .ok();
    jobs::new_job_at(
        state,
        started,
        &vault.id,
        None,
        JobOperation::Replication,
        None,
        JobParams {
            secondary_location: secondary,
            ..JobParams::default()
        },
        &[TASK_COPY],
    )
}

/// One run, under the storage lock; the state and points are read again under it.
fn execute(
    state: &Service,
    vault: &VaultRow,
    mut job: Option<JobRow>,
) -> ServiceResult<Option<JobRow>> {
    let _exclusive = state.storage_maintenance.lock();
    let now = state.now();
    let mut st = load_state(state, &vault.id)?;
    let points = state.store.list_vault_points_with_deleted(&vault.id)?;
    st.last_attempt = Some(now);
    let progress = Arc::new(Progress::default());
    let outcome = {
        let reporter = job
            .as_ref()
            .map(|j| ProgressReporter::start(state, j, progress.clone()));
        let r = copy_and_delete(state, vault, &points, &mut st, &progress);
        if let Some(r) = reporter {
            r.stop();
        }
        r
    };
    if job.is_none() && !matches!(&outcome, Ok(run) if run.is_empty()) {
        // Recorded after the fact, it began when the run did.
        job = Some(new_run_job_at(state, vault, now)?);
    }
    let Some(job) = job else {
        st.last_reconcile = Some(now);
        st.last_success = Some(state.now());
        st.failures = 0;
        st.next_attempt = None;
        st.last_error = None;
        st.bytes_pending = 0;
        save_state(state, &vault.id, &st)?;
        return Ok(None);
    };
    let mut job = state.store.get_job(&job.id)?;
    if progress.cancelled() {
        // Cancelled by hand: not a failure of the secondary; the next run goes on.
        save_state(state, &vault.id, &st)?;
        jobs::finish(
            state,
            &mut job,
            JobStatus::Cancelled,
            None,
            Vec::new(),
            Value::Null,
        )?;
        return Ok(Some(job));
    }
    match outcome {
        Ok(run) => {
            st.failures = 0;
            st.next_attempt = None;
            st.last_error = None;
            st.last_success = Some(state.now());
            st.last_reconcile = Some(now);
            st.bytes_pending = 0;
            st.bytes_replicated += run.bytes_copied;
            save_state(state, &vault.id, &st)?;
            let status = if run.warnings.is_empty() {
                JobStatus::Completed
            } else {
                JobStatus::CompletedWithWarnings
            };
            let mut body = JobBody::of(&job);
            body.bytes_total = body.bytes_total.max(run.bytes_copied);
            body.bytes_done = run.bytes_copied;
            job.body = serde_json::to_value(&body).map_err(ServiceError::internal)?;
            let result = views::result(&ReplicationResult {
                recovery_points_replicated: run.published.clone(),
                objects_copied: run.objects_copied,
                bytes_copied: run.bytes_copied,
                bytes_already_on_secondary: run.bytes_skipped,
                objects_deleted_from_secondary: run.deleted,
            })?;
            jobs::finish(state, &mut job, status, None, run.warnings, result)?;
            tracing::info!(vault = %vault.name, points = run.published.len(), bytes = run.bytes_copied, "replicated");
        }
        Err(e) => {
            st.failures += 1;
            let backoff = state.repos.locations().replication.retry_min
                * 2i32.saturating_pow(st.failures.saturating_sub(1).min(20));
            let backoff = backoff.min(state.repos.locations().replication.retry_max);
            st.next_attempt = Some(state.now() + backoff);
            st.last_error = Some(ReplicationError {
                code: e.code.to_string(),
                message: e.message.clone(),
                recommendation: e.recommendation().to_string(),
                time: state.now(),
            });
            st.bytes_pending = points
                .iter()
                .filter(|p| p.replicated.is_none() && p.primary_deleted.is_none())
                .map(bytes_added)
                .sum();
            save_state(state, &vault.id, &st)?;
            tracing::warn!(vault = %vault.name, code = e.code.as_str(), error = %e.message, retry_in_s = backoff.as_secs(), "replication failed");
            jobs::finish(
                state,
                &mut job,
                JobStatus::Failed,
                Some(JobErrorInfo {
                    code: e.code.to_string(),
                    message: e.message.clone(),
                    recommendation: e.recommendation().to_string(),
                }),
                Vec::new(),
                json!({"nextAttempt": st.next_attempt}),
            )?;
        }
    }
    Ok(Some(job))
}

#[derive(Debug, Default)]
struct RunOutcome {
    published: Vec<String>,
    objects_copied: u64,
    bytes_copied: u64,
    bytes_skipped: u64,
    deleted: u64,
    warnings: Vec<String>,
}

impl RunOutcome {
    fn is_empty(&self) -> bool {
        self.published.is_empty() && self.objects_copied == 0 && self.deleted == 0
    }
}

fn repo_error(code: ErrorCode) -> impl Fn(String) -> RepoError {
    move |message| RepoError { code, message }
}

fn object_key(kind: ObjectKind, name: &str) -> String {
    format!("{}/{name}", kind.dir())
}

fn key_kind(key: &str) -> Option<(ObjectKind, &str)> {
    let (dir, name) = key.split_once('/')?;
    let kind = ObjectKind::ALL.into_iter().find(|k| k.dir() == dir)?;
    Some((kind, name))
}

fn copy_and_delete(
    state: &Service,
    vault: &VaultRow,
    points: &[PointRow],
    st: &mut ReplicationState,
    progress: &Progress,
) -> Result<RunOutcome, RepoError> {
    let db = |e: tresor_metadata::StoreError| repo_error(ErrorCode::CatalogueError)(e.to_string());
    let now = state.now();
    let window = state.repos.locations().replication.soft_delete;
    let items: HashMap<String, String> = state
        .store
        .list_items(&vault.id, true)
        .map_err(db)?
        .into_iter()
        .map(|i| (i.id, i.agent_id))
        .collect();
    let mut out = RunOutcome::default();
    let mut hosts = state.repos.of_vault(vault, Region::Primary);
    for a in state.repos.of_vault(vault, Region::Secondary) {
        if !hosts.contains(&a) {
            hosts.push(a);
        }
    }
    for agent in hosts {
        let host_points: Vec<&PointRow> = points
            .iter()
            .filter(|p| items.get(&p.item_id) == Some(&agent))
            .collect();
        let src = state.repos.open(vault, &agent, Region::Primary)?;
        let dst = state
            .repos
            .backend(vault, &agent, Region::Secondary, true)?;
        let wanted: Vec<String> = host_points
            .iter()
            .filter(|p| p.replicated.is_none() && p.primary_deleted.is_none())
            .map(|p| p.id.clone())
            .collect();
        let report = replicate::run(
            &src,
            dst.as_ref(),
            &wanted,
            &ReplicateOptions::default(),
            Some(progress),
        )
        .map_err(|e| classify(state, vault, e.to_string()))?;
        out.objects_copied += report.objects_copied;
        out.bytes_copied += report.bytes_copied;
        out.bytes_skipped += report.skipped_bytes;
        for id in report.points_published.iter().chain(&report.points_already) {
            if let Some(p) = host_points.iter().find(|p| &p.id == id) {
                let mut p = (*p).clone();
                p.replicated = Some(state.now());
                state.store.update_point(&p).map_err(db)?;
            }
        }
        out.published
            .extend(report.points_published.iter().cloned());
        for (id, why) in &report.unpublishable {
            out.warnings.push(format!(
                "recovery point {id} cannot be replicated: {why}. Run a verify of the vault"
            ));
        }

        // Deletes, delayed by the window.
        let orphans = replicate::orphans(src.backend().as_ref(), dst.as_ref())
            .map_err(|e| classify(state, vault, e.to_string()))?;
        let seen = st.pending_deletes.entry(agent.clone()).or_default();
        let orphan_keys: Vec<String> = orphans.iter().map(|(k, n, _)| object_key(*k, n)).collect();
        seen.retain(|k, _| orphan_keys.contains(k));
        for k in &orphan_keys {
            seen.entry(k.clone()).or_insert(now);
        }
        // Points: the catalogue's soft-delete time rules.
        let soft_deleted: HashMap<&str, &PointRow> = host_points
            .iter()
            .filter(|p| p.primary_deleted.is_some())
            .map(|p| (p.id.as_str(), *p))
            .collect();
        let primary_intact = host_points
            .iter()
            .filter(|p| p.primary_deleted.is_none())
            .all(|p| {
                src.backend()
                    .exists(ObjectKind::Point, &p.id)
                    .unwrap_or(false)
            });
        if !primary_intact {
            out.warnings.push(format!(
                "the primary copy of host {agent}'s repository lacks recovery points the catalogue lists; the secondary deletes nothing until that is resolved (run a verify of the vault)"
            ));
        }
        for key in orphan_keys {
            let Some((kind, name)) = key_kind(&key) else {
                continue;
            };
            let due = match kind {
                ObjectKind::Point => match soft_deleted.get(name) {
                    Some(p) => p.primary_deleted.is_some_and(|t| t + window <= now),
                    // A manifest the catalogue does not know: the orphan rule.
                    None => primary_intact && seen[&key] + window <= now,
                },
                _ => primary_intact && seen[&key] + window <= now,
            };
            if !due {
                continue;
            }
            dst.delete(kind, name)
                .map_err(|e| classify(state, vault, e.to_string()))?;
            seen.remove(&key);
            out.deleted += 1;
            if kind == ObjectKind::Point {
                if soft_deleted.contains_key(name) {
                    state.store.delete_point(name).map_err(db)?;
                }
                tracing::info!(vault = %vault.name, point = name, "recovery point removed from the secondary (soft-delete window ended)");
            }
        }
        // Soft-deleted rows whose manifest never reached (or already left) the secondary.
        for p in soft_deleted.values() {
            if p.primary_deleted.is_some_and(|t| t + window <= now)
                && !dst.exists(ObjectKind::Point, &p.id).unwrap_or(true)
            {
                state.store.delete_point(&p.id).map_err(db)?;
            }
        }
        if seen.is_empty() {
            st.pending_deletes.remove(&agent);
        }
    }
    Ok(out)
}

/// Names a failed copy by the target that is not there (checked after the failure),
/// or as a replication failure when both are.
fn classify(state: &Service, vault: &VaultRow, message: String) -> RepoError {
    for region in [Region::Secondary, Region::Primary] {
        if let Ok(t) = state.repos.target(vault, region) {
            if let Err(why) = t.check() {
                return RepoError::unavailable(region, format!("{why} ({message})"));
            }
        }
    }
    repo_error(ErrorCode::ReplicationFailed)(message)
}

/// Copies a running job's byte counts (replication, verify) into the job twice a second.
pub(crate) struct ProgressReporter {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressReporter {
    pub(crate) fn start(
        state: &Service,
        job: &JobRow,
        progress: Arc<Progress>,
    ) -> ProgressReporter {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let store = state.store.clone();
        let job_id = job.id.clone();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(500));
                let (done, total) = progress.snapshot();
                if let Ok(mut job) = store.get_job(&job_id) {
                    let mut body = JobBody::of(&job);
                    if body.cancel_requested {
                        progress
                            .cancel
                            .store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    if body.bytes_done != done || body.bytes_total != total {
                        body.bytes_done = done;
                        body.bytes_total = total;
                        if let Ok(v) = serde_json::to_value(&body) {
                            job.body = v;
                            let _ = store.update_job(&job);
                        }
                    }
                }
            }
        });
        ProgressReporter {
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// At start-up: runs the server itself did (replication, verify) cannot have survived
/// its stop; they end as failed, and the next run starts from what is stored.
pub fn fail_interrupted_runs(state: &Service) -> ServiceResult<usize> {
    let mut n = 0;
    for op in [JobOperation::Replication, JobOperation::Verify] {
        let running = state.store.list_jobs(&tresor_metadata::JobFilter {
            status: Some("InProgress".into()),
            operation: Some(op.as_str().into()),
            limit: Some(10_000),
            ..Default::default()
        })?;
        for mut job in running {
            jobs::finish(
                state,
                &mut job,
                JobStatus::Failed,
                Some(JobErrorInfo {
                    code: "ServerRestarted".into(),
                    message: format!("the server stopped while this {} job ran", op.as_str()),
                    recommendation: match op {
                        JobOperation::Replication => "nothing to do: the next replication run continues from what reached the secondary".into(),
                        _ => "run the verify again".into(),
                    },
                }),
                Vec::new(),
                Value::Null,
            )?;
            n += 1;
        }
    }
    Ok(n)
}
