//! "Change policy" and "Resume backup" (Azure's modify and resume protection): the
//! item under another backup policy, or a stopped item protected again, under the
//! policy chosen (`Items.ModifyProtection`). Its scheduled recovery points then
//! expire as that policy says; the service refuses a change that would make one
//! expire sooner in an immutable vault (`ImmutableVault`) and, on a guarded vault,
//! without an approval (`ApprovalRequired`): shown here as they are.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use maud::html;
use serde::Deserialize;
use tresor_api::items::{ModifyProtection, ProtectedItem, ProtectionState};
use tresor_api::policies::Policy;
use tresor_api::vaults::Vault;
use tresor_service::{Service, ServiceError};

use crate::items::shared::{item_subpage, item_url, redirect_done, vault_and_item};
use crate::layout::{badge, csrf_field, error_box, wire_name, with_status};
use crate::policies::summary::{retention_summary, schedule_summary};
use crate::session::Operator;

#[derive(Debug, Default, Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    policy: String,
}

/// "Resume backup" for a stopped item, "Change policy" for the others.
fn title_of(i: &ProtectedItem) -> &'static str {
    if i.protection_state == ProtectionState::ProtectionStopped {
        "Resume backup"
    } else {
        "Change policy"
    }
}

fn policy_page(
    op: &Operator,
    v: &Vault,
    i: &ProtectedItem,
    policies: &[Policy],
    chosen: &str,
    error: Option<&ServiceError>,
) -> Response {
    let url = item_url(&v.name, i);
    let title = title_of(i);
    let chosen = if chosen.is_empty() {
        i.policy.as_deref().unwrap_or("")
    } else {
        chosen
    };
    let body = html! {
        h1 { (title) }
        p.muted { (i.vm_name) " on host " (i.host) " · vault " (v.name) " · " (badge(&wire_name(&i.protection_state))) }
        @if let Some(e) = error { (error_box(e)) }
        form.stack.card #change-policy method="post" action={ (url) "/policy" } {
            (csrf_field(op))
            @if title == "Resume backup" {
                p { "Backups start again on the chosen policy's schedule. Its retention then applies to the recovery points already kept." }
            } @else {
                p { "The scheduled recovery points already kept are re-dated to the chosen policy's retention. Shorter retention on a vault with a resource guard needs an approval; in an immutable vault it is refused." }
            }
            fieldset {
                legend { "Backup policy" }
                div.choices {
                    @for p in policies {
                        @let name = p.policy.name.to_string();
                        label.choice {
                            input type="radio" name="policy" value=(name) checked[name.eq_ignore_ascii_case(chosen)];
                            span { strong { (name) } br;
                                span.small.muted { (schedule_summary(&p.policy)) " · " (retention_summary(&p.policy)) } }
                        }
                    }
                }
            }
            div { button.primary #policy-submit type="submit" { (title) } " " a.button href=(url) { "Cancel" } }
        }
    };
    with_status(item_subpage(title, op, v, i, body), error)
}

pub(super) async fn policy_form(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
) -> Response {
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let policies = or_page!(&op, state.policies(&op.principal, v.name.clone()).await);
    policy_page(&op, &v, &i, &policies, "", None)
}

pub(super) async fn change_policy(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
    Form(f): Form<PolicyForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let req = ModifyProtection {
        policy: Some(f.policy.trim().to_string()),
        excluded_disks: None,
    };
    match state
        .modify_protection(&op.principal, v.name.clone(), i.id.clone(), req)
        .await
    {
        Ok(changed) => redirect_done(
            &item_url(&v.name, &changed),
            &format!(
                "{} is protected under {}.",
                changed.vm_name,
                changed.policy.as_deref().unwrap_or("the policy")
            ),
        ),
        Err(e) => {
            let policies = state
                .policies(&op.principal, v.name.clone())
                .await
                .unwrap_or_default();
            policy_page(&op, &v, &i, &policies, &f.policy, Some(&e))
        }
    }
}
