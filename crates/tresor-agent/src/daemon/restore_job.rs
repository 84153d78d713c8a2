//! A restore job: its target checked against the host's restore roots (or the disks
//! the host knows the VM by) before anything is read, then the point restored.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use tresor_client::ApiClient;
use tresor_engine::progress::Progress;
use tresor_engine::restore::OutputFormat;
use tresor_vm::VmProvider;

use super::assignment::{failed, open_repo, Assignment};
use super::config::AgentConfig;
use super::inventory::host_known_disks;
use crate::restore::{restore_point, RestoreError, RestoreMode};

pub(super) async fn run_restore(
    api: &Arc<ApiClient>,
    config: &AgentConfig,
    provider: &dyn VmProvider,
    job: &Assignment,
    progress: Arc<Progress>,
) -> Value {
    let refused = |e: RestoreError| failed(e.code(), e.to_string(), e.recommendation());
    let p = &job.params;
    let point_id = p["recoveryPoint"].as_str().unwrap_or_default().to_string();
    let format = match p["format"].as_str() {
        Some("qcow2") => Some(OutputFormat::Qcow2),
        Some("raw") => Some(OutputFormat::Raw),
        _ => None,
    };
    // Checked before anything is read or written; the folders are made later, once
    // the point is known to exist.
    let roots = config.restore_roots();
    let target = p["targetPath"].as_str().map(Path::new);
    let mode = match (p["mode"].as_str(), target) {
        (Some("RestoreDisks"), Some(target)) => match roots.resolve(target) {
            Ok(folder) => RestoreMode::Disks { folder, format },
            Err(e) => return refused(e.into()),
        },
        (Some("CreateVm"), Some(target)) => {
            let name = p["newName"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}-restored", job.vm.clone().unwrap_or_default()));
            if let Err(e) = tresor_qemu::validate_vm_name(&name) {
                return refused(e.into());
            }
            match roots.resolve(target) {
                Ok(folder) => RestoreMode::NewVm {
                    folder,
                    name,
                    format,
                },
                Err(e) => return refused(e.into()),
            }
        }
        // Where the disks go is the host's knowledge, not the job's (a target path
        // in the job is ignored) nor the point's.
        (Some("ReplaceDisks"), _) => {
            let Some(vm) = &job.vm else {
                return failed(
                    "InvalidJob",
                    "a replace-disks job without a VM".into(),
                    "report this to the server's operator",
                );
            };
            let known = host_known_disks(provider, &config.state_dir, vm)
                .await
                .unwrap_or_default();
            RestoreMode::ReplaceOriginal { known: Some(known) }
        }
        _ => {
            return failed(
                "InvalidRestoreRequest",
                format!("cannot restore with {p}"),
                "give a mode and a target path",
            )
        }
    };
    let (repo, _) = match open_repo(api, job) {
        Ok(r) => r,
        Err(end) => return end,
    };
    let result = tokio::task::block_in_place(|| {
        let manifest = repo.load_point(&point_id)?;
        let mode = match mode {
            RestoreMode::Disks { folder, format } => RestoreMode::Disks {
                folder: roots.create(&folder)?,
                format,
            },
            RestoreMode::NewVm {
                folder,
                name,
                format,
            } => RestoreMode::NewVm {
                folder: roots.create(&folder)?,
                name,
                format,
            },
            other => other,
        };
        restore_point(&repo, &manifest, &mode, Some(&progress))
    });
    match result {
        Ok(out) => json!({
            "status": "Completed",
            "warnings": out.notes,
            "result": {
                "disks": out.disks.iter().map(|d| json!({"name": d.name, "path": d.path, "format": d.format})).collect::<Vec<_>>(),
                "definition": out.definition,
                "startScript": out.start_script,
            },
        }),
        Err(e) if progress.cancelled() => {
            json!({ "status": "Cancelled", "warnings": [e.to_string()] })
        }
        Err(e) => refused(e),
    }
}
