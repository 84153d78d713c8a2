//! Protectable VMs, protected items, "back up now", disabling protection, recovery
//! points and restores.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tresor_domain::{default_retain_until, validate_retain_until, JobStatus, ProtectionState};
use tresor_metadata::{AgentRow, ItemRow, VaultRow};

use crate::api::agents::{online, BACKUP_TASKS};
use crate::api::policies::find_policy;
use crate::api::vaults::find_vault;
use crate::auth::{new_id, Admin};
use crate::dto::enum_name;
use crate::dto::{ItemDto, JobDto, PointDto};
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, parse_state};
use crate::state::AppState;

/// Disk formats an agent can back up.
const SUPPORTED_FORMATS: [&str; 4] = ["qcow2", "raw", "file", "host_device"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtectableVm {
    pub host: String,
    pub agent_id: String,
    pub vm: String,
    pub name: String,
    pub location: String,
    pub agent_online: bool,
    /// What the agent reported (state, disks, guest agent).
    pub info: Value,
}

pub async fn protectable(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
) -> ApiResult<Json<Vec<ProtectableVm>>> {
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
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
                out.push(ProtectableVm {
                    host: agent.host.clone(),
                    agent_id: agent.id.clone(),
                    name: vm
                        .body
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or(&vm.vm)
                        .to_string(),
                    vm: vm.vm,
                    location: agent.location.clone(),
                    agent_online: online(agent, now),
                    info: vm.body,
                });
            }
            Ok(Json(out))
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnableProtection {
    /// The host (agent) the VM runs on: its host name or agent id.
    pub host: String,
    /// The agent's name for the VM.
    pub vm: String,
    /// Default: DefaultPolicy.
    #[serde(default)]
    pub policy: Option<String>,
}

fn item_dto(s: &AppState, i: &ItemRow) -> ApiResult<ItemDto> {
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
    Ok(ItemDto::new(i, &host, policy))
}

fn find_agent(s: &AppState, host: &str) -> ApiResult<AgentRow> {
    let agents = s.store.list_agents()?;
    let matching: Vec<_> = agents
        .into_iter()
        .filter(|a| a.id == host || a.host == host)
        .collect();
    match matching.len() {
        0 => Err(ApiError::not_found(format!("a host agent for {host}"))),
        1 => Ok(matching.into_iter().next().expect("one")),
        _ => Err(ApiError::conflict(
            "AmbiguousHost",
            format!("several agents report host name {host}"),
            "name the host by its agent id",
        )),
    }
}

/// Validates the VM and attaches the policy. Creates no recovery point: the item waits
/// for its first backup ("initial backup pending").
pub async fn enable(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    Json(req): Json<EnableProtection>,
) -> ApiResult<(StatusCode, Json<ItemDto>)> {
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let policy_name = req.policy.as_deref().unwrap_or("DefaultPolicy");
            let (policy, _) = find_policy(s, &v, policy_name)?;
            let agent = find_agent(s, &req.host)?;
            let inventory = s.store.list_inventory()?;
            let vm = inventory
                .iter()
                .find(|x| x.agent_id == agent.id && x.vm == req.vm)
                .ok_or_else(|| {
                    ApiError::not_found(format!("VM {} on host {} (the agent has not reported it)", req.vm, agent.host))
                })?;
            if agent.location != v.location {
                return Err(ApiError::bad_request(
                    "LocationMismatch",
                    format!("VM {} is in location {}, vault {} in {}", req.vm, agent.location, v.name, v.location),
                    "protect the VM with a vault in its own location",
                ));
            }
            if let Some(other) = s.store.find_active_item(&agent.id, &req.vm)? {
                let other_vault = s.store.get_vault(&other.vault_id).map(|x| x.name).unwrap_or_default();
                return Err(ApiError::conflict(
                    "AlreadyProtected",
                    format!("VM {} is already protected by vault {other_vault}", req.vm),
                    "stop its protection there first (a VM is protected by one vault at a time)",
                ));
            }
            let now = s.now();
            if !online(&agent, now) {
                return Err(ApiError::bad_request(
                    "AgentOffline",
                    format!("the agent on host {} has not reported for more than 2 minutes", agent.host),
                    "start the agent on that host (tresor agent run) and check its connection (tresor agent check)",
                ));
            }
            let disks = vm.body.get("disks").and_then(Value::as_array).cloned().unwrap_or_default();
            if disks.is_empty() {
                return Err(ApiError::bad_request(
                    "NoDisks",
                    format!("VM {} has no disk to back up", req.vm),
                    "attach a disk to the VM",
                ));
            }
            for d in &disks {
                let format = d.get("format").and_then(Value::as_str).unwrap_or("");
                if !SUPPORTED_FORMATS.contains(&format) {
                    return Err(ApiError::bad_request(
                        "UnsupportedDiskFormat",
                        format!(
                            "disk {} of VM {} is a {format} image; Tresor backs up qcow2 and raw disks",
                            d.get("name").and_then(Value::as_str).unwrap_or("?"),
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
                vm_name: vm.body.get("name").and_then(Value::as_str).unwrap_or(&req.vm).to_string(),
                policy_id: Some(policy.id.clone()),
                state: enum_name(ProtectionState::configured()),
                // The schedule starts now: no window before protection counts as missed.
                last_window: Some(now),
                last_backup: None,
                created: now,
                active: true,
            };
            s.store.insert_item(&item).map_err(|e| match e {
                tresor_metadata::StoreError::Conflict { .. } => ApiError::conflict(
                    "AlreadyProtected",
                    format!("VM {} is already protected", req.vm),
                    "stop its protection there first",
                ),
                e => e.into(),
            })?;
            let mut job = jobs::new_job(s, &v.id, Some(&item), "ConfigureBackup", None, json!({"policy": policy_name}), &[])?;
            jobs::finish(s, &mut job, JobStatus::Completed, None, Vec::new(), json!({"item": item.id}))?;
            Ok((StatusCode::CREATED, Json(item_dto(s, &item)?)))
        })
        .await
}

pub fn find_item(s: &AppState, v: &VaultRow, item: &str) -> ApiResult<ItemRow> {
    let items = s.store.list_items(&v.id, true)?;
    items
        .into_iter()
        .filter(|i| i.active || i.id == item)
        .find(|i| i.id == item || i.vm_name == item || i.vm == item)
        .ok_or_else(|| ApiError::not_found(format!("protected item {item} in vault {}", v.name)))
}

pub async fn list(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
) -> ApiResult<Json<Vec<ItemDto>>> {
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let items = s.store.list_items(&v.id, false)?;
            items
                .iter()
                .map(|i| item_dto(s, i))
                .collect::<ApiResult<Vec<_>>>()
                .map(Json)
        })
        .await
}

pub async fn show(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
) -> ApiResult<Json<ItemDto>> {
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let item = find_item(s, &v, &item)?;
            let mut dto = item_dto(s, &item)?;
            dto.replication = Some(crate::replication::status(s, &v, Some(&item.id), s.now())?);
            Ok(Json(dto))
        })
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupNow {
    /// Keep the point until then (default: 30 days from now).
    #[serde(default)]
    pub retain_until: Option<Timestamp>,
}

