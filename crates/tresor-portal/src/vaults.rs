//! Recovery Services vaults: the list, "+ Add", a vault's overview and its backup
//! configuration (storage redundancy, cross-region restore, the resource guard).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use jiff::SignedDuration;
use maud::html;
use serde::Deserialize;
use tresor_api::items::{ProtectedItem, ProtectionState};
use tresor_api::jobs::JobQuery;
use tresor_api::vaults::{BackupProperties, CreateVault, StorageRedundancy, Vault};
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError};

use crate::layout::{
    badge, bytes, csrf_field, empty, error_box, notice, page, replication_error, spaced, status_of,
    time, vault_page, vault_tabs, wire_name, with_status, Done, Field,
};
use crate::permissions::{on_vault, Permission, PermissionSet};
use crate::session::Operator;
use crate::urls::url_encode;

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/vaults", get(list))
        .route("/vaults/new", get(new_form).post(create))
        .route("/vaults/{vault}", get(overview))
        .route("/vaults/{vault}/delete", post(delete))
        .route(
            "/vaults/{vault}/configuration",
            get(configuration).post(set_configuration),
        )
}

/// A page for an error met while reading (the vault is gone, storage is down...).
pub fn error_page(op: &Operator, e: &ServiceError) -> Response {
    let mut r = page(
        "Something went wrong",
        Some(op),
        &[("Vaults", "/vaults")],
        error_box(e),
    );
    *r.status_mut() = status_of(e);
    r
}

/// The health of a vault's backups, from its items' states.
fn health(items: &[ProtectedItem]) -> &'static str {
    let any = |state: ProtectionState| items.iter().any(|i| i.protection_state == state);
    if items.is_empty() {
        "NoItems"
    } else if any(ProtectionState::ProtectionError) {
        "Unhealthy"
    } else if any(ProtectionState::InitialBackupPending) {
        "Pending"
    } else {
        "Healthy"
    }
}

async fn list(op: Operator, State(state): State<Arc<Service>>, Query(q): Query<Done>) -> Response {
    let vaults = or_page!(&op, state.vaults(&op.principal).await);
    let mut rows = Vec::new();
    for v in &vaults {
        let items = state
            .items(&op.principal, v.name.clone())
            .await
            .unwrap_or_default();
        rows.push((v, items.len(), health(&items)));
    }
    let can_create = op.can.allows(Permission::CreateVault);
    let body = html! {
        h1 { "Recovery Services vaults" }
        @if let Some(d) = &q.done { (notice(d)) }
        div.toolbar {
            span.grow.muted { (vaults.len()) " vaults" }
            @if can_create { a.button.primary href="/vaults/new" { "+ Add" } }
        }
        @if vaults.is_empty() {
            (empty("No vault yet. A vault holds backup policies, protected VMs, jobs and recovery points.",
                can_create.then_some(("+ Add a vault", "/vaults/new"))))
        } @else {
            table {
                caption.sr-only { "Vaults" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Resource group" } th scope="col" { "Location" }
                    th scope="col" { "Storage redundancy" } th scope="col" { "Protected items" } th scope="col" { "Backup health" }
                } }
                tbody {
                    @for (v, n, h) in &rows {
                        tr {
                            td { a href={ "/vaults/" (v.name) } { (v.name) } }
                            td { (v.resource_group) }
                            td { (v.location) }
                            td { (spaced(&wire_name(&v.storage_redundancy))) }
                            td { (n) }
                            td { @if *h == "NoItems" { span.muted { "No items" } } @else { (badge(h)) } }
                        }
                    }
                }
            }
        }
    };
    page("Recovery Services vaults", Some(&op), &[], body)
}

#[derive(Debug, Default, Deserialize)]
pub struct NewVault {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    resource_group: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    storage_redundancy: String,
}

