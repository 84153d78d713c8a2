//! A restore job: its target checked against the host's restore roots (or the disks
//! the host knows the VM by) before anything is read, then the point restored. A
//! libvirt domain's point restores as libvirt domains when the agent has libvirt
//! (`crate::libvirt_restore`): CreateVm defines a new domain, ReplaceDisks writes
//! over the shut-off domain's own disks.

use std::path::Path;
use std::sync::Arc;

use tresor_api::agents::Completion;
use tresor_api::jobs::{JobStatus, RestoreResult, RestoredDisk};
use tresor_client::ApiClient;
use tresor_engine::progress::Progress;
use tresor_engine::restore::OutputFormat;
use tresor_vm::VmProvider;

use super::assignment::{ended, failed, open_repo, Assignment};
use super::config::AgentConfig;
use super::inventory::host_known_disks;
use crate::libvirt_restore::{self, DiskTarget, NewDomainRequest};
use crate::restore::{restore_point, RestoreError, RestoreMode, RestoreOutcome};

/// A restore that goes through libvirt, decided once the point is read.
enum LibvirtPlan {
    NewDomain(NewDomainRequest),
    Replace { uuid: String },
}

pub(super) async fn run_restore(
    api: &Arc<ApiClient>,
    config: &AgentConfig,
    provider: &dyn VmProvider,
    job: &Assignment,
    progress: Arc<Progress>,
) -> Completion {
    let refused = |e: RestoreError| failed(e.code(), e.to_string(), e.recommendation());
    let p = &job.params;
    let point_id = p.recovery_point.clone().unwrap_or_default();
    let format = match p.format.as_deref() {
        Some("qcow2") => Some(OutputFormat::Qcow2),
        Some("raw") => Some(OutputFormat::Raw),
        _ => None,
    };
    // Checked before anything is read or written; the folders are made later, once
    // the point is known to exist.
    let roots = config.restore_roots();
    let libvirt_uri = config.libvirt.uri_now();
    let target = p.target_path.as_deref().map(Path::new);
    if let (Some(pool), Some("CreateVm"), None) = (&p.target_pool, p.mode.as_deref(), target) {
        // Only a libvirt domain's point can go into a pool; the pool's folder is
        // checked against the roots once libvirt names it.
        let Some(uri) = libvirt_uri else {
            return failed(
                "InvalidRestoreRequest",
                format!("storage pool {pool} was asked for, but this agent uses no libvirt"),
                "restore into a folder (targetPath), or configure [libvirt] in agent.toml",
            );
        };
        let plan = LibvirtPlan::NewDomain(NewDomainRequest {
            name: p.new_name.clone(),
            target: DiskTarget::Pool(pool.clone()),
            format,
            start: p.start,
            boot_dirs: libvirt_restore::default_boot_dirs(),
        });
        return run_libvirt(api, job, &roots, &uri, plan, point_id, progress).await;
    }
    let mode = match (p.mode.as_deref(), target) {
        (Some("RestoreDisks"), Some(target)) => match roots.resolve(target) {
            Ok(folder) => RestoreMode::Disks { folder, format },
            Err(e) => return refused(e.into()),
        },
        (Some("CreateVm"), Some(target)) => {
            let name = p
                .new_name
                .clone()
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
                format!(
                    "cannot restore with mode {:?} and target path {:?}",
                    p.mode, p.target_path
                ),
                "give a mode and a target path",
            )
        }
    };
    let (repo, _) = match open_repo(api, job) {
        Ok(r) => r,
        Err(end) => return *end,
    };
    let result = tokio::task::block_in_place(|| {
        let manifest = repo.load_point(&point_id)?;
        if let (true, Some(uri)) = (
            libvirt_restore::is_libvirt_point(&manifest),
            libvirt_uri.as_deref(),
        ) {
            let plan = match &mode {
                RestoreMode::NewVm { folder, .. } => {
                    Some(LibvirtPlan::NewDomain(NewDomainRequest {
                        name: p.new_name.clone(),
                        target: DiskTarget::Folder(roots.create(folder)?),
                        format,
                        start: p.start,
                        boot_dirs: libvirt_restore::default_boot_dirs(),
                    }))
                }
                RestoreMode::ReplaceOriginal { .. } => job
                    .vm
                    .as_ref()
                    .map(|vm| LibvirtPlan::Replace { uuid: vm.clone() }),
                RestoreMode::Disks { .. } => None,
            };
            if let Some(plan) = plan {
                return run_libvirt_plan(&repo, &manifest, &roots, uri, plan, &progress);
            }
        }
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
        Ok(out) => completed(out),
        Err(e) if progress.cancelled() => ended(JobStatus::Cancelled, vec![e.to_string()]),
        Err(e) => refused(e),
    }
}