pub async fn backup_now(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
    body: Option<Json<BackupNow>>,
) -> ApiResult<(StatusCode, Json<JobDto>)> {
    let retain = body.and_then(|b| b.0.retain_until);
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
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
                "Backup",
                Some(&item.agent_id),
                json!({"onDemand": true, "retainUntil": until}),
                &BACKUP_TASKS,
            )?;
            Ok((StatusCode::ACCEPTED, Json(JobDto::new(&job, now))))
        })
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Disable {
    /// Delete the item's recovery points too (otherwise they are kept, and retention stops).
    #[serde(default)]
    pub delete_backup_data: bool,
}

pub async fn disable(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
    body: Option<Json<Disable>>,
) -> ApiResult<Json<JobDto>> {
    let delete = body.map(|b| b.0.delete_backup_data).unwrap_or(false);
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let mut item = find_item(s, &v, &item)?;
            let running = s.store.list_jobs(&tresor_metadata::JobFilter {
                item_id: Some(item.id.clone()),
                status: Some("InProgress".into()),
                ..Default::default()
            })?;
            if !running.is_empty() {
                return Err(ApiError::conflict(
                    "JobInProgress",
                    format!(
                        "a {} job of {} is running",
                        running[0].operation, item.vm_name
                    ),
                    "wait for it to end, or cancel it (tresor job stop)",
                ));
            }
            let next = parse_state(&item.state).on_disable(!delete)?;
            let op = if delete {
                "DeleteBackupData"
            } else {
                "DisableBackup"
            };
            let mut job = jobs::new_job(
                s,
                &v.id,
                Some(&item),
                op,
                None,
                json!({"deleteBackupData": delete}),
                &[],
            )?;
            let mut deleted = 0;
            if delete {
                let points = s.store.list_points(&item.id)?;
                let refs: Vec<&tresor_metadata::PointRow> = points.iter().collect();
                jobs::forget_points(s, &v, &item.agent_id, &refs)?;
                deleted = points.len();
                item.active = false;
            }
            item.state = enum_name(next);
            s.store.update_item(&item)?;
            jobs::finish(
                s,
                &mut job,
                JobStatus::Completed,
                None,
                Vec::new(),
                json!({"deletedRecoveryPoints": deleted}),
            )?;
            Ok(Json(JobDto::new(&job, s.now())))
        })
        .await
}

