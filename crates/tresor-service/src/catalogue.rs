//! Finding the catalogue's rows by the names callers use, and reading their stored
//! forms back into the domain's types.

use tresor_api::ErrorCode;
use tresor_domain::{BackupPolicy, ProtectionState};
use tresor_metadata::{AgentRow, ItemRow, PointRow, PolicyRow, VaultRow, VmRow};

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

/// The item of `v` named by `item`: its id (stopped ones too); else the active item
/// of the VM its agent names so (a libvirt domain's UUID, a QEMU VM's name); else the
/// active item of the VM with that name (the one its agent reports now, for a renamed
/// libvirt domain, or the one it had when protected). Several items named so are
/// refused with `AmbiguousVmName`, listing them; NotFound when none is.
pub fn find_item(s: &Service, v: &VaultRow, item: &str) -> ServiceResult<ItemRow> {
    let items = s.store.list_items(&v.id, true)?;
    if let Some(i) = items.iter().find(|i| i.id == item) {
        return Ok(i.clone());
    }
    let active: Vec<ItemRow> = items.into_iter().filter(|i| i.active).collect();
    let by_id: Vec<&ItemRow> = active.iter().filter(|i| i.vm == item).collect();
    let candidates = if by_id.is_empty() {
        let inventory = s.store.list_inventory()?;
        let name_now = |i: &ItemRow| {
            inventory
                .iter()
                .find(|r| r.agent_id == i.agent_id && r.vm == i.vm)
                .and_then(reported_name)
                .map(str::to_string)
        };
        active
            .iter()
            .filter(|i| i.vm_name == item || name_now(i).as_deref() == Some(item))
            .collect()
    } else {
        by_id
    };
    match candidates.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ServiceError::not_found(format!(
            "protected item {} in vault {}",
            shown(item),
            v.name
        ))),
        many => {
            let host = |i: &ItemRow| s.store.get_agent(&i.agent_id).map(|a| a.host);
            let listed = many
                .iter()
                .map(|i| {
                    format!(
                        "{} (VM {}) on {}: item {}",
                        i.vm_name,
                        i.vm,
                        host(i).unwrap_or_else(|_| i.agent_id.clone()),
                        i.id
                    )
                })
                .collect::<Vec<_>>();
            Err(ambiguous_vm(item, &format!("vault {}", v.name), &listed))
        }
    }
}

/// The name a VM's last report gives it, if the report reads.
pub fn reported_name(row: &VmRow) -> Option<&str> {
    row.body.get("name").and_then(|n| n.as_str())
}

/// The VM `vm` of `agent` in `inventory`: the one its agent names so (a libvirt
/// domain's UUID, a QEMU VM's name); else the one whose reported name or UUID (in any
/// case) it is, when exactly one VM of the host has it (`AmbiguousVmName`, listing
/// them, when several do). NotFound when none does.
pub fn find_reported_vm<'a>(
    inventory: &'a [VmRow],
    agent: &AgentRow,
    vm: &str,
) -> ServiceResult<&'a VmRow> {
    let of_host = || inventory.iter().filter(|r| r.agent_id == agent.id);
    if let Some(r) = of_host().find(|r| r.vm == vm) {
        return Ok(r);
    }
    let uuid = |r: &VmRow| {
        r.body
            .get("uuid")
            .and_then(|u| u.as_str())
            .is_some_and(|u| u.eq_ignore_ascii_case(vm))
    };
    let named: Vec<&VmRow> = of_host()
        .filter(|r| reported_name(r) == Some(vm) || uuid(r))
        .collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => Err(ServiceError::not_found(format!(
            "VM {} on host {} (its agent has not reported it)",
            shown(vm),
            agent.host
        ))),
        many => {
            let listed = many
                .iter()
                .map(|r| format!("{} ({})", reported_name(r).unwrap_or("?"), r.vm))
                .collect::<Vec<_>>();
            Err(ambiguous_vm(vm, &format!("host {}", agent.host), &listed))
        }
    }
}

/// Most candidates an `AmbiguousVmName` refusal lists; the rest are counted.
const MAX_LISTED: usize = 10;

/// A name as a message quotes it: what a caller sent may be long.
fn shown(name: &str) -> String {
    let cut: String = name.chars().take(100).collect();
    if cut.len() < name.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

/// Refuses a VM name that names several VMs of `place` (a host, a vault), listing
/// them so the caller can name one by its id.
fn ambiguous_vm(name: &str, place: &str, candidates: &[String]) -> ServiceError {
    let more = candidates.len().saturating_sub(MAX_LISTED);
    ServiceError::new(
        ErrorCode::AmbiguousVmName,
        format!(
            "{} VMs of {place} are named {}: {}{}",
            candidates.len(),
            shown(name),
            candidates[..candidates.len() - more].join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        ),
        "name the VM by its id, the UUID in parentheses for a libvirt domain (or the item's id)",
    )
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

/// Whether the vault is immutable (Enabled or Locked): no operation may shorten a
/// recovery point's life. A value the catalogue cannot read counts as Disabled, as
/// the vault view shows it.
pub fn is_immutable(vault: &VaultRow) -> bool {
    parse_enum::<tresor_domain::Immutability>(&vault.immutability)
        .unwrap_or_default()
        .protects()
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
