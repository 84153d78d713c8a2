//! A running (or paused) domain's disks at one instant, through libvirt's own
//! backup API in pull mode, so libvirt keeps owning the domain's block graph:
//!
//! 1. The checkpoint chain is checked: the parent point's checkpoint
//!    (`tresor-<parent id>`) must exist and track each disk with a bitmap. A disk
//!    whose tracking is missing (deleted by hand; the domain restored, migrated or
//!    redefined; a disk added since) is read whole, deduplicated against the
//!    stored points, with a warning saying why: never silently incomplete.
//! 2. The guest's file systems are frozen through libvirt's guest agent support.
//! 3. `virDomainBackupBegin`: a pull-mode job (NBD on a private Unix socket, one
//!    scratch file per disk) and, at the same instant, the new point's checkpoint.
//!    If libvirt refuses the incremental request (a broken bitmap), the job is asked
//!    again with every disk whole.
//! 4. Thaw, whatever happened in 3.
//! 5. Each disk's export is read with Tresor's NBD client: `base:allocation`, and
//!    `qemu:dirty-bitmap:backup-<disk>` for an incremental disk.
//! 6. Finish: the job ends (`virDomainAbortJob`, the normal end of a pull job).
//!    With a committed point, Tresor's older checkpoints are deleted (libvirt
//!    merges their bitmaps); without one, the new checkpoint is, and the parent's
//!    keeps covering every change.
//!
//! Checkpoints are persistent: they survive domain and libvirtd restarts, so a
//! domain stopped and started between two backups still backs up incrementally.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tresor_qemu::NbdSource;
use tresor_vm::{CheckCode, Consistency, LibvirtPointConfig, ViewDisk, VmDisk, VmError};
use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

use crate::backup_api as api;
use crate::backup_xml::{self as xml, DiskPlan, DiskRole};
use crate::domain_xml;

/// NBD connections per disk.
const CONNECTIONS: usize = 4;
/// Scratch folders of Tresor's pull jobs start with this.
pub const SCRATCH_PREFIX: &str = "tresor-pull-";

/// What a pull-mode view is asked for.
#[derive(Debug, Clone)]
pub struct PullRequest {
    pub uri: String,
    pub uuid: String,
    pub point: String,
    pub parent: Option<String>,
    /// The checkpoint the parent point recorded as tracking its changes, when it is
    /// not its own (a shut-off domain's point names its parent's).
    pub parent_tracking: Option<String>,
    pub quiesce: bool,
    /// Where the job's scratch files and NBD socket go (a folder per job).
    pub scratch_dir: PathBuf,
    /// Disk targets left out of the point.
    pub exclude: Vec<String>,
    /// The disks as discovered (saved with the point).
    pub disks: Vec<VmDisk>,
    pub name: String,
}

/// The checkpoint whose bitmaps hold every change since the parent point: the one
/// its point recorded (a shut-off domain's point names its parent's, which tracks a
/// superset), when it is one of Tresor's names, else the parent's own.
pub fn parent_checkpoint(parent: Option<&str>, recorded: Option<&str>) -> Option<String> {
    let parent = parent?;
    Some(match recorded.filter(|r| xml::is_tresor_checkpoint(r)) {
        Some(r) => r.to_string(),
        None => xml::checkpoint_name(parent),
    })
}

/// An open pull-mode backup of one domain.
pub struct PullView {
    conn: Connect,
    domain: Domain,
    point: String,
    scratch: PathBuf,
    job_running: bool,
    checkpoint_made: bool,
    pub(crate) disks: Vec<ViewDisk>,
    pub(crate) consistency: Consistency,
    pub(crate) warnings: Vec<String>,
    pub(crate) frozen_for: Option<Duration>,
    /// Set once the view is taken.
    pub(crate) vm_config: LibvirtPointConfig,
}

fn failure(code: CheckCode, message: impl std::fmt::Display) -> VmError {
    VmError::new(code, message.to_string())
}

