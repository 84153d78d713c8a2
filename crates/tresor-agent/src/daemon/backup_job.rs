//! A backup job: the VM backed up into the vault's repository, and its end as the
//! server wants it (the point, or a stable code with advice). A libvirt domain
//! (named by its UUID, known to the configured libvirt) is backed up through
//! libvirt's backup API (`tresor-libvirt`), any other VM through the QEMU provider;
//! both feed the same `backup_vm`.

use std::sync::Arc;

use tresor_api::agents::Completion;
use tresor_api::jobs::JobStatus;
use tresor_client::ApiClient;
use tresor_engine::progress::Progress;
use tresor_libvirt::LibvirtProvider;
use tresor_qemu::QemuProvider;
use tresor_vm::{CheckCode, VmProvider, VmRef};

use super::assignment::{ended, failed, open_repo, Assignment};
use super::config::AgentConfig;
use crate::{backup_vm, Parent, VmBackupOptions};

/// A provider's stable code as a job error code (PascalCase, like the API's).
fn job_code(code: CheckCode) -> String {
    code.as_str()
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// What to do about a failed backup, by the provider's code.
fn recommendation(code: CheckCode) -> &'static str {
    match code {
        CheckCode::QmpUnreachable => "check that the VM runs and that its QMP socket in the agent's configuration is right (tresor vm preflight)",
        CheckCode::ImageLocked => "the VM runs but the agent only knows its images: configure its QMP socket, or stop it",
        CheckCode::ScratchSpaceMissing => "create the scratch folder or free space there (scratch_dir in the agent's configuration)",
        CheckCode::BackupInProgress => "wait for the other backup of this VM to end",
        CheckCode::UnsupportedDiskFormat => "convert the disk to qcow2",
        CheckCode::VmNotFound => "the VM is no longer in the agent's configuration; add it back or stop its protection",
        _ => "run tresor vm preflight on the host for details, fix what it says, and back up again",
    }
}

/// The libvirt provider when `vm` is one of its domains; `None` for other VMs. Its
/// jobs' scratch folders go under the agent's `scratch_dir` (which the domains'
/// QEMU must be able to reach), else libvirt's default; it leaves the disks
/// `excluded` (the item's, from the job's parameters) out of the point.
async fn libvirt_provider_for(
    config: &AgentConfig,
    vm: &str,
    excluded: &[String],
) -> Option<LibvirtProvider> {
    if !tresor_libvirt::is_uuid(vm) {
        return None;
    }
    let uri = config.libvirt.uri_now()?;
    let scratch = config
        .scratch_dir
        .clone()
        .unwrap_or_else(|| tresor_libvirt::DEFAULT_SCRATCH_DIR.into());
    let provider = LibvirtProvider::new(uri)
        .with_scratch_dir(scratch)
        .with_excluded_disks(vm, excluded.to_vec());
    provider
        .inspect(&VmRef(vm.to_string()))
        .await
        .ok()
        .map(|_| provider)
}

pub(super) async fn run_backup(
    api: &Arc<ApiClient>,
    config: &AgentConfig,
    provider: Arc<QemuProvider>,
    job: &Assignment,
    progress: Arc<Progress>,
) -> Completion {
    let Some(vm) = &job.vm else {
        return failed(
            "InvalidJob",
            "a backup job without a VM".into(),
            "report this to the server's operator",
        );
    };
    let (repo, refusal) = match open_repo(api, job) {
        Ok(r) => r,
        Err(end) => return *end,
    };
    let excluded = &job.params.excluded_disks;
    let libvirt = libvirt_provider_for(config, vm, excluded).await;
    let provider: &dyn VmProvider = match &libvirt {
        Some(l) => l,
        // The QEMU provider reads every disk: a point without the excluded disks
        // cannot be made, and one with them is not what was asked.
        None if !excluded.is_empty() => {
            return failed(
                "DiskExclusionNotSupported",
                format!(
                    "VM {vm} is not a domain of this host's libvirt, and only libvirt domains can leave disks ({}) out",
                    excluded.join(", ")
                ),
                "check that libvirtd runs and knows the domain ([libvirt] in agent.toml), or stop excluding disks (tresor item update --include-all-disks)",
            )
        }
        None => provider.as_ref(),
    };
    let outcome = backup_vm(
        &repo,
        provider,
        &VmRef(vm.clone()),
        VmBackupOptions {
            name: job.point_name.clone(),
            // The server's newest point of the item, or none: a whole read.
            parent: match &job.params.parent_point {
                Some(p) => Parent::Point(p.clone()),
                None => Parent::None,
            },
            progress: Some(&progress),
            ..VmBackupOptions::default()
        },
    )
    .await;
    match outcome {
        Ok(o) => {
            let status = if o.warnings.is_empty() {
                JobStatus::Completed
            } else {
                JobStatus::CompletedWithWarnings
            };
            Completion {
                point_id: Some(o.manifest.id),
                frozen_ms: o.frozen_for.map(|d| d.as_millis() as u64),
                ..ended(status, o.warnings)
            }
        }
        Err(e) if progress.cancelled() => {
            ended(JobStatus::Cancelled, vec![format!("stopped: {e}")])
        }
        // The server refused a call (its storage is full, it refused an upload): the
        // job ends with the server's code and advice, not a generic failure.
        Err(e) if e.code == CheckCode::BackupFailed => {
            match refusal.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(r) => failed(
                    &r.code,
                    e.message,
                    r.recommendation
                        .as_deref()
                        .unwrap_or(recommendation(e.code)),
                ),
                None => failed(&job_code(e.code), e.message, recommendation(e.code)),
            }
        }
        Err(e) => failed(&job_code(e.code), e.message, recommendation(e.code)),
    }
}
