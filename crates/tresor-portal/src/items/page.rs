//! The vault's backup items, and one item's page: its details, its replication, and
//! its recovery points in the primary region (or the secondary one, with
//! cross-region restore).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use tresor_api::vaults::StorageRedundancy;
use tresor_service::Service;

use crate::items::shared::{item_url, points_of, short_id, vault_and_item};
use crate::layout::{
    badge, bytes, empty, error_box, notice, replication_error, time, vault_page, vault_tabs,
    wire_name, Done,
};
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
    let body = html! {
        h1 { (v.name) }
        p.muted { "Recovery Services vault · " (v.location) }
        @if let Some(d) = &q.done { (notice(d)) }
        (vault_tabs(&v.name, "Backup items"))
        @if items.is_empty() {
            (empty("No virtual machine is protected by this vault yet. + Backup chooses VMs and a backup policy.",
                Some(("+ Backup", &format!("{vurl}/backup")))))
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
                            td { (badge(&wire_name(&i.protection_state))) }
                            td { (time(i.last_backup_time)) }
                            td { (time(*newest)) }
                            td { @match &i.policy { Some(p) => (p), None => span.muted { "None" } } }
                            td.actions { (item_menu(&url, &i.vm_name)) }
                        }
                    }
                }
            }
        }
    };
    vault_page("Backup items", &op, &v.name, &[], body)
}

/// The "…" menu of an item: back up now, restore, stop backup.
fn item_menu(url: &str, name: &str) -> Markup {
    html! {
        details.menu.item-menu {
            summary.button aria-label={ "Actions for " (name) } title={ "Actions for " (name) } { "…" }
            div.menu-body {
                a href={ (url) "/backup" } { "Back up now" }
                a href={ (url) "/restore" } { "Restore" }
                a href={ (url) "/stop" } { "Stop backup" }
            }
        }
    }
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
    let region_q = if secondary {
        "&useSecondaryRegion=true"
    } else {
        ""
    };
    let body = html! {
        h1 { (i.vm_name) }
        p.muted { "Protected virtual machine · host " (i.host) " · vault " (v.name) }
        @if let Some(d) = &q.done { (notice(d)) }
        (vault_tabs(&v.name, "Backup items"))
        div.toolbar {
            a.button.primary href={ (url) "/backup" } { "Back up now" }
            a.button href={ (url) "/restore" } { "Restore" }
            a.button href={ (url) "/stop" } { "Stop backup" }
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
                    (empty("No recovery point yet. The first backup runs on the policy's schedule, or now.", Some(("Back up now", &format!("{url}/backup")))))
                }
            }
            Ok(points) => {
                table #points data-region=(if secondary { "secondary" } else { "primary" }) aria-labelledby="points-h" {
                    thead { tr {
                        th scope="col" { "Time" }
                        th scope="col" { "Consistency" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Type" }
                        th scope="col" { "Size" }
                        @if secondary { th scope="col" { "In the primary region" } }
                        th scope="col" { span.sr-only { "Actions" } }
                    } }
                    tbody {
                        @for p in points {
                            tr id={ "point-" (p.id) } data-point=(p.id) {
                                td { (time(Some(p.time))) br; span.small.muted { code { (short_id(&p.id)) } } }
                                td { (badge(&p.consistency)) }
                                td { (time(p.expiry)) }
                                td { @if p.on_demand { "On demand" } @else { "Scheduled" } }
                                td { (bytes(p.size)) }
                                @if secondary {
                                    td { @match p.deleted_from_primary {
                                        Some(t) => { "Deleted " (time(Some(t))) },
                                        None => "Yes",
                                    } }
                                }
                                td { a href={ (url) "/restore?point=" (url_encode(&p.id)) (region_q) } { "Restore" } }
                            }
                        }
                    }
                }
            }
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
