//! Recovery Services vaults: the list, "+ Add", a vault's overview and its backup
//! configuration (storage redundancy, cross-region restore).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use jiff::SignedDuration;
use maud::html;
use serde::Deserialize;
use tresor_domain::StorageRedundancy;

use super::layout::{
    badge, bytes, csrf_field, empty, error_box, notice, page, time, vault_page, vault_tabs,
    with_status, Done, Field,
};
use super::session::Operator;
use crate::api;
use crate::auth::Admin;
use crate::dto::{ItemDto, VaultDto};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/vaults", get(list))
        .route("/vaults/new", get(new_form).post(create))
        .route("/vaults/{vault}", get(overview))
        .route(
            "/vaults/{vault}/configuration",
            get(configuration).post(set_configuration),
        )
}

/// A page for an error met while reading (the vault is gone, storage is down...).
pub fn error_page(op: &Operator, e: &ApiError) -> Response {
    let mut r = page(
        "Something went wrong",
        Some(op),
        &[("Vaults", "/vaults")],
        error_box(e),
    );
    *r.status_mut() = e.status;
    r
}

/// The vault's items, through the API.
pub async fn items_of(state: &Arc<AppState>, vault: &str) -> ApiResult<Vec<ItemDto>> {
    Ok(
        api::items::list(Admin, State(state.clone()), Path(vault.to_string()))
            .await?
            .0,
    )
}

/// The health of a vault's backups, from its items' states.
fn health(items: &[ItemDto]) -> &'static str {
    if items.is_empty() {
        "NoItems"
    } else if items
        .iter()
        .any(|i| i.protection_state == "ProtectionError")
    {
        "Unhealthy"
    } else if items
        .iter()
        .any(|i| i.protection_state == "InitialBackupPending")
    {
        "Pending"
    } else {
        "Healthy"
    }
}

