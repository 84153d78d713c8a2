//! What a host agent knows and reports of its VMs: run state, disks, guest agent,
//! and the findings of the preflight checks. Providers (`tresor-vm`) produce these;
//! the server keeps and shows them.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Run state, as far as backups care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VmState {
    Running,
    /// QEMU runs but the guest does not (paused, suspended, ...): a running-VM
    /// backup still works, without freezing the guest.
    Paused,
    /// No QEMU process: its images are read offline.
    Stopped,
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VmState::Running => "running",
            VmState::Paused => "paused",
            VmState::Stopped => "stopped",
        })
    }
}

/// Whether a guest agent answers, and what it can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum GuestAgentState {
    /// No guest agent socket is configured for the VM.
    NotConfigured,
    /// The socket is there but nobody answered in time.
    NotResponding { reason: String },
    Responding {
        version: String,
        /// `guest-fsfreeze-freeze` is supported and enabled.
        can_freeze: bool,
    },
}

/// One disk of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VmDisk {
    /// The disk's name in recovery points: the guest device (`vda`, libvirt's target)
    /// or image file name.
    pub name: String,
    /// The hypervisor's handle on it (a QEMU block node), when running.
    #[schema(required)]
    pub node: Option<String>,
    /// The image file (or block device) behind it; for a network disk its source as
    /// `protocol://host[:port][,host...]/name`, for a storage volume `pool/volume`.
    pub image: String,
    /// `qcow2`, `raw`, ...
    pub format: String,
    /// Bytes the guest sees; 0 when the provider could not tell (a network disk of a
    /// shut-off libvirt domain).
    pub virtual_size: u64,
    /// Where the data is, as the provider describes it (libvirt); `None` for
    /// providers that only know the image (the QEMU provider, older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DiskSource>,
    /// The guest bus (`virtio`, `sata`, `scsi`, ...), when the provider knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

/// Where a disk's data is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DiskSource {
    /// An image file on the host.
    File { path: String },
    /// A block device on the host.
    Block { path: String },
    /// A network export (`nbd`, `rbd`, `iscsi`, `gluster`, `http`, ...).
    Network {
        protocol: String,
        /// The export, image or volume name on the server.
        #[schema(required)]
        name: Option<String>,
        /// `host[:port]`, or a socket path for a local (`unix`) transport.
        hosts: Vec<String>,
    },
    /// A volume of a libvirt storage pool.
    Volume { pool: String, volume: String },
}

/// Who runs a VM: the interface later work (backups, restores) must go through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VmProviderKind {
    /// A QEMU process reached through its QMP socket (or its images, stopped).
    #[default]
    Qemu,
    /// A libvirt domain, reached through libvirt's API.
    Libvirt,
}

/// How a VM boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VmFirmware {
    pub kind: FirmwareKind,
    /// The firmware image (`/usr/share/OVMF/OVMF_CODE.fd`), when one is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<String>,
    /// The VM's own UEFI variable store: VM data a restore must bring back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvram: Option<String>,
    /// UEFI Secure Boot is asked for.
    #[serde(default)]
    pub secure_boot: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FirmwareKind {
    Bios,
    Uefi,
}

/// A VM's TPM. An emulated TPM keeps state (keys sealed to it) that a restore must
/// bring back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VmTpm {
    /// `tpm-crb`, `tpm-tis`, ...
    #[schema(required)]
    pub model: Option<String>,
    /// `emulator` (swtpm, state on the host) or `passthrough` (a host TPM).
    pub backend: String,
    /// `2.0`, `1.2`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The host end of the guest agent's virtio-serial channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GuestAgentChannel {
    /// The host socket; `None` while libvirt has not chosen it (a shut-off domain).
    #[schema(required)]
    pub path: Option<String>,
    /// Whether an agent in the guest holds the port open (libvirt's view of a
    /// running domain); `None` when not known.
    #[schema(required)]
    pub connected: Option<bool>,
}

/// One network interface of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VmNic {
    /// `network`, `bridge`, `user`, `direct`, `ethernet`, ...
    pub kind: String,
    #[schema(required)]
    pub mac: Option<String>,
    /// The guest device model (`virtio`, `e1000`, ...).
    #[schema(required)]
    pub model: Option<String>,
    /// What it is plugged into: a libvirt network's name, a bridge, a host device.
    #[schema(required)]
    pub source: Option<String>,
}

/// What a provider knows of a VM. Fields after `guest_agent` came with libvirt
/// discovery: a provider that does not know them leaves them empty, and reports of
/// older agents read with them empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VmInfo {
    pub name: String,
    #[schema(required)]
    pub uuid: Option<String>,
    pub state: VmState,
    pub disks: Vec<VmDisk>,
    pub guest_agent: GuestAgentState,
    #[serde(default)]
    pub provider: VmProviderKind,
    /// libvirt: defined (kept when it stops) rather than transient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<VmFirmware>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<VmTpm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_agent_channel: Option<GuestAgentChannel>,
    /// Virtual CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    /// The most memory the guest may have, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<VmNic>,
}

