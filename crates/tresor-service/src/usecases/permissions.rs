//! What a caller may do, for adapters that show only what it may use (the portal hides
//! the buttons, forms and links of what the signed-in principal lacks).
//!
//! The answer comes from the same check every use case makes
//! (`Principal::require`, the domain's `authorize`), so a page and the use case behind
//! its form can never disagree about a role; the use case still refuses on its own
//! (403 `MissingPermission`) whatever a page showed.

use tresor_domain::access::{Permission, Target};
use tresor_domain::{ResourceGroupName, VaultName};

use crate::auth::Principal;
use crate::state::Service;

/// The permissions a caller holds on one target (the installation, or a vault).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet {
    held: Vec<Permission>,
}

impl PermissionSet {
    /// Whether the caller may do `permission` there.
    pub fn allows(&self, permission: Permission) -> bool {
        self.held.contains(&permission)
    }

    /// Every permission held there, in the order of `Permission::ALL`.
    pub fn held(&self) -> &[Permission] {
        &self.held
    }
}

impl Service {
    /// The permissions `who` holds on a vault (named with its resource group), or on
    /// the installation as a whole when `vault` is `None`. A host agent holds none.
    ///
    /// Pure: no catalogue read. A vault that does not exist is answered as if it did;
    /// reading it is what refuses then.
    pub fn permissions(
        &self,
        who: &Principal,
        vault: Option<(&ResourceGroupName, &VaultName)>,
    ) -> PermissionSet {
        let target = match vault {
            Some((group, name)) => Target::vault(group.clone(), name.clone()),
            None => Target::Installation,
        };
        PermissionSet {
            held: Permission::ALL
                .iter()
                .copied()
                .filter(|p| who.may(*p, &target))
                .collect(),
        }
    }
}
