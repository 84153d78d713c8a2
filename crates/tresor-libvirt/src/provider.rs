//! The libvirt provider as the agent uses it: discovery off the async threads with a
//! time limit, the preflight checks of a discovered domain, and [`VmProvider`] so the
//! agent can treat libvirt domains like its other VMs. Backups through libvirt's
//! backup API come later: until then a view is refused with a code and the
//! preflight says so.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tresor_api::inventory::{DiskSource, GuestAgentState};
use tresor_vm::{
    BackupView, CheckCode, CheckResult, Severity, ViewRequest, VmError, VmInfo, VmProvider, VmRef,
};

use crate::host::{Discovery, LibvirtHost};
use crate::LibvirtError;

/// How long one listing of every domain may take.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long describing one domain may take.
const FIND_TIMEOUT: Duration = Duration::from_secs(20);

/// The domains of one libvirt connection.
#[derive(Clone)]
pub struct LibvirtProvider {
    host: Arc<LibvirtHost>,
}

impl LibvirtProvider {
    pub fn new(uri: impl Into<String>) -> LibvirtProvider {
        LibvirtProvider {
            host: Arc::new(LibvirtHost::new(uri)),
        }
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

/// The preflight findings of a domain as discovered: its disks, its guest agent,
/// and that this version backs libvirt domains up not yet.
pub fn preflight(info: &VmInfo) -> Vec<CheckResult> {
    let mut out = vec![CheckResult::problem(
        "libvirt",
        Severity::Error,
        CheckCode::BackupNotSupported,
        "this agent discovers libvirt domains but cannot back them up yet",
        "update the agent to a version that backs up through libvirt's backup API",
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
        _req: &ViewRequest,
    ) -> tresor_vm::Result<Box<dyn BackupView>> {
        Err(VmError::new(
            CheckCode::BackupNotSupported,
            format!(
                "domain {vm} is a libvirt domain, which this agent cannot back up yet; \
                 update the agent to a version that backs up through libvirt"
            ),
        ))
    }
}
