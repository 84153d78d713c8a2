//! Backup policies of a vault.

use std::sync::Arc;
use tresor_domain::access::Permission;

use tresor_api::policies::Policy;
use tresor_api::ErrorCode;
use tresor_domain::BackupPolicy;
use tresor_metadata::PolicyRow;

use crate::audit::Target;
use crate::auth::{new_id, Principal};
use crate::catalogue::{find_policy, find_vault, parse_policy};
use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;

/// A policy as the API shows it, with how many items use it.
fn dto(state: &Service, row: &PolicyRow) -> ServiceResult<Policy> {
    Ok(Policy {
        id: row.id.clone(),
        policy: parse_policy(row)?,
        protected_items: state.store.items_using_policy(&row.id)?.len(),
    })
}

impl Service {
    pub async fn policies(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
    ) -> ServiceResult<Vec<Policy>> {
        let caller = who.clone();
        self.blocking(move |s| {
            let v = find_vault(s, &vault)?;
            caller.require(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?)?;
            let rows = s.store.list_policies(&v.id)?;
            rows.iter()
                .map(|r| dto(s, r))
                .collect::<ServiceResult<Vec<_>>>()
        })
        .await
    }

    pub async fn policy(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        name: String,
    ) -> ServiceResult<Policy> {
        let caller = who.clone();
        self.blocking(move |s| {
            let v = find_vault(s, &vault)?;
            caller.require(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?)?;
            let (row, _) = find_policy(s, &v, &name)?;
            dto(s, &row)
        })
        .await
    }

    /// `az backup policy get-default-for-vm`: the policy a VM gets when none is named.
    pub async fn default_policy_for_vm(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
    ) -> ServiceResult<Policy> {
        self.policy(who, vault, "DefaultPolicy".to_string()).await
    }

    pub async fn create_policy(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        policy: BackupPolicy,
    ) -> ServiceResult<Policy> {
        let target = Target::in_vault(&vault, policy.name.as_str())
            .detail(serde_json::to_string(&policy).unwrap_or_default());
        let r: ServiceResult<Policy> = async {
            let caller = who.clone();
            policy.validate()?;
            self.blocking(move |s| {
                let v = find_vault(s, &vault)?;
                caller.require(
                    Permission::ManagePolicies,
                    &crate::catalogue::vault_target(&v)?,
                )?;
                if s.store.find_policy(&v.id, policy.name.as_str())?.is_some() {
                    return Err(ServiceError::new(
                        ErrorCode::PolicyAlreadyExists,
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
                    body: serde_json::to_value(&policy).map_err(ServiceError::internal)?,
                    created: s.now(),
                };
                s.store.insert_policy(&row)?;
                dto(s, &row)
            })
            .await
        }
        .await;
        self.audited(who, "policy.create", target, r).await
    }

    /// Changes a policy. It applies to every item that uses it: their scheduled points'
    /// expiry dates are computed anew.
    pub async fn update_policy(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        name: String,
        policy: BackupPolicy,
    ) -> ServiceResult<Policy> {
        let target = Target::in_vault(&vault, &name)
            .detail(serde_json::to_string(&policy).unwrap_or_default());
        let r: ServiceResult<Policy> = async {
            let caller = who.clone();
            policy.validate()?;
            if !policy.name.as_str().eq_ignore_ascii_case(&name) {
                return Err(ServiceError::new(
                    ErrorCode::PolicyNameMismatch,
                    format!("the body names policy {}, the path {name}", policy.name),
                    "a policy cannot be renamed; create a new one and move the items to it",
                ));
            }
            self.blocking(move |s| {
                let v = find_vault(s, &vault)?;
                caller.require(
                    Permission::ManagePolicies,
                    &crate::catalogue::vault_target(&v)?,
                )?;
                let (mut row, _) = find_policy(s, &v, &name)?;
                // Each scheduled point's expiry under the changed policy; in an
                // immutable vault none may come sooner than it is now.
                let items = s.store.items_using_policy(&row.id)?;
                let (changed, shortens) =
                    crate::usecases::protection::expiry_under(s, &v, &policy, &items)?;
                if shortens {
                    crate::usecases::guards::require_approvals(
                        s,
                        &caller,
                        &v,
                        &[tresor_domain::CriticalOperation::ReduceRetention],
                    )?;
                }
                row.body = serde_json::to_value(&policy).map_err(ServiceError::internal)?;
                s.store.update_policy(&row)?;
                for p in &changed {
                    s.store.update_point(p)?;
                }
                dto(s, &row)
            })
            .await
        }
        .await;
        self.audited(who, "policy.update", target, r).await
    }

    pub async fn delete_policy(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        name: String,
    ) -> ServiceResult<()> {
        let target = Target::in_vault(&vault, &name);
        let r: ServiceResult<()> = async {
            let caller = who.clone();
            self
                .blocking(move |s| {
                    let v = find_vault(s, &vault)?;
 caller.require(Permission::ManagePolicies, &crate::catalogue::vault_target(&v)?)?;
                    let (row, _) = find_policy(s, &v, &name)?;
                    let users = s.store.items_using_policy(&row.id)?;
                    if !users.is_empty() {
                        let names: Vec<_> = users.iter().map(|i| i.vm_name.as_str()).collect();
                        return Err(ServiceError::new(
                            ErrorCode::PolicyInUse,
                            format!("policy {name} is used by {} protected items: {}", users.len(), names.join(", ")),
                            "move those items to another policy, or stop their protection, before deleting it",
                        ));
                    }
                    s.store.delete_policy(&row.id)?;
                    Ok(())
                })
                .await
        }
        .await;
        self.audited(who, "policy.delete", target, r).await
    }
}