/// The form for a new vault, as typed, with the locations worth offering (those
/// agents report and those the server configures).
async fn new_vault_form(
    op: &Operator,
    state: &Arc<Service>,
    f: &NewVault,
    error: Option<&ServiceError>,
) -> Response {
    let field_error = |field: &str| -> Option<String> {
        let e = error?;
        let code = e.code.as_str();
        let hit = match field {
            "name" => code.contains("VaultName") || e.code == ErrorCode::VaultAlreadyExists,
            "resource_group" => code.contains("ResourceGroup"),
            "location" => {
                code.contains("Location") || e.code == ErrorCode::GeoRedundancyUnavailable
            }
            _ => false,
        };
        hit.then(|| format!("{} {}", e.message, e.recommendation))
    };
    let locations = state
        .known_locations(&op.principal)
        .await
        .unwrap_or_default();
    let redundancy = if f.storage_redundancy.is_empty() {
        "GeoRedundant"
    } else {
        f.storage_redundancy.as_str()
    };
    let body = html! {
        h1 { "Create Recovery Services vault" }
        @if let Some(e) = error { (error_box(e)) }
        form.stack.card method="post" action="/vaults/new" novalidate {
            (csrf_field(op))
            (Field::new("name", "Vault name", &f.name,
                "2 to 50 characters: a letter first, then letters, digits and hyphens. Unique in this installation.",
                field_error("name").as_deref()).required().validate("vault-name").no_autocomplete())
            (Field::new("resource_group", "Resource group", &f.resource_group,
                "A label that groups vaults: 1 to 90 characters, letters, digits, _ - . ( ), not ending in a period.",
                field_error("resource_group").as_deref()).required().validate("resource-group"))
            (Field::new("location", "Location", &f.location,
                "Where the vault keeps its data. Only VMs whose host agent is in this location can be protected by it.",
                field_error("location").as_deref()).required().validate("location")
                .suggest("locations", html! { datalist #locations { @for l in &locations { option value=(l) {} } } }))
            fieldset {
                legend { "Storage redundancy" }
                div.choices {
                    label.choice {
                        input type="radio" name="storage_redundancy" value="GeoRedundant" checked[redundancy == "GeoRedundant"];
                        span { strong { "Geo-redundant" } br; span.small.muted { "A second copy in the paired location, restorable from there. The default." } }
                    }
                    label.choice {
                        input type="radio" name="storage_redundancy" value="LocallyRedundant" checked[redundancy == "LocallyRedundant"];
                        span { strong { "Locally redundant" } br; span.small.muted { "One copy, in the vault's location." } }
                    }
                }
                p.hint { "You can change this until the first backup is stored; then it is locked." }
            }
            div { button.primary type="submit" { "Create" } " " a.button href="/vaults" { "Cancel" } }
        }
    };
    with_status(
        page("Create vault", Some(op), &[("Vaults", "/vaults")], body),
        error,
    )
}

async fn new_form(op: Operator, State(state): State<Arc<Service>>) -> Response {
    new_vault_form(&op, &state, &NewVault::default(), None).await
}

async fn create(
    op: Operator,
    State(state): State<Arc<Service>>,
    Form(f): Form<NewVault>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let redundancy = match f.storage_redundancy.as_str() {
        "LocallyRedundant" => Some(StorageRedundancy::LocallyRedundant),
        _ => Some(StorageRedundancy::GeoRedundant),
    };
    let req = CreateVault {
        name: f.name.trim().to_string(),
        resource_group: f.resource_group.trim().to_string(),
        location: f.location.trim().to_string(),
        storage_redundancy: redundancy,
    };
    match state.create_vault(&op.principal, req).await {
        Ok(v) => Redirect::to(&format!(
            "/vaults/{}?done={}",
            v.name,
            url_encode(&format!(
                "Vault {} created. Next: + Backup to protect VMs.",
                v.name
            ))
        ))
        .into_response(),
        Err(e) => new_vault_form(&op, &state, &f, Some(&e)).await,
    }
}

/// The vault, or the page for its error.
pub async fn vault_of(state: &Arc<Service>, op: &Operator, vault: &str) -> Result<Vault, Response> {
    state
        .vault(&op.principal, vault.to_string())
        .await
        .map_err(|e| error_page(op, &e))
}

async fn overview(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(vault): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    overview_page(&op, &state, &vault, q.done.as_deref(), None).await
}

/// The overview; with the error of a refused delete, if there was one.
async fn overview_page(
    op: &Operator,
    state: &Arc<Service>,
    vault: &str,
    done: Option<&str>,
    error: Option<&ServiceError>,
) -> Response {
    let v = or_return!(vault_of(state, op, vault).await);
    let items = state
        .items(&op.principal, v.name.clone())
        .await
        .unwrap_or_default();
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    for i in &items {
        *by_state.entry(wire_name(&i.protection_state)).or_default() += 1;
    }
    let last_day = JobQuery {
        from: Some(state.now() - SignedDuration::from_hours(24)),
        limit: Some(100_000),
        ..JobQuery::default()
    };
    let jobs = or_page!(
        &op,
        state.jobs(&op.principal, v.name.clone(), last_day).await
    );
    let mut jobs_by_status: BTreeMap<String, usize> = BTreeMap::new();
    for j in &jobs {
        *jobs_by_status.entry(wire_name(&j.status)).or_default() += 1;
    }
    let storage = or_page!(
        &op,
        state.vault_storage(&op.principal, v.name.clone()).await
    );
    let (stored, logical) = (storage.stored_bytes, storage.logical_bytes);
    let r = &v.replication;
    let progress = r.progress.as_ref();
    let can = on_vault(state, op, &v);
    let body = html! {
        h1 { (v.name) }
        p.muted { "Recovery Services vault · " (v.location) " · resource group " (v.resource_group) }
        @if let Some(d) = done { (notice(d)) }
        (vault_tabs(&v.name, "Overview", &can))
        @if let Some(e) = error { (error_box(e)) }
        div.cards {
            section.card aria-labelledby="items-h" {
                h2 #items-h { "Backup items" }
                p.stat { (items.len()) }
                @if by_state.is_empty() { p.muted { "No VM protected yet. Use + Backup." } }
                ul.plain { @for (state, n) in &by_state { li { (badge(state)) " " (n) } } }
                a href={ "/vaults/" (v.name) "/items" } { "Backup items" }
            }
            section.card aria-labelledby="jobs-h" {
                h2 #jobs-h { "Backup jobs, last 24 hours" }
                p.stat { (jobs_by_status.values().sum::<usize>()) }
                ul.plain { @for (status, n) in &jobs_by_status {
                    li { a href={ "/vaults/" (v.name) "/jobs?status=" (status) } { (badge(status)) } " " (n) }
                } }
                a href={ "/vaults/" (v.name) "/jobs" } { "Backup jobs" }
            }
            section.card aria-labelledby="storage-h" {
                h2 #storage-h { "Storage" }
                p.stat { (bytes(stored)) }
                dl.props {
                    dt { "Recovery points, logical size" } dd { (bytes(logical)) }
                    dt { "Saved by deduplication" }
                    dd { @if stored > 0 && logical > stored {
                        (bytes(logical - stored)) " (" (format!("{:.1}", logical as f64 / stored as f64)) "×)"
                    } @else { "–" } }
                }
            }
            section.card aria-labelledby="repl-h" {
                h2 #repl-h { "Replication" }
                @if v.storage_redundancy == StorageRedundancy::GeoRedundant {
                    p { (badge(&wire_name(&r.status))) " to " strong { (r.secondary_location.as_deref().unwrap_or("?")) } }
                    dl.props {
                        dt { "Lag" } dd { (format!("{:.0} s", progress.map_or(0.0, |p| p.lag_seconds))) }
                        dt { "Pending" } dd { (bytes(progress.map_or(0, |p| p.bytes_pending))) " in " (progress.map_or(0, |p| p.pending_recovery_points)) " points" }
                        dt { "Last replicated" } dd { (time(progress.and_then(|p| p.last_success))) }
                    }
                    @if let Some(e) = progress.and_then(|p| p.last_error.as_ref()) {
                        (replication_error(e))
                    }
                } @else {
                    p.muted { "Locally redundant: one copy, no replication." }
                }
            }
        }
        @if can.allows(Permission::DeleteVault) {
            section.card.danger-zone #delete-vault aria-labelledby="delete-vault-h" {
                h2 #delete-vault-h { "Delete vault" }
                p.muted { "Only an empty vault can be deleted: no protected item, recovery point or soft-deleted data." }
                form.stack method="post" action={ "/vaults/" (url_encode(&v.name)) "/delete" }
                    data-confirm={ "Delete vault " (v.name) "? This cannot be undone." } {
                    (csrf_field(op))
                    (Field::new("confirm_name", html! { "Type the vault's name: " code { (v.name) } }, "",
                        "The vault's name, to confirm.", None).no_autocomplete())
                    div { button.danger type="submit" { "Delete vault" } }
                }
            }
        }
    };
    with_status(
        page(&v.name, Some(op), &[("Vaults", "/vaults")], body),
        error,
    )
}

#[derive(Debug, Deserialize)]
pub struct DeleteVaultForm {
    csrf: String,
    #[serde(default)]
    confirm_name: String,
}

/// Deletes the vault once its name is typed (the service refuses a vault that still
/// holds items, points or soft-deleted data).
async fn delete(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(vault): Path<String>,
    Form(f): Form<DeleteVaultForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    if !f.confirm_name.trim().eq_ignore_ascii_case(&vault) {
        let e = ServiceError::new(
            ErrorCode::ConfirmationMismatch,
            format!("The name typed does not match {vault}, so the vault was not deleted."),
            format!("Type the vault's name ({vault}) to delete it."),
        );
        return overview_page(&op, &state, &vault, None, Some(&e)).await;
    }
    match state.delete_vault(&op.principal, vault.clone()).await {
        Ok(()) => Redirect::to(&format!(
            "/vaults?done={}",
            url_encode(&format!("Vault {vault} deleted."))
        ))
        .into_response(),
        Err(e) => overview_page(&op, &state, &vault, None, Some(&e)).await,
    }
}

/// The names of the resource guards the operator may read (to bind one).
async fn guard_names(state: &Arc<Service>, op: &Operator) -> Vec<String> {
    state
        .resource_guards(&op.principal)
        .await
        .map(|gs| gs.into_iter().map(|g| g.name).collect())
        .unwrap_or_default()
}

fn configuration_page(
    op: &Operator,
    can: &PermissionSet,
    v: &Vault,
    guards: &[String],
    error: Option<&ServiceError>,
    done: Option<&str>,
) -> Response {
    let geo = v.storage_redundancy == StorageRedundancy::GeoRedundant;
    let may_update = can.allows(Permission::UpdateVault);
    let body = html! {
        h1 { (v.name) }
        (vault_tabs(&v.name, "Backup configuration", can))
        @if let Some(e) = error { (error_box(e)) }
        @if let Some(d) = done { (notice(d)) }
        section.card aria-labelledby="red-h" {
            h2 #red-h { "Storage replication type" }
            @if v.redundancy_locked {
                p { strong { (spaced(&wire_name(&v.storage_redundancy))) } " " span.badge.plain { "Locked" } }
                p.muted #locked-reason { "The vault already holds backups, so its storage redundancy cannot change any more. To use another redundancy, create a new vault and protect the VMs there." }
            } @else if !may_update {
                p #redundancy { strong { (spaced(&wire_name(&v.storage_redundancy))) } }
                p.muted { "Changing the vault's properties needs the Vaults.Update permission." }
            } @else {
                form.stack method="post" action={ "/vaults/" (v.name) "/configuration" } {
                    (csrf_field(op))
                    fieldset {
                        legend { "Storage replication type" }
                        div.choices {
                            label.choice {
                                input type="radio" name="storage_redundancy" value="GeoRedundant" checked[geo];
                                span { strong { "Geo-redundant" } br; span.small.muted { "A second copy in the paired location." } }
                            }
                            label.choice {
                                input type="radio" name="storage_redundancy" value="LocallyRedundant" checked[!geo];
                                span { strong { "Locally redundant" } br; span.small.muted { "One copy." } }
                            }
                        }
                        p.hint { "Changeable until the first backup is stored." }
                    }
                    div { button.primary type="submit" { "Save" } }
                }
            }
        }
        @if geo {
            section.card aria-labelledby="crr-h" {
                h2 #crr-h { "Cross-region restore" }
                @if v.cross_region_restore {
                    p { (badge("Enabled")) " Recovery points can be listed and restored from the secondary region (" (v.replication.secondary_location.as_deref().unwrap_or("?")) "). Once enabled, it stays enabled." }
                } @else if !may_update {
                    p.muted { "Disabled: recovery points are restored from the primary region only." }
                } @else {
                    p.muted { "Allow listing and restoring recovery points from the secondary region, also when the primary storage is lost. Once enabled, it cannot be disabled." }
                    form method="post" action={ "/vaults/" (v.name) "/configuration" } {
                        (csrf_field(op))
                        input type="hidden" name="cross_region_restore" value="true";
                        button.primary type="submit" { "Enable cross-region restore" }
                    }
                }
            }
        }
        section.card #resource-guard aria-labelledby="guard-h" {
            h2 #guard-h { "Resource guard" }
            @match &v.resource_guard {
                Some(g) => p #bound-guard { "Protected by " a href={ "/guards/" (url_encode(g)) } { strong { (g) } }
                    ": deleting backup data or recovery points, shorter retention or soft delete, lower immutability, unbinding the guard and deleting the vault each need an approval from one of its approvers." },
                None => p #bound-guard.muted { "No resource guard: critical operations need no second person's approval." },
            }
            @if may_update && (!guards.is_empty() || v.resource_guard.is_some()) {
                form.stack #bind-guard method="post" action={ "/vaults/" (url_encode(&v.name)) "/configuration" } {
                    (csrf_field(op))
                    div.field {
                        label for="resource_guard" { "Resource guard" }
                        select #resource_guard name="resource_guard" {
                            option value="" selected[v.resource_guard.is_none()] { "(none)" }
                            @for g in guards {
                                option value=(g) selected[v.resource_guard.as_deref() == Some(g.as_str())] { (g) }
                            }
                        }
                        p.hint { "Binding an unguarded vault needs only this page's permission. Unbinding it, or binding it to another guard, is a critical operation (RemoveResourceGuard): it needs an approval." }
                    }
                    div { button.primary #save-guard type="submit" { "Save resource guard" } }
                }
            }
        }
    };
    with_status(
        vault_page("Backup configuration", op, &v.name, &[], body),
        error,
    )
}

