//! The libvirt provider as the agent uses it: discovery off the async threads with a
//! time limit, the preflight checks of a discovered domain, and [`VmProvider`] so the
//! agent backs libvirt domains up like its other VMs: a running or paused domain
//! through libvirt's backup API in pull mode with checkpoints (`pull.rs`), a
//! shut-off one by reading its images (`offline.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tresor_api::inventory::{DiskSource, GuestAgentState, VmState};
use tresor_vm::{
    BackupView, CheckCode, CheckResult, Consistency, Severity, ViewDisk, ViewRequest, VmConfig,
    VmError, VmInfo, VmProvider, VmRef,
};

use crate::host::{Discovery, LibvirtHost};
use crate::pull::{self, PullRequest};
use crate::{offline, LibvirtError};

/// How long one listing of every domain may take.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long describing one domain may take.
const FIND_TIMEOUT: Duration = Duration::from_secs(20);

/// Where backup jobs put their scratch files and NBD socket unless told otherwise:
/// a folder the domains' QEMU can reach (not under a home folder).
pub const DEFAULT_SCRATCH_DIR: &str = "/var/lib/libvirt/tresor-scratch";
/// How long starting a backup job (checkpoint, freeze, NBD connections) may take.
const BEGIN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long ending one may take.
const END_TIMEOUT: Duration = Duration::from_secs(60);

/// The domains of one libvirt connection.
#[derive(Clone)]
pub struct LibvirtProvider {
    host: Arc<LibvirtHost>,
    scratch_dir: PathBuf,
    exclude: Arc<BTreeMap<String, Vec<String>>>,
}

impl LibvirtProvider {
    pub fn new(uri: impl Into<String>) -> LibvirtProvider {
        LibvirtProvider {
            host: Arc::new(LibvirtHost::new(uri)),
            scratch_dir: PathBuf::from(DEFAULT_SCRATCH_DIR),
            exclude: Arc::default(),
        }
    }

    /// Backup jobs put their scratch files (a folder per job) under `dir`.
    pub fn with_scratch_dir(mut self, dir: impl Into<PathBuf>) -> LibvirtProvider {
        self.scratch_dir = dir.into();
        self
    }

    /// Leaves the disks `targets` (`vdb`) of the domain `uuid` out of its points.
    pub fn with_excluded_disks(mut self, uuid: &str, targets: Vec<String>) -> LibvirtProvider {
        Arc::make_mut(&mut self.exclude).insert(uuid.to_string(), targets);
        self
    }

    pub fn uri(&self) -> &str {
        self.host.uri()
    }

    /// Every domain, described (see [`LibvirtHost::discover`]).
    pub async fn discover(&self) -> Result<Discovery, LibvirtError> {
        let host = self.host.clone();
        blocking(DISCOVERY_TIMEOUT, self.uri(), move || host.discover()).await
    }

    async fn find(&self, vm: &VmRef) -> Result<VmInfo, VmError> {
        let host = self.host.clone();
        let uuid = vm.0.clone();
        match blocking(FIND_TIMEOUT, self.uri(), move || host.find(&uuid)).await {
            Ok(Some(found)) => Ok(found.info),
            Ok(None) => Err(VmError::new(
                CheckCode::VmNotFound,
                format!(
                    "libvirt at {} knows no domain with UUID {}",
                    self.uri(),
                    vm.0
                ),
            )),
            Err(e) => Err(VmError::new(CheckCode::VmNotFound, e.to_string())),
        }
    }
}

/// Runs a blocking libvirt call on tokio's blocking threads, for at most `limit`. A
/// call past its limit is left to finish on its own; the connection refuses new
/// calls meanwhile (`LibvirtError::Busy`).
async fn blocking<T: Send + 'static>(
    limit: Duration,
    uri: &str,
    f: impl FnOnce() -> Result<T, LibvirtError> + Send + 'static,
) -> Result<T, LibvirtError> {
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(result)) => result,
        Ok(Err(joined)) if joined.is_panic() => std::panic::resume_unwind(joined.into_panic()),
        Ok(Err(_)) | Err(_) => Err(LibvirtError::TimedOut {
            uri: uri.to_string(),
            secs: limit.as_secs(),
        }),
    }
}

