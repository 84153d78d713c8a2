//! A shut-off domain's disks, read directly: its images opened read-only under
//! QEMU's image locks (so the domain cannot start writing while they are read),
//! crash-consistent. Nothing of libvirt's is changed.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tresor_api::inventory::DiskSource;
use tresor_vm::{BackupView, CheckCode, Consistency, ViewDisk, VmError, VmInfo};

/// The images of a shut-off domain, open for reading.
pub struct OfflineView {
    disks: Vec<ViewDisk>,
    vm_config: Value,
    warnings: Vec<String>,
}

/// Opens every disk of `info` not in `exclude` (blocking: qemu-nbd may start).
pub fn open(
    info: &VmInfo,
    exclude: &[String],
    definition: Option<String>,
) -> Result<OfflineView, VmError> {
    let mut disks = Vec::new();
    let mut excluded = Vec::new();
    for disk in &info.disks {
        if exclude.contains(&disk.name) {
            excluded.push(disk.name.clone());
            continue;
        }
        let path = match &disk.source {
            Some(DiskSource::File { path } | DiskSource::Block { path }) => path,
            _ => {
                return Err(VmError::new(
                    CheckCode::UnsupportedDiskFormat,
                    format!(
                        "disk {} of shut-off domain {} is not a file or block device ({}); start the domain so it is backed up through libvirt, or exclude the disk",
                        disk.name, info.name, disk.image
                    ),
                ))
            }
        };
        let opened = tresor_qemu::open_offline_disk(Path::new(path), false, None).map_err(|e| {
            let code = match e {
                tresor_qemu::Error::ImageLocked { .. } => CheckCode::ImageLocked,
                _ => CheckCode::ImageMissing,
            };
            VmError::new(code, format!("disk {}: {e}", disk.name))
        })?;
        disks.push(ViewDisk {
            name: disk.name.clone(),
            source: opened.source,
            dirty: None,
            full_read_reason: None,
        });
    }
    if disks.is_empty() {
        return Err(VmError::new(
            CheckCode::NoDisks,
            format!(
                "domain {} has no disk to back up (every disk excluded, or none)",
                info.name
            ),
        ));
    }
    // Shut off: nothing writes the UEFI variables or the TPM state while the images
    // are held.
    let uuid = info.uuid.as_deref().unwrap_or_default();
    let firmware = crate::firmware_state::read(
        uuid,
        info.firmware.as_ref().and_then(|f| f.nvram.as_deref()),
        info.tpm.as_ref(),
        Path::new(crate::firmware_state::SWTPM_STATE_ROOT),
    );
    let saved: Vec<_> = info
        .disks
        .iter()
        .filter(|d| !excluded.contains(&d.name))
        .collect();
    Ok(OfflineView {
        disks,
        vm_config: json!({
            "provider": "libvirt",
            "name": info.name,
            "uuid": info.uuid,
            "disks": saved,
            "excluded_disks": excluded,
            "checkpoint": null,
            "domain_xml": definition,
            "nvram": firmware.nvram,
            "tpm_state": firmware.tpm,
        }),
        warnings: firmware.warnings,
    })
}

#[async_trait]
impl BackupView for OfflineView {
    fn disks(&self) -> &[ViewDisk] {
        &self.disks
    }
    fn consistency(&self) -> Consistency {
        Consistency::CrashConsistent
    }
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
    fn frozen_for(&self) -> Option<Duration> {
        None
    }
    fn vm_config(&self) -> Value {
        self.vm_config.clone()
    }
    async fn finish(self: Box<Self>, _committed: bool) -> tresor_vm::Result<()> {
        Ok(())
    }
}
