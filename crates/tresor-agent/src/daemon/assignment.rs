//! What a job is to the agent: its assignment from the server, the repository it
//! works on, and a failed end as reported.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};
use tresor_client::ApiClient;
use tresor_engine::Repository;

use crate::remote::{RefusalSlot, RemoteBackend};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Assignment {
    pub(super) job_id: String,
    pub(super) operation: String,
    pub(super) vault_id: String,
    pub(super) vm: Option<String>,
    pub(super) point_name: Option<String>,
    pub(super) passphrase: String,
    pub(super) params: Value,
}

pub(super) fn failed(code: &str, message: String, recommendation: &str) -> Value {
    json!({
        "status": "Failed",
        "error": { "code": code, "message": message, "recommendation": recommendation },
    })
}

/// The job's repository, and where its backend keeps the server's last error answer;
/// else the job's failed end.
pub(super) fn open_repo(
    api: &Arc<ApiClient>,
    job: &Assignment,
) -> Result<(Repository, RefusalSlot), Value> {
    let handle = tokio::runtime::Handle::current();
    let from_secondary = job.params["useSecondaryRegion"].as_bool().unwrap_or(false);
    let backend = if from_secondary {
        RemoteBackend::secondary(api.clone(), handle, &job.vault_id)
    } else {
        RemoteBackend::new(api.clone(), handle, &job.vault_id)
    };
    let refusal = backend.refusal();
    tokio::task::block_in_place(|| Repository::open(Arc::new(backend), job.passphrase.as_bytes()))
        .map(|repo| (repo, refusal))
        .map_err(|e| {
            failed(
                "VaultUnreachable",
                format!("cannot open the vault's repository: {e}"),
                "check the agent's connection (tresor agent check)",
            )
        })
}
