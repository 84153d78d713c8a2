//! The read behind a VM's own page in the portal ("enable backup directly from the
//! VM's settings"): what its agent reports of it, whether and by what it is protected,
//! its newest recovery points, and, when no vault protects it, the vaults of its
//! location the caller may protect it in, with their policies. One call, so the page
//! cannot show a VM from one moment beside its protection from another.

use std::sync::Arc;

use jiff::Timestamp;
use tresor_api::inventory::VmReport;
use tresor_api::items::{ProtectedItem, RecoveryPoint};
use tresor_api::ErrorCode;
use tresor_domain::access::Permission;
use tresor_metadata::AgentRow;

use crate::auth::Principal;
use crate::catalogue::{find_reported_vm, vault_target};
use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;
use crate::usecases::agents::{online, readable_vaults, visible_agents, vm_report};
use crate::usecases::items::item_dto;
use crate::views;

/// The recovery points a VM's page lists; the item's page has them all.
pub const POINTS_SHOWN: usize = 5;

/// One VM as its page shows it.
#[derive(Debug, Clone)]
pub struct VmPage {
    pub agent_id: String,
    pub host: String,
    /// The host's location: only vaults there may protect the VM.
    pub location: String,
    pub agent_online: bool,
    /// The agent's id for the VM: a libvirt domain's UUID, a QEMU VM's name.
    pub vm: String,
    pub report: VmReport,
    /// When its agent last reported it.
    pub seen: Timestamp,
    pub protection: VmProtection,
}

/// Whether and how a VM is protected, as far as the caller may know.
#[derive(Debug, Clone)]
pub enum VmProtection {
    /// No vault protects it. `offers`: the vaults of its location in which the caller
    /// may enable protection (the check `enable_protection` makes), each with its
    /// policies; empty when there is none.
    Unprotected {
        offers: Vec<VaultOffer>,
    },
    /// A vault the caller may not read protects it: which one is not its business.
    ByUnreadableVault,
    Protected(Box<ProtectedVm>),
}

/// A vault a VM may be protected in, with its policies' names (`DefaultPolicy` first).
#[derive(Debug, Clone)]
pub struct VaultOffer {
    pub vault: String,
    pub resource_group: String,
    pub policies: Vec<String>,
}

/// The item that protects a VM, in a vault the caller may read.
#[derive(Debug, Clone)]
pub struct ProtectedVm {
    pub vault: String,
    pub resource_group: String,
    pub item: ProtectedItem,
    /// Its newest recovery points in the primary region, newest first, at most
    /// [`POINTS_SHOWN`].
    pub points: Vec<RecoveryPoint>,
    /// How many points it has in the primary region.
    pub point_count: usize,
}

/// The agent `host` (its id, or its host name when one visible agent has it) among
/// those `who` may see.
fn visible_agent(s: &Service, who: &Principal, host: &str) -> ServiceResult<AgentRow> {
    let agents = visible_agents(s, who)?;
    if let Some(a) = agents.iter().find(|a| a.id == host) {
        return Ok(a.clone());
    }
    let named: Vec<AgentRow> = agents.into_iter().filter(|a| a.host == host).collect();
    match named.len() {
        0 => Err(ServiceError::not_found(format!(
            "a host agent {:?}",
            host.chars().take(100).collect::<String>()
        ))),
        1 => Ok(named.into_iter().next().expect("one")),
        n => Err(ServiceError::new(
            ErrorCode::AmbiguousHost,
            format!("{n} agents report host name {host}"),
            "name the host by its agent id (Host agents lists it)",
        )),
    }
}

impl Service {
    /// The VM `vm` (its agent's id for it, or its name when that names one VM of the
    /// host) of host `host` (an agent id or host name), for the caller's eyes:
    /// NotFound unless the caller may see the host.
    pub async fn vm_page(
        self: &Arc<Self>,
        who: &Principal,
        host: String,
        vm: String,
    ) -> ServiceResult<VmPage> {
        who.require_somewhere(Permission::ReadVaults)?;
        let who = who.clone();
        self.blocking(move |s| {
            let agent = visible_agent(s, &who, &host)?;
            let inventory = s.store.list_inventory()?;
            let row = find_reported_vm(&inventory, &agent, &vm)?;
            let report = vm_report(row).ok_or_else(|| {
                ServiceError::not_found(format!(
                    "a readable report of VM {} on host {} (wait for its agent's next heartbeat)",
                    row.vm, agent.host
                ))
            })?;
            let protection = match s.store.find_active_item(&agent.id, &row.vm)? {
                Some(item) => {
                    let v = s.store.get_vault(&item.vault_id)?;
                    if !who.may(Permission::ReadVaults, &vault_target(&v)?) {
                        VmProtection::ByUnreadableVault
                    } else {
                        let mut points = s.store.list_points(&item.id)?;
                        let point_count = points.len();
                        points.reverse();
                        points.truncate(POINTS_SHOWN);
                        VmProtection::Protected(Box::new(ProtectedVm {
                            vault: v.name,
                            resource_group: v.resource_group,
                            item: item_dto(s, &item)?,
                            points: points.iter().map(views::point).collect(),
                            point_count,
                        }))
                    }
                }
                None => {
                    let readable = readable_vaults(s, &who)?;
                    let mut offers = Vec::new();
                    for v in s.store.list_vaults()? {
                        if v.location != agent.location
                            || !readable.contains(&v.id)
                            || !who.may(Permission::EnableProtection, &vault_target(&v)?)
                        {
                            continue;
                        }
                        let mut policies: Vec<String> = s
                            .store
                            .list_policies(&v.id)?
                            .into_iter()
                            .map(|p| p.name)
                            .collect();
                        policies.sort_by_key(|p| (p != "DefaultPolicy", p.clone()));
                        offers.push(VaultOffer {
                            vault: v.name,
                            resource_group: v.resource_group,
                            policies,
                        });
                    }
                    offers.sort_by(|a, b| a.vault.cmp(&b.vault));
                    VmProtection::Unprotected { offers }
                }
            };
            Ok(VmPage {
                agent_online: online(&agent, s.now()),
                agent_id: agent.id,
                host: agent.host,
                location: agent.location,
                vm: row.vm.clone(),
                report,
                seen: row.seen,
                protection,
            })
        })
        .await
    }
}
