//! Finding the catalogue's rows by the names callers use, and reading their stored
//! forms back into the domain's types.

use tresor_domain::{BackupPolicy, ProtectionState};
use tresor_metadata::{ItemRow, PointRow, PolicyRow, VaultRow};

use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;
use crate::views::parse_enum;

/// The vault named `name`, or NotFound.
pub fn find_vault(state: &Service, name: &str) -> ServiceResult<VaultRow> {
    state
        .store
        .find_vault_by_name(name)?
        .ok_or_else(|| ServiceError::not_found(format!("vault {name}")))
}

/// The item of `v` with this id, VM name or agent VM name (stopped ones by id), or NotFound.
pub fn find_item(s: &Service, v: &VaultRow, item: &str) -> ServiceResult<ItemRow> {
    let items = s.store.list_items(&v.id, true)?;
    items
        .into_iter()
        .filter(|i| i.active || i.id == item)
        .find(|i| i.id == item || i.vm_name == item || i.vm == item)
        .ok_or_else(|| {
            ServiceError::not_found(format!("protected item {item} in vault {}", v.name))
        })
}

/// The policy named `name` in `vault`, or NotFound.
pub fn find_policy(
    state: &Service,
    vault: &VaultRow,
    name: &str,
) -> ServiceResult<(PolicyRow, BackupPolicy)> {
    let row = state
        .store
        .find_policy(&vault.id, name)?
        .ok_or_else(|| ServiceError::not_found(format!("policy {name} in vault {}", vault.name)))?;
    let policy = parse_policy(&row)?;
    Ok((row, policy))
}

/// A policy row's stored body as the domain's policy.
pub fn parse_policy(row: &PolicyRow) -> ServiceResult<BackupPolicy> {
    serde_json::from_value(row.body.clone()).map_err(ServiceError::internal)
}

/// An item's state as the catalogue stores it; an unknown name is an error state.
pub fn parse_state(s: &str) -> ProtectionState {
    parse_enum(s).unwrap_or(ProtectionState::ProtectionError)
}

/// Whether the vault keeps a copy in its paired location.
pub fn is_geo(vault: &VaultRow) -> bool {
    vault.redundancy == "GeoRedundant"
}

/// Deletes points from the primary's catalogue view: a point already on the
/// secondary stays there (soft-deleted) for the window; any other goes at once.
pub fn delete_points(state: &Service, vault: &VaultRow, points: &[PointRow]) -> ServiceResult<()> {
    let now = state.now();
    for p in points {
        if is_geo(vault) && p.replicated.is_some() {
            let mut p = p.clone();
            p.primary_deleted = Some(now);
            state.store.update_point(&p)?;
        } else {
            state.store.delete_point(&p.id)?;
        }
    }
    Ok(())
}

/// What an access check of the vault `v` acts on (`tresor_domain::access`).
pub fn vault_target(v: &VaultRow) -> ServiceResult<tresor_domain::access::Target> {
    Ok(tresor_domain::access::Target::vault(
        tresor_domain::ResourceGroupName::parse(&v.resource_group)?,
        tresor_domain::VaultName::parse(&v.name)?,
    ))
}
