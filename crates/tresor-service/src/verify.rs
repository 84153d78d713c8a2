//! Verify of a vault, in either region: every pack re-read and checked against its
//! name and the blobs the index lists in it, every recovery point's tree walked.
//! A job of operation `Verify`; damage fails it with `DamageFound` and names the
//! damaged points.

use std::sync::Arc;
use tresor_domain::JobOperation;

use tresor_api::jobs::{DamagedPoint, JobParams, VerifyResult};
use tresor_domain::{JobErrorInfo, JobStatus};
use tresor_engine::progress::Progress;
use tresor_metadata::{JobRow, VaultRow};

use crate::error::{ServiceError, ServiceResult};
use crate::jobs;
use crate::replication::ProgressReporter;
use crate::repos::Region;
use crate::state::Service;
use crate::views::{self, JobBody};

pub const TASK_VERIFY: &str = "Verify recovery points";

/// Starts a verify of the vault's copy in `region`, in the background.
pub fn start(state: &Arc<Service>, vault: &VaultRow, region: Region) -> ServiceResult<JobRow> {
    state.repos.available_target(vault, region)?;
    let job = jobs::new_job(
        state,
        &vault.id,
        None,
        JobOperation::Verify,
        None,
        JobParams {
            use_secondary_region: region == Region::Secondary,
            ..JobParams::default()
        },
        &[TASK_VERIFY],
    )?;
    let (s, v, j) = (state.clone(), vault.clone(), job.clone());
    tokio::task::spawn_blocking(move || {
        if let Err(e) = run(&s, &v, region, j) {
            tracing::warn!(vault = %v.name, error = %e, "verify could not record its end");
        }
    });
    Ok(job)
}

fn run(state: &Service, vault: &VaultRow, region: Region, job: JobRow) -> ServiceResult<()> {
    let progress = Arc::new(Progress::default());
    let reporter = ProgressReporter::start(state, &job, progress.clone());
    let mut points_checked = 0;
    let mut packs_checked = 0;
    let mut bytes_checked = 0;
    let mut damaged = Vec::<DamagedPoint>::new();
    let mut problems = Vec::<String>::new();
    let mut failure = None;
    // The points the catalogue says this region holds, by host: each must be there.
    let items: std::collections::HashMap<String, String> = state
        .store
        .list_items(&vault.id, true)?
        .into_iter()
        .map(|i| (i.id, i.agent_id))
        .collect();
    let expected: Vec<(String, String)> = state
        .store
        .list_vault_points_with_deleted(&vault.id)?
        .into_iter()
        .filter(|p| match region {
            Region::Primary => p.primary_deleted.is_none(),
            Region::Secondary => p.replicated.is_some(),
        })
        .filter_map(|p| items.get(&p.item_id).map(|a| (a.clone(), p.id)))
        .collect();
    let mut hosts = state.repos.of_vault(vault, region);
    for (agent, _) in &expected {
        if !hosts.contains(agent) {
            hosts.push(agent.clone());
        }
    }
    for agent in hosts {
        if progress.cancelled() {
            break;
        }
        let report = state
            .repos
            .open(vault, &agent, region)
            .map_err(|e| {
                (
                    e.code.to_string(),
                    e.recommendation().to_string(),
                    e.message,
                )
            })
            .map_err(|(code, rec, message)| (code, message, rec))
            .and_then(|repo| {
                let failed = |e: tresor_engine::Error| {
                    (
                        "VerifyFailed".to_string(),
                        e.to_string(),
                        "see the server's log".to_string(),
                    )
                };
                let report =
                    tresor_engine::verify::run(&repo, None, Some(&progress)).map_err(failed)?;
                let present = repo.point_ids().map_err(failed)?;
                Ok((report, present))
            });
        match report {
            Ok((r, present)) => {
                for (_, id) in expected.iter().filter(|(a, _)| *a == agent) {
                    if !present.contains(id) {
                        damaged.push(DamagedPoint {
                            id: id.clone(),
                            name: None,
                            created: None,
                            problems: vec!["the catalogue lists this recovery point in this region, but its manifest is missing".into()],
                        });
                    }
                }
                points_checked += r.points_checked;
                packs_checked += r.packs_checked;
                bytes_checked += r.bytes_checked;
                problems.extend(r.problems);
                damaged.extend(r.damaged_points.into_iter().map(|d| DamagedPoint {
                    id: d.id,
                    name: Some(d.name),
                    created: Some(d.created),
                    problems: d.problems,
                }));
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    reporter.stop();
    let mut job = state.store.get_job(&job.id)?;
    let result = views::result(&VerifyResult {
        region: if region == Region::Secondary {
            "Secondary"
        } else {
            "Primary"
        }
        .into(),
        points_checked,
        packs_checked,
        bytes_checked,
        damaged_points: damaged.clone(),
        problems: problems.clone(),
    })?;
    let (status, error) = match failure {
        _ if progress.cancelled() => (JobStatus::Cancelled, None),
        Some((code, message, recommendation)) => (
            JobStatus::Failed,
            Some(JobErrorInfo {
                code,
                message,
                recommendation,
            }),
        ),
        None if !damaged.is_empty() || !problems.is_empty() => (
            JobStatus::Failed,
            Some(JobErrorInfo {
                code: "DamageFound".into(),
                message: format!(
                    "{} recovery points are damaged; {} problems in the storage",
                    damaged.len(),
                    problems.len()
                ),
                recommendation: "restore the damaged points from the other region if it holds them; back up the affected VMs again".into(),
            }),
        ),
        None => (JobStatus::Completed, None),
    };
    let mut body = JobBody::of(&job);
    body.bytes_done = bytes_checked;
    job.body = serde_json::to_value(&body).map_err(ServiceError::internal)?;
    jobs::finish(state, &mut job, status, error, Vec::new(), result)
}