/// The preflight findings of a domain as discovered: its disks (and whether
/// libvirt can track their changes) and its guest agent.
pub fn preflight(info: &VmInfo) -> Vec<CheckResult> {
    let mut out = vec![CheckResult::ok(
        "libvirt",
        match info.state {
            VmState::Stopped => "shut off: its images are read directly (crash-consistent)",
            _ => "backed up through libvirt's backup API (pull mode, checkpoints)",
        },
    )];
    if info.disks.is_empty() {
        out.push(CheckResult::problem(
            "disks",
            Severity::Error,
            CheckCode::NoDisks,
            format!("domain {} has no disk to back up", info.name),
            "attach a disk to the domain, or do not protect it",
        ));
    }
    for disk in &info.disks {
        let subject = format!("disk {}", disk.name);
        match &disk.source {
            Some(DiskSource::File { path } | DiskSource::Block { path })
                if !Path::new(path).exists() =>
            {
                out.push(CheckResult::problem(
                    subject,
                    Severity::Error,
                    CheckCode::ImageMissing,
                    format!("{path} does not exist"),
                    "restore the image, or remove the disk from the domain's definition",
                ));
            }
            Some(DiskSource::Network { .. } | DiskSource::Volume { .. })
                if info.state == VmState::Stopped =>
            {
                out.push(CheckResult::problem(
                    subject,
                    Severity::Error,
                    CheckCode::UnsupportedDiskFormat,
                    format!("{} is not a file or block device: a shut-off domain's disk is read directly", disk.image),
                    "start the domain so it is backed up through libvirt",
                ));
            }
            _ if disk.format != "qcow2" => out.push(CheckResult::problem(
                subject,
                Severity::Warning,
                CheckCode::BitmapNotPersistent,
                format!("{} image {}: libvirt tracks changes of qcow2 images only, so it is read whole at every backup (deduplicated)", disk.format, disk.image),
                "convert the image to qcow2 (qemu-img convert -O qcow2) for incremental backups",
            )),
            _ => out.push(CheckResult::ok(
                subject,
                format!("{} image {}", disk.format, disk.image),
            )),
        }
    }
    out.push(match &info.guest_agent {
        GuestAgentState::NotConfigured => CheckResult::problem(
            "guest agent",
            Severity::Warning,
            CheckCode::GuestAgentNotConfigured,
            "the domain has no guest agent channel: points will be crash-consistent",
            "add a channel of type unix with target virtio name org.qemu.guest_agent.0 \
             and run qemu-ga in the guest",
        ),
        GuestAgentState::NotResponding { reason } => CheckResult::problem(
            "guest agent",
            Severity::Warning,
            CheckCode::GuestAgentNotResponding,
            format!("the guest agent does not answer: {reason}"),
            "start qemu-ga in the guest",
        ),
        GuestAgentState::Responding {
            can_freeze: false, ..
        } => CheckResult::problem(
            "guest agent",
            Severity::Warning,
            CheckCode::GuestAgentCannotFreeze,
            "the guest agent cannot freeze file systems",
            "allow guest-fsfreeze-freeze in qemu-ga's configuration",
        ),
        GuestAgentState::Responding { version, .. } => {
            CheckResult::ok("guest agent", format!("qemu-ga {version} answers"))
        }
    });
    out
}

/// A running domain's pull-mode backup, as the agent sees views.
struct LibvirtView(Option<pull::PullView>);

impl LibvirtView {
    fn view(&self) -> &pull::PullView {
        self.0.as_ref().expect("present until finish")
    }
}

