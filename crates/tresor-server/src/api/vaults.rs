//! Vaults: create, list, show, delete, storage redundancy, vault credentials.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tresor_domain::{
    BackupPolicy, Location, ResourceGroupName, StorageRedundancy, Vault, VaultName,
};
use tresor_metadata::{EnrollmentRow, PolicyRow, VaultRow};

use crate::auth::{hash_secret, new_id, new_secret, Admin};
use crate::dto::{enum_name, parse_enum, VaultDto};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The vault named `name`, or NotFound.
pub fn find_vault(state: &AppState, name: &str) -> ApiResult<VaultRow> {
    state
        .store
        .find_vault_by_name(name)?
        .ok_or_else(|| ApiError::not_found(format!("vault {name}")))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateVault {
    pub name: String,
    pub resource_group: String,
    pub location: String,
    #[serde(default)]
    pub storage_redundancy: Option<StorageRedundancy>,
}

pub async fn create(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Json(req): Json<CreateVault>,
) -> ApiResult<(StatusCode, Json<VaultDto>)> {
    let name = VaultName::parse(&req.name)?;
    let rg = ResourceGroupName::parse(&req.resource_group)?;
    let location = Location::parse(&req.location)?;
    let mut vault = Vault::new(name, rg, location);
    if let Some(r) = req.storage_redundancy {
        vault.set_redundancy(r, false)?;
    }
    let dto = state
        .blocking(move |s| {
            if s.store.find_vault_by_name(vault.name.as_str())?.is_some() {
                return Err(ApiError::conflict(
                    "VaultAlreadyExists",
                    format!("a vault named {} already exists in this installation (names are unique, whatever their case)", vault.name),
                    "choose another name",
                ));
            }
            let now = s.now();
            let row = VaultRow {
                id: new_id(),
                name: vault.name.to_string(),
                resource_group: vault.resource_group.to_string(),
                location: vault.location.to_string(),
                redundancy: enum_name(vault.redundancy),
                redundancy_locked: false,
                created: now,
            };
            s.store.insert_vault(&row)?;
            let policy = BackupPolicy::default_policy();
            s.store.insert_policy(&PolicyRow {
                id: new_id(),
                vault_id: row.id.clone(),
                name: policy.name.to_string(),
                body: serde_json::to_value(&policy).map_err(ApiError::internal)?,
                created: now,
            })?;
            tracing::info!(vault = %row.name, "vault created");
            Ok(VaultDto::from(&row))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(dto)))
}

pub async fn list(_: Admin, State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<VaultDto>>> {
    state
        .blocking(|s| {
            Ok(Json(
                s.store.list_vaults()?.iter().map(VaultDto::from).collect(),
            ))
        })
        .await
}

pub async fn show(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
) -> ApiResult<Json<VaultDto>> {
    state
        .blocking(move |s| Ok(Json(VaultDto::from(&find_vault(s, &vault)?))))
        .await
}

pub async fn delete(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let items = s.store.list_items(&v.id, false)?;
            if !items.is_empty() {
                return Err(ApiError::conflict(
                    "VaultNotEmpty",
                    format!("vault {} still protects {} items", v.name, items.len()),
                    "disable protection of each item and delete its backup data first (tresor protection disable --delete-backup-data)",
                ));
            }
            if !s.store.list_vault_points(&v.id)?.is_empty() {
                return Err(ApiError::conflict(
                    "VaultNotEmpty",
                    format!("vault {} still holds recovery points", v.name),
                    "delete the backup data of its items first",
                ));
            }
            s.repos.delete_vault(&v.id).map_err(ApiError::internal)?;
            s.store.delete_vault(&v.id)?;
            tracing::info!(vault = %v.name, "vault deleted");
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupProperties {
    pub storage_redundancy: StorageRedundancy,
}

pub async fn set_backup_properties(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    Json(req): Json<BackupProperties>,
) -> ApiResult<Json<VaultDto>> {
    state
        .blocking(move |s| {
            let mut row = find_vault(s, &vault)?;
            let mut v = Vault::new(
                VaultName::parse(&row.name)?,
                ResourceGroupName::parse(&row.resource_group)?,
                Location::parse(&row.location)?,
            );
            v.redundancy = parse_enum(&row.redundancy).unwrap_or_default();
            v.redundancy_locked = row.redundancy_locked;
            let has_backup = !s.store.list_vault_points(&row.id)?.is_empty();
            v.set_redundancy(req.storage_redundancy, has_backup)?;
            row.redundancy = enum_name(v.redundancy);
            s.store.update_vault(&row)?;
            Ok(Json(VaultDto::from(&row)))
        })
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialsRequest {
    /// Days the credentials stay valid: 1..=10 (default 2).
    #[serde(default)]
    pub valid_days: Option<u32>,
}

/// A vault credentials file: what an agent needs to register with this vault's server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsFile {
    pub server: String,
    /// SHA-256 of the server's certificate: the agent trusts exactly this certificate.
    pub fingerprint: String,
    pub vault: String,
    /// One-time secret; registering an agent uses it up.
    pub secret: String,
    pub expires: Timestamp,
}

pub async fn credentials(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    body: Option<Json<CredentialsRequest>>,
) -> ApiResult<Json<CredentialsFile>> {
    let days = body.and_then(|b| b.0.valid_days).unwrap_or(2);
    if !(1..=10).contains(&days) {
        return Err(ApiError::bad_request(
            "InvalidCredentialsValidity",
            format!("vault credentials can be valid for 1 to 10 days, not {days}"),
            "give --valid-days between 1 and 10",
        ));
    }
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let secret = new_secret("tresor_enroll");
            let expires = s.now() + SignedDuration::from_hours(24 * days as i64);
            s.store.insert_enrollment(&EnrollmentRow {
                id: new_id(),
                vault_id: v.id.clone(),
                secret_hash: hash_secret(&secret),
                expires,
                used: false,
            })?;
            Ok(Json(CredentialsFile {
                server: s.public_url.clone(),
                fingerprint: s.fingerprint.clone(),
                vault: v.name,
                secret,
                expires,
            }))
        })
        .await
}
