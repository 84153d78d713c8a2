//! Virtual machines as Tresor sees them, whoever runs them.
//!
//! A [`VmProvider`] is how a host agent talks to a hypervisor: it lists the VMs it
//! knows, tells what they are ([`VmInfo`]), checks that backups of them will work
//! ([`preflight`](VmProvider::preflight)), and opens a [`BackupView`]: every disk of
//! a VM at one instant, as block sources, with what changed since the previous
//! recovery point. The QEMU provider (`tresor-qemu`) implements it over QMP and
//! `qemu-nbd`; a libvirt provider maps onto the same steps (`virDomainBackupBegin`
//! with a checkpoint, NBD reads, `virDomainAbortJob`).
//!
//! **Changed-block tracking is named after recovery points.** A view is opened with
//! the id of the new point and of its parent. The provider starts tracking changes
//! "since the new point" at the instant the view is taken, and reports as dirty what
//! changed "since the parent". Only [`BackupView::finish`] with a committed point
//! drops the parent's tracking; a failed backup keeps it, so the next backup still
//! covers every change.
//!
//! A view also hands over the VM's configuration saved with the point
//! ([`VmConfig`], module [`vm_config`]): plain data per provider, which a restore
//! reads back.
//!
//! **Architecture invariant:** knows nothing of QEMU, repositories or HTTP. It is the
//! vocabulary the agent and the vault share with providers.

pub mod vm_config;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tresor_blocksource::{BlockSource, DirtyExtents};
pub use tresor_format::manifest::Consistency;

pub use vm_config::{
    LibvirtPointConfig, QemuPointConfig, QemuSockets, SavedFile, SavedTpm, VmConfig, VmConfigError,
};

pub use tresor_api::inventory::{
    CheckCode, CheckResult, GuestAgentState, Severity, VmDisk, VmInfo, VmState,
};

/// Errors of providers. Each carries a stable [`CheckCode`], so a failed backup job
/// reports the same code the preflight check would have shown.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct VmError {
    pub code: CheckCode,
    pub message: String,
}

impl VmError {
    pub fn new(code: CheckCode, message: impl Into<String>) -> VmError {
        VmError {
            code,
            message: message.into(),
        }
    }
}

pub type Result<T, E = VmError> = std::result::Result<T, E>;

/// How a provider names one of its VMs (a configured name, a socket path).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VmRef(pub String);

impl fmt::Display for VmRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a backup view is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRequest {
    /// Id the new recovery point will have; change tracking from this instant on is
    /// named after it.
    pub point: String,
    /// The parent recovery point, when one exists: the view reports what changed
    /// since it, where the provider still tracks that.
    pub parent: Option<String>,
    /// The change tracking the parent point recorded as covering every change since
    /// its instant (a libvirt checkpoint of an older point, when the parent was a
    /// shut-off domain's and made none); `None`: the provider derives it from
    /// `parent`. Read from the repository: a provider checks it before use.
    pub parent_tracking: Option<String>,
    /// Freeze the guest's file systems around the instant (when an agent answers).
    pub quiesce: bool,
}

/// One disk of a backup view.
pub struct ViewDisk {
    pub name: String,
    pub source: Arc<dyn BlockSource>,
    /// What changed since the parent; `None` means read the whole disk (deduplicated
    /// against what is stored).
    pub dirty: Option<DirtyExtents>,
    /// Why the whole disk is read although a parent was given (tracking lost).
    pub full_read_reason: Option<String>,
}

/// The disks of a VM at one instant, open for reading.
#[async_trait]
pub trait BackupView: Send + Sync {
    fn disks(&self) -> &[ViewDisk];
    /// How consistent the instant is (frozen by the guest agent, or as after a crash).
    fn consistency(&self) -> Consistency;
    /// Things the job should report without failing (no guest agent, thaw trouble).
    fn warnings(&self) -> Vec<String>;
    /// How long the guest's file systems stayed frozen, if they were.
    fn frozen_for(&self) -> Option<std::time::Duration>;
    /// A copy of the VM's configuration for a restore as a new VM.
    fn vm_config(&self) -> VmConfig;
    /// Tears the view down. With `committed`, the new point is durable: tracking
    /// named after older points is dropped. Without it, tracking named after the new
    /// point is dropped and the parent's kept.
    async fn finish(self: Box<Self>, committed: bool) -> Result<()>;
}

/// A hypervisor (or a host's configured set of VMs) that Tresor can back up.
#[async_trait]
pub trait VmProvider: Send + Sync {
    /// The VMs this provider knows.
    async fn list(&self) -> Result<Vec<VmRef>>;
    async fn inspect(&self, vm: &VmRef) -> Result<VmInfo>;
    /// Says, check by check, whether a backup of `vm` will work and what to fix.
    async fn preflight(&self, vm: &VmRef) -> Vec<CheckResult>;
    /// Takes the point-in-time view a backup reads.
    async fn open_view(&self, vm: &VmRef, req: &ViewRequest) -> Result<Box<dyn BackupView>>;
}
