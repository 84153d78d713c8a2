//! "Stop backup": no more backups of a VM, keeping its recovery points or deleting
//! them (after the operator types the VM's name).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use maud::html;
use serde::Deserialize;
use tresor_api::items::{Disable, ProtectedItem};
use tresor_api::vaults::Vault;
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError};

use crate::items::shared::{
    field_message, form_error, item_subpage, item_url, redirect_done, vault_and_item,
};
use crate::layout::{badge, csrf_field, error_box, wire_name, with_status, Field};
use crate::permissions::{on_vault, Permission, PermissionSet};
use crate::session::Operator;
use crate::urls::url_encode;

#[derive(Debug, Default, Deserialize)]
pub struct StopForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    data: String,
    #[serde(default)]
    confirm_name: String,
}

fn stop_page(
    op: &Operator,
    can: &PermissionSet,
    v: &Vault,
    i: &ProtectedItem,
    f: &StopForm,
    error: Option<&ServiceError>,
) -> Response {
    let url = item_url(&v.name, i);
    let may_delete = can.allows(Permission::DeleteBackupData);
    let may_retain = can.allows(Permission::StopProtection);
    // With only one of the two choices, it is the one chosen.
    let delete = (f.data == "delete" || !may_retain) && may_delete;
    let confirm_error = field_message(error, &[ErrorCode::ConfirmationMismatch]);
    let body = html! {
        h1 { "Stop backup" }
        p.muted { (i.vm_name) " on host " (i.host) " · vault " (v.name) " · " (badge(&wire_name(&i.protection_state))) }
        @if let Some(e) = error { (error_box(e)) }
        form.stack.card.stop #stop-backup method="post" action={ (url) "/stop" } novalidate
            data-confirm={ "Stop backing up " (i.vm_name) "?" } {
            (csrf_field(op))
            fieldset {
                legend { "Backup data" }
                div.choices {
                    @if may_retain { label.choice for="data-retain" {
                        input #data-retain type="radio" name="data" value="retain" checked[!delete];
                        span { strong { "Retain backup data" } br;
                            span.small.muted { "No more backups. The recovery points are kept, untouched by retention, and can still be restored." } }
                    } }
                    @if may_delete { label.choice for="data-delete" {
                        input #data-delete type="radio" name="data" value="delete" checked[delete];
                        span { strong { "Delete backup data" } br;
                            span.small.muted { "No more backups, and every recovery point of this VM is deleted: kept soft-deleted for the vault's soft-delete period (Undelete brings them back), then purged." } }
                    } }
                }
            }
            @if may_delete { (Field::new("confirm_name", html! { "To delete the backup data, type the VM name: " code { (i.vm_name) } }, &f.confirm_name,
                "Only needed for Delete backup data.",
                confirm_error.as_deref()).class("for-delete").no_autocomplete()) }
            div { button.danger type="submit" { "Stop backup" } " " a.button href=(url) { "Cancel" } }
        }
    };
    with_status(item_subpage("Stop backup", op, v, i, body), error)
}

pub(super) async fn stop_form(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
) -> Response {
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let can = on_vault(&state, &op, &v);
    stop_page(&op, &can, &v, &i, &StopForm::default(), None)
}

pub(super) async fn stop(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
    Form(f): Form<StopForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let can = on_vault(&state, &op, &v);
    let delete = f.data == "delete";
    if delete && f.confirm_name.trim() != i.vm_name {
        let e = form_error(
            ErrorCode::ConfirmationMismatch,
            format!(
                "The name typed does not match {}, so nothing was deleted.",
                i.vm_name
            ),
            &format!(
                "Type the VM's name exactly ({}) to delete its backup data.",
                i.vm_name
            ),
        );
        return stop_page(&op, &can, &v, &i, &f, Some(&e));
    }
    let req = Disable {
        delete_backup_data: delete,
    };
    match state
        .disable_protection(&op.principal, v.name.clone(), i.id.clone(), req)
        .await
    {
        Ok(job) => {
            let text = if delete {
                format!(
                    "Backup of {} stopped and its backup data deleted ({} recovery points).",
                    i.vm_name,
                    job.result["deletedRecoveryPoints"].as_u64().unwrap_or(0)
                )
            } else {
                format!(
                    "Backup of {} stopped. Its recovery points are kept and can be restored.",
                    i.vm_name
                )
            };
            redirect_done(&format!("/vaults/{}/items", url_encode(&v.name)), &text)
        }
        Err(e) => stop_page(&op, &can, &v, &i, &f, Some(&e)),
    }
}
