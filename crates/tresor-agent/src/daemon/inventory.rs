//! What the agent reports of its host: the VMs with their preflight checks, in a
//! heartbeat; and the disks each VM was seen with, remembered for restores over them.
//!
//! Two providers report side by side: the configured QEMU VMs (`[[vm]]`,
//! `socket_dirs`) and libvirt's domains (`[libvirt]`), listed anew at each heartbeat,
//! so new, renamed, undefined and migrated-away domains show within one heartbeat.
//! A libvirt that does not answer is a warning in the agent's log; the QEMU VMs are
//! still reported.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tresor_api::agents::{Heartbeat, ReportedVm};
use tresor_libvirt::LibvirtProvider;
use tresor_qemu::QemuProvider;
use tresor_vm::{VmDisk, VmProvider, VmRef};

use super::config::{write_private, LibvirtConfig};
use super::registration::ServerLink;

/// How often the agent reports it lives, with its VMs.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// What the agent reports of its VMs: what each is, and its preflight checks (so that
/// the portal shows why a VM could not be backed up before a backup fails).
pub async fn inventory(provider: &dyn VmProvider) -> Vec<ReportedVm> {
    inventory_and_disks(provider).await.0
}

/// [`inventory`], and the disks of each VM that could be inspected.
async fn inventory_and_disks(
    provider: &dyn VmProvider,
) -> (Vec<ReportedVm>, BTreeMap<String, Vec<VmDisk>>) {
    let mut vms = Vec::new();
    let mut disks = BTreeMap::new();
    for vm in provider.list().await.unwrap_or_default() {
        match tokio::time::timeout(Duration::from_secs(20), provider.inspect(&vm)).await {
            Ok(Ok(info)) => {
                let preflight =
                    tokio::time::timeout(Duration::from_secs(20), provider.preflight(&vm))
                        .await
                        .ok();
                disks.insert(vm.0.clone(), info.disks.clone());
                vms.push(ReportedVm {
                    vm: vm.0,
                    info,
                    preflight,
                })
            }
            Ok(Err(e)) => tracing::warn!(vm = %vm, error = %e, "cannot inspect VM"),
            Err(_) => tracing::warn!(vm = %vm, "inspecting the VM timed out"),
        }
    }
    (vms, disks)
}

fn known_disks_path(state_dir: &Path) -> PathBuf {
    state_dir.join("known-disks.json")
}

