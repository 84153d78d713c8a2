//! One resource guard's page, Azure Backup's "Resource guard" blade: its approvers,
//! approval validity and bound vaults, the critical operations it protects, its
//! requests with Approve and Reject for those who may decide them, the form that asks
//! for an approval, and (for `ResourceGuards.Manage`) changing its approvers or
//! validity and deleting it.
//!
//! The page is built here once; the handlers of `guards.rs` and `guard_requests.rs`
//! show it again with the service's refusal (`ApprovalRequired`, `NotAnApprover`,
//! `SelfApproval`...) as it is.

use std::sync::Arc;

use axum::response::Response;
use maud::{html, Markup};
use tresor_api::guards::{CriticalOperation, GuardRequest, ResourceGuard};
use tresor_api::users::User;
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError};

use crate::layout::{
    badge, csrf_field, empty, error_box, field_error, notice, page, time, with_status, Field,
};
use crate::permissions::{on_vault, Permission};
use crate::session::Operator;
use crate::urls::url_encode;

/// The most approvers a form may send before the service counts them (it allows 20):
/// a bound on what a hostile form makes the server carry.
const MAX_APPROVERS_SENT: usize = 64;

/// The link to a guard's page.
pub fn guard_url(name: &str) -> String {
    format!("/guards/{}", url_encode(name))
}

/// What each critical operation is, in the words of the page.
pub fn operation_text(op: CriticalOperation) -> &'static str {
    match op {
        CriticalOperation::ShortenSoftDelete => "A shorter soft-delete period",
        CriticalOperation::ReduceRetention => {
            "A policy change that makes an existing recovery point expire sooner"
        }
        CriticalOperation::DeleteBackupData => "Stop backup and delete backup data",
        CriticalOperation::DeleteRecoveryPoint => "Delete a recovery point",
        CriticalOperation::LowerImmutability => "Immutability from Enabled to Disabled",
        CriticalOperation::RemoveResourceGuard => {
            "Unbind the vault from this guard, or bind it to another"
        }
        CriticalOperation::DeleteVault => "Delete the vault",
        CriticalOperation::ChangeResourceGuard => {
            "Change this guard's approvers or validity, or delete it"
        }
    }
}

/// What a form on the page was sent with, to show again after a refusal.
#[derive(Debug, Default)]
pub struct Typed {
    pub vault: String,
    pub operation: String,
    pub reason: String,
}

/// The approvers a form sends: each checked `approver`, and the names typed in
/// `approver_names` (separated by commas or spaces), each once whatever its case.
pub fn approvers_sent(pairs: &[(String, String)]) -> Result<Vec<String>, ServiceError> {
    let mut out: Vec<String> = Vec::new();
    let typed = pairs
        .iter()
        .filter(|(k, _)| k == "approver_names")
        .flat_map(|(_, v)| v.split([',', ' ', '\n', '\r', '\t']));
    let checked = pairs
        .iter()
        .filter(|(k, _)| k == "approver")
        .map(|(_, v)| v.as_str());
    for name in checked
        .chain(typed)
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if out.len() == MAX_APPROVERS_SENT {
            return Err(ServiceError::new(
                ErrorCode::InvalidApprovers,
                format!("more than {MAX_APPROVERS_SENT} approvers were sent"),
                "name 1 to 20 existing users",
            ));
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(name)) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// The approval validity a form sends: `None` when left empty.
pub fn validity_sent(text: &str) -> Result<Option<u32>, ServiceError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u32>().map(Some).map_err(|_| {
        ServiceError::new(
            ErrorCode::ApprovalValidityOutOfRange,
            format!(
                "the approval validity {:?} is not a whole number of minutes",
                text.chars().take(20).collect::<String>()
            ),
            "give minutes from 5 to 10080 (a week); 60 is the default",
        )
    })
}

/// The approvers' inputs: a checkbox per user when the users can be listed (those
/// in `chosen` checked), else a text field of names.
pub fn approver_inputs(users: Option<&[User]>, chosen: &[String], error: Option<&str>) -> Markup {
    let is_chosen = |n: &str| chosen.iter().any(|c| c.eq_ignore_ascii_case(n));
    match users {
        Some(users) if !users.is_empty() => html! {
            fieldset #approvers {
                legend { "Approvers" }
                p.hint { "People who approve the critical operations. They should hold no Owner or Contributor credential themselves." }
                @for (n, u) in users.iter().enumerate() {
                    label.choice for={ "approver-" (n) } {
                        input type="checkbox" id={ "approver-" (n) } name="approver" value=(u.name) checked[is_chosen(&u.name)];
                        span { (u.name) }
                    }
                }
                p.error aria-live="polite" { @if let Some(m) = error { (m) } }
            }
        },
        _ => html! {
            (Field::new("approver_names", "Approvers", &chosen.join(", "),
                "User names, separated by commas: 1 to 20 existing users.", error).required().no_autocomplete())
        },
    }
}

