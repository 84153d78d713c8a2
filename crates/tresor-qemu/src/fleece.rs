//! A running VM's disks at one instant: pull-mode backup with fleecing.
//!
//! The sequence (libvirt's backup API does the same):
//!
//! 1. For each disk, a scratch qcow2 overlay (`tresor-view-N`) is added whose
//!    backing is the disk's node. It starts empty.
//! 2. The guest's file systems are frozen (when a guest agent answers).
//! 3. One `transaction` for all disks, so they are captured at one instant:
//!    - a disabled bitmap on the overlay, merged from the parent point's bitmap on
//!      the disk (what changed since the parent, frozen at this instant);
//!    - the new point's bitmap on the disk, recording every write from now on, so
//!      no write can fall between two points;
//!    - `blockdev-backup sync=none` from the disk to the overlay: before the guest
//!      overwrites a block, QEMU copies the old contents into the overlay
//!      (copy-before-write). Reading the overlay then reads the disk as it was.
//! 4. The file systems are thawed, whatever happened in 3.
//! 5. QEMU's NBD server exports each overlay read-only, with its bitmap; Tresor
//!    reads allocated (full) or dirty (incremental) extents through it.
//! 6. Teardown: exports, NBD server, jobs, overlays and scratch files go. With a
//!    committed point, the older points' bitmaps are removed; without one, the new
//!    point's bitmap is, and the parent's keeps recording.
//!
//! Everything this adds to QEMU is named `tresor-view-*`; a view a crashed agent
//! left behind is recognised by that prefix and cleared before the next one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use tresor_qmp::{BlockDeviceInfo, GuestAgent, Qmp, QmpError, TransactionAction};
use tresor_vm::{BackupView, CheckCode, Consistency, ViewDisk, VmConfig, VmDisk, VmError};

use crate::{point_bitmap_name, NbdSource};

/// Prefix of every node, job and export a view adds to QEMU.
pub(crate) const VIEW_PREFIX: &str = "tresor-view-";
/// The overlay's bitmap: what changed between the parent point and this instant.
const SINCE_PARENT: &str = "tresor-since-parent";
/// Granularity of the bitmaps Tresor starts (the default chunk size).
const BITMAP_GRANULARITY: u32 = 64 * 1024;
/// How long freezing the guest's file systems may take.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long teardown steps (export removal, job cancel) may take.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// NBD connections per disk.
const CONNECTIONS: usize = 4;

/// What a view is to capture.
pub(crate) struct ViewPlan<'a> {
    pub vm_name: &'a str,
    pub disks: Vec<VmDisk>,
    pub scratch_dir: &'a Path,
    /// Scratch files of this VM start with it ([`scratch_prefix`]).
    pub scratch_prefix: String,
    pub point: &'a str,
    pub parent: Option<&'a str>,
    /// The guest agent, when one answers and freezing is wanted.
    pub agent: Option<GuestAgent>,
    /// Freezing runs the guest's application hooks (fsfreeze-hook, VSS).
    pub application_hooks: bool,
    pub vm_config: VmConfig,
    pub warnings: Vec<String>,
}

/// One disk being fleeced.
struct Staged {
    disk: VmDisk,
    node: String,
    overlay: String,
    scratch: PathBuf,
    /// The parent's bitmap on the disk, when it is usable.
    parent_bitmap: Option<(String, u64)>,
    /// Why not, when a parent was given.
    full_read_reason: Option<String>,
}

/// The point-in-time view of a running VM. [`BackupView::finish`] tears it down;
/// dropping it without that leaves the `tresor-view-*` nodes in QEMU until the next
/// view clears them.
pub struct PointInTimeView {
    qmp: Qmp,
    point: String,
    staged: Vec<Staged>,
    disks: Vec<ViewDisk>,
    socket_dir: Option<PathBuf>,
    consistency: Consistency,
    warnings: Vec<String>,
    frozen_for: Option<Duration>,
    vm_config: VmConfig,
}