async fn configuration(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(vault): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    match vault_of(&state, &op, &vault).await {
        Ok(v) => {
            let guards = guard_names(&state, &op).await;
            let can = on_vault(&state, &op, &v);
            configuration_page(&op, &can, &v, &guards, None, q.done.as_deref())
        }
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
pub struct ConfigurationForm {
    csrf: String,
    #[serde(default)]
    storage_redundancy: Option<String>,
    #[serde(default)]
    cross_region_restore: Option<String>,
    /// A guard's name; "" unbinds.
    #[serde(default)]
    resource_guard: Option<String>,
}

async fn set_configuration(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(vault): Path<String>,
    Form(f): Form<ConfigurationForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let req = BackupProperties {
        storage_redundancy: f.storage_redundancy.as_deref().map(|r| match r {
            "LocallyRedundant" => StorageRedundancy::LocallyRedundant,
            _ => StorageRedundancy::GeoRedundant,
        }),
        cross_region_restore: f.cross_region_restore.as_deref().map(|v| v == "true"),
        resource_guard: f.resource_guard.map(|g| g.trim().to_string()),
        ..BackupProperties::default()
    };
    match state
        .set_backup_properties(&op.principal, vault.clone(), req)
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/vaults/{vault}/configuration?done={}",
            url_encode("Backup configuration saved.")
        ))
        .into_response(),
        Err(e) => match vault_of(&state, &op, &vault).await {
            Ok(v) => {
                let guards = guard_names(&state, &op).await;
                let can = on_vault(&state, &op, &v);
                configuration_page(&op, &can, &v, &guards, Some(&e), None)
            }
            Err(r) => r,
        },
    }
}
