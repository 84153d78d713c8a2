//! The backup sequence, once for every door: which point a new one follows, and one
//! recovery point written from disks opened for it (a VM's point-in-time view here,
//! disk images in `images.rs`).

use std::time::Duration;

use tresor_engine::backup::{self, BackupRequest, DiskSource};
use tresor_engine::progress::Progress;
use tresor_engine::{Consistency, Manifest, Repository};
use tresor_vm::{CheckCode, ViewDisk, ViewRequest, VmConfig, VmError, VmProvider, VmRef};

/// Which recovery point a new one follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Parent {
    /// None: every disk is read whole (deduplicated against what is stored).
    None,
    /// The newest point of the same name, if there is one.
    #[default]
    Latest,
    /// The point with this id.
    Point(String),
}

impl Parent {
    /// The parent's manifest, for points named `name`.
    pub fn resolve(
        &self,
        repo: &Repository,
        name: &str,
    ) -> Result<Option<Manifest>, tresor_engine::Error> {
        Ok(match self {
            Parent::None => None,
            Parent::Latest => repo
                .list_points()?
                .into_iter()
                .rev()
                .find(|p| p.name == name),
            Parent::Point(id) => Some(repo.load_point(id)?),
        })
    }
}

/// How the engine runs, whatever is backed up.
#[derive(Default, Clone, Copy)]
pub struct RunOptions<'a> {
    pub expires: Option<jiff::Timestamp>,
    pub progress: Option<&'a Progress>,
    /// Engine worker threads; 0 means one per core.
    pub workers: usize,
}

/// One recovery point to write: its id (chosen before its disks were opened, since a
/// VM's change tracking is named after it), name, parent and disks.
pub(crate) struct NewPoint<'d> {
    pub id: String,
    pub name: String,
    pub parent: Option<Manifest>,
    pub disks: &'d [ViewDisk],
    pub consistency: Consistency,
    /// Stored as the point's `vm_config` JSON (the engine keeps it opaque).
    pub vm_config: Option<VmConfig>,
}

/// Runs the engine's backup of `point` and commits it: dirty extents where the disks
/// have them, whole (deduplicated) reads where they do not.
pub(crate) fn write_point(
    repo: &Repository,
    point: NewPoint<'_>,
    opts: RunOptions<'_>,
) -> Result<Manifest, tresor_engine::Error> {
    let mut req = BackupRequest::new(point.name, disk_sources(point.disks));
    req.id = Some(point.id);
    req.parent = point.parent;
    req.consistency = point.consistency;
    req.vm_config = point.vm_config.as_ref().map(VmConfig::to_value);
    req.expires = opts.expires;
    req.progress = opts.progress;
    req.workers = opts.workers;
    backup::run(repo, req)
}

/// The engine's sources of a view's disks.
pub fn disk_sources(disks: &[ViewDisk]) -> Vec<DiskSource> {
    disks
        .iter()
        .map(|d| DiskSource {
            name: d.name.clone(),
            source: d.source.clone(),
            dirty: d.dirty.clone(),
        })
        .collect()
}

/// Why disks are read whole although a parent was given (their tracking was lost).
pub(crate) fn full_read_reasons(disks: &[ViewDisk]) -> Vec<String> {
    disks
        .iter()
        .filter_map(|d| d.full_read_reason.clone())
        .collect()
}

/// How to back up a VM.
#[derive(Default)]
pub struct VmBackupOptions<'a> {
    /// The recovery points' name. Default: the VM's name.
    pub name: Option<String>,
    /// The point the new one follows. The agent's jobs name the server's newest
    /// point of the item, never a manifest the server discarded (a backup whose
    /// agent was killed after writing it).
    pub parent: Parent,
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

/// The change tracking `parent` recorded as its own (a libvirt point's checkpoint);
/// `None` lets the provider derive it from the parent's id, also when the parent's
/// saved configuration cannot be read (said in `warnings`).
fn parent_tracking(parent: &Manifest, warnings: &mut Vec<String>) -> Option<String> {
    match VmConfig::of_point(parent.vm_config.as_ref())? {
        Ok(config) => config.as_libvirt()?.checkpoint.clone(),
        Err(e) => {
            warnings.push(format!(
                "the parent point {}: {e}; its change tracking is looked for by its id (where that finds none, disks are read whole, deduplicated)",
                parent.id
            ));
            None
        }
    }
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
    let mut parent_warnings = Vec::new();
    let parent = match tokio::task::block_in_place(|| opts.parent.resolve(repo, &name)) {
        Ok(Some(p)) if p.name != name => {
            parent_warnings.push(format!(
                "the parent point {} belongs to {}, not to {name}: reading every disk whole, deduplicated against what is stored",
                p.id, p.name
            ));
            None
        }
        Ok(p) => p,
        // A parent the server named but the repository no longer holds (deleted
        // since, or the item's repository changed): the point is made whole.
        Err(e) if matches!(opts.parent, Parent::Point(_)) => {
            parent_warnings.push(format!(
                "the parent point cannot be read ({e}): reading every disk whole, deduplicated against what is stored"
            ));
            None
        }
        Err(e) => return Err(failed(e)),
    };
    let parent_tracking = parent
        .as_ref()
        .and_then(|p| parent_tracking(p, &mut parent_warnings));
    let point = backup::new_point_id();
    let view = provider
        .open_view(
            vm,
            &ViewRequest {
                point: point.clone(),
                parent: parent.as_ref().map(|p| p.id.clone()),
                parent_tracking,
                quiesce: !opts.no_quiesce,
            },
        )
        .await?;
    let mut warnings = parent_warnings;
    warnings.extend(view.warnings());
    let full_reads = full_read_reasons(view.disks());
    let full_read_count = full_reads.len();
    warnings.extend(full_reads);
    let new_point = NewPoint {
        id: point,
        name,
        parent,
        disks: view.disks(),
        consistency: view.consistency(),
        vm_config: Some(view.vm_config()),
    };
    let run = RunOptions {
        expires: opts.expires,
        progress: opts.progress,
        workers: opts.workers,
    };
    let result = tokio::task::block_in_place(|| write_point(repo, new_point, run));
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
        full_reads: full_read_count,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::restore::point_with;

    /// A libvirt parent's checkpoint is handed on; a QEMU parent has none; a parent
    /// whose config cannot be read has none either, and a warning says why.
    #[test]
    fn the_parent_tracking_comes_from_its_saved_checkpoint() {
        let checkpoint = "tresor-0123456789abcdef0123456789abcdef";
        let mut warnings = Vec::new();
        let libvirt = point_with(json!({"provider": "libvirt", "checkpoint": checkpoint}));
        assert_eq!(
            parent_tracking(&libvirt, &mut warnings).as_deref(),
            Some(checkpoint)
        );
        let qemu = point_with(json!({"provider": "qemu", "checkpoint": checkpoint}));
        assert_eq!(parent_tracking(&qemu, &mut warnings), None);
        assert!(warnings.is_empty(), "{warnings:?}");

        let broken = point_with(json!({"provider": "libvirt", "checkpoint": 1}));
        assert_eq!(parent_tracking(&broken, &mut warnings), None);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains(&broken.id) && warnings[0].contains("\"checkpoint\""),
            "{warnings:?}"
        );
    }
}
