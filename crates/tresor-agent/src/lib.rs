//! The host agent's work: a VM in, a recovery point out.
//!
//! [`backup_vm`] is the one sequence every backup of a VM follows, whether an
//! operator runs `tresor repo backup --vm-qmp` or the vault's scheduler starts a job:
//!
//! 1. Ask the provider what the VM is; pick the parent (the newest point of the
//!    same name in the repository).
//! 2. Choose the new point's id, and open the provider's point-in-time view named
//!    after it (change tracking from this instant on is named after the new point).
//! 3. Run the engine's backup on the view's disks: dirty extents where tracking
//!    held, whole (deduplicated) reads where it did not.
//! 4. Finish the view: committed, the parent's tracking is dropped; failed, the new
//!    point's is, so the next backup still covers every change.
//!
//! **Architecture invariant:** knows VMs only through [`tresor_vm`]; nothing here is
//! QEMU-specific.

pub mod confine;
pub mod daemon;
pub mod remote;
pub mod restore;

use std::time::Duration;

use tresor_engine::backup::{self, BackupRequest, DiskSource};
use tresor_engine::progress::Progress;
use tresor_engine::{Manifest, Repository};
use tresor_vm::{CheckCode, ViewRequest, VmError, VmProvider, VmRef};

/// How to back up a VM.
#[derive(Default)]
pub struct VmBackupOptions<'a> {
    /// The recovery points' name. Default: the VM's name.
    pub name: Option<String>,
    /// Read everything (deduplicated) even when change tracking could be used.
    pub full: bool,
    /// Do not freeze the guest's file systems.
    pub no_quiesce: bool,
    pub expires: Option<jiff::Timestamp>,
    pub progress: Option<&'a Progress>,
    /// Engine worker threads; 0 means one per core.
    pub workers: usize,
}

/// What a VM backup did.
#[derive(Debug)]
pub struct VmBackupOutcome {
    pub manifest: Manifest,
    /// Things to report with the job (crash-consistent only, whole reads, teardown trouble).
    pub warnings: Vec<String>,
    /// How long the guest's file systems were frozen.
    pub frozen_for: Option<Duration>,
    /// Disks read whole although a parent existed.
    pub full_reads: usize,
}

fn failed(message: impl std::fmt::Display) -> VmError {
    VmError::new(CheckCode::BackupFailed, message.to_string())
}

/// Backs up `vm` into `repo` as one recovery point.
///
/// Must run on a multi-threaded tokio runtime: the engine's pipeline runs on this
/// thread through `block_in_place`.
pub async fn backup_vm(
    repo: &Repository,
    provider: &dyn VmProvider,
    vm: &VmRef,
    opts: VmBackupOptions<'_>,
) -> Result<VmBackupOutcome, VmError> {
    let info = provider.inspect(vm).await?;
    let name = opts.name.clone().unwrap_or_else(|| info.name.clone());
    let parent = if opts.full {
        None
    } else {
        tokio::task::block_in_place(|| repo.list_points())
            .map_err(failed)?
            .into_iter()
            .rev()
            .find(|p| p.name == name)
    };
    let point = backup::new_point_id();
    let view = provider
        .open_view(
            vm,
            &ViewRequest {
                point: point.clone(),
                parent: parent.as_ref().map(|p| p.id.clone()),
                quiesce: !opts.no_quiesce,
            },
        )
        .await?;
    let mut warnings = view.warnings();
    let mut full_reads = 0;
    let disks: Vec<DiskSource> = view
        .disks()
        .iter()
        .map(|d| {
            if let Some(reason) = &d.full_read_reason {
                full_reads += 1;
                warnings.push(reason.clone());
            }
            DiskSource {
                name: d.name.clone(),
                source: d.source.clone(),
                dirty: d.dirty.clone(),
            }
        })
        .collect();
    let mut req = BackupRequest::new(name, disks);
    req.id = Some(point);
    req.parent = parent;
    req.consistency = view.consistency();
    req.vm_config = Some(view.vm_config());
    req.expires = opts.expires;
    req.progress = opts.progress;
    req.workers = opts.workers;
    let result = tokio::task::block_in_place(|| backup::run(repo, req));
    let frozen_for = view.frozen_for();
    let finished = view.finish(result.is_ok()).await;
    let manifest = result.map_err(failed)?;
    if let Err(e) = finished {
        warnings.push(format!(
            "the recovery point is committed, but cleaning up after it failed: {e}"
        ));
    }
    for w in &warnings {
        tracing::warn!(point = %manifest.id, "{w}");
    }
    Ok(VmBackupOutcome {
        manifest,
        warnings,
        frozen_for,
        full_reads,
    })
}
