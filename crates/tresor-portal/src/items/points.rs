//! An item's recovery points: the table on its page, with "Restore", "Delete"
//! (`RecoveryPoints.Delete`, after a page that names the soft-delete period) and,
//! for a deleted point, the time it is purged and "Undelete"
//! (`Items.UndeleteBackupData`).
//!
//! A deleted point is only soft-deleted: kept, not restorable, for the vault's
//! soft-delete period. The service refuses deleting one in an immutable vault before
//! it expires (`ImmutableVault`) and, on a guarded vault, without an approval
//! (`ApprovalRequired`): both shown here as they are.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use jiff::SignedDuration;
use maud::{html, Markup};
use tresor_api::items::{ProtectedItem, ProtectionState, RecoveryPoint, RegionQuery};
use tresor_api::vaults::Vault;
use tresor_service::{Service, ServiceError};

use crate::items::shared::{item_subpage, item_url, redirect_done, short_id, vault_and_item};
use crate::layout::{badge, bytes, csrf_field, error_box, time, with_status};
use crate::permissions::{Permission, PermissionSet};
use crate::session::Operator;
use crate::urls::url_encode;
use crate::vaults::error_page;
use crate::CsrfForm;

/// The recovery points of item `i` (its page at `url`) in one region, with what the
/// operator may do with each.
pub(super) fn points_table(
    op: &Operator,
    can: &PermissionSet,
    i: &ProtectedItem,
    url: &str,
    points: &[RecoveryPoint],
    secondary: bool,
) -> Markup {
    let item_deleted = i.protection_state == ProtectionState::SoftDeleted;
    let may_restore = can.allows(Permission::Restore) && !item_deleted;
    // One point's delete and undelete act on the primary region's catalogue, of an
    // item that is not itself deleted (that is undeleted as a whole).
    let per_point = !secondary && !item_deleted;
    let may_delete = per_point && can.allows(Permission::DeleteRecoveryPoint);
    let may_undelete = per_point && can.allows(Permission::UndeleteBackupData);
    let actions = may_restore || may_delete || may_undelete;
    let region_q = if secondary {
        "&useSecondaryRegion=true"
    } else {
        ""
    };
    html! {
        table #points data-region=(if secondary { "secondary" } else { "primary" }) aria-labelledby="points-h" {
            thead { tr {
                th scope="col" { "Time" }
                th scope="col" { "Consistency" }
                th scope="col" { "Expires" }
                th scope="col" { "Type" }
                th scope="col" { "Size" }
                @if secondary { th scope="col" { "In the primary region" } }
                @if actions { th scope="col" { span.sr-only { "Actions" } } }
            } }
            tbody {
                @for p in points {
                    @let deleted = p.delete_at.is_some();
                    @let purl = format!("{url}/points/{}", url_encode(&p.id));
                    tr id={ "point-" (p.id) } data-point=(p.id) data-deleted=[deleted.then_some("true")] {
                        td { (time(Some(p.time))) br; span.small.muted { code { (short_id(&p.id)) } } }
                        td { (badge(&p.consistency)) }
                        td {
                            @if deleted {
                                (badge("Deleted")) br;
                                span.small.muted.purge { "Purged " (time(p.delete_at)) }
                            } @else { (time(p.expiry)) }
                        }
                        td { @if p.on_demand { "On demand" } @else { "Scheduled" } }
                        td { (bytes(p.size)) }
                        @if secondary {
                            td { @match p.deleted_from_primary {
                                Some(t) => { "Deleted " (time(Some(t))) },
                                None => "Yes",
                            } }
                        }
                        @if actions {
                            td.actions {
                                @if deleted {
                                    @if may_undelete {
                                        form.inline.undelete-point method="post" action={ (purl) "/undelete" } {
                                            (csrf_field(op))
                                            button.primary type="submit" aria-label={ "Undelete recovery point " (short_id(&p.id)) } { "Undelete" }
                                        }
                                    }
                                } @else {
                                    @if may_restore {
                                        a href={ (url) "/restore?point=" (url_encode(&p.id)) (region_q) } { "Restore" }
                                    }
                                    @if may_delete {
                                        " " a.delete-point href={ (purl) "/delete" } aria-label={ "Delete recovery point " (short_id(&p.id)) } { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The point `point` of the item in the primary region, or the page for the error.
async fn point_of(
    state: &Arc<Service>,
    op: &Operator,
    v: &Vault,
    i: &ProtectedItem,
    point: &str,
) -> Result<RecoveryPoint, Response> {
    state
        .recovery_point(
            &op.principal,
            v.name.clone(),
            i.id.clone(),
            point.to_string(),
            RegionQuery::default(),
        )
        .await
        .map_err(|e| error_page(op, &e))
}

/// The confirmation of deleting one point: what it means, with the vault's period.
fn delete_page(
    op: &Operator,
    state: &Service,
    v: &Vault,
    i: &ProtectedItem,
    p: &RecoveryPoint,
    error: Option<&ServiceError>,
) -> Response {
    let url = item_url(&v.name, i);
    let days = v.soft_delete_days;
    let until = state.now() + SignedDuration::from_hours(i64::from(days) * 24);
    let body = html! {
        h1 { "Delete recovery point" }
        p.muted { (i.vm_name) " · vault " (v.name) }
        @if let Some(e) = error { (error_box(e)) }
        section.card #delete-point aria-labelledby="delete-point-h" {
            h2 #delete-point-h { "Recovery point of " (time(Some(p.time))) }
            dl.props {
                dt { "Id" } dd { code { (p.id) } }
                dt { "Type" } dd { @if p.on_demand { "On demand" } @else { "Scheduled" } }
                dt { "Expires" } dd { (time(p.expiry)) }
            }
            p #soft-delete-period { "The point is soft-deleted: kept, but not restorable, for the vault's soft-delete period of "
                strong { (days) " days" } " (until about " (time(Some(until))) "). Until then Undelete brings it back; then it is purged for good." }
            @if v.resource_guard.is_some() {
                p.muted { "This vault is protected by a resource guard: deleting a point needs an approved DeleteRecoveryPoint request of yours." }
            }
            form method="post" action={ (url) "/points/" (url_encode(&p.id)) "/delete" } {
                (csrf_field(op))
                button.danger #delete-point-submit type="submit" { "Delete recovery point" }
                " " a.button href=(url) { "Cancel" }
            }
        }
    };
    with_status(item_subpage("Delete recovery point", op, v, i, body), error)
}

pub(super) async fn delete_form(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item, point)): Path<(String, String, String)>,
) -> Response {
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let p = or_return!(point_of(&state, &op, &v, &i, &point).await);
    delete_page(&op, &state, &v, &i, &p, None)
}

pub(super) async fn delete(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item, point)): Path<(String, String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let p = or_return!(point_of(&state, &op, &v, &i, &point).await);
    match state
        .delete_recovery_point(&op.principal, v.name.clone(), i.id.clone(), p.id.clone())
        .await
    {
        Ok(deleted) => redirect_done(
            &item_url(&v.name, &i),
            &format!(
                "Recovery point {} deleted: kept, not restorable, until {}; Undelete brings it back until then.",
                short_id(&deleted.id),
                deleted
                    .delete_at
                    .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default()
            ),
        ),
        Err(e) => delete_page(&op, &state, &v, &i, &p, Some(&e)),
    }
}

pub(super) async fn undelete(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item, point)): Path<(String, String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    match state
        .undelete_recovery_point(&op.principal, v.name.clone(), i.id.clone(), point)
        .await
    {
        Ok(back) => redirect_done(
            &item_url(&v.name, &i),
            &format!(
                "Recovery point {} undeleted: it is kept and restorable again.",
                short_id(&back.id)
            ),
        ),
        Err(e) => error_page(&op, &e),
    }
}