/// A guard's page, with the service's refusal or a notice, and what was typed.
pub async fn guard_page(
    op: &Operator,
    state: &Arc<Service>,
    name: &str,
    error: Option<&ServiceError>,
    done: Option<&str>,
    typed: &Typed,
) -> Response {
    let g: ResourceGuard = or_page!(
        op,
        state.resource_guard(&op.principal, name.to_string()).await
    );
    let requests = or_page!(
        op,
        state.guard_requests(&op.principal, g.name.clone()).await
    );
    let decidable = state
        .decidable_guard_requests(&op.principal, g.name.clone())
        .await
        .unwrap_or_default();
    let manage = op.can.allows(Permission::ManageResourceGuard);
    // What the operator may ask for, vault by vault (the service checks again).
    let mut askable: Vec<(Option<String>, Vec<CriticalOperation>)> = Vec::new();
    for v in &g.vaults {
        let Ok(vault) = state.vault(&op.principal, v.clone()).await else {
            continue;
        };
        let can = on_vault(state, op, &vault);
        let ops: Vec<CriticalOperation> = CriticalOperation::ALL
            .iter()
            .copied()
            .filter(|o| o.on_vault() && o.permissions().iter().any(|p| can.allows(*p)))
            .collect();
        if !ops.is_empty() {
            askable.push((Some(vault.name), ops));
        }
    }
    if manage {
        askable.push((None, vec![CriticalOperation::ChangeResourceGuard]));
    }
    let users = if manage {
        state.users(&op.principal).await.ok()
    } else {
        None
    };
    let url = guard_url(&g.name);
    let body = html! {
        h1 { (g.name) }
        p.muted { "Resource guard · created " (time(Some(g.created))) }
        @if let Some(d) = done { (notice(d)) }
        @if let Some(e) = error { (error_box(e)) }
        div.cards {
            section.card aria-labelledby="guard-h" {
                h2 #guard-h { "Details" }
                dl.props #guard-details {
                    dt { "Approvers" } dd { ul.plain #guard-approvers { @for a in &g.approvers { li { (a) } } } }
                    dt { "Approval validity" } dd { (g.validity_minutes) " minutes" }
                    dt { "Vaults protected" }
                    dd { @if g.vaults.is_empty() { span.muted { "None yet: bind one under a vault's Backup configuration." } }
                        @else { ul.plain #guard-vaults { @for v in &g.vaults {
                            li { a href={ "/vaults/" (url_encode(v)) "/configuration" } { (v) } }
                        } } } }
                }
            }
            section.card aria-labelledby="ops-h" {
                h2 #ops-h { "Critical operations" }
                p.muted.small { "On a vault this guard protects, each needs an approved request of the one who does it, used once." }
                ul.plain #critical-operations {
                    @for o in CriticalOperation::ALL { li { strong { (o.name()) } br; span.small.muted { (operation_text(*o)) } } }
                }
            }
        }
        h2 #requests-h { "Requests" }
        @if requests.is_empty() {
            (empty("No request yet. Whoever needs a critical operation asks for an approval below.", None))
        } @else {
            table #requests aria-labelledby="requests-h" {
                thead { tr {
                    th scope="col" { "Operation" } th scope="col" { "Vault" } th scope="col" { "Asked by" }
                    th scope="col" { "Reason" } th scope="col" { "Status" } th scope="col" { "Decided by" }
                    th scope="col" { "Expires" } th scope="col" { span.sr-only { "Actions" } }
                } }
                tbody { @for r in &requests { (request_row(op, &url, r, decidable.contains(&r.id))) } }
            }
        }
        @if !askable.is_empty() {
            section.card #ask aria-labelledby="ask-h" {
                h2 #ask-h { "Ask for an approval" }
                p.muted { "One of the guard's approvers (not you) decides. An approval lets you do the operation once, within " (g.validity_minutes) " minutes." }
                form.stack #ask-approval method="post" action={ (url) "/requests" } novalidate {
                    (csrf_field(op))
                    div.field {
                        label for="vault" { "Vault" }
                        select #vault name="vault" {
                            @for (v, _) in &askable {
                                @let value = v.clone().unwrap_or_default();
                                option value=(value) selected[value == typed.vault] {
                                    @match v { Some(v) => (v), None => "(the guard itself)" }
                                }
                            }
                        }
                    }
                    div.field {
                        label for="operation" { "Critical operation" }
                        select #operation name="operation" {
                            @for o in CriticalOperation::ALL.iter().filter(|o| askable.iter().any(|(_, ops)| ops.contains(o))) {
                                option value=(o.name()) selected[o.name() == typed.operation] { (o.name()) " – " (operation_text(*o)) }
                            }
                        }
                        p.hint { "On the guard itself: ChangeResourceGuard only; on a vault: the others." }
                    }
                    (Field::new("reason", "Reason", &typed.reason, "Why, for the approver: one line, up to 500 characters.",
                        field_error(error, &[ErrorCode::InvalidRequestReason]).as_deref()).required().no_autocomplete())
                    div { button.primary #ask-submit type="submit" { "Ask for approval" } }
                }
            }
        }
        @if manage {
            section.card #change-guard aria-labelledby="change-h" {
                h2 #change-h { "Change approvers or validity" }
                p.muted { "A critical operation on the guard itself: it needs an approved ChangeResourceGuard request of yours." }
                form.stack #update-guard method="post" action={ (url) "/update" } novalidate {
                    (csrf_field(op))
                    (approver_inputs(users.as_deref(), &g.approvers, field_error(error, &[ErrorCode::InvalidApprovers]).as_deref()))
                    (Field::new("validity_minutes", "Approval validity (minutes)", &g.validity_minutes.to_string(),
                        "5 to 10080 (a week).", field_error(error, &[ErrorCode::ApprovalValidityOutOfRange]).as_deref())
                        .number(Some("10080"), None))
                    div { button.primary type="submit" { "Save" } }
                }
            }
            section.card.danger-zone #delete-guard aria-labelledby="delete-guard-h" {
                h2 #delete-guard-h { "Delete resource guard" }
                p.muted { "Only a guard no vault is bound to; it needs an approved ChangeResourceGuard request of yours." }
                form method="post" action={ (url) "/delete" } data-confirm={ "Delete resource guard " (g.name) "?" } {
                    (csrf_field(op))
                    button.danger type="submit" { "Delete resource guard" }
                }
            }
        }
    };
    with_status(
        page(&g.name, Some(op), &[("Resource guards", "/guards")], body),
        error,
    )
}

