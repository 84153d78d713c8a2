//! Changing how an item is protected once it is: another policy, resuming a stopped
//! item, and deleting (soft) or undeleting one recovery point.
//!
//! Each keeps the vault's promises: in an immutable vault no change may make a
//! point expire sooner or delete one before it expires; in a vault bound to a
//! resource guard, a shorter retention and deleting a point need an approval; a
//! deleted point is only soft-deleted, kept for the vault's soft-delete period.

use std::sync::Arc;

use tresor_api::items::{ModifyProtection, ProtectedItem, RecoveryPoint};
use tresor_api::ErrorCode;
use tresor_domain::access::Permission;
use tresor_domain::{BackupPolicy, CriticalOperation, Immutability, ProtectionState};
use tresor_metadata::{ItemRow, PointRow, VaultRow};

use crate::audit::Target;
use crate::auth::Principal;
use crate::catalogue::{
    find_item, find_policy, find_vault, is_immutable, parse_state, vault_target,
};
use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;
use crate::usecases::guards::require_approvals;
use crate::usecases::items::{checked_exclusion, item_dto, reported_item_vm};
use crate::views::{self, enum_name};

/// The scheduled points of `items` with their expiry under `policy`, and whether any
/// would expire sooner than it does now. In an immutable vault that is refused
/// (`ImmutableVault`, naming the first such point). On-demand points keep the date
/// they were given.
pub(crate) fn expiry_under(
    s: &Service,
    v: &VaultRow,
    policy: &BackupPolicy,
    items: &[ItemRow],
) -> ServiceResult<(Vec<PointRow>, bool)> {
    let immutable = is_immutable(v);
    let mut changed = Vec::new();
    let mut shortens = false;
    for item in items {
        for mut p in s.store.list_points(&item.id)? {
            if p.on_demand {
                continue;
            }
            let expires = policy.retain_until(p.created)?;
            let sooner = p.expires.is_some_and(|now| expires < now);
            if immutable && sooner {
                return Err(Immutability::refusal(
                    &v.name,
                    &format!(
                        "this retention (recovery point {} would expire at {expires}, not {})",
                        p.id,
                        p.expires.map(|t| t.to_string()).unwrap_or_default()
                    ),
                )
                .into());
            }
            shortens |= sooner;
            p.expires = Some(expires);
            changed.push(p);
        }
    }
    Ok((changed, shortens))
}

/// What the audit log keeps of a change of protection: at most 100 characters of
/// the policy's name and of the disks' names.
fn modify_detail(req: &ModifyProtection) -> String {
    let cut = |s: &str| s.trim().chars().take(100).collect::<String>();
    let mut parts = Vec::new();
    if let Some(p) = &req.policy {
        parts.push(format!("policy {}", cut(p)));
    }
    if let Some(d) = &req.excluded_disks {
        parts.push(format!("excluded disks [{}]", cut(&d.join(", "))));
    }
    parts.join("; ")
}

/// The disks `requested` (well formed) checked against what the item's agent last
/// reported of its VM.
fn reported_exclusion(
    s: &Service,
    item: &ItemRow,
    requested: &[String],
) -> ServiceResult<Vec<String>> {
    if requested.is_empty() {
        return Ok(Vec::new());
    }
    let report = reported_item_vm(s, item)?.ok_or_else(|| {
        ServiceError::new(
            ErrorCode::AgentOffline,
            format!(
                "VM {} is not in its host agent's last report: its disks cannot be checked",
                item.vm_name
            ),
            "start the VM's host agent (tresor agent run) and try again after its next heartbeat",
        )
    })?;
    checked_exclusion(&report.info, requested)
}

/// For `permission` on one point: its vault (the caller holding the permission
/// there), its item (not soft-deleted as a whole) and the point `id` on the primary,
/// or NotFound.
fn live_point(
    s: &Service,
    caller: &Principal,
    permission: Permission,
    vault: &str,
    item: &str,
    id: &str,
) -> ServiceResult<(VaultRow, ItemRow, PointRow)> {
    let v = find_vault(s, vault)?;
    caller.require(permission, &vault_target(&v)?)?;
    let item = find_item(s, &v, item)?;
    parse_state(&item.state).not_soft_deleted()?;
    let p = item_point(s, &item, id)?;
    Ok((v, item, p))
}

/// The point `id` of `item` on the primary, or NotFound.
fn item_point(s: &Service, item: &ItemRow, id: &str) -> ServiceResult<PointRow> {
    let missing = || {
        ServiceError::not_found(format!(
            "recovery point {id} of {} in the primary region",
            item.vm_name
        ))
    };
    let p = s.store.get_point(id).map_err(|_| missing())?;
    if p.item_id != item.id || p.primary_deleted.is_some() {
        return Err(missing());
    }
    Ok(p)
}