/// The disks this host has seen each VM with (by the provider's name of the VM).
pub(super) fn read_known_disks(state_dir: &Path) -> BTreeMap<String, Vec<VmDisk>> {
    std::fs::read(known_disks_path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Remembers the disks VMs were seen with, so that a stopped VM's disks can be
/// replaced (QEMU, which knew them, is gone then). VMs not seen now keep their entry.
pub(super) fn remember_disks(state_dir: &Path, seen: BTreeMap<String, Vec<VmDisk>>) {
    let mut known = read_known_disks(state_dir);
    let before = known.clone();
    known.extend(seen);
    if known != before {
        let json = serde_json::to_vec_pretty(&known).expect("disks serialize");
        if let Err(e) = write_private(&known_disks_path(state_dir), &json) {
            tracing::warn!(error = %e, "cannot remember the VMs' disks");
        }
    }
}

/// The images this host knows `vm` by: what the provider says now, else what it
/// said last time (a stopped VM without configured images).
pub(super) async fn host_known_disks(
    provider: &dyn VmProvider,
    state_dir: &Path,
    vm: &str,
) -> Option<Vec<VmDisk>> {
    let vm_ref = VmRef(vm.to_string());
    match tokio::time::timeout(Duration::from_secs(20), provider.inspect(&vm_ref)).await {
        Ok(Ok(info)) if !info.disks.is_empty() => {
            remember_disks(
                state_dir,
                BTreeMap::from([(vm.to_string(), info.disks.clone())]),
            );
            Some(info.disks)
        }
        _ => read_known_disks(state_dir).remove(vm),
    }
}

/// The libvirt the agent lists domains from: the configuration, and the provider
/// for the URI it names now (kept between heartbeats; a new one when the URI
/// changes, none while libvirt is switched off or absent).
pub(super) struct LibvirtSource {
    config: LibvirtConfig,
    provider: Option<LibvirtProvider>,
}

impl LibvirtSource {
    pub(super) fn new(config: LibvirtConfig) -> LibvirtSource {
        LibvirtSource {
            config,
            provider: None,
        }
    }

    fn provider_now(&mut self) -> Option<&LibvirtProvider> {
        match self.config.uri_now() {
            None => self.provider = None,
            Some(uri) if self.provider.as_ref().is_some_and(|p| p.uri() == uri) => {}
            Some(uri) => self.provider = Some(LibvirtProvider::new(uri)),
        }
        self.provider.as_ref()
    }

    /// Every domain with its preflight findings, and its disks; nothing (and a
    /// warning) when libvirt does not answer.
    async fn inventory(&mut self) -> (Vec<ReportedVm>, BTreeMap<String, Vec<VmDisk>>) {
        let Some(provider) = self.provider_now() else {
            return Default::default();
        };
        let found = match provider.discover().await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(uri = provider.uri(), error = %e, "libvirt does not answer: its domains are left out of this report");
                return Default::default();
            }
        };
        for warning in &found.warnings {
            tracing::warn!(uri = provider.uri(), "{warning}");
        }
        let mut disks = BTreeMap::new();
        let vms = found
            .domains
            .into_iter()
            .map(|d| {
                disks.insert(d.vm.clone(), d.info.disks.clone());
                ReportedVm {
                    preflight: Some(tresor_libvirt::preflight(&d.info)),
                    vm: d.vm,
                    info: d.info,
                }
            })
            .collect();
        (vms, disks)
    }
}

/// The host's VMs in one list: libvirt's domains, and the QEMU VMs that are not
/// one of them (a `[[vm]]` pointing at a domain libvirt runs, found by its UUID or
/// name, is reported once, through libvirt). At most what the vault takes of one
/// host.
fn merge(qemu: Vec<ReportedVm>, libvirt: Vec<ReportedVm>) -> Vec<ReportedVm> {
    let names: HashSet<&str> = libvirt.iter().map(|v| v.vm.as_str()).collect();
    let uuids: HashSet<&str> = libvirt
        .iter()
        .filter_map(|v| v.info.uuid.as_deref())
        .collect();
    let mut out: Vec<ReportedVm> = qemu
        .into_iter()
        .filter(|v| {
            let twin = names.contains(v.vm.as_str())
                || v.info.uuid.as_deref().is_some_and(|u| uuids.contains(u));
            if twin {
                tracing::warn!(vm = %v.vm, "this VM is also a libvirt domain: reported once, through libvirt");
            }
            !twin
        })
        .collect();
    out.extend(libvirt.iter().cloned());
    if out.len() > tresor_libvirt::MAX_DOMAINS {
        tracing::warn!(
            vms = out.len(),
            "this host has more VMs than a report may hold; the last are left out"
        );
        out.truncate(tresor_libvirt::MAX_DOMAINS);
    }
    out
}