fn qmp_failure(what: &str, e: QmpError) -> VmError {
    let code = match e {
        QmpError::Disconnected { .. } | QmpError::Connect { .. } | QmpError::Timeout { .. } => {
            CheckCode::QmpUnreachable
        }
        _ => CheckCode::QemuUnsupported,
    };
    VmError::new(code, format!("{what}: {e}"))
}

/// Takes the view. On failure, everything added so far is removed again.
///
/// The caller holds the VM's backup lock and has cleared leftovers
/// ([`clear_leftovers`]) before it looked at the disks.
pub(crate) async fn open(qmp: Qmp, mut plan: ViewPlan<'_>) -> Result<PointInTimeView, VmError> {
    let nodes = qmp
        .query_named_block_nodes()
        .await
        .map_err(|e| qmp_failure("query-named-block-nodes", e))?;
    let mut staged = Vec::new();
    for (i, disk) in plan.disks.iter().enumerate() {
        let node = disk.node.clone().ok_or_else(|| {
            VmError::new(
                CheckCode::QemuUnsupported,
                format!("disk {} has no block node name in QEMU", disk.name),
            )
        })?;
        let (parent_bitmap, full_read_reason) = match plan.parent {
            None => (None, None),
            Some(parent) => match usable_bitmap(&nodes, &node, parent) {
                Ok(b) => (Some(b), None),
                Err(reason) => (
                    None,
                    Some(format!(
                        "disk {}: {reason}: reading the whole disk, deduplicated against what is stored",
                        disk.name
                    )),
                ),
            },
        };
        staged.push(Staged {
            disk: disk.clone(),
            node,
            overlay: format!("{VIEW_PREFIX}{i}"),
            scratch: plan
                .scratch_dir
                .join(format!("{}{}-{i}.qcow2", plan.scratch_prefix, plan.point)),
            parent_bitmap,
            full_read_reason,
        });
    }
    let mut view = PointInTimeView {
        qmp,
        point: plan.point.to_string(),
        staged: Vec::new(),
        disks: Vec::new(),
        socket_dir: None,
        consistency: Consistency::CrashConsistent,
        warnings: std::mem::take(&mut plan.warnings),
        frozen_for: None,
        vm_config: plan.vm_config.clone(),
    };
    match view.take(staged, &mut plan).await {
        Ok(()) => Ok(view),
        Err(e) => {
            if let Err(t) = view.teardown(false).await {
                tracing::warn!(error = %t, "tearing down a failed view");
            }
            Err(e)
        }
    }
}

/// The parent point's bitmap on `node`, if it can be trusted: `(name, granularity)`.
fn usable_bitmap(
    nodes: &[BlockDeviceInfo],
    node: &str,
    parent: &str,
) -> Result<(String, u64), String> {
    let name = point_bitmap_name(parent);
    let info = nodes
        .iter()
        .find(|n| n.node_name.as_deref() == Some(node))
        .ok_or_else(|| format!("QEMU has no block node {node}"))?;
    let bitmap = info
        .dirty_bitmaps
        .iter()
        .find(|b| b.name.as_deref() == Some(name.as_str()))
        .ok_or_else(|| {
            "no dirty bitmap for the parent point (QEMU was killed or crashed: bitmaps are saved into the image only when it stops; or it restarted with a raw disk, the disk was restored or replaced, or the VM moved)".to_string()
        })?;
    if bitmap.inconsistent {
        return Err(
            "the parent point's dirty bitmap is inconsistent (QEMU stopped without saving it, e.g. it was killed)"
                .to_string(),
        );
    }
    if !bitmap.recording {
        return Err("the parent point's dirty bitmap is not recording".to_string());
    }
    Ok((name, bitmap.granularity))
}

