//! Vaults: create, list, show, delete, storage redundancy and cross-region restore,
//! vault credentials, replicate now, verify.

use std::sync::Arc;
use tresor_domain::access::Permission;

use jiff::SignedDuration;
use tresor_api::jobs::Job;
use tresor_api::vaults::{
    BackupProperties, CreateVault, CredentialsFile, CredentialsRequest, Vault as VaultView,
    VerifyRequest,
};
use tresor_api::ErrorCode;
use tresor_domain::{
    BackupPolicy, CriticalOperation, Location, ResourceGroupName, Vault, VaultName,
};
use tresor_metadata::{EnrollmentRow, PolicyRow, VaultRow};

use crate::audit::Target;
use crate::auth::{hash_secret, new_id, new_secret, Principal};
use crate::catalogue::find_vault;
use crate::error::{ServiceError, ServiceResult};
use crate::repos::Region;
use crate::state::Service;
use crate::views::{self, enum_name, parse_enum};

/// A vault as the API shows it, with its replication status.
pub fn vault_view(s: &Service, v: &VaultRow) -> ServiceResult<VaultView> {
    let mut view = views::vault(v, crate::replication::status(s, v, None, s.now())?)?;
    view.resource_guard = crate::usecases::guards::bound_guard_name(s, v)?;
    Ok(view)
}

/// GeoRedundant needs a paired location to copy to.
fn check_pair(s: &Service, v: &VaultRow) -> ServiceResult<()> {
    if crate::catalogue::is_geo(v) && s.repos.target(v, Region::Secondary).is_err() {
        return Err(ServiceError::new(
            ErrorCode::GeoRedundancyUnavailable,
            format!(
                "location {} has no paired location, so a GeoRedundant vault there would have no second copy",
                v.location
            ),
            "choose LocallyRedundant, or pair the location in the server's configuration ([[location]] paired = ...)",
        ));
    }
    Ok(())
}