/// A restore through libvirt whose point is read here (a pool target).
async fn run_libvirt(
    api: &Arc<ApiClient>,
    job: &Assignment,
    roots: &crate::confine::RestoreRoots,
    uri: &str,
    plan: LibvirtPlan,
    point_id: String,
    progress: Arc<Progress>,
) -> Completion {
    let (repo, _) = match open_repo(api, job) {
        Ok(r) => r,
        Err(end) => return *end,
    };
    let result = tokio::task::block_in_place(|| {
        let manifest = repo.load_point(&point_id)?;
        if !libvirt_restore::is_libvirt_point(&manifest) {
            return Err(RestoreError::Invalid(format!(
                "recovery point {point_id} is not a libvirt domain's: it cannot go into a storage pool; restore it into a folder"
            )));
        }
        run_libvirt_plan(&repo, &manifest, roots, uri, plan, &progress)
    });
    match result {
        Ok(out) => completed(out),
        Err(e) if progress.cancelled() => ended(JobStatus::Cancelled, vec![e.to_string()]),
        Err(e) => failed(e.code(), e.to_string(), e.recommendation()),
    }
}

fn run_libvirt_plan(
    repo: &tresor_engine::Repository,
    manifest: &tresor_engine::Manifest,
    roots: &crate::confine::RestoreRoots,
    uri: &str,
    plan: LibvirtPlan,
    progress: &Progress,
) -> Result<RestoreOutcome, RestoreError> {
    let host = tresor_libvirt::LibvirtHost::new(uri);
    match plan {
        LibvirtPlan::NewDomain(req) => {
            libvirt_restore::restore_new_domain(repo, manifest, &host, roots, &req, Some(progress))
        }
        LibvirtPlan::Replace { uuid } => {
            libvirt_restore::replace_domain_disks(repo, manifest, &host, &uuid, Some(progress))
        }
    }
}

/// A restore's end: Completed, with what it made as the job's result.
fn completed(out: RestoreOutcome) -> Completion {
    let shown = |p: &Path| p.to_string_lossy().into_owned();
    let result = RestoreResult {
        disks: out
            .disks
            .into_iter()
            .map(|d| RestoredDisk {
                path: shown(&d.path),
                name: d.name,
                format: d.format,
            })
            .collect(),
        definition: out.definition.as_deref().map(shown),
        start_script: out.start_script.as_deref().map(shown),
        domain: out.domain,
    };
    Completion {
        result: serde_json::to_value(result).expect("a restore's result serializes"),
        ..ended(JobStatus::Completed, out.notes)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;
    use tresor_qemu::RestoredDisk;

    use super::*;

    /// A restore's end carries what it made, in the shape the server shows.
    #[test]
    fn a_restores_result_on_the_wire() {
        let end = completed(RestoreOutcome {
            disks: vec![RestoredDisk {
                name: "vda".into(),
                path: PathBuf::from("/srv/restore/a/vda.qcow2"),
                format: "qcow2".into(),
            }],
            definition: Some(PathBuf::from("/srv/restore/a/vm.json")),
            start_script: None,
            notes: vec!["n".into()],
            domain: None,
        });
        assert_eq!(end.status, JobStatus::Completed);
        assert_eq!(end.warnings, ["n"]);
        assert_eq!(
            end.result,
            json!({
                "disks": [{ "name": "vda", "path": "/srv/restore/a/vda.qcow2", "format": "qcow2" }],
                "definition": "/srv/restore/a/vm.json",
                "startScript": null,
            })
        );
    }
}
