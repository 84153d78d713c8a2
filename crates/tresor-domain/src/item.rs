//! Protected items: the VMs a vault backs up, and the state of their
//! protection.
//!
//! The states and transitions follow Azure Backup:
//!
//! - configuring backup makes an item `InitialBackupPending` until its first
//!   backup succeeds, then `Protected`;
//! - a failed backup makes it `ProtectionError` until one succeeds;
//! - stopping protection with its data kept makes it `ProtectionStopped`:
//!   no scheduled backups, no "back up now" (code `ProtectionStopped`), and
//!   its recovery points stay, untouched by retention, until protection is
//!   resumed or the data deleted;
//! - stopping protection and deleting the data soft-deletes the item: it is
//!   `SoftDeleted`, its points stay (no backups, no retention, no restore)
//!   until the vault's soft-delete period ends and they are purged; until
//!   then it can be undeleted, and is `ProtectionStopped` again with its
//!   points (retention resumes only when protection is resumed).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{codes, RuleError};

/// Where an item's protection stands (Azure's `protectionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ProtectionState {
    /// Backup is configured; the first backup has not succeeded yet.
    InitialBackupPending,
    /// Backups run and the last one succeeded.
    Protected,
    /// Backups are disabled; the recovery points are kept.
    ProtectionStopped,
    /// Backups run but the last one failed.
    ProtectionError,
    /// Its backup data was deleted: kept until the soft-delete period ends, then
    /// purged; it can be undeleted until then.
    SoftDeleted,
}

impl ProtectionState {
    /// The state of an item whose backup was just configured.
    pub fn configured() -> Self {
        ProtectionState::InitialBackupPending
    }

    /// Whether the policy's schedule backs the item up.
    pub fn runs_scheduled_backups(self) -> bool {
        !matches!(
            self,
            ProtectionState::ProtectionStopped | ProtectionState::SoftDeleted
        )
    }

    /// Whether retention deletes the item's expired points. A stopped item
    /// keeps them all, as Azure's "stop protection and retain backup data".
    /// A soft-deleted item's points wait for the purge, not for their expiry.
    pub fn applies_retention(self) -> bool {
        !matches!(
            self,
            ProtectionState::ProtectionStopped | ProtectionState::SoftDeleted
        )
    }

    /// Refuses what needs an item that is not soft-deleted (restores, resuming).
    pub fn not_soft_deleted(self) -> Result<(), RuleError> {
        if self == ProtectionState::SoftDeleted {
            return Err(RuleError::new(
                codes::ITEM_SOFT_DELETED,
                "This item's backup data was deleted; it is kept (soft-deleted) until its delete date.",
                "Undelete the item first (tresor protection undelete); it then keeps its recovery points, with protection stopped.",
            ));
        }
        Ok(())
    }

    /// Whether "back up now" may run; refused for a stopped or soft-deleted item.
    pub fn can_back_up_now(self) -> Result<(), RuleError> {
        self.not_soft_deleted()?;
        if self == ProtectionState::ProtectionStopped {
            return Err(RuleError::new(
                codes::PROTECTION_STOPPED,
                "Protection of this item is stopped, so it cannot be backed up.",
                "Resume protection with a backup policy, then back up.",
            ));
        }
        Ok(())
    }

    /// After a backup succeeded. A backup that was running when protection
    /// stopped leaves the item stopped.
    pub fn after_backup_succeeded(self) -> Self {
        match self {
            ProtectionState::ProtectionStopped | ProtectionState::SoftDeleted => self,
            _ => ProtectionState::Protected,
        }
    }

    /// After a backup failed.
    pub fn after_backup_failed(self) -> Self {
        match self {
            ProtectionState::ProtectionStopped | ProtectionState::SoftDeleted => self,
            _ => ProtectionState::ProtectionError,
        }
    }

    /// Stops protection. With `keep_data` the points stay; without it the
    /// caller deletes them (and then the item). Deleting the data of an item
    /// already stopped is allowed; stopping it again while keeping data is
    /// refused.
    pub fn on_disable(self, keep_data: bool) -> Result<Self, RuleError> {
        self.not_soft_deleted()?;
        if keep_data && self == ProtectionState::ProtectionStopped {
            return Err(RuleError::new(
                codes::PROTECTION_ALREADY_STOPPED,
                "Protection of this item is already stopped.",
                "Resume protection to back it up again, or delete its backup data.",
            ));
        }
        Ok(ProtectionState::ProtectionStopped)
    }

