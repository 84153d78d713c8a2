//! The vault's backup items, and one item's page: its details, its replication, and
//! its recovery points in the primary region (or the secondary one, with
//! cross-region restore).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use tresor_api::items::{ProtectedItem, ProtectionState};
use tresor_api::vaults::StorageRedundancy;
use tresor_service::Service;

use crate::items::disks::{is_libvirt, reported_vm};
use crate::items::points::points_table;
use crate::items::shared::{item_url, points_of, vault_and_item};
use crate::items::undelete::undelete_form;
use crate::layout::{
    badge, bytes, empty, error_box, notice, replication_error, time, vault_page, vault_tabs,
    wire_name, Done,
};
use crate::permissions::{on_vault, Permission, PermissionSet};
use crate::session::Operator;
use crate::urls::url_encode;
use crate::vaults::vault_of;

pub(super) async fn list(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(vault): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    let items = or_page!(&op, state.items(&op.principal, v.name.clone()).await);
    let mut rows = Vec::new();
    for i in &items {
        let newest = points_of(&state, &op, &v.name, &i.id, false)
            .await
            .ok()
            .and_then(|p| p.first().map(|p| p.time));
        rows.push((i, newest));
    }
    let vurl = format!("/vaults/{}", url_encode(&v.name));
    let can = on_vault(&state, &op, &v);
    let backup_url = format!("{vurl}/backup");
    let body = html! {
        h1 { (v.name) }
        p.muted { "Recovery Services vault · " (v.location) }
        @if let Some(d) = &q.done { (notice(d)) }
        (vault_tabs(&v.name, "Backup items", &can))
        @if items.is_empty() {
            (empty("No virtual machine is protected by this vault yet. + Backup chooses VMs and a backup policy.",
                can.allows(Permission::EnableProtection).then_some(("+ Backup", backup_url.as_str()))))
        } @else {
            div.toolbar {
                span.grow.muted { (items.len()) @if items.len() == 1 { " protected virtual machine" } @else { " protected virtual machines" } }
            }
            table #items {
                caption.sr-only { "Protected virtual machines" }
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Host" }
                    th scope="col" { "Protection state" }
                    th scope="col" { "Last backup" }
                    th scope="col" { "Last recovery point" }
                    th scope="col" { "Backup policy" }
                    th scope="col" { span.sr-only { "Actions" } }
                } }
                tbody {
                    @for (i, newest) in &rows {
                        @let url = item_url(&v.name, i);
                        tr data-item=(i.id) {
                            td { a href=(url) { (i.vm_name) } }
                            td { (i.host) }
                            td { (state_cell(i)) }
                            td { (time(i.last_backup_time)) }
                            td { (time(*newest)) }
                            td { @match &i.policy { Some(p) => (p), None => span.muted { "None" } } }
                            td.actions { (item_actions(&op, &can, &url, i)) }
                        }
                    }
                }
            }
        }
    };
    vault_page("Backup items", &op, &v.name, &[], body)
}

/// An item's protection state; a soft-deleted one with the time its data is purged.
fn state_cell(i: &ProtectedItem) -> Markup {
    html! {
        (badge(&wire_name(&i.protection_state)))
        @if let (ProtectionState::SoftDeleted, Some(at)) = (i.protection_state, i.delete_at) {
            br; span.small.muted.purge { "Purged " (time(Some(at))) }
        }
    }
}

/// What may be done with an item: a soft-deleted one is undeleted (or left to be
/// purged); any other has the "…" menu of back up now, restore, stop backup, each
/// shown to those who may.
fn item_actions(op: &Operator, can: &PermissionSet, url: &str, i: &ProtectedItem) -> Markup {
    let name = &i.vm_name;
    if i.protection_state == ProtectionState::SoftDeleted {
        return html! {
            @if can.allows(Permission::UndeleteBackupData) { (undelete_form(op, url, name)) }
        };
    }
    let actions = item_links(can, i);
    html! {
        @if !actions.is_empty() {
            details.menu.item-menu {
                summary.button aria-label={ "Actions for " (name) } title={ "Actions for " (name) } { "…" }
                div.menu-body {
                    @for (label, path) in &actions { a href={ (url) (path) } { (label) } }
                }
            }
        }
    }
}