impl PointInTimeView {
    async fn take(&mut self, staged: Vec<Staged>, plan: &mut ViewPlan<'_>) -> Result<(), VmError> {
        // Overlays first: they are not part of the instant, only ready for it.
        for s in staged {
            create_scratch(&s.scratch, s.disk.virtual_size).await?;
            let added = self
                .qmp
                .execute(
                    "blockdev-add",
                    Some(json!({
                        "driver": "qcow2",
                        "node-name": s.overlay,
                        "file": { "driver": "file", "filename": s.scratch },
                        "backing": s.node,
                        "discard": "unmap",
                    })),
                )
                .await;
            if let Err(e) = added {
                let _ = std::fs::remove_file(&s.scratch);
                return Err(qmp_failure(
                    &format!("adding the scratch overlay {}", s.scratch.display()),
                    e,
                ));
            }
            self.staged.push(s);
        }

        let mut actions = Vec::new();
        for s in &self.staged {
            if let Some((bitmap, granularity)) = &s.parent_bitmap {
                actions.push(TransactionAction::new(
                    "block-dirty-bitmap-add",
                    json!({ "node": s.overlay, "name": SINCE_PARENT,
                            "granularity": granularity, "disabled": true }),
                ));
                actions.push(TransactionAction::new(
                    "block-dirty-bitmap-merge",
                    json!({ "node": s.overlay, "target": SINCE_PARENT,
                            "bitmaps": [{ "node": s.node, "name": bitmap }] }),
                ));
            }
            actions.push(TransactionAction::block_dirty_bitmap_add(
                &s.node,
                &point_bitmap_name(&self.point),
                Some(BITMAP_GRANULARITY),
                s.disk.format == "qcow2",
            ));
            actions.push(TransactionAction::new(
                "blockdev-backup",
                json!({ "job-id": s.overlay, "device": s.node, "target": s.overlay,
                        "sync": "none", "auto-dismiss": true }),
            ));
        }

        // The instant: freeze, transaction, thaw. Thaw runs whatever the transaction did.
        let mut agent = plan.agent.take();
        let frozen_at = Instant::now();
        let frozen = match agent.as_mut() {
            Some(a) => freeze(a, &mut self.warnings).await,
            None => None,
        };
        let taken = self.qmp.transaction(&actions).await;
        if let (Some(count), Some(a)) = (frozen, agent.as_mut()) {
            thaw(a, &mut self.warnings).await;
            self.frozen_for = Some(frozen_at.elapsed());
            if count > 0 {
                self.consistency = if plan.application_hooks {
                    Consistency::AppConsistent
                } else {
                    Consistency::FileSystemConsistent
                };
            } else {
                self.warnings.push(
                    "the guest agent froze no file system (none mounted?): the point is crash-consistent"
                        .to_string(),
                );
            }
        }
        taken.map_err(|e| qmp_failure("the point-in-time transaction", e))?;
        tracing::info!(
            vm = plan.vm_name,
            point = %self.point,
            disks = self.staged.len(),
            frozen_ms = self.frozen_for.map(|d| d.as_millis() as u64),
            "point-in-time view taken"
        );

        self.export().await
    }

