//! "Disks to back up" (Azure's selective disk backup): one checkbox per disk the
//! item's VM last reported, ticked unless the item leaves it out, posted to the
//! service's modify protection with the disks left unticked as `excludedDisks`.
//!
//! Only a libvirt domain can leave a disk out, so the form is shown only for one,
//! and only to those who may change the item's protection; the service checks the
//! names (reported, one disk left at least, a libvirt domain) and its refusals are
//! shown beside the disks.
//!
//! Also what the restore form and the item's page need to know of the item's VM:
//! whether it is a libvirt domain ([`reported_vm`], [`is_libvirt`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use maud::html;
use tresor_api::inventory::{VmInfo, VmProviderKind};
use tresor_api::items::{ModifyProtection, ProtectedItem};
use tresor_api::vaults::Vault;
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError, ServiceResult};

use crate::items::shared::{field_message, item_subpage, item_url, redirect_done, vault_and_item};
use crate::layout::{bytes, csrf_field, error_box, form_value, with_status};
use crate::permissions::{on_vault, Permission};
use crate::session::Operator;

/// What the item's host agent last reported of its VM (through the VM's page read,
/// so the caller sees it only where it may see the host).
pub(super) async fn reported_vm(
    state: &Arc<Service>,
    op: &Operator,
    i: &ProtectedItem,
) -> ServiceResult<VmInfo> {
    state
        .vm_page(&op.principal, i.agent_id.clone(), i.vm.clone())
        .await
        .map(|p| p.report.info)
}

/// Whether the item's VM is known to be a libvirt domain (a VM not reported, or not
/// visible to the caller, is not).
pub(super) fn is_libvirt(vm: &ServiceResult<VmInfo>) -> bool {
    vm.as_ref()
        .is_ok_and(|info| info.provider == VmProviderKind::Libvirt)
}

/// The form's fields: `disk` once for each disk shown, `back_up` for each ticked.
const SHOWN: &str = "disk";
const KEPT: &str = "back_up";

fn values<'a>(pairs: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a String> {
    pairs.iter().filter(move |(k, _)| k == key).map(|(_, v)| v)
}

fn disks_page(
    op: &Operator,
    v: &Vault,
    i: &ProtectedItem,
    vm: &ServiceResult<VmInfo>,
    may_change: bool,
    kept: Option<&[String]>,
    error: Option<&ServiceError>,
) -> Response {
    let url = item_url(&v.name, i);
    let disks_error = field_message(
        error,
        &[
            ErrorCode::InvalidExcludedDisks,
            ErrorCode::DiskExclusionNotSupported,
            ErrorCode::AgentOffline,
        ],
    );
    let ticked = |name: &str| match kept {
        Some(kept) => kept.iter().any(|k| k == name),
        None => !i.excluded_disks.iter().any(|d| d == name),
    };
    let body = html! {
        h1 { "Disks to back up" }
        p.muted { (i.vm_name) " on host " (i.host) " · vault " (v.name) }
        @if let Some(e) = error { (error_box(e)) }
        @match vm {
            Err(e) => {
                div.alert.warn #disks-unknown role="status" {
                    p { strong { "The disks of " (i.vm_name) " are not known." } " " (e.message) }
                    p { "What to do: " (e.recommendation) }
                }
            }
            Ok(info) if info.provider != VmProviderKind::Libvirt => {
                div.alert.info #disks-not-libvirt role="status" {
                    p { (i.vm_name) " is not a libvirt domain: every one of its disks is backed up. Only a libvirt domain's disks can be left out." }
                }
            }
            Ok(info) if !may_change => {
                p #disks-read-only { "Backed up: "
                    @for (n, d) in info.disks.iter().filter(|d| ticked(&d.name)).enumerate() {
                        @if n > 0 { ", " } code { (d.name) }
                    }
                    ". Changing which disks are backed up needs the ModifyProtection permission on this vault."
                }
            }
            Ok(info) => {
                form.stack.card #disks-form method="post" action={ (url) "/disks" } {
                    (csrf_field(op))
                    p { "The next backup on reads only the ticked disks. Points already taken keep the disks they have. At least one disk is backed up." }
                    @for d in &info.disks { input type="hidden" name=(SHOWN) value=(d.name); }
                    fieldset aria-describedby="disks-error" {
                        legend { "Back up this disk" }
                        div.choices {
                            @for d in &info.disks {
                                label.choice {
                                    input type="checkbox" name=(KEPT) value=(d.name) checked[ticked(&d.name)]
                                        aria-invalid=[disks_error.as_ref().map(|_| "true")];
                                    span { strong { code { (d.name) } } br;
                                        span.small.muted { (d.image) " · " (d.format)
                                            @if d.virtual_size > 0 { " · " (bytes(d.virtual_size)) } } }
                                }
                            }
                        }
                        p.error #disks-error aria-live="polite" { @if let Some(m) = &disks_error { (m) } }
                    }
                    @let gone: Vec<&String> = i.excluded_disks.iter()
                        .filter(|x| !info.disks.iter().any(|d| &d.name == *x)).collect();
                    @if !gone.is_empty() {
                        p.small.muted #disks-gone { "Left out but no longer reported by the VM: "
                            @for (n, d) in gone.iter().enumerate() { @if n > 0 { ", " } code { (d) } }
                            ". Saving forgets them." }
                    }
                    div { button.primary #disks-submit type="submit" { "Save" } " " a.button href=(url) { "Cancel" } }
                }
            }
        }
    };
    with_status(item_subpage("Disks to back up", op, v, i, body), error)
}

pub(super) async fn disks_form(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
) -> Response {
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let vm = reported_vm(&state, &op, &i).await;
    let may_change = on_vault(&state, &op, &v).allows(Permission::ModifyProtection);
    disks_page(&op, &v, &i, &vm, may_change, None, None)
}

pub(super) async fn change_disks(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = op.csrf_rejection(form_value(&pairs, "csrf")) {
        return r;
    }
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let kept: Vec<String> = values(&pairs, KEPT).cloned().collect();
    // The disks shown and not ticked; the service checks each name.
    let excluded: Vec<String> = values(&pairs, SHOWN)
        .filter(|d| !kept.contains(d))
        .cloned()
        .collect();
    let req = ModifyProtection {
        policy: None,
        excluded_disks: Some(excluded),
    };
    match state
        .modify_protection(&op.principal, v.name.clone(), i.id.clone(), req)
        .await
    {
        Ok(changed) => redirect_done(
            &item_url(&v.name, &changed),
            &if changed.excluded_disks.is_empty() {
                format!("Every disk of {} is backed up.", changed.vm_name)
            } else {
                format!(
                    "{} is backed up without {}.",
                    changed.vm_name,
                    changed.excluded_disks.join(", ")
                )
            },
        ),
        Err(e) => {
            let vm = reported_vm(&state, &op, &i).await;
            let may_change = on_vault(&state, &op, &v).allows(Permission::ModifyProtection);
            disks_page(&op, &v, &i, &vm, may_change, Some(&kept), Some(&e))
        }
    }
}