/// The item actions `can` allows, as (label, path under the item's page): a stopped
/// item is resumed rather than stopped again.
fn item_links(can: &PermissionSet, i: &ProtectedItem) -> Vec<(&'static str, &'static str)> {
    let stopped = i.protection_state == ProtectionState::ProtectionStopped;
    let stop = !stopped
        && (can.allows(Permission::StopProtection) || can.allows(Permission::DeleteBackupData));
    let modify = can.allows(Permission::ModifyProtection);
    [
        (
            can.allows(Permission::BackupNow),
            ("Back up now", "/backup"),
        ),
        (can.allows(Permission::Restore), ("Restore", "/restore")),
        (modify && stopped, ("Resume backup", "/policy")),
        (modify && !stopped, ("Change policy", "/policy")),
        (stop, ("Stop backup", "/stop")),
    ]
    .into_iter()
    .filter_map(|(shown, link)| shown.then_some(link))
    .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailsQuery {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    use_secondary_region: bool,
}

pub(super) async fn details(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
    Query(q): Query<DetailsQuery>,
) -> Response {
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let secondary = q.use_secondary_region;
    let primary_points = points_of(&state, &op, &v.name, &i.id, false).await;
    let points = if secondary {
        points_of(&state, &op, &v.name, &i.id, true).await
    } else {
        primary_points.clone()
    };
    let newest = primary_points
        .as_ref()
        .ok()
        .and_then(|p| p.first().map(|p| p.time));
    let vurl = format!("/vaults/{}", url_encode(&v.name));
    let url = item_url(&v.name, &i);
    let backup_url = format!("{url}/backup");
    let geo = v.storage_redundancy == StorageRedundancy::GeoRedundant;
    let repl = i.replication.as_ref();
    let progress = repl.and_then(|r| r.progress.as_ref());
    let secondary_location = v
        .replication
        .secondary_location
        .as_deref()
        .or(repl.and_then(|r| r.secondary_location.as_deref()))
        .unwrap_or("the paired location")
        .to_string();
    let can = on_vault(&state, &op, &v);
    let deleted = i.protection_state == ProtectionState::SoftDeleted;
    // Only a libvirt domain's disks can be left out: the form is offered for one.
    let choose_disks = !deleted
        && can.allows(Permission::ModifyProtection)
        && is_libvirt(&reported_vm(&state, &op, &i).await);
    let body = html! {
        h1 { (i.vm_name) }
        p.muted { "Protected virtual machine · host " (i.host) " · vault " (v.name) }
        @if let Some(d) = &q.done { (notice(d)) }
        (vault_tabs(&v.name, "Backup items", &can))
        @if deleted {
            div.alert.warn #soft-deleted role="status" {
                p { strong { "The backup data of " (i.vm_name) " was deleted." } " It is kept, not restorable, until "
                    (time(i.delete_at)) ", when it is purged for good." }
                @if can.allows(Permission::UndeleteBackupData) {
                    p { "Undelete brings the item back, protection stopped, with its recovery points." }
                    (undelete_form(&op, &url, &i.vm_name))
                }
            }
        }
        div.toolbar {
            @if !deleted {
                @for (n, (label, path)) in item_links(&can, &i).iter().enumerate() {
                    @if n == 0 { a.button.primary href={ (url) (path) } { (label) } }
                    @else { a.button href={ (url) (path) } { (label) } }
                }
            }
            span.grow {}
            a href={ (vurl) "/jobs?item=" (url_encode(&i.id)) } { "Jobs of this VM" }
        }
        div.cards {
            section.card aria-labelledby="item-h" {
                h2 #item-h { "Details" }
                dl.props #item-details {
                    dt { "Protection state" } dd { (badge(&wire_name(&i.protection_state))) }
                    dt { "Host" } dd { (i.host) }
                    dt { "VM on the host" } dd { code { (i.vm) } }
                    dt { "Backup policy" } dd { @match &i.policy { Some(p) => (p), None => span.muted { "None" } } }
                    dt { "Excluded disks" } dd {
                        @if i.excluded_disks.is_empty() { span.muted { "None: every disk is backed up" } }
                        @else { @for (n, d) in i.excluded_disks.iter().enumerate() { @if n > 0 { ", " } code { (d) } } }
                        @if choose_disks { " · " a #item-disks href={ (url) "/disks" } { "Choose disks" } }
                    }
                    dt { "Last backup" } dd { (time(i.last_backup_time)) }
                    dt { "Last recovery point" } dd { (time(newest)) }
                    dt { "Protected since" } dd { (time(Some(i.created))) }
                }
            }
            @if geo {
                section.card aria-labelledby="item-repl-h" {
                    h2 #item-repl-h { "Replication" }
                    p { (badge(&repl.map_or("Unknown".to_string(), |r| wire_name(&r.status)))) " to " strong { (secondary_location) } }
                    dl.props #item-replication {
                        dt { "Points in the secondary region" } dd { (progress.map_or(0, |p| p.recovery_points_on_secondary)) }
                        dt { "Waiting to replicate" } dd { (progress.map_or(0, |p| p.pending_recovery_points)) " points, " (bytes(progress.map_or(0, |p| p.bytes_pending))) }
                        dt { "Lag" } dd { (format!("{:.0} s", progress.map_or(0.0, |p| p.lag_seconds))) }
                        dt { "Last replicated" } dd { (time(progress.and_then(|p| p.last_success))) }
                    }
                    @if let Some(e) = progress.and_then(|p| p.last_error.as_ref()) {
                        (replication_error(e))
                    }
                }
            }
        }
        h2 #points-h { "Recovery points" }
        @if v.cross_region_restore {
            nav.regions aria-label="Region" {
                @if secondary {
                    a href=(url) { "Primary region" }
                    a href={ (url) "?useSecondaryRegion=true" } aria-current="page" { "Secondary region" }
                } @else {
                    a href=(url) aria-current="page" { "Primary region" }
                    a href={ (url) "?useSecondaryRegion=true" } { "Secondary region" }
                }
            }
            @if secondary {
                p.muted.small { "The points as " (secondary_location) " holds them, restorable from there (cross-region restore), including points deleted from the primary region within the soft-delete window." }
            }
        }
        @match &points {
            Err(e) => (error_box(e)),
            Ok(points) if points.is_empty() => {
                @if secondary {
                    (empty("No recovery point has reached the secondary region yet.", None))
                } @else {
                    (empty("No recovery point yet. The first backup runs on the policy's schedule, or now.",
                        (can.allows(Permission::BackupNow) && !deleted).then_some(("Back up now", backup_url.as_str()))))
                }
            }
            Ok(points) => (points_table(&op, &can, &i, &url, points, secondary)),
        }
    };
    vault_page(
        &i.vm_name,
        &op,
        &v.name,
        &[("Backup items", &format!("{vurl}/items"))],
        body,
    )
}