    /// Starts QEMU's NBD server on a private socket, exports every overlay and
    /// connects to each.
    async fn export(&mut self) -> Result<(), VmError> {
        let dir = crate::qemu_nbd::private_dir()
            .map_err(|e| VmError::new(CheckCode::ScratchSpaceMissing, e.to_string()))?;
        let socket = dir.join("nbd.sock");
        self.socket_dir = Some(dir);
        self.qmp
            .execute(
                "nbd-server-start",
                Some(json!({ "addr": { "type": "unix", "data": { "path": socket } } })),
            )
            .await
            .map_err(|e| match e {
                QmpError::Command { desc, .. } if desc.contains("already running") => VmError::new(
                    CheckCode::BackupInProgress,
                    "QEMU's NBD server is already in use (another backup tool, or a migration): wait for it to finish",
                ),
                e => qmp_failure("nbd-server-start", e),
            })?;
        for s in &self.staged {
            let mut export = json!({
                "type": "nbd", "id": s.overlay, "node-name": s.overlay,
                "name": s.disk.name, "writable": false,
            });
            if s.parent_bitmap.is_some() {
                export["bitmaps"] = json!([SINCE_PARENT]);
            }
            self.qmp
                .execute("block-export-add", Some(export))
                .await
                .map_err(|e| qmp_failure("block-export-add", e))?;
        }
        for s in &self.staged {
            let (name, export, socket) = (s.disk.name.clone(), s.disk.name.clone(), socket.clone());
            let bitmap = s.parent_bitmap.as_ref().map(|_| SINCE_PARENT);
            let opened = tokio::task::spawn_blocking(move || {
                let source = NbdSource::connect_unix(&name, &socket, &export, bitmap, CONNECTIONS)?;
                let dirty = match bitmap {
                    Some(_) => Some(source.dirty_extents()?),
                    None => None,
                };
                Ok::<_, crate::Error>((source, dirty))
            })
            .await
            .expect("NBD connect task panicked");
            let (source, dirty) = opened.map_err(|e| {
                VmError::new(
                    CheckCode::BackupFailed,
                    format!("reading disk {}: {e}", s.disk.name),
                )
            })?;
            self.disks.push(ViewDisk {
                name: s.disk.name.clone(),
                source: Arc::new(source),
                dirty,
                full_read_reason: s.full_read_reason.clone(),
            });
        }
        Ok(())
    }