impl Service {
    /// Protects an item under another policy, or resumes protection of a stopped
    /// item. Its scheduled points then expire as the new policy says; one that would
    /// expire sooner needs `ReduceRetention` approved on a guarded vault and is
    /// refused in an immutable one. Changes which disks its next backups leave out
    /// (checked against what its agent last reported, as at enabling protection).
    pub async fn modify_protection(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        item: String,
        req: ModifyProtection,
    ) -> ServiceResult<ProtectedItem> {
        let target = Target::in_vault(&vault, &item).detail(modify_detail(&req));
        let r: ServiceResult<ProtectedItem> = async {
            // A policy's name and the disk names by the domain's rules before they are
            // looked up (and logged).
            let policy_name = req
                .policy
                .as_deref()
                .map(|p| tresor_domain::PolicyName::parse(p.trim()))
                .transpose()?;
            let exclusion = req
                .excluded_disks
                .as_deref()
                .map(tresor_domain::parse_excluded_disks)
                .transpose()?;
            if policy_name.is_none() && exclusion.is_none() {
                return Err(ServiceError::new(
                    ErrorCode::InvalidRequest,
                    "the change names neither a policy nor the disks to exclude",
                    "give policy, excludedDisks, or both",
                ));
            }
            let caller = who.clone();
            self.blocking(move |s| {
                let v = find_vault(s, &vault)?;
                caller.require(Permission::ModifyProtection, &vault_target(&v)?)?;
                let mut item = find_item(s, &v, &item)?;
                let state = parse_state(&item.state);
                state.not_soft_deleted()?;
                if let Some(requested) = &exclusion {
                    item.excluded_disks = reported_exclusion(s, &item, requested)?;
                }
                let Some(policy_name) = policy_name else {
                    s.store.update_item(&item)?;
                    return item_dto(s, &item);
                };
                let (policy_row, policy) = find_policy(s, &v, policy_name.as_str())?;
                let points = s.store.list_points(&item.id)?;
                let next = if state == ProtectionState::ProtectionStopped {
                    state.on_resume(!points.is_empty())?
                } else {
                    state
                };
                let (changed, shortens) =
                    expiry_under(s, &v, &policy, std::slice::from_ref(&item))?;
                if shortens {
                    require_approvals(s, &caller, &v, &[CriticalOperation::ReduceRetention])?;
                }
                if next != state {
                    // The schedule starts again now: the windows while it was stopped
                    // were not missed.
                    item.last_window = Some(s.now());
                }
                item.policy_id = Some(policy_row.id.clone());
                item.state = enum_name(next);
                s.store.update_item(&item)?;
                for p in &changed {
                    s.store.update_point(p)?;
                }
                item_dto(s, &item)
            })
            .await
        }
        .await;
        self.audited(who, "item.modify", target, r).await
    }

    /// Deletes one recovery point: it is soft-deleted, kept (and undeletable) for
    /// the vault's soft-delete period, then purged. Refused in an immutable vault
    /// before the point expires; needs `DeleteRecoveryPoint` approved on a guarded
    /// vault.
    pub async fn delete_recovery_point(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        item: String,
        point: String,
    ) -> ServiceResult<RecoveryPoint> {
        let target = Target::in_vault(&vault, &item).detail(format!("recovery point {point}"));
        let r: ServiceResult<RecoveryPoint> = async {
            let caller = who.clone();
            self.blocking(move |s| {
                let (v, item, mut p) =
                    live_point(s, &caller, Permission::DeleteRecoveryPoint, &vault, &item, &point)?;
                if p.soft_deleted.is_some() {
                    return Err(ServiceError::new(
                        ErrorCode::RecoveryPointSoftDeleted,
                        format!(
                            "recovery point {point} of {} is already deleted (kept until {})",
                            item.vm_name,
                            p.soft_delete_until.map(|t| t.to_string()).unwrap_or_default()
                        ),
                        "undelete it (tresor recoverypoint undelete) if it was deleted by mistake",
                    ));
                }
                let now = s.now();
                if is_immutable(&v) && p.expires.is_none_or(|t| t > now) {
                    return Err(Immutability::refusal(
                        &v.name,
                        &format!(
                            "deleting recovery point {point} (it expires at {})",
                            p.expires.map(|t| t.to_string()).unwrap_or_else(|| "no date".into())
                        ),
                    )
                    .into());
                }
                require_approvals(s, &caller, &v, &[CriticalOperation::DeleteRecoveryPoint])?;
                p.soft_deleted = Some(now);
                p.soft_delete_until = Some(crate::soft_delete::delete_at(&v, now));
                s.store.update_point(&p)?;
                tracing::info!(vault = %v.name, item = %item.vm_name, point = %p.id, "recovery point soft-deleted");
                Ok(views::point(&p))
            })
            .await
        }
        .await;
        self.audited(who, "point.delete", target, r).await
    }

    /// Brings back a soft-deleted recovery point of an item that is not itself
    /// soft-deleted (that is undeleted as a whole: `undelete_item`).
    pub async fn undelete_recovery_point(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        item: String,
        point: String,
    ) -> ServiceResult<RecoveryPoint> {
        let target = Target::in_vault(&vault, &item).detail(format!("recovery point {point}"));
        let r: ServiceResult<RecoveryPoint> = async {
            let caller = who.clone();
            self.blocking(move |s| {
                let (_, item, mut p) =
                    live_point(s, &caller, Permission::UndeleteBackupData, &vault, &item, &point)?;
                if p.soft_deleted.is_none() {
                    return Err(ServiceError::new(
                        ErrorCode::RecoveryPointNotSoftDeleted,
                        format!("recovery point {point} of {} is not deleted", item.vm_name),
                        "only a deleted recovery point, within its soft-delete period, can be undeleted",
                    ));
                }
                p.soft_deleted = None;
                p.soft_delete_until = None;
                s.store.update_point(&p)?;
                Ok(views::point(&p))
            })
            .await
        }
        .await;
        self.audited(who, "point.undelete", target, r).await
    }
}
