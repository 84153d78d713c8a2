//! Soft delete, always on: deleting an item's backup data keeps the item and its
//! points for the vault's soft-delete period (14 to 180 days), on the primary as on
//! the secondary. Nothing is removed from storage meanwhile: garbage collection keeps
//! their data (the points stay in the catalogue), retention leaves them alone, and
//! the item can be undeleted. When the period ends by the server's clock, the purge
//! step removes them, recorded as a `DeleteBackupData` job and in the audit log.

use jiff::{SignedDuration, Timestamp};
use tresor_api::jobs::{DisableBackupResult, JobParams};
use tresor_domain::{JobOperation, JobStatus, ProtectionState};
use tresor_metadata::{ItemRow, PointRow, VaultRow};

use crate::catalogue::{is_geo, parse_state};
use crate::error::ServiceResult;
use crate::jobs;
use crate::state::Service;
use crate::views::{self, enum_name};

pub const TASK_PURGE: &str = "Purge soft-deleted backup data";

/// When data deleted at `now` in vault `v` is purged.
pub fn delete_at(v: &VaultRow, now: Timestamp) -> Timestamp {
    now + SignedDuration::from_hours(24 * i64::from(v.soft_delete_days))
}

/// Soft-deletes `item` (its protection already stopped) and its points on the
/// primary; returns how many points. The caller stores nothing else.
pub fn soft_delete_item(s: &Service, v: &VaultRow, item: &mut ItemRow) -> ServiceResult<usize> {
    let now = s.now();
    let until = delete_at(v, now);
    let points = s.store.list_points(&item.id)?;
    for p in &points {
        let mut p = p.clone();
        p.soft_deleted = Some(now);
        p.soft_delete_until = Some(until);
        s.store.update_point(&p)?;
    }
    item.state = enum_name(parse_state(&item.state).on_delete_data());
    item.soft_deleted = Some(now);
    item.delete_at = Some(until);
    s.store.update_item(item)?;
    Ok(points.len())
}

/// Undeletes a soft-deleted item: it is `ProtectionStopped` again with its points
/// (whose expiry counts again only once protection is resumed).
pub fn undelete_item(s: &Service, item: &mut ItemRow) -> ServiceResult<usize> {
    let next = parse_state(&item.state).on_undelete()?;
    let points: Vec<PointRow> = s
        .store
        .list_points(&item.id)?
        .into_iter()
        .filter(|p| p.soft_deleted.is_some())
        .collect();
    for p in &points {
        let mut p = p.clone();
        p.soft_deleted = None;
        p.soft_delete_until = None;
        s.store.update_point(&p)?;
    }
    item.state = enum_name(next);
    item.soft_deleted = None;
    item.delete_at = None;
    s.store.update_item(item)?;
    Ok(points.len())
}

/// The earliest date a vault's soft-deleted data (items, or single points) is all
/// purged, if it holds any.
pub fn held_until(s: &Service, v: &VaultRow) -> ServiceResult<Option<Timestamp>> {
    let mut until = None;
    for i in s.store.list_items(&v.id, false)? {
        if parse_state(&i.state) == ProtectionState::SoftDeleted {
            until = until.max(i.delete_at);
        } else {
            for p in s.store.list_points(&i.id)? {
                until = until.max(p.soft_delete_until);
            }
        }
    }
    Ok(until)
}

/// One item the purge removed.
#[derive(Debug, Clone)]
pub struct Purged {
    pub vault: String,
    pub item: ItemRow,
    pub points: usize,
}

/// Purges every soft-deleted item whose period has ended: its points are removed
/// from the primary repository and the catalogue (a GeoRedundant vault's secondary
/// copies follow, counted from the day they were deleted), the item is forgotten.
/// Each item is a job; one that fails is logged and the others go on.
pub fn purge_due(s: &Service) -> ServiceResult<Vec<Purged>> {
    let now = s.now();
    let mut out = Vec::new();
    for item in s.store.list_active_items()? {
        if parse_state(&item.state) != ProtectionState::SoftDeleted
            || item.delete_at.is_none_or(|t| t > now)
        {
            continue;
        }
        match purge_item(s, item.clone()) {
            Ok(p) => out.push(p),
            Err(e) => {
                tracing::warn!(item = %item.vm_name, vault = %item.vault_id, error = %e, "purging soft-deleted backup data failed")
            }
        }
    }
    for item in s.store.list_active_items()? {
        if parse_state(&item.state) == ProtectionState::SoftDeleted {
            continue;
        }
        match purge_points(s, &item, now) {
            Ok(Some(p)) => out.push(p),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(item = %item.vm_name, vault = %item.vault_id, error = %e, "purging soft-deleted recovery points failed")
            }
        }
    }
    Ok(out)
}

