//! Vaults and their storage redundancy.
//!
//! As in Azure, a vault's storage redundancy (`GeoRedundant` by default, or
//! `LocallyRedundant`) can be changed only until the first backup is stored
//! in it: from then on it is locked, and the way to another redundancy is a
//! new vault. The domain records the choice and its lock; what each setting
//! means for the bytes is the storage's business.
//!
//! Soft delete is always on: deleted backup data is kept for the vault's
//! soft-delete period (14 days by default, 14 to 180) before it is purged, and
//! can be undeleted until then. A vault can make it "always on" for good:
//! from then on no one can switch that off again.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{codes, RuleError};
use crate::names::{Location, ResourceGroupName, VaultName};

/// How a vault keeps copies of its data (Azure's `storageModelType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
pub enum StorageRedundancy {
    /// Copies in a second location as well (Azure's default).
    #[default]
    GeoRedundant,
    /// Copies in one location only.
    LocallyRedundant,
}

/// A vault: the container of backup policies, protected items, jobs and
/// recovery points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vault {
    pub name: VaultName,
    pub resource_group: ResourceGroupName,
    pub location: Location,
    #[serde(default)]
    pub redundancy: StorageRedundancy,
    /// Set once the first backup is stored; the redundancy cannot change after.
    #[serde(default)]
    pub redundancy_locked: bool,
}

impl Vault {
    /// A new vault with the default redundancy, not yet locked.
    pub fn new(name: VaultName, resource_group: ResourceGroupName, location: Location) -> Self {
        Vault {
            name,
            resource_group,
            location,
            redundancy: StorageRedundancy::default(),
            redundancy_locked: false,
        }
    }

    /// Changes the storage redundancy, which is allowed only while the vault
    /// holds no backup. `has_stored_backup` is the store's word on that, for
    /// a vault whose lock was not recorded. Setting the current value is
    /// always allowed.
    pub fn set_redundancy(
        &mut self,
        redundancy: StorageRedundancy,
        has_stored_backup: bool,
    ) -> Result<(), RuleError> {
        if redundancy == self.redundancy {
            return Ok(());
        }
        if self.redundancy_locked || has_stored_backup {
            return Err(RuleError::new(
                codes::REDUNDANCY_LOCKED,
                format!(
                    "The storage redundancy of vault {} cannot change from {:?} to {:?}: \
                     it already holds backups.",
                    self.name, self.redundancy, redundancy
                ),
                "Create a new vault with the redundancy you want and protect the items there.",
            ));
        }
        self.redundancy = redundancy;
        Ok(())
    }

    /// Locks the redundancy; called when the first backup is stored.
    pub fn lock_redundancy(&mut self) {
        self.redundancy_locked = true;
    }
}

/// A vault's soft-delete settings (Azure's "soft delete" and "always-on soft delete").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SoftDelete {
    /// Days deleted backup data is kept before it is purged.
    #[schema(minimum = 14, maximum = 180)]
    pub days: u32,
    /// Once set, it cannot be unset.
    pub always_on: bool,
}

impl Default for SoftDelete {
    fn default() -> Self {
        SoftDelete {
            days: SoftDelete::DEFAULT_DAYS,
            always_on: false,
        }
    }
}

impl SoftDelete {
    pub const DEFAULT_DAYS: u32 = 14;
    pub const MIN_DAYS: u32 = 14;
    pub const MAX_DAYS: u32 = 180;

    /// Sets the period, within 14 to 180 days.
    pub fn set_days(&mut self, days: u32) -> Result<(), RuleError> {
        if !(Self::MIN_DAYS..=Self::MAX_DAYS).contains(&days) {
            return Err(RuleError::new(
                codes::SOFT_DELETE_DAYS_OUT_OF_RANGE,
                format!(
                    "Deleted backup data is kept for {} to {} days, not {days}.",
                    Self::MIN_DAYS,
                    Self::MAX_DAYS
                ),
                "Give a soft-delete period of 14 to 180 days.",
            ));
        }
        self.days = days;
        Ok(())
    }

    /// Makes soft delete always-on (for good), or refuses to undo it.
    pub fn set_always_on(&mut self, always_on: bool) -> Result<(), RuleError> {
        if self.always_on && !always_on {
            return Err(RuleError::new(
                codes::SOFT_DELETE_ALWAYS_ON,
                "Soft delete of this vault is always-on, and always-on cannot be switched off, by anyone.",
                "Leave it on; deleted backup data is purged when its soft-delete period ends.",
            ));
        }
        self.always_on = always_on;
        Ok(())
    }
}