    /// Removes what the view added. With `committed`, the bitmaps of older points go;
    /// without, the new point's bitmap goes. Carries on after errors, returning the first.
    async fn teardown(&mut self, committed: bool) -> Result<(), VmError> {
        let mut first_error: Option<VmError> = None;
        let mut note = |e: VmError| {
            tracing::warn!(error = %e, "tearing down the point-in-time view");
            if first_error.is_none() {
                first_error = Some(e);
            }
        };
        // Our NBD connections go first, so the exports can go cleanly.
        self.disks.clear();
        for s in &self.staged {
            if let Err(e) = remove_export(&self.qmp, &s.overlay).await {
                note(e);
            }
        }
        if self.socket_dir.is_some() {
            if let Err(e) = self.qmp.execute("nbd-server-stop", None).await {
                note(qmp_failure("nbd-server-stop", e));
            }
        }
        if let Some(dir) = self.socket_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        for s in &self.staged {
            if let Err(e) = cancel_job(&self.qmp, &s.overlay).await {
                note(e);
            }
            if let Err(e) = self
                .qmp
                .execute("blockdev-del", Some(json!({ "node-name": s.overlay })))
                .await
            {
                note(qmp_failure(&format!("blockdev-del {}", s.overlay), e));
            }
            let _ = std::fs::remove_file(&s.scratch);
        }
        let new_bitmap = point_bitmap_name(&self.point);
        for s in &self.staged {
            if let Err(e) = drop_bitmaps(&self.qmp, &s.node, &new_bitmap, committed).await {
                note(e);
            }
        }
        self.staged.clear();
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// The start of the names of VM `vm`'s scratch files: `tresor-view-VM-`, with the
/// VM's name reduced to characters safe in a file name.
pub(crate) fn scratch_prefix(vm: &str) -> String {
    let safe: String = vm
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{VIEW_PREFIX}{safe}-")
}

/// Removes scratch files of a VM that an interrupted backup left (the caller holds
/// the VM's backup lock, so none is in use).
pub(crate) fn remove_stale_scratch(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(".qcow2") {
            tracing::info!(file = %e.path().display(), "removing a scratch overlay an interrupted backup left");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Creates an empty qcow2 of `size` bytes for an overlay.
async fn create_scratch(path: &Path, size: u64) -> Result<(), VmError> {
    let out = tokio::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(size.to_string())
        .output()
        .await
        .map_err(|e| {
            VmError::new(
                CheckCode::QemuUnsupported,
                format!("cannot run qemu-img: {e}. Install QEMU's tools (Debian: qemu-utils)"),
            )
        })?;
    if !out.status.success() {
        return Err(VmError::new(
            CheckCode::ScratchSpaceMissing,
            format!(
                "cannot create the scratch overlay {}: {}. Check that the scratch folder exists, is writable and has free space",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// Freezes the guest's file systems; `Some(count)` when the guest says they are
/// frozen. A failure is a warning: the point is then crash-consistent.
async fn freeze(agent: &mut GuestAgent, warnings: &mut Vec<String>) -> Option<u64> {
    let timeout = agent.timeout();
    agent.set_timeout(FREEZE_TIMEOUT);
    let r = agent.fsfreeze_freeze().await;
    agent.set_timeout(timeout);
    match r {
        Ok(n) => Some(n),
        Err(e) => {
            warnings.push(format!(
                "could not freeze the guest's file systems ({e}): the point is crash-consistent"
            ));
            // A freeze that timed out may still complete in the guest.
            thaw(agent, warnings).await;
            None
        }
    }
}

/// Thaws the guest's file systems, trying a few times: a guest left frozen stops.
async fn thaw(agent: &mut GuestAgent, warnings: &mut Vec<String>) {
    let mut last = None;
    for _ in 0..3 {
        match agent.fsfreeze_thaw().await {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        tracing::error!(error = %e, "the guest's file systems may still be frozen");
        warnings.push(format!(
            "thawing the guest's file systems failed ({e}); check the guest and run `guest-fsfreeze-thaw` if it is still frozen"
        ));
    }
}

/// Deletes export `id` (dropping any client) and waits until QEMU has.
async fn remove_export(qmp: &Qmp, id: &str) -> Result<(), VmError> {
    let mut events = qmp.events();
    match qmp
        .execute(
            "block-export-del",
            Some(json!({ "id": id, "mode": "hard" })),
        )
        .await
    {
        Ok(_) => {}
        // Never added (a failed view), or already gone.
        Err(QmpError::Command { desc, .. }) if desc.contains("not found") => return Ok(()),
        Err(e) => return Err(qmp_failure("block-export-del", e)),
    }
    let wanted = id.to_string();
    events
        .wait_for(
            "BLOCK_EXPORT_DELETED",
            |ev| ev.data.get("id").and_then(Value::as_str) == Some(wanted.as_str()),
            TEARDOWN_TIMEOUT,
        )
        .await
        .map(|_| ())
        .map_err(|e| qmp_failure("waiting for the export to go", e))
}

/// Cancels block job `id` and waits until it is gone.
async fn cancel_job(qmp: &Qmp, id: &str) -> Result<(), VmError> {
    match qmp
        .execute(
            "block-job-cancel",
            Some(json!({ "device": id, "force": true })),
        )
        .await
    {
        Ok(_) => {}
        Err(QmpError::Command { class, .. }) if class == "DeviceNotActive" => return Ok(()),
        Err(QmpError::Command { desc, .. })
            if desc.contains("not found") || desc.contains("No active") =>
        {
            return Ok(())
        }
        Err(e) => return Err(qmp_failure("block-job-cancel", e)),
    }
    let started = Instant::now();
    loop {
        let jobs = qmp
            .execute("query-block-jobs", None)
            .await
            .map_err(|e| qmp_failure("query-block-jobs", e))?;
        let still = jobs
            .as_array()
            .map(|a| {
                a.iter()
                    .any(|j| j.get("device").and_then(Value::as_str) == Some(id))
            })
            .unwrap_or(false);
        if !still {
            return Ok(());
        }
        if started.elapsed() > TEARDOWN_TIMEOUT {
            return Err(VmError::new(
                CheckCode::QemuUnsupported,
                format!(
                    "block job {id} did not end within {TEARDOWN_TIMEOUT:?} of being cancelled"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Point bitmaps on `node` to remove: with `committed`, every `tresor-*` bitmap but
/// `new_bitmap` (older points, and bitmaps of points that never committed); without,
/// `new_bitmap` only.
async fn drop_bitmaps(
    qmp: &Qmp,
    node: &str,
    new_bitmap: &str,
    committed: bool,
) -> Result<(), VmError> {
    let nodes = qmp
        .query_named_block_nodes()
        .await
        .map_err(|e| qmp_failure("query-named-block-nodes", e))?;
    let Some(info) = nodes.iter().find(|n| n.node_name.as_deref() == Some(node)) else {
        return Ok(());
    };
    for b in &info.dirty_bitmaps {
        let Some(name) = b.name.as_deref() else {
            continue;
        };
        let remove = if committed {
            name.starts_with("tresor-") && name != new_bitmap && !name.starts_with(VIEW_PREFIX)
        } else {
            name == new_bitmap
        };
        if remove {
            qmp.execute(
                "block-dirty-bitmap-remove",
                Some(json!({ "node": node, "name": name })),
            )
            .await
            .map_err(|e| qmp_failure(&format!("removing dirty bitmap {name} of {node}"), e))?;
        }
    }
    Ok(())
}

/// Clears a view a crashed backup left in QEMU (its copy-before-write filters hide
/// the disks' own nodes). Returns a note when there was one. Only call it holding
/// the VM's backup lock: a live backup's view looks the same.
pub(crate) async fn clear_leftovers(qmp: &Qmp) -> Result<Option<String>, VmError> {
    let nodes = qmp
        .query_named_block_nodes()
        .await
        .map_err(|e| qmp_failure("query-named-block-nodes", e))?;
    let overlays: Vec<&BlockDeviceInfo> = nodes
        .iter()
        .filter(|n| {
            n.node_name
                .as_deref()
                .is_some_and(|s| s.starts_with(VIEW_PREFIX))
        })
        .collect();
    if overlays.is_empty() {
        return Ok(None);
    }
    let exports = qmp
        .execute("query-block-exports", None)
        .await
        .map_err(|e| qmp_failure("query-block-exports", e))?;
    let mut had_export = false;
    for e in exports.as_array().into_iter().flatten() {
        if let Some(id) = e
            .get("id")
            .and_then(Value::as_str)
            .filter(|i| i.starts_with(VIEW_PREFIX))
        {
            had_export = true;
            remove_export(qmp, id).await?;
        }
    }
    if had_export {
        let _ = qmp.execute("nbd-server-stop", None).await;
    }
    for n in &overlays {
        let name = n.node_name.as_deref().unwrap_or_default();
        cancel_job(qmp, name).await?;
        qmp.execute("blockdev-del", Some(json!({ "node-name": name })))
            .await
            .map_err(|e| qmp_failure(&format!("blockdev-del {name}"), e))?;
    }
    Ok(Some(format!(
        "removed {} point-in-time overlays an interrupted backup had left in QEMU",
        overlays.len()
    )))
}

#[async_trait]
impl BackupView for PointInTimeView {
    fn disks(&self) -> &[ViewDisk] {
        &self.disks
    }

    fn consistency(&self) -> Consistency {
        self.consistency
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn frozen_for(&self) -> Option<Duration> {
        self.frozen_for
    }

    fn vm_config(&self) -> VmConfig {
        self.vm_config.clone()
    }

    async fn finish(mut self: Box<Self>, committed: bool) -> Result<(), VmError> {
        self.teardown(committed).await
    }
}

impl Drop for PointInTimeView {
    fn drop(&mut self) {
        if !self.staged.is_empty() {
            tracing::warn!(
                "a point-in-time view was dropped without being finished; the next backup of the VM clears it"
            );
        }
    }
}
