//! A shut-off domain's disks, read directly: its images opened read-only under
//! QEMU's image locks (so the domain cannot start writing while they are read),
//! crash-consistent. Nothing of libvirt's is changed.
//!
//! Incremental where it can be: libvirt keeps each checkpoint as a persistent dirty
//! bitmap of that name in every qcow2 image it tracks (saved when QEMU stopped
//! cleanly), so the parent's checkpoint, read through `qemu-nbd`, gives what changed
//! since the parent; a missing or inconsistent bitmap (QEMU killed) means a whole read,
//! saying why. No checkpoint can be made while the domain is off: the point records
//! the parent's (`vm_config.checkpoint`), whose bitmaps keep recording from an older
//! instant and so hold every change since this point too, for the next backup.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use tresor_api::inventory::DiskSource;
use tresor_vm::{
    BackupView, CheckCode, Consistency, LibvirtPointConfig, ViewDisk, VmConfig, VmError, VmInfo,
};

/// The images of a shut-off domain, open for reading.
pub struct OfflineView {
    disks: Vec<ViewDisk>,
    vm_config: VmConfig,
    warnings: Vec<String>,
}

/// Opens every disk of `info` not in `exclude` (blocking: qemu-nbd may start);
/// qcow2 disks incrementally from `parent_checkpoint`'s bitmaps where they hold one.
pub fn open(
    info: &VmInfo,
    exclude: &[String],
    definition: Option<String>,
    parent_checkpoint: Option<&str>,
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
        let bitmap = parent_checkpoint.filter(|_| disk.format == "qcow2");
        let opened = tresor_qemu::open_offline_disk(Path::new(path), bitmap.is_some(), bitmap)
            .map_err(|e| {
                let code = match e {
                    tresor_qemu::Error::ImageLocked { .. } => CheckCode::ImageLocked,
                    _ => CheckCode::ImageMissing,
                };
                VmError::new(code, format!("disk {}: {e}", disk.name))
            })?;
        disks.push(ViewDisk {
            name: disk.name.clone(),
            source: opened.source,
            dirty: opened.dirty,
            full_read_reason: opened
                .full_read_reason
                .map(|r| format!("disk {}: {r}", disk.name)),
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
    let saved = info
        .disks
        .iter()
        .filter(|d| !excluded.contains(&d.name))
        .cloned()
        .collect();
    Ok(OfflineView {
        disks,
        vm_config: VmConfig::Libvirt(LibvirtPointConfig {
            name: info.name.clone(),
            uuid: info.uuid.clone(),
            disks: saved,
            excluded_disks: excluded,
            checkpoint: parent_checkpoint.map(str::to_string),
            domain_xml: definition,
            nvram: firmware.nvram,
            tpm_state: firmware.tpm,
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
    fn vm_config(&self) -> VmConfig {
        self.vm_config.clone()
    }
    async fn finish(self: Box<Self>, _committed: bool) -> tresor_vm::Result<()> {
        Ok(())
    }
}