#[async_trait]
impl BackupView for LibvirtView {
    fn disks(&self) -> &[ViewDisk] {
        &self.view().disks
    }
    fn consistency(&self) -> Consistency {
        self.view().consistency
    }
    fn warnings(&self) -> Vec<String> {
        self.view().warnings.clone()
    }
    fn frozen_for(&self) -> Option<Duration> {
        self.view().frozen_for
    }
    fn vm_config(&self) -> VmConfig {
        VmConfig::Libvirt(self.view().vm_config.clone())
    }
    async fn finish(mut self: Box<Self>, committed: bool) -> tresor_vm::Result<()> {
        let Some(mut view) = self.0.take() else {
            return Ok(());
        };
        let ended = tokio::time::timeout(
            END_TIMEOUT,
            tokio::task::spawn_blocking(move || view.teardown(committed)),
        )
        .await;
        match ended {
            Ok(Ok(result)) => result,
            _ => Err(VmError::new(
                CheckCode::BackupFailed,
                format!(
                    "ending libvirt's backup job took more than {} s (libvirtd stuck?)",
                    END_TIMEOUT.as_secs()
                ),
            )),
        }
    }
}

#[async_trait]
impl VmProvider for LibvirtProvider {
    /// The UUIDs of every domain.
    async fn list(&self) -> tresor_vm::Result<Vec<VmRef>> {
        let found = self
            .discover()
            .await
            .map_err(|e| VmError::new(CheckCode::VmNotFound, e.to_string()))?;
        Ok(found.domains.into_iter().map(|d| VmRef(d.vm)).collect())
    }

    async fn inspect(&self, vm: &VmRef) -> tresor_vm::Result<VmInfo> {
        self.find(vm).await
    }

    async fn preflight(&self, vm: &VmRef) -> Vec<CheckResult> {
        match self.find(vm).await {
            Ok(info) => preflight(&info),
            Err(e) => vec![CheckResult::problem(
                "libvirt",
                Severity::Error,
                e.code,
                e.message,
                "check that libvirtd runs and the domain is defined",
            )],
        }
    }

    async fn open_view(
        &self,
        vm: &VmRef,
        req: &ViewRequest,
    ) -> tresor_vm::Result<Box<dyn BackupView>> {
        let info = self.find(vm).await?;
        let exclude = self.exclude.get(&vm.0).cloned().unwrap_or_default();
        if info.state == VmState::Stopped {
            let host = self.host.clone();
            let uuid = vm.0.clone();
            let definition = blocking(FIND_TIMEOUT, self.uri(), move || host.definition(&uuid))
                .await
                .ok()
                .flatten();
            let tracking = crate::pull::parent_checkpoint(
                req.parent.as_deref(),
                req.parent_tracking.as_deref(),
            );
            let view = tokio::task::block_in_place(|| {
                offline::open(&info, &exclude, definition, tracking.as_deref())
            })?;
            return Ok(Box::new(view));
        }
        let pull = PullRequest {
            uri: self.uri().to_string(),
            uuid: vm.0.clone(),
            point: req.point.clone(),
            parent: req.parent.clone(),
            parent_tracking: req.parent_tracking.clone(),
            quiesce: req.quiesce,
            scratch_dir: self.scratch_dir.clone(),
            exclude,
            disks: info.disks.clone(),
            name: info.name.clone(),
        };
        let opened = tokio::time::timeout(
            BEGIN_TIMEOUT,
            tokio::task::spawn_blocking(move || pull::open(pull)),
        )
        .await;
        match opened {
            Ok(Ok(view)) => Ok(Box::new(LibvirtView(Some(view?)))),
            Ok(Err(joined)) if joined.is_panic() => std::panic::resume_unwind(joined.into_panic()),
            _ => Err(VmError::new(
                CheckCode::BackupFailed,
                format!(
                    "starting libvirt's backup job for {vm} took more than {} s (libvirtd stuck?)",
                    BEGIN_TIMEOUT.as_secs()
                ),
            )),
        }
    }
}
