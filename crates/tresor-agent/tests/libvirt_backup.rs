//! Backups of a libvirt domain through libvirt's backup API, driven by the function
//! the agent's backup job calls (`backup_vm` with the libvirt provider), against a
//! real libvirtd (started here as root if none runs) and a TCG guest running
//! qemu-guest-agent. The guest writes known bytes to a disk it does not mount (so
//! each point can be compared byte for byte) and mounts an ext4 disk (so a freeze
//! has something to freeze).
//!
//! Full, incremental (reading only what changed), the domain stopped and started
//! between two backups (still incremental), the checkpoint deleted by hand (a full
//! read, deduplicated, saying why), a disk excluded, and the domain shut off (its
//! images read directly, incrementally from the checkpoints' bitmaps QEMU saved in
//! them, and the next backup of the running domain incremental again); and the
//! domain's QEMU killed between two backups (one whole read, saying why). Needs QEMU, libvirt and the test guest's packages
//! (scripts/install-deps.sh).

mod common;
#[path = "../../tresor-libvirt/tests/common/mod.rs"]
mod libvirt_common;
mod libvirt_guest;

use common::{assert_same, backup_of, repo, restored, MIB};
use libvirt_common::{Libvirtd, TestDomains};
use libvirt_guest::{boot, booted_guest, tresor_checkpoints, write};
use tresor_engine::Consistency;
use tresor_libvirt::{backup_api, LibvirtProvider};

const UUID: &str = "5e0c9f4e-0000-4000-8000-0000000000b1";