/// A vault's immutability (Azure's immutable vaults): while it is not `Disabled`, no
/// operation may shorten the life of a recovery point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
pub enum Immutability {
    #[default]
    Disabled,
    /// Immutable, and can still be disabled.
    Enabled,
    /// Immutable for good: it cannot be disabled or lowered, by anyone.
    Locked,
}

impl Immutability {
    /// Whether points' lives are protected.
    pub fn protects(self) -> bool {
        self != Immutability::Disabled
    }

    /// The state after asking for `next`: anything from Disabled or Enabled; from
    /// Locked, only Locked.
    pub fn change_to(self, next: Immutability) -> Result<Immutability, RuleError> {
        if self == Immutability::Locked && next != Immutability::Locked {
            return Err(RuleError::new(
                codes::IMMUTABILITY_LOCKED,
                format!(
                    "The vault's immutability is locked; it cannot become {next:?}, by anyone."
                ),
                "Leave it locked; recovery points expire as their policy said when they were made.",
            ));
        }
        Ok(next)
    }

    /// The refusal of an operation that would shorten a point's life in an immutable
    /// vault: `what` says which.
    pub fn refusal(vault: &str, what: &str) -> RuleError {
        RuleError::new(
            codes::IMMUTABLE_VAULT,
            format!("Vault {vault} is immutable: {what} would shorten the life of recovery points."),
            "Recovery points in an immutable vault live until they expire; wait for that, or (unless it is locked) disable the vault's immutability first.",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutability_locks_for_good() {
        use Immutability::*;
        assert_eq!(Disabled.change_to(Enabled), Ok(Enabled));
        assert_eq!(Enabled.change_to(Disabled), Ok(Disabled));
        assert_eq!(Enabled.change_to(Locked), Ok(Locked));
        assert_eq!(Locked.change_to(Locked), Ok(Locked));
        for lower in [Disabled, Enabled] {
            assert_eq!(
                Locked.change_to(lower).unwrap_err().code,
                codes::IMMUTABILITY_LOCKED
            );
        }
        assert!(!Disabled.protects() && Enabled.protects() && Locked.protects());
        assert_eq!(Immutability::refusal("v", "x").code, codes::IMMUTABLE_VAULT);
    }

    #[test]
    fn soft_delete_period_and_always_on() {
        let mut s = SoftDelete::default();
        assert_eq!(s.days, 14);
        assert!(!s.always_on);
        for bad in [0, 13, 181, u32::MAX] {
            assert_eq!(
                s.set_days(bad).unwrap_err().code,
                "SoftDeleteDaysOutOfRange"
            );
        }
        s.set_days(180).unwrap();
        s.set_days(14).unwrap();
        s.set_always_on(false).unwrap();
        s.set_always_on(true).unwrap();
        s.set_always_on(true).unwrap();
        assert_eq!(
            s.set_always_on(false).unwrap_err().code,
            "SoftDeleteAlwaysOn"
        );
        assert!(s.always_on);
    }

    fn vault() -> Vault {
        Vault::new(
            VaultName::parse("vault-1").unwrap(),
            ResourceGroupName::parse("rg").unwrap(),
            Location::parse("local").unwrap(),
        )
    }

    #[test]
    fn redundancy_changes_until_first_backup() {
        let mut v = vault();
        assert_eq!(v.redundancy, StorageRedundancy::GeoRedundant);
        v.set_redundancy(StorageRedundancy::LocallyRedundant, false)
            .unwrap();
        assert_eq!(v.redundancy, StorageRedundancy::LocallyRedundant);

        let e = v
            .set_redundancy(StorageRedundancy::GeoRedundant, true)
            .unwrap_err();
        assert_eq!(e.code, "RedundancyLocked");
        assert!(e.recommendation.contains("new vault"));

        v.lock_redundancy();
        let e = v
            .set_redundancy(StorageRedundancy::GeoRedundant, false)
            .unwrap_err();
        assert_eq!(e.code, "RedundancyLocked");
        assert_eq!(v.redundancy, StorageRedundancy::LocallyRedundant);
        // The same value is not a change.
        v.set_redundancy(StorageRedundancy::LocallyRedundant, true)
            .unwrap();
    }

    #[test]
    fn serde() {
        let mut v = vault();
        v.lock_redundancy();
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "vault-1", "resourceGroup": "rg", "location": "local",
                "redundancy": "GeoRedundant", "redundancyLocked": true
            })
        );
        assert_eq!(serde_json::from_value::<Vault>(json).unwrap(), v);
        let v: Vault =
            serde_json::from_str(r#"{"name":"v2","resourceGroup":"rg","location":"local"}"#)
                .unwrap();
        assert_eq!(v.redundancy, StorageRedundancy::GeoRedundant);
    }
}