/// Opens the view (blocking). On failure, whatever was started is undone.
pub fn open(req: PullRequest) -> Result<PullView, VmError> {
    let mut conn = Connect::open(Some(&req.uri)).map_err(|e| {
        failure(
            CheckCode::VmNotFound,
            format!("connecting to libvirt at {}: {}", req.uri, e.message()),
        )
    })?;
    let domain = match Domain::lookup_by_uuid_string(&conn, &req.uuid) {
        Ok(d) => d,
        Err(e) => {
            let _ = conn.close();
            return Err(failure(
                CheckCode::VmNotFound,
                format!(
                    "libvirt at {} knows no domain with UUID {}: {}",
                    req.uri,
                    req.uuid,
                    e.message()
                ),
            ));
        }
    };
    let scratch = req
        .scratch_dir
        .join(format!("{SCRATCH_PREFIX}{}", req.point));
    let mut view = PullView {
        conn,
        domain,
        point: req.point.clone(),
        scratch,
        job_running: false,
        checkpoint_made: false,
        disks: Vec::new(),
        consistency: Consistency::CrashConsistent,
        warnings: Vec::new(),
        frozen_for: None,
        vm_config: LibvirtPointConfig::default(),
    };
    match view.take(&req) {
        Ok(()) => Ok(view),
        Err(e) => {
            if let Err(t) = view.teardown(false) {
                tracing::warn!(error = %t, "tearing down a failed libvirt backup");
            }
            Err(e)
        }
    }
}

