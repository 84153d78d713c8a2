//! Protectable VMs, protected items, "back up now", disabling protection, recovery
//! points and restores.

use std::sync::Arc;
use tresor_domain::access::Permission;

use tresor_api::items::{
    BackupNow, Disable, EnableProtection, ProtectableVm, ProtectedItem, RecoveryPoint, RegionQuery,
    RestoreRequest,
};
use tresor_api::jobs::{ConfigureBackupResult, DisableBackupResult, Job, JobParams};
use tresor_api::ErrorCode;
use tresor_domain::{
    default_retain_until, validate_retain_until, JobOperation, JobStatus, ProtectionState,
};
use tresor_metadata::{AgentRow, ItemRow, VaultRow};

use crate::audit::Target;
use crate::auth::{new_id, Principal};
use crate::catalogue::{find_item, find_policy, find_reported_vm, find_vault, parse_state};
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::{self, BACKUP_TASKS};
use crate::state::Service;
use crate::usecases::agents::{online, vm_report};
use crate::views::{self, enum_name};

/// Disk formats an agent can back up.
const SUPPORTED_FORMATS: [&str; 4] = ["qcow2", "raw", "file", "host_device"];

pub(crate) fn item_dto(s: &Service, i: &ItemRow) -> ServiceResult<ProtectedItem> {
    let host = s
        .store
        .get_agent(&i.agent_id)
        .map(|a| a.host)
        .unwrap_or_default();
    let policy = i
        .policy_id
        .as_deref()
        .and_then(|p| s.store.get_policy(p).ok())
        .map(|p| p.name);
    Ok(views::item(i, &host, policy))
}

/// The item's VM as its host agent last reported it, if it did.
pub(crate) fn reported_item_vm(
    s: &Service,
    item: &ItemRow,
) -> ServiceResult<Option<tresor_api::inventory::VmReport>> {
    Ok(s.store
        .list_inventory()?
        .iter()
        .find(|r| r.agent_id == item.agent_id && r.vm == item.vm)
        .and_then(vm_report))
}

/// The disks `requested` to leave out of the points of the VM `info` describes, by
/// the domain's rules: each one it reported, one left at least, and only for a VM
/// whose provider can leave a disk out (libvirt's).
pub(crate) fn checked_exclusion(
    info: &tresor_api::inventory::VmInfo,
    requested: &[String],
) -> ServiceResult<Vec<String>> {
    let disks: Vec<&str> = info.disks.iter().map(|d| d.name.as_str()).collect();
    let libvirt = info.provider == tresor_api::inventory::VmProviderKind::Libvirt;
    Ok(tresor_domain::excluded_disks(requested, &disks, libvirt)?)
}

fn find_agent(s: &Service, host: &str) -> ServiceResult<AgentRow> {
    let agents = s.store.list_agents()?;
    let matching: Vec<_> = agents
        .into_iter()
        .filter(|a| a.id == host || a.host == host)
        .collect();
    match matching.len() {
        0 => Err(ServiceError::not_found(format!("a host agent for {host}"))),
        1 => Ok(matching.into_iter().next().expect("one")),
        _ => Err(ServiceError::new(
            ErrorCode::AmbiguousHost,
            format!("several agents report host name {host}"),
            "name the host by its agent id",
        )),
    }
}

/// Cross-region restore must be enabled on the vault to read from the secondary.
fn check_crr(v: &VaultRow) -> ServiceResult<()> {
    if !v.cross_region_restore {
        return Err(ServiceError::new(
            ErrorCode::CrossRegionRestoreNotEnabled,
            format!(
                "cross-region restore is not enabled on vault {}{}",
                v.name,
                if v.redundancy == "GeoRedundant" {
                    ""
                } else {
                    " (and it is LocallyRedundant: it has no secondary copy)"
                }
            ),
            "enable it: tresor vault update NAME --cross-region-restore (GeoRedundant vaults only)",
        ));
    }
    Ok(())
}

