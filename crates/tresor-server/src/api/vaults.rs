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
use crate::dto::{enum_name, parse_enum, JobDto, VaultDto};
use crate::error::{ApiError, ApiResult};
use crate::repos::Region;
use crate::state::AppState;

/// A vault as the API shows it, with its replication status.
pub fn vault_dto(s: &AppState, v: &VaultRow) -> ApiResult<VaultDto> {
    Ok(VaultDto::new(
        v,
        crate::replication::status(s, v, None, s.now())?,
    ))
}

/// GeoRedundant needs a paired location to copy to.
fn check_pair(s: &AppState, v: &VaultRow) -> ApiResult<()> {
    if crate::replication::is_geo(v) && s.repos.target(v, Region::Secondary).is_err() {
        return Err(ApiError::bad_request(
            "GeoRedundancyUnavailable",
            format!(
                "location {} has no paired location, so a GeoRedundant vault there would have no second copy",
                v.location
            ),
            "choose LocallyRedundant, or pair the location in the server's configuration ([[location]] paired = ...)",
        ));
    }
    Ok(())
}

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
                cross_region_restore: false,
                created: now,
            };
            check_pair(s, &row)?;
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
            vault_dto(s, &row)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(dto)))
}

pub async fn list(_: Admin, State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<VaultDto>>> {
    state
        .blocking(|s| {
            Ok(Json(
                s.store
                    .list_vaults()?
                    .iter()
                    .map(|v| vault_dto(s, v))
                    .collect::<ApiResult<_>>()?,
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
        .blocking(move |s| Ok(Json(vault_dto(s, &find_vault(s, &vault)?)?)))
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
            let soft_deleted = s.store.list_vault_points_with_deleted(&v.id)?;
            if let Some(last) = soft_deleted.iter().filter_map(|p| p.primary_deleted).max() {
                let until = last + s.repos.locations().replication.soft_delete;
                return Err(ApiError::conflict(
                    "VaultNotEmpty",
                    format!(
                        "vault {} still holds {} soft-deleted recovery points in the secondary region, kept until {until}",
                        v.name,
                        soft_deleted.len()
                    ),
                    "wait until the soft-delete window ends; until then they can be restored with --use-secondary-region",
                ));
            }
            s.repos.delete_vault(&v).map_err(ApiError::internal)?;
            s.store.delete_vault(&v.id)?;
            tracing::info!(vault = %v.name, "vault deleted");
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupProperties {
    #[serde(default)]
    pub storage_redundancy: Option<StorageRedundancy>,
    /// Allow listing and restoring recovery points from the secondary region.
    #[serde(default)]
    pub cross_region_restore: Option<bool>,
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
            if let Some(r) = req.storage_redundancy {
                v.set_redundancy(r, has_backup)?;
                row.redundancy = enum_name(v.redundancy);
                check_pair(s, &row)?;
            }
            if let Some(crr) = req.cross_region_restore {
                if crr && !crate::replication::is_geo(&row) {
                    return Err(ApiError::bad_request(
                        "CrossRegionRestoreNeedsGeoRedundancy",
                        format!("vault {} is {}: it has no copy in another region to restore from", row.name, row.redundancy),
                        "cross-region restore needs a GeoRedundant vault",
                    ));
                }
                if !crr && row.cross_region_restore {
                    return Err(ApiError::bad_request(
                        "CrossRegionRestoreCannotBeDisabled",
                        format!("cross-region restore of vault {} is enabled and, once enabled, stays enabled", row.name),
                        "leave it enabled",
                    ));
                }
                row.cross_region_restore = crr;
            }
            if row.cross_region_restore && !crate::replication::is_geo(&row) {
                return Err(ApiError::bad_request(
                    "RedundancyLocked",
                    format!("vault {} has cross-region restore enabled, which needs GeoRedundant storage", row.name),
                    "keep GeoRedundant",
                ));
            }
            s.store.update_vault(&row)?;
            Ok(Json(vault_dto(s, &row)?))
        })
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialsRequest {
    /// Days the credentials stay valid: 1..=10 (default 2).
    #[serde(default)]
    pub valid_days: Option<u32>,
    /// The location of the agent that registers with them (default: the vault's).
    /// The agent gets this location whatever it claims.
    #[serde(default)]
    pub location: Option<String>,
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
    /// The location the registering agent gets.
    #[serde(default)]
    pub location: Option<String>,
}

pub async fn credentials(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    body: Option<Json<CredentialsRequest>>,
) -> ApiResult<Json<CredentialsFile>> {
    let req = body.map(|b| b.0).unwrap_or_default();
    let days = req.valid_days.unwrap_or(2);
    let location = req
        .location
        .as_deref()
        .map(Location::parse)
        .transpose()?
        .map(|l| l.to_string());
    if !(1..=10).contains(&days) {
        return Err(ApiError::bad_request(
            "InvalidCredentialsValidity",
            format!("vault credentials can be valid for 1 to 10 days, not {days}"),
            "give a validity of 1 to 10 days (--valid-days)",
        ));
    }
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let secret = new_secret("tresor_enroll");
            let expires = s.now() + SignedDuration::from_hours(24 * days as i64);
            let location = location.unwrap_or_else(|| v.location.clone());
            s.store.insert_enrollment(&EnrollmentRow {
                id: new_id(),
                vault_id: v.id.clone(),
                secret_hash: hash_secret(&secret),
                expires,
                used: false,
                location: Some(location.clone()),
            })?;
            Ok(Json(CredentialsFile {
                server: s.public_url.clone(),
                fingerprint: s.fingerprint.clone(),
                vault: v.name,
                secret,
                expires,
                location: Some(location),
            }))
        })
        .await
}

/// Runs a replication of the vault now (GeoRedundant vaults replicate by themselves
/// after each backup; this is for the impatient and for catching up by hand).
pub async fn replicate(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
) -> ApiResult<(StatusCode, Json<JobDto>)> {
    let s = state.clone();
    state
        .blocking(move |st| {
            let v = find_vault(st, &vault)?;
            let job = crate::replication::start_now(&s, &v)?;
            Ok((StatusCode::ACCEPTED, Json(JobDto::new(&job, st.now()))))
        })
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRequest {
    /// Verify the copy in the secondary region.
    #[serde(default)]
    pub use_secondary_region: bool,
}

/// Starts a verify of the vault's data in one region.
pub async fn verify(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    body: Option<Json<VerifyRequest>>,
) -> ApiResult<(StatusCode, Json<JobDto>)> {
    let secondary = body.map(|b| b.0.use_secondary_region).unwrap_or(false);
    let s = state.clone();
    state
        .blocking(move |st| {
            let v = find_vault(st, &vault)?;
            if secondary && !crate::replication::is_geo(&v) {
                return Err(ApiError::bad_request(
                    "NotGeoRedundant",
                    format!(
                        "vault {} is {}: it has no secondary copy",
                        v.name, v.redundancy
                    ),
                    "verify the primary (without --use-secondary-region)",
                ));
            }
            let job = crate::verify::start(&s, &v, Region::of(secondary))?;
            Ok((StatusCode::ACCEPTED, Json(JobDto::new(&job, st.now()))))
        })
        .await
}