/// `?useSecondaryRegion=true`: the points as the secondary region holds them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionQuery {
    #[serde(default)]
    pub use_secondary_region: bool,
}

/// Cross-region restore must be enabled on the vault to read from the secondary.
fn check_crr(v: &VaultRow) -> ApiResult<()> {
    if !v.cross_region_restore {
        return Err(ApiError::bad_request(
            "CrossRegionRestoreNotEnabled",
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
    s: &AppState,
    v: &VaultRow,
    item: &ItemRow,
    secondary: bool,
) -> ApiResult<Vec<tresor_metadata::PointRow>> {
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
    s: &AppState,
    v: &VaultRow,
    item: &ItemRow,
    id: &str,
    secondary: bool,
) -> ApiResult<tresor_metadata::PointRow> {
    let missing = || {
        ApiError::not_found(format!(
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
            return Err(ApiError::conflict(
                "RecoveryPointNotInSecondaryRegion",
                format!(
                    "recovery point {id} of {} has not reached the secondary region yet",
                    item.vm_name
                ),
                "restore it from the primary region, or wait for replication (tresor vault show)",
            ));
        }
    } else if p.primary_deleted.is_some() {
        return Err(ApiError::not_found(format!(
            "recovery point {id} of {} was deleted from the primary region; it is still in the secondary region (--use-secondary-region)",
            item.vm_name
        )));
    }
    Ok(p)
}

pub async fn points(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<RegionQuery>,
) -> ApiResult<Json<Vec<PointDto>>> {
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let item = find_item(s, &v, &item)?;
            let points = region_points(s, &v, &item, q.use_secondary_region)?;
            Ok(Json(points.iter().map(PointDto::from).collect()))
        })
        .await
}

pub async fn point(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((vault, item, point)): Path<(String, String, String)>,
    axum::extract::Query(q): axum::extract::Query<RegionQuery>,
) -> ApiResult<Json<PointDto>> {
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let item = find_item(s, &v, &item)?;
            let p = region_point(s, &v, &item, &point, q.use_secondary_region)?;
            Ok(Json(PointDto::from(&p)))
        })
        .await
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    pub recovery_point: String,
    /// `RestoreDisks` (to a folder on the host), `CreateVm` (disks and a new VM's
    /// definition), `ReplaceDisks` (over the stopped original).
    pub mode: String,
    /// Folder on the host for RestoreDisks and CreateVm.
    #[serde(default)]
    pub target_path: Option<String>,
    /// `qcow2` or `raw` (default: each disk's own format).
    #[serde(default)]
    pub format: Option<String>,
    /// Name of the new VM (CreateVm).
    #[serde(default)]
    pub new_name: Option<String>,
    /// Restore from the copy in the secondary region (cross-region restore).
    #[serde(default)]
    pub use_secondary_region: bool,
}

pub async fn restore(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
    Json(req): Json<RestoreRequest>,
) -> ApiResult<(StatusCode, Json<JobDto>)> {
    match req.mode.as_str() {
        "RestoreDisks" | "CreateVm"
            if req
                .target_path
                .as_deref()
                .is_none_or(|p| !p.starts_with('/')) =>
        {
            return Err(ApiError::bad_request(
                "TargetPathRequired",
                format!("{} needs an absolute target folder on the host", req.mode),
                "give --target-path /some/folder",
            ))
        }
        "RestoreDisks" | "CreateVm" | "ReplaceDisks" => {}
        other => {
            return Err(ApiError::bad_request(
                "InvalidRestoreMode",
                format!("unknown restore mode {other}"),
                "use RestoreDisks, CreateVm or ReplaceDisks",
            ))
        }
    }
    if let Some(f) = &req.format {
        if f != "qcow2" && f != "raw" {
            return Err(ApiError::bad_request(
                "InvalidFormat",
                format!("unknown disk format {f}"),
                "use qcow2 or raw",
            ));
        }
    }
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let item = find_item(s, &v, &item)?;
            region_point(s, &v, &item, &req.recovery_point, req.use_secondary_region)?;
            let job = jobs::new_job(
                s,
                &v.id,
                Some(&item),
                "Restore",
                Some(&item.agent_id),
                serde_json::to_value(&req).map_err(ApiError::internal)?,
                &["Restore disks"],
            )?;
            Ok((StatusCode::ACCEPTED, Json(JobDto::new(&job, s.now()))))
        })
        .await
}
