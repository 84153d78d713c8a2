//! What a job is to the agent: its assignment from the server (`tresor-api`'s
//! [`Assignment`]), the repository it works on, and a failed end as reported.

use std::sync::Arc;

use tresor_api::agents::Completion;
use tresor_api::jobs::{JobErrorInfo, JobStatus};
use tresor_client::ApiClient;
use tresor_engine::Repository;

use crate::remote::{RefusalSlot, RemoteBackend};

pub(super) use tresor_api::agents::Assignment;

/// A job's end with `status` and `warnings`, nothing else.
pub(super) fn ended(status: JobStatus, warnings: Vec<String>) -> Completion {
    Completion {
        status,
        warnings,
        error: None,
        point_id: None,
        frozen_ms: None,
        result: serde_json::Value::Null,
    }
}

/// A failed end: a stable code, what happened, what to do.
pub(super) fn failed(code: &str, message: String, recommendation: &str) -> Completion {
    Completion {
        error: Some(JobErrorInfo {
            code: code.to_string(),
            message,
            recommendation: recommendation.to_string(),
        }),
        ..ended(JobStatus::Failed, Vec::new())
    }
}

/// The job's repository, and where its backend keeps the server's last error answer;
/// else the job's failed end.
pub(super) fn open_repo(
    api: &Arc<ApiClient>,
    job: &Assignment,
) -> Result<(Repository, RefusalSlot), Box<Completion>> {
    let handle = tokio::runtime::Handle::current();
    let backend = if job.params.use_secondary_region {
        RemoteBackend::secondary(api.clone(), handle, &job.vault_id)
    } else {
        RemoteBackend::new(api.clone(), handle, &job.vault_id)
    };
    let refusal = backend.refusal();
    tokio::task::block_in_place(|| Repository::open(Arc::new(backend), job.passphrase.as_bytes()))
        .map(|repo| (repo, refusal))
        .map_err(|e| {
            Box::new(failed(
                "VaultUnreachable",
                format!("cannot open the vault's repository: {e}"),
                "check the agent's connection (tresor agent check)",
            ))
        })
}