    /// Deletes the backup data of an item whose protection was just stopped (see
    /// [`ProtectionState::on_disable`]): it is soft-deleted.
    pub fn on_delete_data(self) -> Self {
        ProtectionState::SoftDeleted
    }

    /// Undeletes a soft-deleted item: protection stays stopped, its points are kept
    /// and retention does not touch them until protection is resumed.
    pub fn on_undelete(self) -> Result<Self, RuleError> {
        if self != ProtectionState::SoftDeleted {
            return Err(RuleError::new(
                codes::ITEM_NOT_SOFT_DELETED,
                format!("This item is not soft-deleted (it is {self:?})."),
                "Only an item whose backup data was deleted, within its soft-delete period, can be undeleted.",
            ));
        }
        Ok(ProtectionState::ProtectionStopped)
    }

    /// Resumes protection of a stopped item, under a policy again.
    pub fn on_resume(self, has_recovery_points: bool) -> Result<Self, RuleError> {
        if self != ProtectionState::ProtectionStopped {
            return Err(RuleError::new(
                codes::PROTECTION_NOT_STOPPED,
                format!("Protection of this item is not stopped (it is {self:?})."),
                "Only an item whose protection is stopped can be resumed.",
            ));
        }
        Ok(if has_recovery_points {
            ProtectionState::Protected
        } else {
            ProtectionState::InitialBackupPending
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ProtectionState::*;
    use super::*;

    #[test]
    fn lifecycle() {
        let s = ProtectionState::configured();
        assert_eq!(s, InitialBackupPending);
        assert!(s.can_back_up_now().is_ok());
        assert_eq!(s.after_backup_failed(), ProtectionError);
        assert_eq!(s.after_backup_succeeded(), Protected);
        assert_eq!(ProtectionError.after_backup_succeeded(), Protected);
        assert!(ProtectionError.can_back_up_now().is_ok());
        assert_eq!(Protected.after_backup_failed(), ProtectionError);
    }

    #[test]
    fn stopped_items_keep_their_points() {
        let s = Protected.on_disable(true).unwrap();
        assert_eq!(s, ProtectionStopped);
        assert!(!s.runs_scheduled_backups());
        assert!(!s.applies_retention());
        assert!(Protected.applies_retention());
        assert_eq!(s.can_back_up_now().unwrap_err().code, "ProtectionStopped");
        // A backup that was in flight does not resume protection.
        assert_eq!(s.after_backup_succeeded(), ProtectionStopped);
        assert_eq!(s.after_backup_failed(), ProtectionStopped);
        assert_eq!(
            s.on_disable(true).unwrap_err().code,
            "ProtectionAlreadyStopped"
        );
        assert_eq!(s.on_disable(false), Ok(ProtectionStopped));
        assert_eq!(s.on_resume(true), Ok(Protected));
        assert_eq!(s.on_resume(false), Ok(InitialBackupPending));
        assert_eq!(
            Protected.on_resume(true).unwrap_err().code,
            "ProtectionNotStopped"
        );
        assert_eq!(
            InitialBackupPending.on_disable(false),
            Ok(ProtectionStopped)
        );
    }

    #[test]
    fn soft_deleted_items_wait_for_undelete_or_purge() {
        let s = Protected.on_disable(false).unwrap().on_delete_data();
        assert_eq!(s, SoftDeleted);
        assert!(!s.runs_scheduled_backups());
        assert!(!s.applies_retention());
        assert_eq!(s.can_back_up_now().unwrap_err().code, "ItemSoftDeleted");
        assert_eq!(s.on_disable(false).unwrap_err().code, "ItemSoftDeleted");
        assert_eq!(s.on_disable(true).unwrap_err().code, "ItemSoftDeleted");
        assert_eq!(s.on_resume(true).unwrap_err().code, "ProtectionNotStopped");
        assert_eq!(s.after_backup_succeeded(), SoftDeleted);
        assert_eq!(s.after_backup_failed(), SoftDeleted);
        assert_eq!(s.on_undelete(), Ok(ProtectionStopped));
        assert!(!ProtectionStopped.applies_retention());
        assert_eq!(
            ProtectionStopped.on_undelete().unwrap_err().code,
            "ItemNotSoftDeleted"
        );
    }

    #[test]
    fn serde() {
        let json = serde_json::to_string(&InitialBackupPending).unwrap();
        assert_eq!(json, "\"InitialBackupPending\"");
        assert_eq!(
            serde_json::from_str::<ProtectionState>(&json).unwrap(),
            InitialBackupPending
        );
    }
}
