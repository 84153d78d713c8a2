//! Backup policies of a vault.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tresor_domain::BackupPolicy;
use tresor_metadata::{PolicyRow, VaultRow};

use crate::api::vaults::find_vault;
use crate::auth::{new_id, Admin};
use crate::dto::PolicyDto;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The policy named `name` in `vault`, or NotFound.
pub fn find_policy(
    state: &AppState,
    vault: &VaultRow,
    name: &str,
) -> ApiResult<(PolicyRow, BackupPolicy)> {
    let row = state
        .store
        .find_policy(&vault.id, name)?
        .ok_or_else(|| ApiError::not_found(format!("policy {name} in vault {}", vault.name)))?;
    let policy = parse(&row)?;
    Ok((row, policy))
}

pub fn parse(row: &PolicyRow) -> ApiResult<BackupPolicy> {
    serde_json::from_value(row.body.clone()).map_err(ApiError::internal)
}

fn dto(state: &AppState, row: &PolicyRow) -> ApiResult<PolicyDto> {
    Ok(PolicyDto {
        id: row.id.clone(),
        policy: parse(row)?,
        protected_items: state.store.items_using_policy(&row.id)?.len(),
    })
}

pub async fn list(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
) -> ApiResult<Json<Vec<PolicyDto>>> {
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let rows = s.store.list_policies(&v.id)?;
            rows.iter()
                .map(|r| dto(s, r))
                .collect::<ApiResult<Vec<_>>>()
                .map(Json)
        })
        .await
}

pub async fn show(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((vault, name)): Path<(String, String)>,
) -> ApiResult<Json<PolicyDto>> {
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let (row, _) = find_policy(s, &v, &name)?;
            dto(s, &row).map(Json)
        })
        .await
}

/// `az backup policy get-default-for-vm`: the policy a VM gets when none is named.
pub async fn default_for_vm(
    admin: Admin,
    state: State<Arc<AppState>>,
    Path(vault): Path<String>,
) -> ApiResult<Json<PolicyDto>> {
    show(admin, state, Path((vault, "DefaultPolicy".to_string()))).await
}

pub async fn create(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    Json(policy): Json<BackupPolicy>,
) -> ApiResult<(StatusCode, Json<PolicyDto>)> {
    policy.validate()?;
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            if s.store.find_policy(&v.id, policy.name.as_str())?.is_some() {
                return Err(ApiError::conflict(
                    "PolicyAlreadyExists",
                    format!(
                        "vault {} already has a policy named {}",
                        v.name, policy.name
                    ),
                    "choose another name, or change the existing policy (tresor policy set)",
                ));
            }
            let row = PolicyRow {
                id: new_id(),
                vault_id: v.id.clone(),
                name: policy.name.to_string(),
                body: serde_json::to_value(&policy).map_err(ApiError::internal)?,
                created: s.now(),
            };
            s.store.insert_policy(&row)?;
            Ok((StatusCode::CREATED, Json(dto(s, &row)?)))
        })
        .await
}

/// Changes a policy. It applies to every item that uses it: their scheduled points'
/// expiry dates are computed anew.
pub async fn update(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((vault, name)): Path<(String, String)>,
    Json(policy): Json<BackupPolicy>,
) -> ApiResult<Json<PolicyDto>> {
    policy.validate()?;
    if !policy.name.as_str().eq_ignore_ascii_case(&name) {
        return Err(ApiError::bad_request(
            "PolicyNameMismatch",
            format!("the body names policy {}, the path {name}", policy.name),
            "a policy cannot be renamed; create a new one and move the items to it",
        ));
    }
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let (mut row, _) = find_policy(s, &v, &name)?;
            row.body = serde_json::to_value(&policy).map_err(ApiError::internal)?;
            s.store.update_policy(&row)?;
            for item in s.store.items_using_policy(&row.id)? {
                for mut p in s.store.list_points(&item.id)? {
                    if !p.on_demand {
                        p.expires = Some(policy.retain_until(p.created)?);
                        s.store.update_point(&p)?;
                    }
                }
            }
            dto(s, &row).map(Json)
        })
        .await
}

pub async fn delete(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((vault, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .blocking(move |s| {
            let v = find_vault(s, &vault)?;
            let (row, _) = find_policy(s, &v, &name)?;
            let users = s.store.items_using_policy(&row.id)?;
            if !users.is_empty() {
                let names: Vec<_> = users.iter().map(|i| i.vm_name.as_str()).collect();
                return Err(ApiError::conflict(
                    "PolicyInUse",
                    format!("policy {name} is used by {} protected items: {}", users.len(), names.join(", ")),
                    "move those items to another policy, or stop their protection, before deleting it",
                ));
            }
            s.store.delete_policy(&row.id)?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}