/// A heartbeat every [`HEARTBEAT`]; one that fails makes the link read the agent's
/// state again (a server restarted elsewhere).
pub(super) async fn heartbeats(
    link: Arc<ServerLink>,
    provider: Arc<QemuProvider>,
    mut libvirt: LibvirtSource,
    state_dir: PathBuf,
    shutdown: CancellationToken,
) {
    loop {
        let (qemu_vms, mut disks) = inventory_and_disks(provider.as_ref()).await;
        let (libvirt_vms, libvirt_disks) = libvirt.inventory().await;
        disks.extend(libvirt_disks);
        let vms = merge(qemu_vms, libvirt_vms);
        remember_disks(&state_dir, disks);
        let heartbeat = Heartbeat {
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            vms,
        };
        if let Err(e) = link.api().heartbeat(&heartbeat).await {
            tracing::warn!(error = %e, server = %link.server(), "heartbeat failed");
            link.reread();
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use tresor_api::inventory::{GuestAgentState, VmInfo, VmProviderKind, VmState};

    use super::*;

    fn reported(vm: &str, uuid: Option<&str>, provider: VmProviderKind) -> ReportedVm {
        let mut info = VmInfo::basic(
            vm.into(),
            uuid.map(String::from),
            VmState::Running,
            vec![],
            GuestAgentState::NotConfigured,
        );
        info.provider = provider;
        ReportedVm {
            vm: vm.into(),
            info,
            preflight: None,
        }
    }

    #[test]
    fn a_vm_both_providers_know_is_reported_once_through_libvirt() {
        let u1 = "5e0c9f4e-0000-4000-8000-000000000001";
        let u2 = "5e0c9f4e-0000-4000-8000-000000000002";
        let qemu = vec![
            reported("plain", None, VmProviderKind::Qemu),
            reported("web01", Some(u1), VmProviderKind::Qemu),
            reported(u2, None, VmProviderKind::Qemu),
        ];
        let libvirt = vec![
            reported(u1, Some(u1), VmProviderKind::Libvirt),
            reported(u2, Some(u2), VmProviderKind::Libvirt),
        ];
        let merged = merge(qemu, libvirt);
        let seen: Vec<_> = merged
            .iter()
            .map(|v| (v.vm.as_str(), v.info.provider))
            .collect();
        assert_eq!(
            seen,
            [
                ("plain", VmProviderKind::Qemu),
                (u1, VmProviderKind::Libvirt),
                (u2, VmProviderKind::Libvirt)
            ]
        );
    }

    #[test]
    fn a_report_holds_at_most_what_the_vault_takes() {
        let libvirt: Vec<_> = (0..tresor_libvirt::MAX_DOMAINS)
            .map(|i| reported(&format!("d{i}"), None, VmProviderKind::Libvirt))
            .collect();
        let merged = merge(vec![reported("plain", None, VmProviderKind::Qemu)], libvirt);
        assert_eq!(merged.len(), tresor_libvirt::MAX_DOMAINS);
        assert_eq!(merged[0].vm, "plain");
    }

    /// Switched off, no libvirt is asked, whatever runs on the host.
    #[tokio::test]
    async fn libvirt_switched_off_reports_nothing() {
        let mut source = LibvirtSource::new(LibvirtConfig {
            uri: Some("test:///default".into()),
            enabled: Some(false),
        });
        assert_eq!(source.inventory().await.0.len(), 0);
        assert!(source.provider.is_none());
    }

    /// libvirt's built-in test driver (`test:///default`, no daemon) holds one
    /// running domain, `test`: reported, marked as libvirt's, with its preflight.
    #[tokio::test]
    async fn domains_of_a_libvirt_uri_are_reported() {
        let mut source = LibvirtSource::new(LibvirtConfig {
            uri: Some("test:///default".into()),
            enabled: None,
        });
        let (vms, _) = source.inventory().await;
        assert_eq!(vms.len(), 1);
        assert_eq!(vms[0].info.name, "test");
        assert_eq!(vms[0].info.provider, VmProviderKind::Libvirt);
        assert_eq!(vms[0].info.uuid.as_deref(), Some(vms[0].vm.as_str()));
        assert!(vms[0].preflight.is_some());
    }

    /// A libvirt that is not there is a warning, not a failure of the heartbeat.
    #[tokio::test]
    async fn an_absent_libvirt_reports_nothing() {
        let mut source = LibvirtSource::new(LibvirtConfig {
            uri: Some("qemu+unix:///system?socket=/nonexistent/libvirt-sock".into()),
            enabled: None,
        });
        assert_eq!(source.inventory().await.0.len(), 0);
    }
}
