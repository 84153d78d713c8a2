//! A vault's backup policies: the list, one policy's details, and deleting one.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use tresor_api::policies::Policy;
use tresor_domain::Frequency;
use tresor_service::{Service, ServiceError};

use crate::layout::{
    csrf_field, empty, error_box, notice, time, vault_page, vault_tabs, with_status, Done,
};
use crate::permissions::{on_vault, Permission, PermissionSet};
use crate::policies::summary::{
    day_name, plural, retention_summary, retention_tiers, schedule_summary,
};
use crate::session::Operator;
use crate::urls::url_encode;
use crate::vaults::{error_page, vault_of};

/// A page under the vault's policy list (its details, create, edit): the trail
/// ends in "Backup policies".
pub(super) fn policy_subpage(op: &Operator, vault: &str, title: &str, body: Markup) -> Response {
    let list = format!("/vaults/{vault}/policies");
    vault_page(title, op, vault, &[("Backup policies", &list)], body)
}

pub(super) async fn list(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(vault): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    let policies = or_page!(&op, state.policies(&op.principal, v.name.clone()).await);
    let can = on_vault(&state, &op, &v);
    let may_manage = can.allows(Permission::ManagePolicies);
    let new_url = format!("/vaults/{}/policies/new", v.name);
    let body = html! {
        h1 { (v.name) }
        @if let Some(d) = &q.done { (notice(d)) }
        (vault_tabs(&v.name, "Backup policies", &can))
        div.toolbar {
            span.grow.muted { (policies.len()) @if policies.len() == 1 { " backup policy" } @else { " backup policies" } }
            @if may_manage { a.button.primary #add-policy href=(new_url) { "+ Add" } }
        }
        @if policies.is_empty() {
            (empty("No backup policy yet. A policy says when VMs are backed up and how long their points are kept.",
                may_manage.then_some(("+ Add a policy", new_url.as_str()))))
        } @else {
            table #policies {
                caption.sr-only { "Backup policies of " (v.name) }
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Schedule" }
                    th scope="col" { "Retention" }
                    th scope="col" { "Instant restore" }
                    th scope="col" { "Protected items" }
                } }
                tbody {
                    @for p in &policies {
                        tr data-policy=(p.policy.name) {
                            td { a href={ "/vaults/" (v.name) "/policies/" (p.policy.name) } { (p.policy.name) } }
                            td { (schedule_summary(&p.policy)) }
                            td { (retention_summary(&p.policy)) }
                            td { (plural(p.policy.instant_restore_days, "day")) }
                            td { (p.protected_items) }
                        }
                    }
                }
            }
        }
    };
    vault_page("Backup policies", &op, &v.name, &[], body)
}

fn details_page(
    op: &Operator,
    can: &PermissionSet,
    state: &Service,
    vault: &str,
    p: &Policy,
    error: Option<&ServiceError>,
    done: Option<&str>,
) -> Response {
    let pol = &p.policy;
    let next = pol
        .schedule
        .validate()
        .is_ok()
        .then(|| pol.schedule.next_after(state.now()).ok())
        .flatten();
    let base = format!("/vaults/{vault}/policies/{}", pol.name);
    let body = html! {
        h1 { (pol.name) }
        p.muted { "Backup policy · vault " (vault) }
        (vault_tabs(vault, "Backup policies", can))
        @if let Some(e) = error { (error_box(e)) }
        @if let Some(d) = done { (notice(d)) }
        @if can.allows(Permission::ManagePolicies) {
            div.toolbar {
                span.grow {}
                a.button #edit-policy href={ (base) "/edit" } { "Edit" }
                form #delete-policy-form method="post" action={ (base) "/delete" }
                    data-confirm={ "Delete backup policy " (pol.name) "? This cannot be undone." } {
                    (csrf_field(op))
                    button.danger type="submit" { "Delete policy" }
                }
            }
        }
        div.cards {
            section.card.policy-card aria-labelledby="schedule-h" {
                h2 #schedule-h { "Backup schedule" }
                dl.props #policy-schedule {
                    dt { "Frequency" }
                    dd { @match &pol.schedule.frequency {
                        Frequency::Daily => "Daily",
                        Frequency::Weekly { days } => { "Weekly on " (days.iter().map(|d| day_name(*d)).collect::<Vec<_>>().join(", ")) }
                    } }
                    dt { "Time" } dd { (pol.schedule.time.strftime("%H:%M")) }
                    dt { "Time zone" } dd { (pol.schedule.time_zone) }
                    dt { "Next backup" } dd { (time(next)) }
                    dt { "Instant restore" } dd { "Snapshots kept " (plural(pol.instant_restore_days, "day")) }
                }
            }
            section.card.policy-card aria-labelledby="usage-h" {
                h2 #usage-h { "Protected items" }
                p.stat #policy-items { (p.protected_items) }
                p.muted { "VMs protected with this policy. A change applies to all of them, also to the expiry of their existing scheduled points." }
                a href={ "/vaults/" (vault) "/items" } { "Backup items" }
            }
        }
        section.card.policy-card aria-labelledby="retention-h" {
            h2 #retention-h { "Retention range" }
            table #policy-retention {
                caption.sr-only { "Retention tiers" }
                thead { tr { th scope="col" { "Tier" } th scope="col" { "Which points" } th scope="col" { "Kept for" } } }
                tbody {
                    @for (tier, which, kept) in retention_tiers(pol) {
                        tr data-tier=(tier) { td { (tier) } td { (which) } td { (kept) } }
                    }
                }
            }
        }
    };
    with_status(policy_subpage(op, vault, pol.name.as_str(), body), error)
}

pub(super) async fn details(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, name)): Path<(String, String)>,
    Query(q): Query<Done>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    let p = or_page!(&op, state.policy(&op.principal, v.name.clone(), name).await);
    let can = on_vault(&state, &op, &v);
    details_page(&op, &can, &state, &v.name, &p, None, q.done.as_deref())
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub(super) async fn delete(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, name)): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    match state
        .delete_policy(&op.principal, vault.clone(), name.clone())
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/vaults/{vault}/policies?done={}",
            url_encode(&format!("Backup policy {name} deleted."))
        ))
        .into_response(),
        Err(e) => {
            let shown = match vault_of(&state, &op, &vault).await {
                Ok(v) => state
                    .policy(&op.principal, v.name.clone(), name)
                    .await
                    .map(|p| (on_vault(&state, &op, &v), v, p)),
                Err(_) => return error_page(&op, &e),
            };
            match shown {
                Ok((can, v, p)) => details_page(&op, &can, &state, &v.name, &p, Some(&e), None),
                Err(_) => error_page(&op, &e),
            }
        }
    }
}
