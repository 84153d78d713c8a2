//! Restoring a recovery point: as a new VM, as disks in a folder on the host, or
//! over the original VM's disks; from the primary region or, with cross-region
//! restore, from the secondary one. A libvirt domain's point restored as a new VM
//! may put its disks into a libvirt storage pool and start the new domain.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Form;
use maud::html;
use serde::Deserialize;
use tresor_api::items::{ProtectedItem, RecoveryPoint, RestoreRequest};
use tresor_api::vaults::Vault;
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError, ServiceResult};

use crate::items::disks::{is_libvirt, reported_vm};
use crate::items::shared::{
    field_message, form_error, item_subpage, item_url, points_of, redirect_done, short_id,
    vault_and_item,
};
use crate::layout::{csrf_field, empty, error_box, spaced, with_status, Field};
use crate::session::Operator;
use crate::urls::url_encode;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreQuery {
    #[serde(default)]
    point: Option<String>,
    #[serde(default)]
    use_secondary_region: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct RestoreForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    point: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    target_path: String,
    #[serde(default)]
    new_name: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    target_pool: String,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    confirm_replace: Option<String>,
    #[serde(default)]
    use_secondary_region: Option<String>,
}

impl RestoreForm {
    fn secondary(&self) -> bool {
        self.use_secondary_region.as_deref() == Some("true")
    }
}

const MODES: [(&str, &str, &str); 3] = [
    (
        "CreateVm",
        "Create new virtual machine",
        "The disks and a definition of a new VM (vm.json, start-vm.sh) in a folder on the host. The original VM is not touched.",
    ),
    (
        "RestoreDisks",
        "Restore disks",
        "Only the disks, as image files in a folder on the host, to attach or inspect.",
    ),
    (
        "ReplaceDisks",
        "Replace existing",
        "Writes the point's disks over the original VM's disks.",
    ),
];

fn mode_label(mode: &str) -> &str {
    MODES
        .iter()
        .find(|m| m.0 == mode)
        .map(|m| m.1)
        .unwrap_or(mode)
}

/// The message of `error` if it is a refused restore option naming `option` (the
/// service's messages name the request's fields: "targetPool is ...").
fn option_message(error: Option<&ServiceError>, option: &str) -> Option<String> {
    field_message(error, &[ErrorCode::InvalidRestoreOption]).filter(|_| {
        error.is_some_and(|e| {
            e.message
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == option)
        })
    })
}

