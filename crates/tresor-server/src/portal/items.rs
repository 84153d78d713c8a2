//! Backup items: the protected VMs of a vault, one VM's details and recovery points
//! (in the primary region, and in the secondary one with cross-region restore),
//! "Back up now" with a retention date, restore (new VM, disks, or over the original)
//! and "Stop backup" (keeping or deleting the data).
//!
//! Every page reads through the API's handlers and every form builds the API's
//! request and calls its handler, so the portal obeys exactly the API's rules.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{
    badge, bytes, csrf_field, empty, error_box, notice, spaced, time, url_encode, vault_page,
    vault_tabs, with_status, Done, Field,
};
use super::session::Operator;
use super::vaults::{error_page, items_of, vault_of};
use crate::api;
use crate::api::items::RegionQuery;
use crate::auth::Admin;
use crate::dto::{ItemDto, PointDto, VaultDto};
use crate::error::{ApiError, ApiResult};
use crate::jobs::parse_state;
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/vaults/{vault}/items", get(list))
        .route("/vaults/{vault}/items/{item}", get(details))
        .route(
            "/vaults/{vault}/items/{item}/backup",
            get(backup_form).post(backup),
        )
        .route(
            "/vaults/{vault}/items/{item}/restore",
            get(restore_form).post(restore),
        )
        .route(
            "/vaults/{vault}/items/{item}/stop",
            get(stop_form).post(stop),
        )
}

/// The link to an item's page (by id: names need not be unique across hosts).
fn item_url(vault: &str, item: &ItemDto) -> String {
    format!(
        "/vaults/{}/items/{}",
        url_encode(vault),
        url_encode(&item.id)
    )
}

/// The vault and the item, through the API (the item with its replication status),
/// or the page for the first error.
///
/// Every page about one item first needs its vault, then the item; this does both,
/// so a handler starts with one line.
async fn vault_and_item(
    state: &Arc<AppState>,
    op: &Operator,
    vault: &str,
    item: &str,
) -> Result<(VaultDto, ItemDto), Response> {
    let v = vault_of(state, op, vault).await?;
    let i = api::items::show(
        Admin,
        State(state.clone()),
        Path((v.name.clone(), item.to_string())),
    )
    .await
    .map_err(|e| error_page(op, &e))?
    .0;
    Ok((v, i))
}

/// An item's recovery points in one region, newest first, through the API.
async fn points_of(
    state: &Arc<AppState>,
    vault: &str,
    item: &str,
    secondary: bool,
) -> ApiResult<Vec<PointDto>> {
    Ok(api::items::points(
        Admin,
        State(state.clone()),
        Path((vault.to_string(), item.to_string())),
        Query(RegionQuery {
            use_secondary_region: secondary,
        }),
    )
    .await?
    .0)
}

/// A page about one item (back up now, restore, stop backup): its trail runs
/// through the vault's item list to the item.
fn item_subpage(title: &str, op: &Operator, v: &VaultDto, i: &ItemDto, body: Markup) -> Response {
    let vurl = format!("/vaults/{}", url_encode(&v.name));
    let url = item_url(&v.name, i);
    vault_page(
        title,
        op,
        &v.name,
        &[
            ("Backup items", &format!("{vurl}/items")),
            (&i.vm_name, &url),
        ],
        body,
    )
}

/// The message of `error` if it concerns one of `codes` (shown next to a field).
fn field_message(error: Option<&ApiError>, codes: &[&str]) -> Option<String> {
    let e = error?;
    codes
        .contains(&e.code.as_str())
        .then(|| format!("{} {}", e.message, e.recommendation))
}

/// A form error of the portal itself (a confirmation not given, a date not parsed).
fn form_error(code: &str, message: String, recommendation: &str) -> ApiError {
    ApiError::bad_request(code, message, recommendation)
}

fn redirect_done(path: &str, text: &str) -> Response {
    Redirect::to(&format!("{path}?done={}", url_encode(text))).into_response()
}

// ---------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------