/// An item's points in one region, newest first. The secondary's are those that
/// reached it, including points deleted from the primary within the soft-delete window.
fn region_points(
    s: &Service,
    v: &VaultRow,
    item: &ItemRow,
    secondary: bool,
) -> ServiceResult<Vec<tresor_metadata::PointRow>> {
    let mut points = if secondary {
        check_crr(v)?;
        s.store
            .list_vault_points_with_deleted(&v.id)?
            .into_iter()
            .filter(|p| p.item_id == item.id && p.replicated.is_some())
            .collect()
    } else {
        s.store.list_points(&item.id)?
    };
    points.reverse();
    Ok(points)
}

/// The point `id` of `item` in one region.
fn region_point(
    s: &Service,
    v: &VaultRow,
    item: &ItemRow,
    id: &str,
    secondary: bool,
) -> ServiceResult<tresor_metadata::PointRow> {
    let missing = || {
        ServiceError::not_found(format!(
            "recovery point {id} of {} in the {} region",
            item.vm_name,
            if secondary { "secondary" } else { "primary" }
        ))
    };
    let p = s.store.get_point(id).map_err(|_| missing())?;
    if p.item_id != item.id {
        return Err(missing());
    }
    if secondary {
        check_crr(v)?;
        if p.replicated.is_none() {
            return Err(ServiceError::new(
                ErrorCode::RecoveryPointNotInSecondaryRegion,
                format!(
                    "recovery point {id} of {} has not reached the secondary region yet",
                    item.vm_name
                ),
                "restore it from the primary region, or wait for replication (tresor vault show)",
            ));
        }
    } else if p.primary_deleted.is_some() {
        return Err(ServiceError::not_found(format!(
            "recovery point {id} of {} was deleted from the primary region; it is still in the secondary region (--use-secondary-region)",
            item.vm_name
        )));
    }
    Ok(p)
}