impl PullView {
    fn take(&mut self, req: &PullRequest) -> Result<(), VmError> {
        let live = self.domain.get_xml_desc(0).map_err(|e| {
            failure(
                CheckCode::VmNotFound,
                format!("reading the domain's XML: {}", e.message()),
            )
        })?;
        let parsed = domain_xml::parse(&live).map_err(|e| {
            failure(
                CheckCode::VmNotFound,
                format!("the domain's description: {e}"),
            )
        })?;
        // The definition (what a restore would define again); a transient domain
        // has only its live description.
        let definition = self
            .domain
            .get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
            .unwrap_or_else(|_| live.clone());
        self.clear_leftover_job(&req.scratch_dir)?;

        let parent_checkpoint =
            parent_checkpoint(req.parent.as_deref(), req.parent_tracking.as_deref());
        let tracked = match &parent_checkpoint {
            Some(name) => self.tracked_disks(name)?,
            None => Ok(Vec::new()),
        };
        let mut plans = Vec::new();
        let mut reasons: Vec<(String, String)> = Vec::new();
        for disk in &parsed.disks {
            if req.exclude.iter().any(|x| x == &disk.target) {
                plans.push(DiskPlan {
                    target: disk.target.clone(),
                    role: DiskRole::Skipped,
                });
                continue;
            }
            let bitmap = disk.format == "qcow2";
            let incremental = match (&parent_checkpoint, &tracked) {
                (None, _) => None,
                (Some(_), _) if !bitmap => {
                    reasons.push((disk.target.clone(), format!("its image is {}, which cannot hold libvirt's change tracking (convert it to qcow2)", disk.format)));
                    None
                }
                (Some(name), Ok(disks)) if disks.contains(&disk.target) => Some(name.clone()),
                (Some(name), Ok(_)) => {
                    reasons.push((disk.target.clone(), format!("checkpoint {name} of the parent point does not track it (a disk added or replaced since)")));
                    None
                }
                (Some(_), Err(why)) => {
                    reasons.push((disk.target.clone(), why.clone()));
                    None
                }
            };
            plans.push(DiskPlan {
                target: disk.target.clone(),
                role: DiskRole::Backed {
                    incremental,
                    bitmap,
                },
            });
        }
        if !plans
            .iter()
            .any(|p| matches!(p.role, DiskRole::Backed { .. }))
        {
            return Err(failure(
                CheckCode::NoDisks,
                format!(
                    "domain {} has no disk to back up (every disk excluded, or none)",
                    req.name
                ),
            ));
        }
        self.make_scratch(&live)?;
        let socket = self.scratch.join("nbd.sock");
        let new_checkpoint = xml::checkpoint_name(&req.point);

        // The instant: freeze, begin (with the checkpoint), thaw.
        let frozen_at = Instant::now();
        let frozen = if req.quiesce && parsed.guest_agent_channel.is_some() && self.running() {
            match api::fs_freeze(&self.domain) {
                Ok(n) => Some(n),
                Err(e) => {
                    self.warnings.push(format!(
                        "could not freeze the guest's file systems ({e}): the point is crash-consistent"
                    ));
                    // A freeze that timed out may still complete in the guest.
                    let _ = api::fs_thaw(&self.domain);
                    None
                }
            }
        } else {
            if req.quiesce {
                self.warnings.push(if parsed.guest_agent_channel.is_none() {
                    "the domain has no guest agent channel: the point is crash-consistent".to_string()
                } else {
                    "the domain is paused, its guest agent cannot freeze: the point is crash-consistent".to_string()
                });
            }
            None
        };
        let mut begun = self.begin(&socket, &plans, &new_checkpoint);
        if let Err(e) = &begun {
            let incremental = plans.iter().any(|p| {
                matches!(
                    p.role,
                    DiskRole::Backed {
                        incremental: Some(_),
                        ..
                    }
                )
            });
            if incremental {
                // A checkpoint libvirt lists but cannot use (its bitmap broken, e.g.
                // after QEMU was killed): every disk whole, never an incomplete point.
                for p in &mut plans {
                    if let DiskRole::Backed {
                        incremental: inc @ Some(_),
                        ..
                    } = &mut p.role
                    {
                        reasons.push((
                            p.target.clone(),
                            format!(
                                "libvirt refused the incremental backup from {} ({e})",
                                inc.as_deref().unwrap_or("")
                            ),
                        ));
                        *inc = None;
                    }
                }
                begun = self.begin(&socket, &plans, &new_checkpoint);
            }
        }
        // The UEFI variables and TPM state, read at once after the disks' instant and
        // before the thaw (neither is frozen by libvirt: see FORMAT.md).
        let firmware = begun.is_ok().then(|| {
            crate::firmware_state::read(
                &req.uuid,
                parsed.firmware.nvram.as_deref(),
                parsed.tpm.as_ref(),
                Path::new(crate::firmware_state::SWTPM_STATE_ROOT),
            )
        });
        if let Some(count) = frozen {
            self.thaw();
            self.frozen_for = Some(frozen_at.elapsed());
            if count > 0 {
                self.consistency = Consistency::FileSystemConsistent;
            } else {
                self.warnings.push(
                    "the guest agent froze no file system (none mounted?): the point is crash-consistent"
                        .to_string(),
                );
            }
        }
        begun?;
        let firmware = firmware.unwrap_or_default();
        self.warnings.extend(firmware.warnings.iter().cloned());
        for (disk, reason) in &reasons {
            self.warnings.push(format!(
                "disk {disk}: {reason}: reading the whole disk, deduplicated against what is stored"
            ));
        }
        tracing::info!(vm = %req.name, point = %req.point, frozen_ms = self.frozen_for.map(|d| d.as_millis() as u64), "libvirt backup job started");

        let job = api::backup_xml(&self.domain).map_err(|e| failure(CheckCode::BackupFailed, e))?;
        let exports = xml::backup_exports(&job).map_err(|e| failure(CheckCode::BackupFailed, e))?;
        for plan in &plans {
            let DiskRole::Backed { incremental, .. } = &plan.role else {
                continue;
            };
            let export = exports
                .iter()
                .find(|x| x.disk == plan.target)
                .ok_or_else(|| {
                    failure(
                        CheckCode::BackupFailed,
                        format!("libvirt's backup job exports no disk {}", plan.target),
                    )
                })?;
            let bitmap = incremental.as_ref().and(export.bitmap.as_deref());
            if incremental.is_some() && bitmap.is_none() {
                return Err(failure(
                    CheckCode::BackupFailed,
                    format!(
                        "libvirt's incremental backup exports no bitmap for disk {}",
                        plan.target
                    ),
                ));
            }
            let source =
                NbdSource::connect_unix(&plan.target, &socket, &export.export, bitmap, CONNECTIONS)
                    .map_err(|e| failure(CheckCode::BackupFailed, e))?;
            let dirty = match bitmap {
                Some(_) => Some(
                    source
                        .dirty_extents()
                        .map_err(|e| failure(CheckCode::BackupFailed, e))?,
                ),
                None => None,
            };
            let full_read_reason = reasons
                .iter()
                .find(|(d, _)| d == &plan.target)
                .map(|(d, r)| format!("disk {d}: {r}"));
            self.disks.push(ViewDisk {
                name: plan.target.clone(),
                source: Arc::new(source),
                dirty,
                full_read_reason,
            });
        }
        let excluded: Vec<&str> = plans
            .iter()
            .filter(|p| p.role == DiskRole::Skipped)
            .map(|p| p.target.as_str())
            .collect();
        let saved_disks: Vec<VmDisk> = req
            .disks
            .iter()
            .filter(|d| !excluded.contains(&d.name.as_str()))
            .cloned()
            .collect();
        self.vm_config = LibvirtPointConfig {
            name: req.name.clone(),
            uuid: Some(req.uuid.clone()),
            disks: saved_disks,
            excluded_disks: excluded.iter().map(|d| d.to_string()).collect(),
            checkpoint: self.checkpoint_made.then_some(new_checkpoint),
            domain_xml: Some(definition),
            nvram: firmware.nvram,
            tpm_state: firmware.tpm,
        };
        Ok(())
    }