async fn list(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    let items = match items_of(&state, &v.name).await {
        Ok(i) => i,
        Err(e) => return error_page(&op, &e),
    };
    let mut rows = Vec::new();
    for i in &items {
        let newest = points_of(&state, &v.name, &i.id, false)
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
                            td { (badge(&i.protection_state)) }
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

// ---------------------------------------------------------------------------
// One item
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailsQuery {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    use_secondary_region: bool,
}

async fn details(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
    Query(q): Query<DetailsQuery>,
) -> Response {
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let secondary = q.use_secondary_region;
    let primary_points = points_of(&state, &v.name, &i.id, false).await;
    let points = if secondary {
        points_of(&state, &v.name, &i.id, true).await
    } else {
        primary_points.clone()
    };
    let newest = primary_points
        .as_ref()
        .ok()
        .and_then(|p| p.first().map(|p| p.time));
    let vurl = format!("/vaults/{}", url_encode(&v.name));
    let url = item_url(&v.name, &i);
    let geo = v.storage_redundancy == "GeoRedundant";
    let repl = i.replication.clone().unwrap_or_default();
    let secondary_location = v.replication["secondaryLocation"]
        .as_str()
        .or(repl["secondaryLocation"].as_str())
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
                    dt { "Protection state" } dd { (badge(&i.protection_state)) }
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
                    p { (badge(repl["status"].as_str().unwrap_or("Unknown"))) " to " strong { (secondary_location) } }
                    dl.props #item-replication {
                        dt { "Points in the secondary region" } dd { (repl["recoveryPointsOnSecondary"].as_u64().unwrap_or(0)) }
                        dt { "Waiting to replicate" } dd { (repl["pendingRecoveryPoints"].as_u64().unwrap_or(0)) " points, " (bytes(repl["bytesPending"].as_u64().unwrap_or(0))) }
                        dt { "Lag" } dd { (format!("{:.0} s", repl["lagSeconds"].as_f64().unwrap_or(0.0))) }
                        dt { "Last replicated" } dd { (time(repl["lastSuccess"].as_str().and_then(|t| t.parse().ok()))) }
                    }
                    @if repl["lastError"].is_object() {
                        div.alert.bad role="alert" {
                            p { strong { (repl["lastError"]["message"].as_str().unwrap_or("")) } }
                            p.small { "Code " code { (repl["lastError"]["code"].as_str().unwrap_or("")) } }
                            p { "What to do: " (repl["lastError"]["recommendation"].as_str().unwrap_or("")) }
                        }
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

/// The first characters of a long id, enough to tell points apart.
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

// ---------------------------------------------------------------------------
// Back up now
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct BackupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    retain_until: String,
}

/// The day chosen in the calendar is the last day the point is kept: it is kept
/// until the end of that day (UTC).
fn end_of_day(day: &str) -> Result<Option<Timestamp>, ApiError> {
    let day = day.trim();
    if day.is_empty() {
        return Ok(None);
    }
    let bad = || {
        form_error(
            "InvalidDate",
            format!("{day} is not a date."),
            "Choose a day in the calendar, or type it as YYYY-MM-DD.",
        )
    };
    let d: Date = day.parse().map_err(|_| bad())?;
    d.at(23, 59, 59, 0)
        .to_zoned(TimeZone::UTC)
        .map(|z| Some(z.timestamp()))
        .map_err(|_| bad())
}

fn day_of(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC).date().to_string()
}

fn backup_page(
    op: &Operator,
    v: &VaultDto,
    i: &ItemDto,
    state: &AppState,
    f: &BackupForm,
    error: Option<&ApiError>,
) -> Response {
    let now = state.now();
    let default = day_of(tresor_domain::default_retain_until(now));
    let tomorrow = day_of(now + SignedDuration::from_hours(24));
    let value = if f.retain_until.is_empty() && error.is_none() {
        default.clone()
    } else {
        f.retain_until.clone()
    };
    let url = item_url(&v.name, i);
    // The domain's own rule, shown before the operator tries.
    let refused: Option<ApiError> = parse_state(&i.protection_state)
        .can_back_up_now()
        .err()
        .map(ApiError::from);
    let date_error = field_message(
        error,
        &["RetainUntilInPast", "RetainUntilTooFar", "InvalidDate"],
    );
    let body = html! {
        h1 { "Back up now" }
        p.muted { (i.vm_name) " on host " (i.host) " · vault " (v.name) }
        @if let Some(e) = error { (error_box(e)) }
        @else if let Some(e) = &refused { (error_box(e)) }
        form.stack.card #backup-now method="post" action={ (url) "/backup" } novalidate {
            (csrf_field(op))
            p { "Takes a recovery point of " strong { (i.vm_name) } " now, outside the policy's schedule. It is kept until the day you choose, whatever the policy says." }
            (Field::new("retain_until", "Retain backup till", &value,
                html! { "The last day the recovery point is kept (until the end of that day, UTC). Default: 30 days from today (" (default) "); at most 99 years ahead." },
                date_error.as_deref()).date(&tomorrow).required())
            div { button.primary type="submit" { "OK" } " " a.button href=(url) { "Cancel" } }
        }
    };
    with_status(item_subpage("Back up now", op, v, i, body), error)
}

