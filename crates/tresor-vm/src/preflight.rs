//! Preflight checks: whether backups of a VM will work, and what to fix.
//!
//! Codes are stable: scripts, alerts and the portal match on them, and a backup job
//! that fails carries the code of the check that would have caught it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable name for a condition a check (or a failed backup) reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// What was checked, for people: "QMP socket", "guest agent", "disk vda".
    pub subject: String,
    pub severity: Severity,
    /// `None` when the check passed.
    pub code: Option<CheckCode>,
    pub message: String,
    /// What to do about it, when something is to be done.
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