impl VmInfo {
    /// What a provider that knows only the basics reports: the fields that came with
    /// libvirt discovery empty.
    pub fn basic(
        name: String,
        uuid: Option<String>,
        state: VmState,
        disks: Vec<VmDisk>,
        guest_agent: GuestAgentState,
    ) -> VmInfo {
        VmInfo {
            name,
            uuid,
            state,
            disks,
            guest_agent,
            provider: VmProviderKind::Qemu,
            persistent: None,
            firmware: None,
            tpm: None,
            guest_agent_channel: None,
            vcpus: None,
            memory_bytes: None,
            nics: Vec::new(),
        }
    }
}

/// What the server keeps and shows of a VM: what the provider knows, with the
/// preflight checks' findings when the agent ran them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VmReport {
    #[serde(flatten)]
    pub info: VmInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<Vec<CheckResult>>,
}
/// A stable name for a condition a check (or a failed backup) reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CheckCode {
    /// The provider does not know the VM.
    VmNotFound,
    /// The QMP socket cannot be reached (and no offline definition exists).
    QmpUnreachable,
    /// QEMU answers but lacks what pull-mode backup needs.
    QemuUnsupported,
    /// The VM has no disk to back up.
    NoDisks,
    /// A disk image file is missing or unreadable.
    ImageMissing,
    /// A disk's format cannot be backed up.
    UnsupportedDiskFormat,
    /// A stopped VM's image is held by a running QEMU.
    ImageLocked,
    /// Changed-block tracking does not survive a QEMU restart for this disk (raw
    /// images cannot store persistent bitmaps): after a restart the disk is read whole.
    BitmapNotPersistent,
    /// No guest agent socket is configured: points are crash-consistent.
    GuestAgentNotConfigured,
    /// The guest agent does not answer: points are crash-consistent.
    GuestAgentNotResponding,
    /// The guest agent answers but cannot freeze file systems.
    GuestAgentCannotFreeze,
    /// The scratch folder for point-in-time views is missing, not writable or full.
    ScratchSpaceMissing,
    /// Another backup of the VM is running (or one crashed and left its view).
    BackupInProgress,
    /// The backup failed while reading or storing (I/O, NBD, repository).
    BackupFailed,
    /// The VM's provider cannot back it up in this version (libvirt domains, until
    /// backups go through libvirt's backup API).
    BackupNotSupported,
}

impl CheckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckCode::VmNotFound => "vm-not-found",
            CheckCode::QmpUnreachable => "qmp-unreachable",
            CheckCode::QemuUnsupported => "qemu-unsupported",
            CheckCode::NoDisks => "no-disks",
            CheckCode::ImageMissing => "image-missing",
            CheckCode::UnsupportedDiskFormat => "unsupported-disk-format",
            CheckCode::ImageLocked => "image-locked",
            CheckCode::BitmapNotPersistent => "bitmap-not-persistent",
            CheckCode::GuestAgentNotConfigured => "guest-agent-not-configured",
            CheckCode::GuestAgentNotResponding => "guest-agent-not-responding",
            CheckCode::GuestAgentCannotFreeze => "guest-agent-cannot-freeze",
            CheckCode::ScratchSpaceMissing => "scratch-space-missing",
            CheckCode::BackupInProgress => "backup-in-progress",
            CheckCode::BackupFailed => "backup-failed",
            CheckCode::BackupNotSupported => "backup-not-supported",
        }
    }
}

impl fmt::Display for CheckCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a check's finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Fine.
    Ok,
    /// Backups work, with less than the best (crash-consistent, full reads).
    Warning,
    /// Backups will fail until this is fixed.
    Error,
}

/// One finding of a preflight check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    /// What was checked, for people: "QMP socket", "guest agent", "disk vda".
    pub subject: String,
    pub severity: Severity,
    /// `None` when the check passed.
    #[schema(required)]
    pub code: Option<CheckCode>,
    pub message: String,
    /// What to do about it, when something is to be done.
    #[schema(required)]
    pub fix: Option<String>,
}

impl CheckResult {
    pub fn ok(subject: impl Into<String>, message: impl Into<String>) -> CheckResult {
        CheckResult {
            subject: subject.into(),
            severity: Severity::Ok,
            code: None,
            message: message.into(),
            fix: None,
        }
    }

    pub fn problem(
        subject: impl Into<String>,
        severity: Severity,
        code: CheckCode,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> CheckResult {
        CheckResult {
            subject: subject.into(),
            severity,
            code: Some(code),
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_stable_names() {
        for code in [
            CheckCode::QmpUnreachable,
            CheckCode::GuestAgentNotResponding,
            CheckCode::ScratchSpaceMissing,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().to_string())
            );
        }
    }
}
