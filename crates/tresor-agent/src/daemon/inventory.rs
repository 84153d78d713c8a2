//! What the agent reports of its host: the VMs with their preflight checks, in a
//! heartbeat; and the disks each VM was seen with, remembered for restores over them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tresor_api::agents::{Heartbeat, ReportedVm};
use tresor_client::ApiClient;
use tresor_qemu::QemuProvider;
use tresor_vm::{VmDisk, VmProvider, VmRef};

use super::config::write_private;

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

pub(super) async fn heartbeats(
    api: Arc<ApiClient>,
    provider: Arc<QemuProvider>,
    state_dir: PathBuf,
    shutdown: CancellationToken,
) {
    loop {
        let (vms, disks) = inventory_and_disks(provider.as_ref()).await;
        remember_disks(&state_dir, disks);
        let heartbeat = Heartbeat {
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            vms,
        };
        if let Err(e) = api.heartbeat(&heartbeat).await {
            tracing::warn!(error = %e, "heartbeat failed");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}