/// `libvirt`: the item's VM is a libvirt domain, so a new VM may go into a storage
/// pool and be started.
fn restore_page(
    op: &Operator,
    v: &Vault,
    i: &ProtectedItem,
    points: &ServiceResult<Vec<RecoveryPoint>>,
    f: &RestoreForm,
    libvirt: bool,
    error: Option<&ServiceError>,
) -> Response {
    let secondary = f.secondary();
    let url = item_url(&v.name, i);
    let mode = if f.mode.is_empty() {
        "CreateVm"
    } else {
        f.mode.as_str()
    };
    let point_error = field_message(
        error,
        &[
            ErrorCode::NotFound,
            ErrorCode::RecoveryPointNotInSecondaryRegion,
            ErrorCode::RecoveryPointRequired,
        ],
    );
    let mode_error = field_message(error, &[ErrorCode::InvalidRestoreMode]);
    let path_error = field_message(error, &[ErrorCode::TargetPathRequired])
        .or_else(|| option_message(error, "targetPath"));
    let pool_error = option_message(error, "targetPool");
    let start_error = option_message(error, "start");
    let format_error = field_message(error, &[ErrorCode::InvalidFormat]);
    let confirm_error = field_message(error, &[ErrorCode::ConfirmationRequired]);
    let new_name = if f.new_name.is_empty() && f.mode.is_empty() {
        format!("{}-restored", i.vm_name)
    } else {
        f.new_name.clone()
    };
    let secondary_location = v
        .replication
        .secondary_location
        .as_deref()
        .unwrap_or("the paired location");
    let body = html! {
        h1 { "Restore" }
        p.muted { (i.vm_name) " on host " (i.host) " · vault " (v.name) }
        @if let Some(e) = error { (error_box(e)) }
        @if v.cross_region_restore {
            nav.regions aria-label="Region" {
                @if secondary {
                    a href={ (url) "/restore" } { "Primary region" }
                    a href={ (url) "/restore?useSecondaryRegion=true" } aria-current="page" { "Secondary region" }
                } @else {
                    a href={ (url) "/restore" } aria-current="page" { "Primary region" }
                    a href={ (url) "/restore?useSecondaryRegion=true" } { "Secondary region" }
                }
            }
        }
        @if secondary {
            div.alert.info role="status" #restore-region {
                "Restoring from the secondary region (" (secondary_location) "): cross-region restore."
            }
        }
        @match points {
            Err(e) => { @if error.is_none() { (error_box(e)) } }
            Ok(points) if points.is_empty() => {
                @if secondary {
                    (empty("No recovery point of this VM has reached the secondary region yet.", None))
                } @else {
                    (empty("This VM has no recovery point yet. Back it up first.", Some(("Back up now", &format!("{url}/backup")))))
                }
            }
            Ok(points) => {
                form.stack.card.restore #restore method="post" action={ (url) "/restore" } novalidate {
                    (csrf_field(op))
                    @if secondary { input type="hidden" name="use_secondary_region" value="true"; }
                    div.field {
                        label for="point" { "Restore point" }
                        select #point name="point" aria-describedby="point-hint point-error"
                            aria-invalid=[point_error.as_ref().map(|_| "true")] {
                            @for p in points {
                                option value=(p.id) selected[p.id == f.point] {
                                    (p.time.strftime("%Y-%m-%d %H:%M UTC").to_string())
                                    " · " (spaced(&p.consistency))
                                    @if p.on_demand { " · on demand" }
                                    @if p.deleted_from_primary.is_some() { " · deleted from primary" }
                                }
                            }
                        }
                        p.hint #point-hint { "Newest first." }
                        p.error #point-error aria-live="polite" { @if let Some(m) = &point_error { (m) } }
                    }
                    fieldset aria-describedby="mode-error" {
                        legend { "Restore type" }
                        div.choices {
                            @for (value, label, hint) in MODES {
                                label.choice for={ "mode-" (value) } {
                                    input id={ "mode-" (value) } type="radio" name="mode" value=(value) checked[mode == value];
                                    span { strong { (label) } br; span.small.muted { (hint) } }
                                }
                            }
                        }
                        p.error #mode-error aria-live="polite" { @if let Some(m) = &mode_error { (m) } }
                    }
                    (Field::new("target_path", "Target folder on the host", &f.target_path,
                        html! { "An absolute path on " (i.host) " (for Create new virtual machine and Restore disks)." },
                        path_error.as_deref()).class("for-create for-disks").no_autocomplete().placeholder("/srv/restore"))
                    div.field.for-create {
                        label for="new_name" { "New VM name" }
                        input #new_name type="text" name="new_name" value=(new_name) autocomplete="off"
                            aria-describedby="new_name-hint";
                        p.hint #new_name-hint { "For Create new virtual machine. Empty: " (i.vm_name) "-restored." }
                    }
                    @if libvirt {
                        (Field::new("target_pool", "Storage pool", &f.target_pool,
                            "For Create new virtual machine on a libvirt host: the disks go into this pool's folder instead of the target folder; empty: the target folder.",
                            pool_error.as_deref()).class("for-create").no_autocomplete().placeholder("default"))
                        div.field.for-create {
                            label.choice for="start" {
                                input #start type="checkbox" name="start" value="yes"
                                    checked[f.start.is_some()]
                                    aria-describedby="start-error"
                                    aria-invalid=[start_error.as_ref().map(|_| "true")];
                                span { "Start the new VM" }
                            }
                            p.error #start-error aria-live="polite" { @if let Some(m) = &start_error { (m) } }
                        }
                    }
                    div.field.for-create.for-disks {
                        label for="format" { "Disk format" }
                        select #format name="format" aria-describedby="format-hint format-error"
                            aria-invalid=[format_error.as_ref().map(|_| "true")] {
                            option value="" selected[f.format.is_empty() || f.format == "original"] { "As the original disks" }
                            option value="qcow2" selected[f.format == "qcow2"] { "qcow2" }
                            option value="raw" selected[f.format == "raw"] { "raw" }
                        }
                        p.hint #format-hint { "The format of the restored image files." }
                        p.error #format-error aria-live="polite" { @if let Some(m) = &format_error { (m) } }
                    }
                    div.for-replace.replace-warning {
                        div.alert.warn #replace-warning {
                            p { strong { "Replace existing overwrites the disks of " (i.vm_name) "." } }
                            p { "The VM must be stopped. Everything written to its disks since the recovery point is lost." }
                        }
                        div.field {
                            label.choice for="confirm_replace" {
                                input #confirm_replace type="checkbox" name="confirm_replace" value="yes"
                                    checked[f.confirm_replace.is_some()]
                                    aria-describedby="confirm_replace-error"
                                    aria-invalid=[confirm_error.as_ref().map(|_| "true")];
                                span { "I understand that the disks of " (i.vm_name) " will be overwritten." }
                            }
                            p.error #confirm_replace-error aria-live="polite" { @if let Some(m) = &confirm_error { (m) } }
                        }
                    }
                    div { button.primary type="submit" { "Restore" } " " a.button href=(url) { "Cancel" } }
                }
            }
        }
    };
    with_status(item_subpage("Restore", op, v, i, body), error)
}

