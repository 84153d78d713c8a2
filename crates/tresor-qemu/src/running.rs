//! What a running QEMU says of its VM: name, UUID, run state, disks, guest agent.

use std::path::Path;
use std::time::Duration;

use tresor_qmp::{BlockInfo, GuestAgent, Qmp, RunState};
use tresor_vm::{CheckCode, GuestAgentState, VmDisk, VmError, VmState};

/// How long QMP may take to answer a command.
pub(crate) const QMP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a guest agent may take to answer a ping or an info request.
pub(crate) const AGENT_TIMEOUT: Duration = Duration::from_secs(3);

/// Formats whose disks are backed up from a running VM. Only qcow2 keeps its dirty
/// bitmaps across QEMU restarts; the others are tracked while QEMU runs.
pub(crate) const RUNNING_FORMATS: [&str; 4] = ["qcow2", "raw", "file", "host_device"];
/// The filter a point-in-time view puts above a disk while it exists.
pub(crate) const COPY_BEFORE_WRITE: &str = "copy-before-write";

pub(crate) async fn connect_qmp(socket: &Path) -> Result<Qmp, VmError> {
    Qmp::connect(socket, QMP_TIMEOUT).await.map_err(|e| {
        VmError::new(
            CheckCode::QmpUnreachable,
            format!(
                "cannot reach QEMU's monitor at {}: {e}. Start QEMU with `-qmp unix:{},server=on,wait=off` (a monitor of its own for Tresor), or check the path and its permissions",
                socket.display(),
                socket.display()
            ),
        )
    })
}

fn qmp_error(what: &str, e: tresor_qmp::QmpError) -> VmError {
    VmError::new(CheckCode::QmpUnreachable, format!("QEMU {what}: {e}"))
}

/// The VM's identity and state.
pub(crate) async fn identity(
    qmp: &Qmp,
) -> Result<(Option<String>, Option<String>, VmState), VmError> {
    let status = qmp
        .query_status()
        .await
        .map_err(|e| qmp_error("query-status", e))?;
    let name = qmp
        .query_name()
        .await
        .map_err(|e| qmp_error("query-name", e))?;
    let uuid = qmp
        .query_uuid()
        .await
        .map_err(|e| qmp_error("query-uuid", e))?;
    // QEMU reports the all-zero UUID when none was given.
    let uuid = Some(uuid).filter(|u| u.chars().any(|c| c != '0' && c != '-'));
    let state = if status.status == RunState::Running {
        VmState::Running
    } else {
        VmState::Paused
    };
    Ok((name, uuid, state))
}

/// The VM's disks: every block device with a medium, but read-only removable media
/// (installation CDs), which are not the VM's data.
pub(crate) async fn disks(qmp: &Qmp) -> Result<Vec<VmDisk>, VmError> {
    let blocks = qmp
        .query_block()
        .await
        .map_err(|e| qmp_error("query-block", e))?;
    Ok(blocks.iter().filter_map(disk_of).collect())
}

fn disk_of(b: &BlockInfo) -> Option<VmDisk> {
    let inserted = b.inserted.as_ref()?;
    if b.removable && inserted.ro {
        return None;
    }
    Some(VmDisk {
        name: device_name(b),
        node: inserted.node_name.clone(),
        image: inserted.image.filename.clone(),
        format: inserted.drv.clone(),
        virtual_size: inserted.image.virtual_size,
        source: None,
        bus: None,
    })
}

/// The guest device's id (`vda` from `-device virtio-blk-pci,id=vda`, reported as
/// `/machine/peripheral/vda/virtio-backend`), else the drive's id, else the node.
fn device_name(b: &BlockInfo) -> String {
    if let Some(qdev) = &b.qdev {
        if let Some(id) = qdev.strip_prefix("/machine/peripheral/") {
            if let Some(id) = id.split('/').next().filter(|s| !s.is_empty()) {
                return id.to_string();
            }
        }
    }
    if !b.device.is_empty() {
        return b.device.clone();
    }
    b.inserted
        .as_ref()
        .and_then(|i| i.node_name.clone())
        .unwrap_or_else(|| "disk".to_string())
}

/// Connects to the guest agent and asks what it can do. Never waits longer than
/// [`AGENT_TIMEOUT`] per step: an agent that does not answer is a state, not a hang.
pub(crate) async fn probe_agent(socket: Option<&Path>) -> (GuestAgentState, Option<GuestAgent>) {
    let Some(socket) = socket else {
        return (GuestAgentState::NotConfigured, None);
    };
    let mut agent = match GuestAgent::connect(socket, AGENT_TIMEOUT).await {
        Ok(a) => a,
        Err(e) => {
            return (
                GuestAgentState::NotResponding {
                    reason: e.to_string(),
                },
                None,
            )
        }
    };
    match agent.info().await {
        Ok(info) => {
            let can_freeze =
                info.supports("guest-fsfreeze-freeze") && info.supports("guest-fsfreeze-thaw");
            (
                GuestAgentState::Responding {
                    version: info.version,
                    can_freeze,
                },
                Some(agent),
            )
        }
        Err(e) => (
            GuestAgentState::NotResponding {
                reason: e.to_string(),
            },
            None,
        ),
    }
}

/// The QEMU command line, read from `/proc` by the pid the kernel gives for the QMP
/// socket's peer: the VM's configuration as the operator wrote it.
pub(crate) fn command_line(qmp: &Qmp) -> Option<Vec<String>> {
    let pid = qmp.peer_pid()?;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(device: &str, qdev: Option<&str>, node: &str) -> BlockInfo {
        serde_json::from_value(serde_json::json!({
            "device": device,
            "qdev": qdev,
            "removable": false,
            "locked": false,
            "inserted": {
                "node-name": node, "file": "/x.qcow2", "drv": "qcow2", "ro": false,
                "backing_file_depth": 0,
                "image": {"filename": "/x.qcow2", "format": "qcow2", "virtual-size": 1048576},
            }
        }))
        .unwrap()
    }

    #[test]
    fn disks_are_named_after_the_guest_device() {
        let b = block("", Some("/machine/peripheral/vda/virtio-backend"), "disk0");
        assert_eq!(device_name(&b), "vda");
        let b = block("drive0", None, "disk0");
        assert_eq!(device_name(&b), "drive0");
        let b = block("", Some("/machine/unattached/device[3]"), "disk0");
        assert_eq!(device_name(&b), "disk0");
        let d = disk_of(&block("drive0", None, "disk0")).unwrap();
        assert_eq!(d.virtual_size, 1048576);
        assert_eq!(d.node.as_deref(), Some("disk0"));
    }
}