impl Service {
    pub async fn protectable_vms(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
    ) -> ServiceResult<Vec<ProtectableVm>> {
        let caller = who.clone();
        self.blocking(move |s| {
            let v = find_vault(s, &vault)?;
            caller.require(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?)?;
            let agents = s.store.list_agents()?;
            let now = s.now();
            let mut out = Vec::new();
            for vm in s.store.list_inventory()? {
                let Some(agent) = agents.iter().find(|a| a.id == vm.agent_id) else {
                    continue;
                };
                // Only VMs in the vault's location, not protected by any vault.
                if agent.location != v.location
                    || s.store.find_active_item(&agent.id, &vm.vm)?.is_some()
                {
                    continue;
                }
                let Some(info) = vm_report(&vm) else {
                    continue;
                };
                out.push(ProtectableVm {
                    host: agent.host.clone(),
                    agent_id: agent.id.clone(),
                    name: info.info.name.clone(),
                    vm: vm.vm,
                    location: agent.location.clone(),
                    agent_online: online(agent, now),
                    info,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Validates the VM and attaches the policy. Creates no recovery point: the item waits
    /// for its first backup ("initial backup pending").
    pub async fn enable_protection(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        req: EnableProtection,
    ) -> ServiceResult<ProtectedItem> {
        let target = Target::in_vault(&vault, &req.vm)
            .detail(serde_json::to_string(&req).unwrap_or_default());
        let r: ServiceResult<ProtectedItem> = async {
            let caller = who.clone();
            self
                .blocking(move |s| {
                    let v = find_vault(s, &vault)?;
 caller.require(Permission::EnableProtection, &crate::catalogue::vault_target(&v)?)?;
                    let policy_name = req.policy.as_deref().unwrap_or("DefaultPolicy");
                    let (policy, _) = find_policy(s, &v, policy_name)?;
                    let agent = find_agent(s, &req.host)?;
                    let inventory = s.store.list_inventory()?;
                    // By its agent's id for it, or by a name that is the host's one VM's.
                    let vm = find_reported_vm(&inventory, &agent, &req.vm)?;
                    let req = EnableProtection {
                        vm: vm.vm.clone(),
                        host: req.host.clone(),
                        policy: req.policy.clone(),
                        excluded_disks: req.excluded_disks.clone(),
                    };
                    if agent.location != v.location {
                        return Err(ServiceError::new(
                            ErrorCode::LocationMismatch,
                            format!("VM {} is in location {}, vault {} in {}", req.vm, agent.location, v.name, v.location),
                            "protect the VM with a vault in its own location",
                        ));
                    }
                    if let Some(other) = s.store.find_active_item(&agent.id, &req.vm)? {
                        let other_vault = s.store.get_vault(&other.vault_id).map(|x| x.name).unwrap_or_default();
                        if let (ProtectionState::SoftDeleted, Some(until)) = (parse_state(&other.state), other.delete_at) {
                            return Err(ServiceError::new(
                                ErrorCode::AlreadyProtected,
                                format!("VM {}'s backup data in vault {other_vault} is soft-deleted, kept until {until}", req.vm),
                                "undelete it there (tresor protection undelete) and resume its protection, or wait until that date",
                            ));
                        }
                        return Err(ServiceError::new(
                            ErrorCode::AlreadyProtected,
                            format!("VM {} is already protected by vault {other_vault}", req.vm),
                            "stop its protection there first (a VM is protected by one vault at a time)",
                        ));
                    }
                    let now = s.now();
                    if !online(&agent, now) {
                        return Err(ServiceError::new(
                            ErrorCode::AgentOffline,
                            format!("the agent on host {} has not reported for more than 2 minutes", agent.host),
                            "start the agent on that host (tresor agent run) and check its connection (tresor agent check)",
                        ));
                    }
                    let report = vm_report(vm).ok_or_else(|| {
                        ServiceError::not_found(format!("a readable report of VM {} on host {} (the agent's last report cannot be read; wait for its next heartbeat)", req.vm, agent.host))
                    })?;
                    let disks = &report.info.disks;
                    if disks.is_empty() {
                        return Err(ServiceError::new(
                            ErrorCode::NoDisks,
                            format!("VM {} has no disk to back up", req.vm),
                            "attach a disk to the VM",
                        ));
                    }
                    let excluded = checked_exclusion(&report.info, &req.excluded_disks)?;
                    // An excluded disk is never read: its format does not matter.
                    for d in disks.iter().filter(|d| !excluded.contains(&d.name)) {
                        let format = d.format.as_str();
                        if !SUPPORTED_FORMATS.contains(&format) {
                            return Err(ServiceError::new(
                                ErrorCode::UnsupportedDiskFormat,
                                format!(
                                    "disk {} of VM {} is a {format} image; Tresor backs up qcow2 and raw disks",
                                    d.name,
                                    req.vm
                                ),
                                "convert the disk with qemu-img convert -O qcow2",
                            ));
                        }
                    }
                    let item = ItemRow {
                        id: new_id(),
                        vault_id: v.id.clone(),
                        agent_id: agent.id.clone(),
                        vm: req.vm.clone(),
                        vm_name: report.info.name.clone(),
                        policy_id: Some(policy.id.clone()),
                        state: enum_name(ProtectionState::configured()),
                        // The schedule starts now: no window before protection counts as missed.
                        last_window: Some(now),
                        last_backup: None,
                        created: now,
                        active: true,
                        soft_deleted: None,
                        delete_at: None,
                        excluded_disks: excluded,
                    };
                    s.store.insert_item(&item).map_err(|e| match e {
                        tresor_metadata::StoreError::Conflict { .. } => ServiceError::new(
                            ErrorCode::AlreadyProtected,
                            format!("VM {} is already protected", req.vm),
                            "stop its protection there first",
                        ),
                        e => e.into(),
                    })?;
                    let mut job = jobs::new_job(s, &v.id, Some(&item), JobOperation::ConfigureBackup, None, JobParams { policy: Some(policy_name.to_string()), ..JobParams::default() }, &[])?;
                    jobs::finish(s, &mut job, JobStatus::Completed, None, Vec::new(), views::result(&ConfigureBackupResult { item: item.id.clone() })?)?;
                    item_dto(s, &item)
                })
                .await
        }
        .await;
        self.audited(who, "item.enable", target, r).await
    }

    pub async fn items(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
    ) -> ServiceResult<Vec<ProtectedItem>> {
        let caller = who.clone();
        self.blocking(move |s| {
            let v = find_vault(s, &vault)?;
            caller.require(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?)?;
            let items = s.store.list_items(&v.id, false)?;
            items
                .iter()
                .map(|i| item_dto(s, i))
                .collect::<ServiceResult<Vec<_>>>()
        })
        .await
    }

    pub async fn item(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        item: String,
    ) -> ServiceResult<ProtectedItem> {
        let caller = who.clone();
        self.blocking(move |s| {
            let v = find_vault(s, &vault)?;
            caller.require(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?)?;
            let item = find_item(s, &v, &item)?;
            let mut dto = item_dto(s, &item)?;
            dto.replication = Some(crate::replication::status(s, &v, Some(&item.id), s.now())?);
            Ok(dto)
        })
        .await
    }

    pub async fn backup_now(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        item: String,
        req: BackupNow,
    ) -> ServiceResult<Job> {
        let target =
            Target::in_vault(&vault, &item).detail(serde_json::to_string(&req).unwrap_or_default());
        let r: ServiceResult<Job> = async {
            let caller = who.clone();
            let retain = req.retain_until;
            self.blocking(move |s| {
                let v = find_vault(s, &vault)?;
                caller.require(Permission::BackupNow, &crate::catalogue::vault_target(&v)?)?;
                let item = find_item(s, &v, &item)?;
                parse_state(&item.state).can_back_up_now()?;
                let now = s.now();
                let until = match retain {
                    Some(t) => validate_retain_until(now, t)?,
                    None => default_retain_until(now),
                };
                let job = jobs::new_job(
                    s,
                    &v.id,
                    Some(&item),
                    JobOperation::Backup,
                    Some(&item.agent_id),
                    JobParams {
                        on_demand: true,
                        retain_until: Some(until),
                        ..JobParams::default()
                    },
                    &BACKUP_TASKS,
                )?;
                views::job(&job, now)
            })
            .await
        }
        .await;
        let target = target.with_job(&r);
        self.audited(who, "item.backup", target, r).await
    }

    pub async fn disable_protection(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        item: String,
        req: Disable,
    ) -> ServiceResult<Job> {
        let target =
            Target::in_vault(&vault, &item).detail(serde_json::to_string(&req).unwrap_or_default());
        let r: ServiceResult<Job> = async {
            let needed = if req.delete_backup_data {
                Permission::DeleteBackupData
            } else {
                Permission::StopProtection
            };
            let caller = who.clone();
            let delete = req.delete_backup_data;
            self.blocking(move |s| {
                let v = find_vault(s, &vault)?;
                caller.require(needed, &crate::catalogue::vault_target(&v)?)?;
                let mut item = find_item(s, &v, &item)?;
                let running = s.store.list_jobs(&tresor_metadata::JobFilter {
                    item_id: Some(item.id.clone()),
                    status: Some("InProgress".into()),
                    ..Default::default()
                })?;
                if !running.is_empty() {
                    return Err(ServiceError::new(
                        ErrorCode::JobInProgress,
                        format!(
                            "a {} job of {} is running",
                            running[0].operation, item.vm_name
                        ),
                        "wait for it to end, or cancel it (tresor job stop)",
                    ));
                }
                // Soft-deleted data is purged at the end of its period, perhaps before
                // its points expire: an immutable vault keeps them until they do.
                if delete && crate::catalogue::is_immutable(&v) {
                    let now = s.now();
                    if let Some(last) = s
                        .store
                        .list_points(&item.id)?
                        .iter()
                        .filter_map(|p| p.expires)
                        .filter(|t| *t > now)
                        .max()
                    {
                        return Err(tresor_domain::Immutability::refusal(
                            &v.name,
                            &format!(
                                "deleting the backup data of {} (its last point expires at {last})",
                                item.vm_name
                            ),
                        )
                        .into());
                    }
                }
                let next = parse_state(&item.state).on_disable(!delete)?;
                if delete {
                    crate::usecases::guards::require_approvals(
                        s,
                        &caller,
                        &v,
                        &[tresor_domain::CriticalOperation::DeleteBackupData],
                    )?;
                }
                let op = if delete {
                    JobOperation::DeleteBackupData
                } else {
                    JobOperation::DisableBackup
                };
                let mut job = jobs::new_job(
                    s,
                    &v.id,
                    Some(&item),
                    op,
                    None,
                    JobParams {
                        delete_backup_data: Some(delete),
                        ..JobParams::default()
                    },
                    &[],
                )?;
                let mut deleted = 0;
                item.state = enum_name(next);
                if delete {
                    // Kept, soft-deleted, until the vault's period ends (soft_delete.rs).
                    deleted = crate::soft_delete::soft_delete_item(s, &v, &mut item)?;
                } else {
                    s.store.update_item(&item)?;
                }
                jobs::finish(
                    s,
                    &mut job,
                    JobStatus::Completed,
                    None,
                    Vec::new(),
                    views::result(&DisableBackupResult {
                        deleted_recovery_points: deleted,
                    })?,
                )?;
                views::job(&job, s.now())
            })
            .await
        }
        .await;
        let target = target.with_job(&r);
        self.audited(who, "item.disable", target, r).await
    }

    /// Undeletes a soft-deleted item: it comes back `ProtectionStopped` with its
    /// recovery points (retention resumes only when protection is resumed).
    pub async fn undelete_item(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        item: String,
    ) -> ServiceResult<ProtectedItem> {
        let target = Target::in_vault(&vault, &item);
        let r: ServiceResult<ProtectedItem> = async {
            let caller = who.clone();
            self.blocking(move |s| {
                let v = find_vault(s, &vault)?;
                caller.require(
                    Permission::UndeleteBackupData,
                    &crate::catalogue::vault_target(&v)?,
                )?;
                let mut item = find_item(s, &v, &item)?;
                let n = crate::soft_delete::undelete_item(s, &mut item)?;
                tracing::info!(vault = %v.name, item = %item.vm_name, points = n, "item undeleted");
                item_dto(s, &item)
            })
            .await
        }
        .await;
        self.audited(who, "item.undelete", target, r).await
    }

    pub async fn recovery_points(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        item: String,
        q: RegionQuery,
    ) -> ServiceResult<Vec<RecoveryPoint>> {
        let caller = who.clone();
        self.blocking(move |s| {
            let v = find_vault(s, &vault)?;
            caller.require(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?)?;
            let item = find_item(s, &v, &item)?;
            let points = region_points(s, &v, &item, q.use_secondary_region)?;
            Ok(points.iter().map(views::point).collect())
        })
        .await
    }

    pub async fn recovery_point(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        item: String,
        point: String,
        q: RegionQuery,
    ) -> ServiceResult<RecoveryPoint> {
        let caller = who.clone();
        self.blocking(move |s| {
            let v = find_vault(s, &vault)?;
            caller.require(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?)?;
            let item = find_item(s, &v, &item)?;
            let p = region_point(s, &v, &item, &point, q.use_secondary_region)?;
            Ok(views::point(&p))
        })
        .await
    }

    pub async fn restore(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        item: String,
        req: RestoreRequest,
    ) -> ServiceResult<Job> {
        let target =
            Target::in_vault(&vault, &item).detail(serde_json::to_string(&req).unwrap_or_default());
        let r: ServiceResult<Job> = async {
            let caller = who.clone();
            check_restore_request(&req)?;
            self.blocking(move |s| {
                let v = find_vault(s, &vault)?;
                caller.require(Permission::Restore, &crate::catalogue::vault_target(&v)?)?;
                let item = find_item(s, &v, &item)?;
                parse_state(&item.state).not_soft_deleted()?;
                let p = region_point(s, &v, &item, &req.recovery_point, req.use_secondary_region)?;
                // A pool and a start are libvirt's: refused here for a VM its host
                // reports as plain QEMU (unreported, the host decides).
                if req.target_pool.is_some() || req.start {
                    let provider = reported_item_vm(s, &item)?.map(|r| r.info.provider);
                    if provider.is_some_and(|p| p != tresor_api::inventory::VmProviderKind::Libvirt) {
                        return Err(ServiceError::new(
                            ErrorCode::InvalidRestoreOption,
                            format!(
                                "targetPool and start are for a libvirt domain's restore; {} is a plain QEMU VM",
                                item.vm_name
                            ),
                            "leave targetPool and start out: the new VM's disks go into targetPath with a start script",
                        ));
                    }
                }
                if p.soft_deleted.is_some() {
                    return Err(ServiceError::new(
                        ErrorCode::RecoveryPointSoftDeleted,
                        format!(
                            "recovery point {} of {} was deleted (kept until {})",
                            p.id,
                            item.vm_name,
                            p.soft_delete_until
                                .map(|t| t.to_string())
                                .unwrap_or_default()
                        ),
                        "undelete it first (tresor recoverypoint undelete), then restore",
                    ));
                }
                let job = jobs::new_job(
                    s,
                    &v.id,
                    Some(&item),
                    JobOperation::Restore,
                    Some(&item.agent_id),
                    JobParams::restore(&req),
                    &["Restore disks"],
                )?;
                views::job(&job, s.now())
            })
            .await
        }
        .await;
        let target = target.with_job(&r);
        self.audited(who, "item.restore", target, r).await
    }
}

/// The longest target path a restore takes (the host checks it again).
const MAX_TARGET_PATH: usize = 4096;

/// What a restore request must be before a job is made: a known mode and format,
/// each option of its mode, and every text bounded (the agent checks again where
/// things go on its host). A new name and a pool name: 1 to 64 letters, digits,
/// `-`, `_`, `.`, not `.` or `..` (a file and domain name on the host).
fn check_restore_request(req: &RestoreRequest) -> ServiceResult<()> {
    let option = |message: String, fix: &str| {
        Err(ServiceError::new(
            ErrorCode::InvalidRestoreOption,
            message,
            fix,
        ))
    };
    let plain_name = |n: &str| {
        (1..=64).contains(&n.len())
            && n != "."
            && n != ".."
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let create_vm = match req.mode.as_str() {
        "CreateVm" => true,
        "RestoreDisks" | "ReplaceDisks" => false,
        other => {
            return Err(ServiceError::new(
                ErrorCode::InvalidRestoreMode,
                format!(
                    "unknown restore mode {}",
                    other.chars().take(64).collect::<String>()
                ),
                "use RestoreDisks, CreateVm or ReplaceDisks",
            ))
        }
    };
    if let Some(pool) = &req.target_pool {
        if !create_vm {
            return option(
                format!("targetPool is for CreateVm, not {}", req.mode),
                "leave targetPool out, or restore with mode CreateVm",
            );
        }
        if req.target_path.is_some() {
            return option(
                "both targetPath and targetPool are given".into(),
                "give the folder (targetPath) or the libvirt storage pool (targetPool), not both",
            );
        }
        if !plain_name(pool) {
            return option(
                "targetPool is not a storage pool's name of 1 to 64 letters, digits, '-', '_' or '.'".into(),
                "give the name of a libvirt storage pool of the host (virsh pool-list)",
            );
        }
    } else if req.mode != "ReplaceDisks"
        && req
            .target_path
            .as_deref()
            .is_none_or(|p| !p.starts_with('/'))
    {
        return Err(ServiceError::new(
            ErrorCode::TargetPathRequired,
            format!("{} needs an absolute target folder on the host", req.mode),
            "give --target-path /some/folder",
        ));
    }
    if let Some(path) = &req.target_path {
        if path.len() > MAX_TARGET_PATH || path.chars().any(char::is_control) {
            return option(
                format!(
                    "targetPath is longer than {MAX_TARGET_PATH} bytes or holds control characters"
                ),
                "give a plain absolute folder under the host's restore roots",
            );
        }
    }
    if req.start && !create_vm {
        return option(
            format!("start is for CreateVm, not {}", req.mode),
            "leave start out, or restore with mode CreateVm",
        );
    }
    if let Some(name) = &req.new_name {
        if !create_vm {
            return option(
                format!("newName is for CreateVm, not {}", req.mode),
                "leave newName out, or restore with mode CreateVm",
            );
        }
        if !plain_name(name) {
            return option(
                "newName is not 1 to 64 letters, digits, '-', '_' or '.' (nor '.' or '..')".into(),
                "give the new VM a name such as web01-copy",
            );
        }
    }
    if let Some(f) = &req.format {
        if f != "qcow2" && f != "raw" {
            return Err(ServiceError::new(
                ErrorCode::InvalidFormat,
                format!(
                    "unknown disk format {}",
                    f.chars().take(64).collect::<String>()
                ),
                "use qcow2 or raw",
            ));
        }
    }
    Ok(())
}
