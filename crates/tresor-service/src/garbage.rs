//! Garbage collection of every vault's repositories, decided by the catalogue.
//!
//! What is live is what the server itself accepted: the recovery points its catalogue
//! lists, soft-deleted ones too until they are purged, (each checked by `tresor_engine::intake::check_point` before it was
//! catalogued). Nothing an agent wrote (a manifest, an index file) can make a blob
//! that a catalogued point needs look dead, and a pack goes only when its own trailer
//! agrees (see `tresor_engine::gc`).
//!
//! Manifests that are not recovery points of the catalogue (a backup whose agent died
//! after the upload, a point the server refused, anything a hostile agent stored) are
//! removed first, but only when the host has no job running and no backup registered,
//! checked after they were listed: a backup that stored its manifest before the
//! listing has then ended, catalogued or failed.
//!
//! Each repository is collected on its own; one that fails becomes a Failed job of its
//! vault naming what is wrong, and the others go on.

use std::collections::HashSet;
use tresor_api::jobs::{GarbageCollectionResult, JobParams};
use tresor_api::ErrorCode;
use tresor_domain::JobOperation;

use tresor_domain::{JobErrorInfo, JobStatus};
use tresor_engine::gc::{GcOptions, GcReport};
use tresor_metadata::VaultRow;

use crate::error::{ServiceError, ServiceResult};
use crate::jobs;
use crate::repos::Region;
use crate::state::Service;
use crate::views;

pub const TASK_GC: &str = "Reclaim unreferenced storage";

/// What one repository's collection did.
#[derive(Debug, Default)]
pub struct Collected {
    /// Manifests removed because the catalogue does not list them.
    pub orphan_manifests: u64,
    pub report: GcReport,
}

/// Collects every repository of every vault. Failures are recorded per repository
/// (a Failed job in its vault) and never stop the others.
pub fn collect_all(state: &Service) -> ServiceResult<()> {
    let _exclusive = state.storage_maintenance.lock();
    for vault in state.store.list_vaults()? {
        for agent in state.repos.of_vault(&vault, Region::Primary) {
            let begun = state.now();
            match collect_repository(state, &vault, &agent) {
                Ok(None) => {}
                Ok(Some(c)) => {
                    tracing::info!(vault = %vault.name, agent = %agent, orphans = c.orphan_manifests, "{}", c.report);
                    if c.orphan_manifests > 0
                        || c.report.bytes_freed > 0
                        || c.report.blobs_removed > 0
                    {
                        record(state, &vault, &agent, begun, JobStatus::Completed, None, &c);
                    }
                }
                Err(e) => {
                    tracing::warn!(vault = %vault.name, agent = %agent, error = %e, "garbage collection failed");
                    let error = JobErrorInfo {
                        code: "GarbageCollectionStopped".into(),
                        message: format!("host agent {agent}'s repository: {}", e.message),
                        recommendation: "nothing was removed; run a verify of the vault (tresor vault verify) to see what is damaged".into(),
                    };
                    record(
                        state,
                        &vault,
                        &agent,
                        begun,
                        JobStatus::Failed,
                        Some(error),
                        &Collected::default(),
                    );
                }
            }
        }
    }
    Ok(())
}

/// A job that shows what a collection did (or why it stopped).
fn record(
    state: &Service,
    vault: &VaultRow,
    agent: &str,
    begun: jiff::Timestamp,
    status: JobStatus,
    error: Option<JobErrorInfo>,
    c: &Collected,
) {
    let result = views::result(&GarbageCollectionResult {
        host_agent: agent.to_string(),
        orphan_manifests_removed: c.orphan_manifests,
        blobs_removed: c.report.blobs_removed,
        packs_deleted: c.report.packs_deleted,
        packs_repacked: c.report.packs_repacked,
        bytes_freed: c.report.bytes_freed,
        packs_kept: c.report.packs_kept.clone(),
    });
    let recorded = jobs::new_job_at(
        state,
        begun,
        &vault.id,
        None,
        JobOperation::GarbageCollection,
        None,
        JobParams {
            host_agent: Some(agent.to_string()),
            ..JobParams::default()
        },
        &[TASK_GC],
    )
    .and_then(|mut job| jobs::finish(state, &mut job, status, error, Vec::new(), result?));
    if let Err(e) = recorded {
        tracing::warn!(vault = %vault.name, error = %e, "garbage collection could not record its job");
    }
}

/// Collects one host's repository in a vault; `None` when it was left alone (missing,
/// or its host has a job running).
pub fn collect_repository(
    state: &Service,
    vault: &VaultRow,
    agent: &str,
) -> ServiceResult<Option<Collected>> {
    if !state.repos.exists(vault, agent, Region::Primary)
        || !state.store.running_jobs_of_agent(agent)?.is_empty()
    {
        return Ok(None);
    }
    let repo = state.repos.open_or_create(vault, agent)?;
    // The order matters (see the module's text): list, then look who runs, then read
    // the catalogue.
    let stored = repo.point_ids()?;
    let nobody_writes = repo
        .backend()
        .writers()
        .live()
        .map_err(|e| ServiceError::internal(e.to_string()))?
        .is_empty();
    if !state.store.running_jobs_of_agent(agent)?.is_empty() {
        return Ok(None);
    }
    let items: HashSet<String> = state
        .store
        .list_items(&vault.id, true)?
        .into_iter()
        .filter(|i| i.agent_id == agent)
        .map(|i| i.id)
        .collect();
    let catalogue = state.store.list_vault_points_with_deleted(&vault.id)?;
    let known: HashSet<&str> = catalogue.iter().map(|p| p.id.as_str()).collect();
    // Live: every point on the primary, soft-deleted ones included (they stay until
    // their purge removes them from the catalogue: soft_delete.rs).
    let live: Vec<String> = catalogue
        .iter()
        .filter(|p| p.primary_deleted.is_none() && items.contains(&p.item_id))
        .map(|p| p.id.clone())
        .collect();
    let mut out = Collected::default();
    if nobody_writes {
        for id in stored.iter().filter(|id| !known.contains(id.as_str())) {
            match repo.forget(id) {
                Ok(_) | Err(tresor_engine::Error::PointNotFound { .. }) => {}
                // A manifest that cannot even be opened is removed all the same: it
                // is not a point of the catalogue, and agents must not build on it.
                Err(tresor_engine::Error::Format(_)) | Err(tresor_engine::Error::Invalid(_)) => {
                    repo.backend()
                        .delete(tresor_storage::ObjectKind::Point, id)
                        .map_err(|e| ServiceError::internal(e.to_string()))?;
                }
                Err(e) => return Err(e.into()),
            }
            tracing::info!(vault = %vault.name, agent, point = %id, "manifest the catalogue does not list removed");
            out.orphan_manifests += 1;
        }
    }
    let opts = GcOptions {
        points: Some(live),
        ..GcOptions::default()
    };
    out.report = tresor_engine::gc::run(&repo, &opts, None).map_err(gc_error)?;
    Ok(Some(out))
}

fn gc_error(e: tresor_engine::Error) -> ServiceError {
    match e {
        tresor_engine::Error::Invalid(m) => ServiceError::new(
            ErrorCode::GarbageCollectionStopped,
            m,
            "run a verify of the vault",
        ),
        e => ServiceError::internal(e),
    }
}