/// Held by each test while it runs: one TCG guest at a time on a 2-core machine
/// (two booting at once under a loaded CI left both without an answering agent).
static ONE_GUEST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const DATA_SIZE: u64 = 32 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_domain_full_incremental_restart_self_healing_excluded_and_shut_off(
) -> anyhow::Result<()> {
    let _one = ONE_GUEST.lock().await;
    let _daemon = Libvirtd::ensure()?;
    let t = TestDomains::new("backup")?;
    let domain = booted_guest(&t, "vm", UUID, DATA_SIZE)?;

    let work = tempfile::tempdir()?;
    let repo = repo(work.path());
    let provider =
        LibvirtProvider::new("qemu:///system").with_scratch_dir(t.images.join("scratch"));
    let mut expected = vec![0u8; DATA_SIZE as usize];
    write(&domain, &mut expected, 0, 2 * MIB, 1);
    write(&domain, &mut expected, 20 * MIB, MIB / 2, 2);

    // Full: frozen through libvirt, the disk as written, the checkpoint kept.
    let full = backup_of(&repo, &provider, UUID).await;
    let m = &full.manifest;
    assert_eq!(m.parent, None);
    assert!(full.warnings.is_empty(), "{:?}", full.warnings);
    assert_eq!(
        m.consistency,
        Consistency::FileSystemConsistent,
        "the guest agent froze /data"
    );
    assert!(full.frozen_for.is_some());
    assert!(
        m.stats.bytes_read >= 5 * MIB / 2 && m.stats.bytes_read < 10 * MIB,
        "{:?}",
        m.stats
    );
    assert_same(&restored(&repo, m, "vda", work.path()), &expected);
    let config = m.vm_config.as_ref().unwrap();
    assert_eq!(config["provider"], "libvirt");
    assert_eq!(config["uuid"], UUID);
    assert_eq!(config["checkpoint"], format!("tresor-{}", m.id));
    assert!(config["domain_xml"].as_str().unwrap().contains(UUID));
    assert_eq!(config["disks"][0]["format"], "qcow2");
    assert_eq!(tresor_checkpoints(&domain), [format!("tresor-{}", m.id)]);
    assert!(
        std::fs::read_dir(t.images.join("scratch"))?
            .next()
            .is_none(),
        "scratch folder left behind"
    );

    // Incremental: only what changed is read.
    write(&domain, &mut expected, 8 * MIB, MIB / 2, 3);
    let inc = backup_of(&repo, &provider, UUID).await;
    let m = &inc.manifest;
    assert_eq!(m.parent.as_deref(), Some(full.manifest.id.as_str()));
    assert_eq!(inc.full_reads, 0, "{:?}", inc.warnings);
    assert!(
        m.stats.bytes_read >= MIB / 2 && m.stats.bytes_read < 3 * MIB / 2,
        "read {} bytes for 512 KiB changed",
        m.stats.bytes_read
    );
    assert_same(&restored(&repo, m, "vda", work.path()), &expected);
    assert_eq!(
        tresor_checkpoints(&domain),
        [format!("tresor-{}", m.id)],
        "the older checkpoint is deleted"
    );

    // Stopped and started again between two backups: still incremental.
    domain.destroy()?;
    boot(&domain)?;
    write(&domain, &mut expected, 12 * MIB, MIB / 4, 4);
    let after_restart = backup_of(&repo, &provider, UUID).await;
    let m = &after_restart.manifest;
    assert_eq!(after_restart.full_reads, 0, "{:?}", after_restart.warnings);
    assert!(
        m.stats.bytes_read < 3 * MIB / 2,
        "read {} bytes after a restart",
        m.stats.bytes_read
    );
    assert_same(&restored(&repo, m, "vda", work.path()), &expected);

    // The checkpoint deleted by hand: a full read, deduplicated, and it says why.
    assert!(backup_api::delete_checkpoint(
        &domain,
        &format!("tresor-{}", m.id)
    )?);
    write(&domain, &mut expected, 16 * MIB, MIB / 8, 5);
    let healed = backup_of(&repo, &provider, UUID).await;
    let m = &healed.manifest;
    assert_eq!(
        m.parent.as_deref(),
        Some(after_restart.manifest.id.as_str())
    );
    assert!(healed.full_reads >= 1);
    assert!(
        healed.warnings.iter().any(|w| w.contains("vda")
            && w.contains("is gone")
            && w.contains("reading the whole disk")),
        "{:?}",
        healed.warnings
    );
    assert!(m.stats.bytes_read >= 3 * MIB, "a whole read: {:?}", m.stats);
    assert!(
        m.stats.bytes_added < MIB,
        "deduplicated against the stored points: {:?}",
        m.stats
    );
    assert_same(&restored(&repo, m, "vda", work.path()), &expected);
    assert_eq!(tresor_checkpoints(&domain), [format!("tresor-{}", m.id)]);

    // A disk excluded is absent from the point and named in its configuration.
    let without_fs = provider
        .clone()
        .with_excluded_disks(UUID, vec!["vdb".into()]);
    let selective = backup_of(&repo, &without_fs, UUID).await;
    let names: Vec<_> = selective
        .manifest
        .disks
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["vda"]);
    assert_eq!(
        selective.manifest.vm_config.as_ref().unwrap()["excluded_disks"][0],
        "vdb"
    );
    assert_same(
        &restored(&repo, &selective.manifest, "vda", work.path()),
        &expected,
    );

    // Shut off: the images are read directly, crash-consistent, and incrementally
    // from the parent's checkpoint, whose bitmap QEMU saved into vda's image when it
    // stopped (libvirt stops it with SIGTERM first). vdb, left out of the parent,
    // has no bitmap of it: read whole, saying so.
    write(&domain, &mut expected, 20 * MIB, MIB / 2, 6);
    domain.destroy()?;
    let off = backup_of(&repo, &provider, UUID).await;
    let m = &off.manifest;
    assert_eq!(m.consistency, Consistency::CrashConsistent);
    assert_eq!(off.full_reads, 1, "{:?}", off.warnings);
    assert!(
        off.warnings.iter().all(|w| !w.contains("disk vda")),
        "{:?}",
        off.warnings
    );
    assert!(
        m.stats.bytes_read < DATA_SIZE,
        "vda read incrementally: {:?}",
        m.stats
    );
    assert_same(&restored(&repo, m, "vda", work.path()), &expected);
    let parents_checkpoint = format!("tresor-{}", selective.manifest.id);
    assert_eq!(
        m.vm_config.as_ref().unwrap()["checkpoint"],
        parents_checkpoint.as_str(),
        "a shut-off point names the checkpoint that tracks its changes"
    );
    assert_eq!(tresor_checkpoints(&domain), [parents_checkpoint]);

    // Running again: the next backup follows the shut-off point through the
    // checkpoint it named; vda is still read incrementally.
    boot(&domain)?;
    write(&domain, &mut expected, 24 * MIB, MIB / 4, 7);
    let back = backup_of(&repo, &provider, UUID).await;
    let m = &back.manifest;
    assert_eq!(m.parent.as_deref(), Some(off.manifest.id.as_str()));
    assert!(
        back.warnings.iter().all(|w| !w.contains("disk vda")),
        "{:?}",
        back.warnings
    );
    assert_same(&restored(&repo, m, "vda", work.path()), &expected);
    assert_eq!(tresor_checkpoints(&domain), [format!("tresor-{}", m.id)]);
    domain.destroy()?;
    Ok(())
}

