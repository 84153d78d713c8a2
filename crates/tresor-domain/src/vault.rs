//! Vaults and their storage redundancy.
//!
//! As in Azure, a vault's storage redundancy (`GeoRedundant` by default, or
//! `LocallyRedundant`) can be changed only until the first backup is stored
//! in it: from then on it is locked, and the way to another redundancy is a
//! new vault. The domain records the choice and its lock; what each setting
//! means for the bytes is the storage's business.

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

#[cfg(test)]
mod tests {
    use super::*;

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