async fn backup_form(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
) -> Response {
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    backup_page(&op, &v, &i, &state, &BackupForm::default(), None)
}

async fn backup(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
    Form(f): Form<BackupForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let retain_until = match end_of_day(&f.retain_until) {
        Ok(t) => t,
        Err(e) => return backup_page(&op, &v, &i, &state, &f, Some(&e)),
    };
    let req = api::items::BackupNow { retain_until };
    match api::items::backup_now(
        Admin,
        State(state.clone()),
        Path((v.name.clone(), i.id.clone())),
        Some(Json(req)),
    )
    .await
    {
        Ok((_, Json(job))) => {
            let until = retain_until
                .map(day_of)
                .unwrap_or_else(|| day_of(tresor_domain::default_retain_until(state.now())));
            redirect_done(
                &format!("/vaults/{}/jobs", url_encode(&v.name)),
                &format!(
                    "Backup of {} started (job {}). The recovery point is kept until the end of {until} (UTC).",
                    i.vm_name,
                    short_id(&job.id),
                ),
            )
        }
        Err(e) => backup_page(&op, &v, &i, &state, &f, Some(&e)),
    }
}

// ---------------------------------------------------------------------------
// Restore
// ---------------------------------------------------------------------------

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

fn restore_page(
    op: &Operator,
    v: &VaultDto,
    i: &ItemDto,
    points: &ApiResult<Vec<PointDto>>,
    f: &RestoreForm,
    error: Option<&ApiError>,
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
            "NotFound",
            "RecoveryPointNotInSecondaryRegion",
            "RecoveryPointRequired",
        ],
    );
    let mode_error = field_message(error, &["InvalidRestoreMode"]);
    let path_error = field_message(error, &["TargetPathRequired"]);
    let format_error = field_message(error, &["InvalidFormat"]);
    let confirm_error = field_message(error, &["ConfirmationRequired"]);
    let new_name = if f.new_name.is_empty() && f.mode.is_empty() {
        format!("{}-restored", i.vm_name)
    } else {
        f.new_name.clone()
    };
    let secondary_location = v.replication["secondaryLocation"]
        .as_str()
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