    fn running(&self) -> bool {
        self.domain
            .get_info()
            .is_ok_and(|i| i.state == sys::VIR_DOMAIN_RUNNING)
    }

    fn thaw(&mut self) {
        let mut last = None;
        for _ in 0..3 {
            match api::fs_thaw(&self.domain) {
                Ok(_) => return,
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            tracing::error!(error = %e, "the guest's file systems may still be frozen");
            self.warnings.push(format!(
                "thawing the guest's file systems failed ({e}); check the guest and run `virsh domfsthaw` if it is still frozen"
            ));
        }
    }

    /// Which disks the checkpoint `name` tracks; the error is why it cannot serve.
    fn tracked_disks(&self, name: &str) -> Result<Result<Vec<String>, String>, VmError> {
        let found = api::checkpoint_xml(&self.domain, name)
            .map_err(|e| failure(CheckCode::BackupFailed, e))?;
        Ok(match found {
            None => Err(format!(
                "the parent point's checkpoint {name} is gone (deleted by hand, or the domain was restored, migrated or redefined)"
            )),
            Some(text) => xml::checkpoint_bitmap_disks(&text),
        })
    }

    /// A backup job a crashed agent left (its socket in one of Tresor's scratch
    /// folders) is ended; anyone else's job is left alone and refuses this backup.
    fn clear_leftover_job(&mut self, scratch_root: &Path) -> Result<(), VmError> {
        let Ok(job) = api::backup_xml(&self.domain) else {
            return Ok(());
        };
        let ours = scratch_root.join(SCRATCH_PREFIX);
        let ours = xml::escape(&ours.to_string_lossy());
        if job.contains(&format!("socket='{ours}")) {
            api::abort_job(&self.domain).map_err(|e| failure(CheckCode::BackupInProgress, e))?;
            self.warnings
                .push("a backup job an earlier run of the agent left behind was ended".into());
            return Ok(());
        }
        Err(failure(
            CheckCode::BackupInProgress,
            "libvirt runs another backup job on this domain (not Tresor's): wait for it to end, or end it (virsh domjobabort)",
        ))
    }

    /// The job's private folder, owned by the domain's QEMU (which creates the NBD
    /// socket in it); root, the agent, reaches it still.
    fn make_scratch(&mut self, live_xml: &str) -> Result<(), VmError> {
        let missing = |e: std::io::Error| {
            failure(
                CheckCode::ScratchSpaceMissing,
                format!(
                    "cannot make the scratch folder {}: {e}",
                    self.scratch.display()
                ),
            )
        };
        let root = self.scratch.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(root).map_err(missing)?;
        use std::os::unix::fs::PermissionsExt;
        // The domain's QEMU (libvirt's user, not root) must pass through the scratch
        // root to reach its job folder: the root may be 0700 (the agent makes its
        // scratch_dir so). Search only (o+x), not listing; the job folder stays 0700.
        let mode = std::fs::metadata(root)
            .map_err(missing)?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode | 0o001))
                .map_err(missing)?;
            tracing::info!(dir = %root.display(), "scratch folder made passable (o+x) for libvirt's QEMU");
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
        std::fs::create_dir(&self.scratch).map_err(missing)?;
        std::fs::set_permissions(&self.scratch, std::fs::Permissions::from_mode(0o700))
            .map_err(missing)?;
        if let Some((uid, gid)) = xml::dac_owner(live_xml) {
            std::os::unix::fs::chown(&self.scratch, Some(uid), Some(gid)).map_err(|e| {
                failure(
                    CheckCode::ScratchSpaceMissing,
                    format!(
                        "cannot give the scratch folder {} to the domain's QEMU ({uid}:{gid}): {e}; run the agent as root",
                        self.scratch.display()
                    ),
                )
            })?;
        }
        Ok(())
    }

    fn begin(
        &mut self,
        socket: &Path,
        plans: &[DiskPlan],
        checkpoint: &str,
    ) -> Result<(), VmError> {
        let backup = xml::backup_xml(socket, &self.scratch, plans);
        let cp = xml::checkpoint_xml(checkpoint, plans);
        api::backup_begin(&self.domain, &backup, cp.as_deref()).map_err(|e| {
            let message = e.to_string();
            let code = if message.contains("job") && message.contains("already") {
                CheckCode::BackupInProgress
            } else {
                CheckCode::BackupFailed
            };
            failure(code, message)
        })?;
        self.job_running = true;
        self.checkpoint_made = cp.is_some();
        Ok(())
    }

    /// Ends the job and keeps the checkpoints the next backup needs (blocking).
    pub(crate) fn teardown(&mut self, committed: bool) -> Result<(), VmError> {
        // NBD connections first: the export goes with the job.
        self.disks.clear();
        let mut first: Option<VmError> = None;
        if self.job_running {
            if let Err(e) = api::abort_job(&self.domain) {
                first.get_or_insert(failure(CheckCode::BackupFailed, e));
            }
            self.job_running = false;
        }
        let new = xml::checkpoint_name(&self.point);
        if committed {
            // Only the new point's checkpoint is needed from now on; older ones of
            // Tresor's (and leftovers of failed runs) go, others' are left alone.
            match api::list_checkpoints(&self.domain) {
                Ok(names) => {
                    for name in names
                        .iter()
                        .filter(|n| xml::is_tresor_checkpoint(n) && **n != new)
                    {
                        if let Err(e) = api::delete_checkpoint(&self.domain, name) {
                            first.get_or_insert(failure(CheckCode::BackupFailed, e));
                        }
                    }
                }
                Err(e) => {
                    first.get_or_insert(failure(CheckCode::BackupFailed, e));
                }
            }
        } else if self.checkpoint_made {
            if let Err(e) = api::delete_checkpoint(&self.domain, &new) {
                first.get_or_insert(failure(CheckCode::BackupFailed, e));
            }
            self.checkpoint_made = false;
        }
        if self.scratch.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.scratch) {
                first.get_or_insert(failure(
                    CheckCode::ScratchSpaceMissing,
                    format!("removing {}: {e}", self.scratch.display()),
                ));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for PullView {
    fn drop(&mut self) {
        if self.job_running {
            let _ = api::abort_job(&self.domain);
        }
        let _ = self.conn.close();
    }
}
