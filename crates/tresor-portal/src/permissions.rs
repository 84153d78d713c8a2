//! What the signed-in operator may do, so that pages show only the buttons, forms and
//! links it may use. The service answers (`Service::permissions`, the very check its
//! use cases make); the portal compares no role names. A form posted anyway is still
//! refused by its use case (403 `MissingPermission`), and shown as any error is.

use tresor_api::vaults::Vault;
use tresor_domain::{ResourceGroupName, VaultName};
use tresor_service::Service;

pub use tresor_domain::access::Permission;
pub use tresor_service::usecases::permissions::PermissionSet;

use crate::session::Operator;

/// What the operator may do on the vault `name` of resource group `group` (as a
/// service read names it). Names that do not parse (no vault the service made has
/// them) get nothing shown.
pub fn on_vault_named(state: &Service, op: &Operator, group: &str, name: &str) -> PermissionSet {
    match (ResourceGroupName::parse(group), VaultName::parse(name)) {
        (Ok(group), Ok(name)) => state.permissions(&op.principal, Some((&group, &name))),
        _ => PermissionSet::default(),
    }
}

/// What the operator may do on vault `v`.
pub fn on_vault(state: &Service, op: &Operator, v: &Vault) -> PermissionSet {
    on_vault_named(state, op, &v.resource_group, &v.name)
}