/// The domain's QEMU killed (SIGKILL: no chance to save its bitmaps into the
/// images): libvirt still lists the checkpoint, but its bitmaps are gone or
/// inconsistent. The next backup reads the disks whole, deduplicated, saying why,
/// and never makes a point that misses the writes of before the kill; the one after
/// is incremental again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_killed_between_backups_means_one_whole_read_never_a_short_point() -> anyhow::Result<()>
{
    const KILLED_UUID: &str = "5e0c9f4e-0000-4000-8000-0000000000b2";
    let _one = ONE_GUEST.lock().await;
    let _daemon = Libvirtd::ensure()?;
    let t = TestDomains::new("killed")?;
    let name = t.name("vm");
    let domain = booted_guest(&t, "vm", KILLED_UUID, DATA_SIZE)?;
    let work = tempfile::tempdir()?;
    let repo = repo(work.path());
    let provider =
        LibvirtProvider::new("qemu:///system").with_scratch_dir(t.images.join("scratch"));
    let mut expected = vec![0u8; DATA_SIZE as usize];
    write(&domain, &mut expected, 0, 2 * MIB, 11);
    let first = backup_of(&repo, &provider, KILLED_UUID).await;
    assert_eq!(first.full_reads, 0);

    // Written after the checkpoint, then QEMU killed before it saved anything.
    write(&domain, &mut expected, 6 * MIB, MIB, 12);
    let pid: i32 = std::fs::read_to_string(format!("/run/libvirt/qemu/{name}.pid"))?
        .trim()
        .parse()?;
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while domain.is_active()? {
        assert!(
            std::time::Instant::now() < deadline,
            "libvirt did not see its QEMU die"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    boot(&domain)?;
    write(&domain, &mut expected, 10 * MIB, MIB / 2, 13);
    let healed = backup_of(&repo, &provider, KILLED_UUID).await;
    let m = &healed.manifest;
    assert_eq!(m.parent.as_deref(), Some(first.manifest.id.as_str()));
    assert!(healed.full_reads >= 1, "{:?}", healed.warnings);
    assert!(
        healed
            .warnings
            .iter()
            .any(|w| w.contains("vda") && w.contains("reading the whole disk")),
        "{:?}",
        healed.warnings
    );
    assert_same(&restored(&repo, m, "vda", work.path()), &expected);

    write(&domain, &mut expected, 14 * MIB, MIB / 4, 14);
    let next = backup_of(&repo, &provider, KILLED_UUID).await;
    assert_eq!(next.full_reads, 0, "{:?}", next.warnings);
    assert_same(
        &restored(&repo, &next.manifest, "vda", work.path()),
        &expected,
    );
    domain.destroy()?;
    Ok(())
}