pub(super) async fn restore_form(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
    Query(q): Query<RestoreQuery>,
) -> Response {
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let points = points_of(&state, &op, &v.name, &i.id, q.use_secondary_region).await;
    let libvirt = is_libvirt(&reported_vm(&state, &op, &i).await);
    let f = RestoreForm {
        point: q.point.unwrap_or_default(),
        use_secondary_region: q.use_secondary_region.then(|| "true".to_string()),
        ..RestoreForm::default()
    };
    let r = restore_page(&op, &v, &i, &points, &f, libvirt, None);
    match &points {
        Err(e) => with_status(r, Some(e)),
        Ok(_) => r,
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

pub(super) async fn restore(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
    Form(f): Form<RestoreForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let secondary = f.secondary();
    let libvirt = is_libvirt(&reported_vm(&state, &op, &i).await);
    let again = |e: ServiceError| {
        let state = state.clone();
        let (op, v, i) = (&op, &v, &i);
        let f = &f;
        async move {
            let points = points_of(&state, op, &v.name, &i.id, secondary).await;
            restore_page(op, v, i, &points, f, libvirt, Some(&e))
        }
    };
    if f.point.trim().is_empty() {
        return again(form_error(
            ErrorCode::RecoveryPointRequired,
            "Choose the recovery point to restore.".into(),
            "Pick one in the list Restore point.",
        ))
        .await;
    }
    if f.mode == "ReplaceDisks" && f.confirm_replace.is_none() {
        return again(form_error(
            ErrorCode::ConfirmationRequired,
            format!(
                "Replacing the disks of {} needs your confirmation.",
                i.vm_name
            ),
            "Stop the VM, then tick the box to confirm that its disks will be overwritten.",
        ))
        .await;
    }
    let to_folder = matches!(f.mode.as_str(), "CreateVm" | "RestoreDisks");
    let create_vm = f.mode == "CreateVm";
    let target_pool = if create_vm {
        non_empty(&f.target_pool)
    } else {
        None
    };
    let req = RestoreRequest {
        recovery_point: f.point.trim().to_string(),
        mode: f.mode.clone(),
        // A pool takes the folder's place (the service refuses both).
        target_path: if to_folder && target_pool.is_none() {
            non_empty(&f.target_path)
        } else {
            None
        },
        format: if to_folder {
            non_empty(&f.format).filter(|x| x != "original")
        } else {
            None
        },
        new_name: if create_vm {
            non_empty(&f.new_name)
        } else {
            None
        },
        target_pool,
        start: create_vm && f.start.is_some(),
        use_secondary_region: secondary,
    };
    match state
        .restore(&op.principal, v.name.clone(), i.id.clone(), req)
        .await
    {
        Ok(job) => redirect_done(
            &format!("/vaults/{}/jobs", url_encode(&v.name)),
            &format!(
                "Restore of {} started: {}{} (job {}).",
                i.vm_name,
                mode_label(&f.mode),
                if secondary {
                    ", from the secondary region"
                } else {
                    ""
                },
                short_id(&job.id)
            ),
        ),
        Err(e) => again(e).await,
    }
}
