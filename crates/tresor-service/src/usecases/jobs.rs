//! Jobs of a vault: list with filters, show, cancel.

use std::sync::Arc;
use tresor_domain::access::Permission;

use serde_json::Value;
use tresor_api::jobs::{Job, JobQuery};
use tresor_api::ErrorCode;
use tresor_domain::JobStatus;
use tresor_metadata::JobFilter;

use crate::audit::Target;
use crate::auth::Principal;
use crate::catalogue::find_vault;
use crate::error::{ServiceError, ServiceResult};
use crate::jobs;
use crate::state::Service;
use crate::views::{self, enum_name, JobBody};

/// The job `id` of the vault named `vault` (and the vault), or NotFound.
fn find_job(
    s: &Service,
    vault: &str,
    id: &str,
) -> ServiceResult<(tresor_metadata::VaultRow, tresor_metadata::JobRow)> {
    let v = find_vault(s, vault)?;
    let job = s.store.get_job(id)?;
    if job.vault_id != v.id {
        return Err(ServiceError::not_found(format!(
            "job {id} in vault {vault}"
        )));
    }
    Ok((v, job))
}

impl Service {
    pub async fn jobs(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        q: JobQuery,
    ) -> ServiceResult<Vec<Job>> {
        let caller = who.clone();
        self.blocking(move |s| {
            let v = find_vault(s, &vault)?;
            caller.require(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?)?;
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
            jobs.iter().map(|j| views::job(j, now)).collect()
        })
        .await
    }

    pub async fn job(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        id: String,
    ) -> ServiceResult<Job> {
        let caller = who.clone();
        self.blocking(move |s| {
            let (v, job) = find_job(s, &vault, &id)?;
            caller.require(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?)?;
            views::job(&job, s.now())
        })
        .await
    }

    /// Cancels a job: at once if no agent took it yet, else the agent (or, for the
    /// server's own runs, replication and verify, the server) is told and ends the job as
    /// Cancelled.
    pub async fn cancel_job(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        id: String,
    ) -> ServiceResult<Job> {
        let target = Target::in_vault(&vault, &id);
        let r: ServiceResult<Job> = async {
            let caller = who.clone();
            self.blocking(move |s| {
                let (v, mut job) = find_job(s, &vault, &id)?;
                caller.require(Permission::CancelJob, &crate::catalogue::vault_target(&v)?)?;
                if job.is_finished() {
                    return Err(ServiceError::new(
                        ErrorCode::JobAlreadyEnded,
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
                    job.body = serde_json::to_value(&body).map_err(ServiceError::internal)?;
                    job.status = enum_name(JobStatus::Cancelling);
                    s.store.update_job(&job)?;
                }
                views::job(&job, s.now())
            })
            .await
        }
        .await;
        self.audited(who, "job.cancel", target, r).await
    }
}