async fn list(op: Operator, State(state): State<Arc<AppState>>, Query(q): Query<Done>) -> Response {
    let vaults = match api::vaults::list(Admin, State(state.clone())).await {
        Ok(Json(v)) => v,
        Err(e) => return error_page(&op, &e),
    };
    let mut rows = Vec::new();
    for v in &vaults {
        let items = items_of(&state, &v.name).await.unwrap_or_default();
        rows.push((v, items.len(), health(&items)));
    }
    let body = html! {
        h1 { "Recovery Services vaults" }
        @if let Some(d) = &q.done { (notice(d)) }
        div.toolbar {
            span.grow.muted { (vaults.len()) " vaults" }
            a.button.primary href="/vaults/new" { "+ Add" }
        }
        @if vaults.is_empty() {
            (empty("No vault yet. A vault holds backup policies, protected VMs, jobs and recovery points.", Some(("+ Add a vault", "/vaults/new"))))
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
                            td { (super::layout::spaced(&v.storage_redundancy)) }
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

/// Locations worth offering: those agents report and those the server configures.
fn known_locations(state: &AppState) -> Vec<String> {
    let mut out: Vec<String> = state
        .store
        .list_agents()
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.location)
        .collect();
    out.extend(state.repos.locations().configured_names());
    out.sort();
    out.dedup();
    out
}

fn new_vault_form(
    op: &Operator,
    state: &AppState,
    f: &NewVault,
    error: Option<&ApiError>,
) -> Response {
    let field_error = |field: &str| -> Option<String> {
        let e = error?;
        let hit = match field {
            "name" => e.code.contains("VaultName") || e.code == "VaultAlreadyExists",
            "resource_group" => e.code.contains("ResourceGroup"),
            "location" => e.code.contains("Location") || e.code == "GeoRedundancyUnavailable",
            _ => false,
        };
        hit.then(|| format!("{} {}", e.message, e.recommendation))
    };
    let locations = known_locations(state);
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

async fn new_form(op: Operator, State(state): State<Arc<AppState>>) -> Response {
    new_vault_form(&op, &state, &NewVault::default(), None)
}

async fn create(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Form(f): Form<NewVault>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let redundancy = match f.storage_redundancy.as_str() {
        "LocallyRedundant" => Some(StorageRedundancy::LocallyRedundant),
        _ => Some(StorageRedundancy::GeoRedundant),
    };
    let req = api::vaults::CreateVault {
        name: f.name.trim().to_string(),
        resource_group: f.resource_group.trim().to_string(),
        location: f.location.trim().to_string(),
        storage_redundancy: redundancy,
    };
    match api::vaults::create(Admin, State(state.clone()), Json(req)).await {
        Ok((_, Json(v))) => Redirect::to(&format!(
            "/vaults/{}?done={}",
            v.name,
            super::layout::url_encode(&format!(
                "Vault {} created. Next: + Backup to protect VMs.",
                v.name
            ))
        ))
        .into_response(),
        Err(e) => new_vault_form(&op, &state, &f, Some(&e)),
    }
}

/// The vault, or the page for its error.
pub async fn vault_of(
    state: &Arc<AppState>,
    op: &Operator,
    vault: &str,
) -> Result<VaultDto, Response> {
    api::vaults::show(Admin, State(state.clone()), Path(vault.to_string()))
        .await
        .map(|j| j.0)
        .map_err(|e| error_page(op, &e))
}

/// Storage figures of a vault: bytes stored in its primary target, and the logical
/// size of all its recovery points.
fn storage_figures(state: &AppState, vault_name: &str) -> ApiResult<(u64, u64)> {
    let v = api::vaults::find_vault(state, vault_name)?;
    let mut stored = 0;
    for agent in state.repos.of_vault(&v, crate::repos::Region::Primary) {
        if let Ok(b) = state
            .repos
            .backend(&v, &agent, crate::repos::Region::Primary, false)
        {
            for kind in [
                tresor_storage::ObjectKind::Pack,
                tresor_storage::ObjectKind::Index,
                tresor_storage::ObjectKind::Point,
            ] {
                stored += b
                    .list(kind)
                    .unwrap_or_default()
                    .iter()
                    .map(|o| o.size)
                    .sum::<u64>();
            }
        }
    }
    let logical = state
        .store
        .list_vault_points(&v.id)?
        .iter()
        .map(|p| p.size)
        .sum();
    Ok((stored, logical))
}

async fn overview(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    let items = items_of(&state, &vault).await.unwrap_or_default();
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    for i in &items {
        *by_state.entry(i.protection_state.clone()).or_default() += 1;
    }
    let vid = v.id.clone();
    let name = v.name.clone();
    let figures = state
        .blocking(move |st| {
            let since = st.now() - SignedDuration::from_hours(24);
            let jobs = st.store.list_jobs(&tresor_metadata::JobFilter {
                vault_id: Some(vid),
                from: Some(since),
                limit: Some(100_000),
                ..Default::default()
            })?;
            let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
            for j in &jobs {
                *by_status.entry(j.status.clone()).or_default() += 1;
            }
            let storage = storage_figures(st, &name)?;
            Ok((by_status, storage))
        })
        .await;
    let (jobs_by_status, (stored, logical)) = match figures {
        Ok(f) => f,
        Err(e) => return error_page(&op, &e),
    };
    let r = &v.replication;
    let body = html! {
        h1 { (v.name) }
        p.muted { "Recovery Services vault · " (v.location) " · resource group " (v.resource_group) }
        @if let Some(d) = &q.done { (notice(d)) }
        (vault_tabs(&v.name, "Overview"))
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
                @if v.storage_redundancy == "GeoRedundant" {
                    p { (badge(r["status"].as_str().unwrap_or("-"))) " to " strong { (r["secondaryLocation"].as_str().unwrap_or("?")) } }
                    dl.props {
                        dt { "Lag" } dd { (format!("{:.0} s", r["lagSeconds"].as_f64().unwrap_or(0.0))) }
                        dt { "Pending" } dd { (bytes(r["bytesPending"].as_u64().unwrap_or(0))) " in " (r["pendingRecoveryPoints"].as_u64().unwrap_or(0)) " points" }
                        dt { "Last replicated" } dd { (time(r["lastSuccess"].as_str().and_then(|t| t.parse().ok()))) }
                    }
                    @if r["lastError"].is_object() {
                        div.alert.bad role="alert" {
                            p { strong { (r["lastError"]["message"].as_str().unwrap_or("")) } }
                            p.small { "Code " code { (r["lastError"]["code"].as_str().unwrap_or("")) } }
                            p { "What to do: " (r["lastError"]["recommendation"].as_str().unwrap_or("")) }
                        }
                    }
                } @else {
                    p.muted { "Locally redundant: one copy, no replication." }
                }
            }
        }
    };
    page(&v.name, Some(&op), &[("Vaults", "/vaults")], body)
}

fn configuration_page(
    op: &Operator,
    v: &VaultDto,
    error: Option<&ApiError>,
    done: Option<&str>,
) -> Response {
    let geo = v.storage_redundancy == "GeoRedundant";
    let body = html! {
        h1 { (v.name) }
        (vault_tabs(&v.name, "Backup configuration"))
        @if let Some(e) = error { (error_box(e)) }
        @if let Some(d) = done { (notice(d)) }
        section.card aria-labelledby="red-h" {
            h2 #red-h { "Storage replication type" }
            @if v.redundancy_locked {
                p { strong { (super::layout::spaced(&v.storage_redundancy)) } " " span.badge.plain { "Locked" } }
                p.muted #locked-reason { "The vault already holds backups, so its storage redundancy cannot change any more. To use another redundancy, create a new vault and protect the VMs there." }
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
                    p { (badge("Enabled")) " Recovery points can be listed and restored from the secondary region (" (v.replication["secondaryLocation"].as_str().unwrap_or("?")) "). Once enabled, it stays enabled." }
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
    };
    with_status(
        vault_page("Backup configuration", op, &v.name, &[], body),
        error,
    )
}

async fn configuration(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    match vault_of(&state, &op, &vault).await {
        Ok(v) => configuration_page(&op, &v, None, q.done.as_deref()),
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
}

async fn set_configuration(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    Form(f): Form<ConfigurationForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let req = api::vaults::BackupProperties {
        storage_redundancy: f.storage_redundancy.as_deref().map(|r| match r {
            "LocallyRedundant" => StorageRedundancy::LocallyRedundant,
            _ => StorageRedundancy::GeoRedundant,
        }),
        cross_region_restore: f.cross_region_restore.as_deref().map(|v| v == "true"),
    };
    match api::vaults::set_backup_properties(
        Admin,
        State(state.clone()),
        Path(vault.clone()),
        Json(req),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!(
            "/vaults/{vault}/configuration?done={}",
            super::layout::url_encode("Backup configuration saved.")
        ))
        .into_response(),
        Err(e) => match vault_of(&state, &op, &vault).await {
            Ok(v) => configuration_page(&op, &v, Some(&e), None),
            Err(r) => r,
        },
    }
}
