//! A libvirt domain whose disks are a raw file and a block device (a loop device
//! standing in for an LVM volume or a SAN LUN), against a real libvirtd (started as
//! root if none runs): backed up running through libvirt's backup API and shut off
//! (read directly), each point restoring both disks byte for byte. Neither source
//! can hold libvirt's change tracking, so a backup after the first reads them whole,
//! saying why, deduplicated against what is stored. The domain boots no guest (no
//! disk is bootable): its disks hold what the test wrote. Needs QEMU and libvirt
//! (scripts/install-deps.sh).

mod common;
#[path = "../../tresor-libvirt/tests/common/mod.rs"]
mod libvirt_common;

use std::path::Path;
use std::process::Command;

use common::{assert_same, backup_of, repo, restored, MIB};
use libvirt_common::{Libvirtd, TestDomains};
use rand::{RngCore, SeedableRng};
use tresor_engine::Consistency;
use tresor_libvirt::LibvirtProvider;

const UUID: &str = "5e0c9f4e-0000-4000-8000-0000000000e1";
const SIZE: u64 = 8 * MIB;

/// A loop device over a file; detached when dropped.
struct LoopDevice(String);

impl LoopDevice {
    fn attach(file: &Path) -> LoopDevice {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .expect("losetup (util-linux)");
        assert!(
            out.status.success(),
            "attaching a loop device: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        LoopDevice(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn random(seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; SIZE as usize];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Data in a few places, zeros between (a sparse read skips them).
    for at in [0, 3 * MIB, 7 * MIB] {
        rng.fill_bytes(&mut data[at as usize..(at + MIB / 2) as usize]);
    }
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_file_and_block_device_disks_running_and_shut_off() -> anyhow::Result<()> {
    let _daemon = Libvirtd::ensure()?;
    let t = TestDomains::new("sources")?;
    let file_bytes = random(31);
    let block_bytes = random(32);
    let raw = t.images.join("data.raw");
    std::fs::write(&raw, &file_bytes)?;
    let backing = t.images.join("lun.img");
    std::fs::write(&backing, &block_bytes)?;
    let lun = LoopDevice::attach(&backing);
    let xml = format!(
        "<domain type='qemu'><name>{}</name><uuid>{UUID}</uuid>
           <memory unit='MiB'>128</memory><vcpu>1</vcpu>
           <os><type arch='x86_64' machine='q35'>hvm</type></os>
           <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>
               <source file='{}'/><target dev='vda' bus='virtio'/></disk>
             <disk type='block' device='disk'><driver name='qemu' type='raw'/>
               <source dev='{}'/><target dev='vdb' bus='virtio'/></disk>
             <video><model type='none'/></video><memballoon model='none'/>
           </devices></domain>",
        t.name("vm"),
        raw.display(),
        lun.0
    );
    let domain = t.define(&xml)?;
    domain.create()?;
    let work = tempfile::tempdir()?;
    let repo = repo(work.path());
    let provider =
        LibvirtProvider::new("qemu:///system").with_scratch_dir(t.images.join("scratch"));

    // Running: through libvirt's backup job; both disks as they are.
    let first = backup_of(&repo, &provider, UUID).await;
    let m = &first.manifest;
    assert_eq!(m.disks.len(), 2, "{:?}", m.disks);
    assert_same(&restored(&repo, m, "vda", work.path()), &file_bytes);
    assert_same(&restored(&repo, m, "vdb", work.path()), &block_bytes);

    // Again: no change tracking on raw sources, so both are read whole, saying
    // why, and nothing new is stored.
    let second = backup_of(&repo, &provider, UUID).await;
    let m = &second.manifest;
    assert_eq!(second.full_reads, 2, "{:?}", second.warnings);
    for disk in ["vda", "vdb"] {
        assert!(
            second
                .warnings
                .iter()
                .any(|w| w.contains(&format!("disk {disk}")) && w.contains("raw")),
            "{disk}: {:?}",
            second.warnings
        );
    }
    assert!(m.stats.bytes_added < MIB, "deduplicated: {:?}", m.stats);
    assert_same(&restored(&repo, m, "vdb", work.path()), &block_bytes);

    // Shut off: read directly, the block device as the file is.
    domain.destroy()?;
    let off = backup_of(&repo, &provider, UUID).await;
    let m = &off.manifest;
    assert_eq!(m.consistency, Consistency::CrashConsistent);
    assert_same(&restored(&repo, m, "vda", work.path()), &file_bytes);
    assert_same(&restored(&repo, m, "vdb", work.path()), &block_bytes);
    Ok(())
}