/// One request; Approve and Reject when the operator may decide it.
fn request_row(op: &Operator, url: &str, r: &GuardRequest, decide: bool) -> Markup {
    let status = r.status.name();
    html! {
        tr id={ "request-" (r.id) } data-request=(r.id) data-status=(status) {
            td { (r.operation.name()) }
            td { @match &r.vault { Some(v) => (v), None => span.muted { "(the guard)" } } }
            td { (r.requested_by) br; span.small.muted { (time(Some(r.created))) } }
            td.reason { (r.reason) }
            td { (badge(status)) @if let Some(u) = r.used { br; span.small.muted { "used " (time(Some(u))) } } }
            td { @match &r.decided_by { Some(d) => { (d) br; span.small.muted { (time(r.decided_at)) } }, None => span.muted { "–" } } }
            td { (time(Some(r.expires))) }
            td.actions {
                @if decide {
                    form.inline method="post" action={ (url) "/requests/" (url_encode(&r.id)) "/approve" } {
                        (csrf_field(op))
                        button.primary.approve type="submit" aria-label={ "Approve " (r.operation.name()) " of " (r.requested_by) } { "Approve" }
                    }
                    " "
                    form.inline method="post" action={ (url) "/requests/" (url_encode(&r.id)) "/reject" } {
                        (csrf_field(op))
                        button.danger.reject type="submit" aria-label={ "Reject " (r.operation.name()) " of " (r.requested_by) } { "Reject" }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn approvers_and_validity_are_read_and_bounded() {
        let got = approvers_sent(&pairs(&[
            ("approver", "sec"),
            ("approver_names", "bob, SEC  carol"),
        ]))
        .unwrap();
        assert_eq!(got, vec!["sec", "bob", "carol"]);
        assert!(approvers_sent(&pairs(&[("approver_names", " , ")]))
            .unwrap()
            .is_empty());
        let many = (0..=MAX_APPROVERS_SENT)
            .map(|n| format!("u{n}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            approvers_sent(&pairs(&[("approver_names", &many)]))
                .unwrap_err()
                .code,
            ErrorCode::InvalidApprovers
        );
        assert_eq!(validity_sent(" ").unwrap(), None);
        assert_eq!(validity_sent("90").unwrap(), Some(90));
        for bad in ["-1", "ten", "99999999999"] {
            assert_eq!(
                validity_sent(bad).unwrap_err().code,
                ErrorCode::ApprovalValidityOutOfRange
            );
        }
    }
}