/// Removes `points` of `item` from the primary repository and the catalogue (a
/// replicated point's row stays for the secondary, marked deleted at `deleted`).
fn remove_points(
    s: &Service,
    v: &VaultRow,
    item: &ItemRow,
    points: &[PointRow],
    deleted: Timestamp,
) -> ServiceResult<()> {
    if points.is_empty() {
        return Ok(());
    }
    let repo = s.repos.open_or_create(v, &item.agent_id)?;
    for p in points {
        match repo.forget(&p.id) {
            Ok(_) | Err(tresor_engine::Error::PointNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if is_geo(v) && p.replicated.is_some() {
            // The secondary's copy goes once the server's window, counted from
            // the deletion, has passed (see replication.rs).
            let mut p = p.clone();
            p.primary_deleted = Some(deleted);
            s.store.update_point(&p)?;
        } else {
            s.store.delete_point(&p.id)?;
        }
    }
    Ok(())
}

/// Purges the single points of a live item whose soft-delete period has ended.
fn purge_points(s: &Service, item: &ItemRow, now: Timestamp) -> ServiceResult<Option<Purged>> {
    let due: Vec<PointRow> = s
        .store
        .list_points(&item.id)?
        .into_iter()
        .filter(|p| p.soft_delete_until.is_some_and(|t| t <= now))
        .collect();
    if due.is_empty() {
        return Ok(None);
    }
    let v = s.store.get_vault(&item.vault_id)?;
    for p in &due {
        remove_points(
            s,
            &v,
            item,
            std::slice::from_ref(p),
            p.soft_deleted.unwrap_or(now),
        )?;
        s.record_by_server(
            &v.name,
            "point.purge",
            &item.id,
            &format!(
                "{} ({}): soft-deleted recovery point {} purged",
                item.vm_name, item.vm, p.id
            ),
        );
    }
    tracing::info!(vault = %v.name, item = %item.vm_name, points = due.len(), "soft-deleted recovery points purged");
    Ok(Some(Purged {
        vault: v.name,
        item: item.clone(),
        points: due.len(),
    }))
}

fn purge_item(s: &Service, mut item: ItemRow) -> ServiceResult<Purged> {
    let v = s.store.get_vault(&item.vault_id)?;
    let deleted = item.soft_deleted.unwrap_or_else(|| s.now());
    let mut job = jobs::new_job(
        s,
        &v.id,
        Some(&item),
        JobOperation::DeleteBackupData,
        None,
        JobParams {
            delete_backup_data: Some(true),
            ..JobParams::default()
        },
        &[TASK_PURGE],
    )?;
    let points = s.store.list_points(&item.id)?;
    remove_points(s, &v, &item, &points, deleted)?;
    item.state = enum_name(ProtectionState::ProtectionStopped);
    item.active = false;
    item.soft_deleted = None;
    item.delete_at = None;
    s.store.update_item(&item)?;
    jobs::finish(
        s,
        &mut job,
        JobStatus::Completed,
        None,
        Vec::new(),
        views::result(&DisableBackupResult {
            deleted_recovery_points: points.len(),
        })?,
    )?;
    s.record_by_server(
        &v.name,
        "item.purge",
        &item.id,
        &format!(
            "{} ({}): {} soft-deleted recovery points purged; job {}",
            item.vm_name,
            item.vm,
            points.len(),
            job.id
        ),
    );
    tracing::info!(vault = %v.name, item = %item.vm_name, points = points.len(), "soft-deleted backup data purged");
    Ok(Purged {
        vault: v.name,
        item,
        points: points.len(),
    })
}