async fn restore_form(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
    Query(q): Query<RestoreQuery>,
) -> Response {
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let points = points_of(&state, &v.name, &i.id, q.use_secondary_region).await;
    let f = RestoreForm {
        point: q.point.unwrap_or_default(),
        use_secondary_region: q.use_secondary_region.then(|| "true".to_string()),
        ..RestoreForm::default()
    };
    let r = restore_page(&op, &v, &i, &points, &f, None);
    match &points {
        Err(e) => with_status(r, Some(e)),
        Ok(_) => r,
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

async fn restore(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
    Form(f): Form<RestoreForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let secondary = f.secondary();
    let again = |e: ApiError| {
        let state = state.clone();
        let (op, v, i) = (&op, &v, &i);
        let f = &f;
        async move {
            let points = points_of(&state, &v.name, &i.id, secondary).await;
            restore_page(op, v, i, &points, f, Some(&e))
        }
    };
    if f.point.trim().is_empty() {
        return again(form_error(
            "RecoveryPointRequired",
            "Choose the recovery point to restore.".into(),
            "Pick one in the list Restore point.",
        ))
        .await;
    }
    if f.mode == "ReplaceDisks" && f.confirm_replace.is_none() {
        return again(form_error(
            "ConfirmationRequired",
            format!(
                "Replacing the disks of {} needs your confirmation.",
                i.vm_name
            ),
            "Stop the VM, then tick the box to confirm that its disks will be overwritten.",
        ))
        .await;
    }
    let to_folder = matches!(f.mode.as_str(), "CreateVm" | "RestoreDisks");
    let req = api::items::RestoreRequest {
        recovery_point: f.point.trim().to_string(),
        mode: f.mode.clone(),
        target_path: if to_folder {
            non_empty(&f.target_path)
        } else {
            None
        },
        format: if to_folder {
            non_empty(&f.format).filter(|x| x != "original")
        } else {
            None
        },
        new_name: if f.mode == "CreateVm" {
            non_empty(&f.new_name)
        } else {
            None
        },
        use_secondary_region: secondary,
    };
    match api::items::restore(
        Admin,
        State(state.clone()),
        Path((v.name.clone(), i.id.clone())),
        Json(req),
    )
    .await
    {
        Ok((_, Json(job))) => redirect_done(
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

// ---------------------------------------------------------------------------
// Stop backup
// ---------------------------------------------------------------------------

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
    v: &VaultDto,
    i: &ItemDto,
    f: &StopForm,
    error: Option<&ApiError>,
) -> Response {
    let url = item_url(&v.name, i);
    let delete = f.data == "delete";
    let confirm_error = field_message(error, &["ConfirmationMismatch"]);
    let body = html! {
        h1 { "Stop backup" }
        p.muted { (i.vm_name) " on host " (i.host) " · vault " (v.name) " · " (badge(&i.protection_state)) }
        @if let Some(e) = error { (error_box(e)) }
        form.stack.card.stop #stop-backup method="post" action={ (url) "/stop" } novalidate
            data-confirm={ "Stop backing up " (i.vm_name) "?" } {
            (csrf_field(op))
            fieldset {
                legend { "Backup data" }
                div.choices {
                    label.choice for="data-retain" {
                        input #data-retain type="radio" name="data" value="retain" checked[!delete];
                        span { strong { "Retain backup data" } br;
                            span.small.muted { "No more backups. The recovery points are kept, untouched by retention, and can still be restored." } }
                    }
                    label.choice for="data-delete" {
                        input #data-delete type="radio" name="data" value="delete" checked[delete];
                        span { strong { "Delete backup data" } br;
                            span.small.muted { "No more backups, and every recovery point of this VM is deleted. This cannot be undone." } }
                    }
                }
            }
            (Field::new("confirm_name", html! { "To delete the backup data, type the VM name: " code { (i.vm_name) } }, &f.confirm_name,
                "Only needed for Delete backup data.",
                confirm_error.as_deref()).class("for-delete").no_autocomplete())
            div { button.danger type="submit" { "Stop backup" } " " a.button href=(url) { "Cancel" } }
        }
    };
    with_status(item_subpage("Stop backup", op, v, i, body), error)
}

async fn stop_form(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
) -> Response {
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    stop_page(&op, &v, &i, &StopForm::default(), None)
}

async fn stop(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path((vault, item)): Path<(String, String)>,
    Form(f): Form<StopForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let delete = f.data == "delete";
    if delete && f.confirm_name.trim() != i.vm_name {
        let e = form_error(
            "ConfirmationMismatch",
            format!(
                "The name typed does not match {}, so nothing was deleted.",
                i.vm_name
            ),
            &format!(
                "Type the VM's name exactly ({}) to delete its backup data.",
                i.vm_name
            ),
        );
        return stop_page(&op, &v, &i, &f, Some(&e));
    }
    let req = api::items::Disable {
        delete_backup_data: delete,
    };
    match api::items::disable(
        Admin,
        State(state.clone()),
        Path((v.name.clone(), i.id.clone())),
        Some(Json(req)),
    )
    .await
    {
        Ok(Json(job)) => {
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
        Err(e) => stop_page(&op, &v, &i, &f, Some(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn the_chosen_day_is_kept_to_its_end() {
        let t = end_of_day("2030-05-01").unwrap().unwrap();
        assert_eq!(t.to_string(), "2030-05-01T23:59:59Z");
        assert!(end_of_day("").unwrap().is_none());
        assert_eq!(end_of_day("01.05.2030").unwrap_err().code, "InvalidDate");
        assert_eq!(StatusCode::BAD_REQUEST, end_of_day("x").unwrap_err().status);
    }
}
