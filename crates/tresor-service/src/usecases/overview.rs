//! What overview pages read beside the resources: a vault's storage figures, every
//! reported VM with the vault protecting it, the locations worth offering, whether a
//! vault name is taken.

use std::collections::BTreeMap;
use std::sync::Arc;
use tresor_domain::access::{Permission, Target};

use tresor_api::overview::{Protection, ReportedVmProtection, VaultStorage};
use tresor_storage::ObjectKind;

use crate::auth::Principal;
use crate::catalogue::{find_vault, parse_state};
use crate::error::ServiceResult;
use crate::repos::Region;
use crate::state::Service;
use crate::usecases::agents::{readable_vaults, visible_agents, vm_report};

impl Service {
    /// Bytes a vault stores in its primary storage (what storage it can reach), and
    /// the logical size of all its recovery points.
    pub async fn vault_storage(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
    ) -> ServiceResult<VaultStorage> {
        let caller = who.clone();
        self.blocking(move |s| {
            let v = find_vault(s, &vault)?;
            caller.require(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?)?;
            let mut stored = 0;
            for agent in s.repos.of_vault(&v, Region::Primary) {
                let Ok(b) = s.repos.backend(&v, &agent, Region::Primary, false) else {
                    continue;
                };
                for kind in [ObjectKind::Pack, ObjectKind::Index, ObjectKind::Point] {
                    stored += b
                        .list(kind)
                        .unwrap_or_default()
                        .iter()
                        .map(|o| o.size)
                        .sum::<u64>();
                }
            }
            let logical = s
                .store
                .list_vault_points(&v.id)?
                .iter()
                .map(|p| p.size)
                .sum();
            Ok(VaultStorage {
                stored_bytes: stored,
                logical_bytes: logical,
            })
        })
        .await
    }

    /// Every VM the host agents `who` may see reported (those whose report reads),
    /// with the vault whose active item protects it. Below `/`, a VM protected by a
    /// vault `who` may not read is left out (its vault's name is not its business).
    pub async fn vm_protection(
        self: &Arc<Self>,
        who: &Principal,
    ) -> ServiceResult<Vec<ReportedVmProtection>> {
        who.require_somewhere(Permission::ReadVaults)?;
        let who = who.clone();
        self.blocking(move |s| {
            let agents = visible_agents(s, &who)?;
            let readable = if who.may(Permission::ReadVaults, &Target::Installation) {
                None
            } else {
                Some(readable_vaults(s, &who)?)
            };
            let mut vault_names: BTreeMap<String, String> = BTreeMap::new();
            let mut out = Vec::new();
            for row in s.store.list_inventory()? {
                let Some(agent) = agents.iter().find(|a| a.id == row.agent_id) else {
                    continue;
                };
                let Some(info) = vm_report(&row) else {
                    continue;
                };
                let protected_by = match s.store.find_active_item(&agent.id, &row.vm)? {
                    Some(item)
                        if readable
                            .as_ref()
                            .is_some_and(|r| !r.contains(&item.vault_id)) =>
                    {
                        continue
                    }
                    Some(item) => {
                        let vault = match vault_names.get(&item.vault_id) {
                            Some(n) => n.clone(),
                            None => {
                                let n = s.store.get_vault(&item.vault_id)?.name;
                                vault_names.insert(item.vault_id.clone(), n.clone());
                                n
                            }
                        };
                        Some(Protection {
                            vault,
                            state: parse_state(&item.state),
                            item_id: item.id,
                        })
                    }
                    None => None,
                };
                out.push(ReportedVmProtection {
                    agent_id: agent.id.clone(),
                    host: agent.host.clone(),
                    location: agent.location.clone(),
                    vm: row.vm,
                    info,
                    protected_by,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Locations worth offering for a new vault: those the agents `who` may see are
    /// in and those the server's configuration names, sorted.
    pub async fn known_locations(self: &Arc<Self>, who: &Principal) -> ServiceResult<Vec<String>> {
        who.require_somewhere(Permission::ReadVaults)?;
        let who = who.clone();
        self.blocking(move |s| {
            let mut out: Vec<String> = visible_agents(s, &who)?
                .into_iter()
                .map(|a| a.location)
                .collect();
            out.extend(s.repos.locations().configured_names());
            out.sort();
            out.dedup();
            Ok(out)
        })
        .await
    }

    /// Whether a vault of this name exists (names are unique whatever their case).
    pub async fn vault_name_taken(
        self: &Arc<Self>,
        who: &Principal,
        name: String,
    ) -> ServiceResult<bool> {
        who.require_installation(Permission::CreateVault)?;
        self.blocking(move |s| Ok(s.store.find_vault_by_name(&name)?.is_some()))
            .await
    }
}
