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
    /// The disk's name in recovery points: the guest device (`vda`) or image file name.
    pub name: String,
    /// The hypervisor's handle on it (a QEMU block node), when running.
    #[schema(required)]
    pub node: Option<String>,
    /// The image file (or block device) behind it.
    pub image: String,
    /// `qcow2`, `raw`, ...
    pub format: String,
    pub virtual_size: u64,
}

/// What a provider knows of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VmInfo {
    pub name: String,
    #[schema(required)]
    pub uuid: Option<String>,
    pub state: VmState,
    pub disks: Vec<VmDisk>,
    pub guest_agent: GuestAgentState,
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