impl Service {
    pub async fn create_vault(
        self: &Arc<Self>,
        who: &Principal,
        req: CreateVault,
    ) -> ServiceResult<VaultView> {
        let target =
            Target::vault(&req.name).detail(serde_json::to_string(&req).unwrap_or_default());
        let r: ServiceResult<VaultView> = async {
            who.require_installation(Permission::CreateVault)?;
            let name = VaultName::parse(&req.name)?;
            let rg = ResourceGroupName::parse(&req.resource_group)?;
            let location = Location::parse(&req.location)?;
            let mut vault = Vault::new(name, rg, location);
            if let Some(r) = req.storage_redundancy {
                vault.set_redundancy(r, false)?;
            }
            let dto = self
                .blocking(move |s| {
                    if s.store.find_vault_by_name(vault.name.as_str())?.is_some() {
                        return Err(ServiceError::new(
                            ErrorCode::VaultAlreadyExists,
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
                        soft_delete_days: tresor_domain::SoftDelete::DEFAULT_DAYS,
                        soft_delete_always_on: false,
                        immutability: enum_name(tresor_domain::Immutability::Disabled),
                    };
                    check_pair(s, &row)?;
                    s.store.insert_vault(&row)?;
                    let policy = BackupPolicy::default_policy();
                    s.store.insert_policy(&PolicyRow {
                        id: new_id(),
                        vault_id: row.id.clone(),
                        name: policy.name.to_string(),
                        body: serde_json::to_value(&policy).map_err(ServiceError::internal)?,
                        created: now,
                    })?;
                    tracing::info!(vault = %row.name, "vault created");
                    vault_view(s, &row)
                })
                .await?;
            Ok(dto)
        }
        .await;
        self.audited(who, "vault.create", target, r).await
    }

    /// The vaults the caller may read (each role assignment's scope).
    pub async fn vaults(self: &Arc<Self>, who: &Principal) -> ServiceResult<Vec<VaultView>> {
        who.require_somewhere(Permission::ReadVaults)?;
        let caller = who.clone();
        self.blocking(move |s| {
            let mut out = Vec::new();
            for v in s.store.list_vaults()? {
                if caller.may(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?) {
                    out.push(vault_view(s, &v)?);
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn vault(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
    ) -> ServiceResult<VaultView> {
        let caller = who.clone();
        self.blocking(move |s| {
            let v = find_vault(s, &vault)?;
            caller.require(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?)?;
            vault_view(s, &v)
        })
        .await
    }

    pub async fn delete_vault(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
    ) -> ServiceResult<()> {
        let target = Target::vault(&vault);
        let r: ServiceResult<()> = async {
            let caller = who.clone();
            self
                .blocking(move |s| {
                    let v = find_vault(s, &vault)?;
 caller.require(Permission::DeleteVault, &crate::catalogue::vault_target(&v)?)?;
                    if let Some(until) = crate::soft_delete::held_until(s, &v)? {
                        return Err(ServiceError::new(
                            ErrorCode::VaultNotEmpty,
                            format!("vault {} holds soft-deleted backup data, kept until {until}", v.name),
                            "wait until then (it is purged), or undelete the items and manage them (tresor protection undelete)",
                        ));
                    }
                    let items = s.store.list_items(&v.id, false)?;
                    if !items.is_empty() {
                        return Err(ServiceError::new(
                            ErrorCode::VaultNotEmpty,
                            format!("vault {} still protects {} items", v.name, items.len()),
                            "disable protection of each item and delete its backup data first (tresor protection disable --delete-backup-data)",
                        ));
                    }
                    if !s.store.list_vault_points(&v.id)?.is_empty() {
                        return Err(ServiceError::new(
                            ErrorCode::VaultNotEmpty,
                            format!("vault {} still holds recovery points", v.name),
                            "delete the backup data of its items first",
                        ));
                    }
                    let soft_deleted = s.store.list_vault_points_with_deleted(&v.id)?;
                    if let Some(last) = soft_deleted.iter().filter_map(|p| p.primary_deleted).max() {
                        let until = last + s.repos.locations().replication.soft_delete;
                        return Err(ServiceError::new(
                            ErrorCode::VaultNotEmpty,
                            format!(
                                "vault {} still holds {} soft-deleted recovery points in the secondary region, kept until {until}",
                                v.name,
                                soft_deleted.len()
                            ),
                            "wait until the soft-delete window ends; until then they can be restored with --use-secondary-region",
                        ));
                    }
                    // A guarded vault is deleted only with an approval (used up here).
                    crate::usecases::guards::require_approvals(s, &caller, &v, &[CriticalOperation::DeleteVault])?;
                    s.repos.delete_vault(&v).map_err(ServiceError::internal)?;
                    s.store.delete_vault(&v.id)?;
                    tracing::info!(vault = %v.name, "vault deleted");
                    Ok(())
                })
                .await
        }
        .await;
        self.audited(who, "vault.delete", target, r).await
    }

    pub async fn set_backup_properties(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        req: BackupProperties,
    ) -> ServiceResult<VaultView> {
        let target = Target::vault(&vault).detail(serde_json::to_string(&req).unwrap_or_default());
        let r: ServiceResult<VaultView> = async {
            let caller = who.clone();
            self
                .blocking(move |s| {
                    let mut row = find_vault(s, &vault)?;
 caller.require(Permission::UpdateVault, &crate::catalogue::vault_target(&row)?)?;
                    let before = row.clone();
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
                    let mut soft = tresor_domain::SoftDelete {
                        days: row.soft_delete_days,
                        always_on: row.soft_delete_always_on,
                    };
                    if let Some(on) = req.soft_delete_always_on {
                        soft.set_always_on(on)?;
                    }
                    let immutability: tresor_domain::Immutability =
                        parse_enum(&row.immutability).unwrap_or_default();
                    let immutability = match req.immutability {
                        Some(next) => immutability.change_to(next)?,
                        None => immutability,
                    };
                    if let Some(days) = req.soft_delete_days {
                        // Deleted data kept for less time is a shorter life for points.
                        if immutability.protects() && days < soft.days {
                            return Err(tresor_domain::Immutability::refusal(
                                &row.name,
                                "a shorter soft-delete period",
                            )
                            .into());
                        }
                        soft.set_days(days)?;
                    }
                    row.immutability = enum_name(immutability);
                    row.soft_delete_days = soft.days;
                    row.soft_delete_always_on = soft.always_on;
                    if let Some(crr) = req.cross_region_restore {
                        if crr && !crate::catalogue::is_geo(&row) {
                            return Err(ServiceError::new(
                                ErrorCode::CrossRegionRestoreNeedsGeoRedundancy,
                                format!("vault {} is {}: it has no copy in another region to restore from", row.name, row.redundancy),
                                "cross-region restore needs a GeoRedundant vault",
                            ));
                        }
                        if !crr && row.cross_region_restore {
                            return Err(ServiceError::new(
                                ErrorCode::CrossRegionRestoreCannotBeDisabled,
                                format!("cross-region restore of vault {} is enabled and, once enabled, stays enabled", row.name),
                                "leave it enabled",
                            ));
                        }
                        row.cross_region_restore = crr;
                    }
                    if row.cross_region_restore && !crate::catalogue::is_geo(&row) {
                        return Err(ServiceError::new(
                            ErrorCode::RedundancyLocked,
                            format!("vault {} has cross-region restore enabled, which needs GeoRedundant storage", row.name),
                            "keep GeoRedundant",
                        ));
                    }
                    // On a guarded vault, what lowers its protection needs approvals
                    // (after the rules above: an approval lifts none of them).
                    let rebinding = match req.resource_guard.as_deref() {
                        Some(g) => crate::usecases::guards::rebinding(s, &row, g)?,
                        None => None,
                    };
                    let critical: Vec<CriticalOperation> = [
                        (row.soft_delete_days < before.soft_delete_days, CriticalOperation::ShortenSoftDelete),
                        (before.immutability == "Enabled" && row.immutability == "Disabled", CriticalOperation::LowerImmutability),
                        (rebinding.as_ref().is_some_and(|(_, critical)| *critical), CriticalOperation::RemoveResourceGuard),
                    ]
                    .into_iter()
                    .filter_map(|(needed, op)| needed.then_some(op))
                    .collect();
                    crate::usecases::guards::require_approvals(s, &caller, &before, &critical)?;
                    s.store.update_vault(&row)?;
                    if let Some((guard, _)) = rebinding {
                        s.store.set_vault_guard(&row.id, guard.as_deref())?;
                    }
                    vault_view(s, &row)
                })
                .await
        }
        .await;
        self.audited(who, "vault.update", target, r).await
    }

    pub async fn vault_credentials(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        req: CredentialsRequest,
    ) -> ServiceResult<CredentialsFile> {
        let target = Target::vault(&vault).detail(serde_json::to_string(&req).unwrap_or_default());
        let r: ServiceResult<CredentialsFile> = async {
            let caller = who.clone();
            let days = req.valid_days.unwrap_or(2);
            let location = req
                .location
                .as_deref()
                .map(Location::parse)
                .transpose()?
                .map(|l| l.to_string());
            if !(1..=10).contains(&days) {
                return Err(ServiceError::new(
                    ErrorCode::InvalidCredentialsValidity,
                    format!("vault credentials can be valid for 1 to 10 days, not {days}"),
                    "give a validity of 1 to 10 days (--valid-days)",
                ));
            }
            self.blocking(move |s| {
                let v = find_vault(s, &vault)?;
                caller.require(
                    Permission::IssueAgentCredentials,
                    &crate::catalogue::vault_target(&v)?,
                )?;
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
                Ok(CredentialsFile {
                    server: s.public_url.clone(),
                    fingerprint: s.fingerprint.clone(),
                    vault: v.name,
                    secret,
                    expires,
                    location: Some(location),
                })
            })
            .await
        }
        .await;
        self.audited(who, "vault.credentials", target, r).await
    }

    /// Runs a replication of the vault now (GeoRedundant vaults replicate by themselves
    /// after each backup; this is for the impatient and for catching up by hand).
    pub async fn replicate_vault(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
    ) -> ServiceResult<Job> {
        let target = Target::vault(&vault);
        let r: ServiceResult<Job> = async {
            let caller = who.clone();
            let s = self.clone();
            self.blocking(move |st| {
                let v = find_vault(st, &vault)?;
                caller.require(Permission::Replicate, &crate::catalogue::vault_target(&v)?)?;
                let job = crate::replication::start_now(&s, &v)?;
                views::job(&job, st.now())
            })
            .await
        }
        .await;
        let target = target.with_job(&r);
        self.audited(who, "vault.replicate", target, r).await
    }

    /// Starts a verify of the vault's data in one region.
    pub async fn verify_vault(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        req: VerifyRequest,
    ) -> ServiceResult<Job> {
        let target = Target::vault(&vault).detail(serde_json::to_string(&req).unwrap_or_default());
        let r: ServiceResult<Job> = async {
            let caller = who.clone();
            let secondary = req.use_secondary_region;
            let s = self.clone();
            self.blocking(move |st| {
                let v = find_vault(st, &vault)?;
                caller.require(Permission::Verify, &crate::catalogue::vault_target(&v)?)?;
                if secondary && !crate::catalogue::is_geo(&v) {
                    return Err(ServiceError::new(
                        ErrorCode::NotGeoRedundant,
                        format!(
                            "vault {} is {}: it has no secondary copy",
                            v.name, v.redundancy
                        ),
                        "verify the primary (without --use-secondary-region)",
                    ));
                }
                let job = crate::verify::start(&s, &v, Region::of(secondary))?;
                views::job(&job, st.now())
            })
            .await
        }
        .await;
        let target = target.with_job(&r);
        self.audited(who, "vault.verify", target, r).await
    }
}
