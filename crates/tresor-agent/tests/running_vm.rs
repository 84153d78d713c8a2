//! Backups of a running QEMU (no guest OS) through the QEMU provider: point-in-time
//! views, incremental forever with dirty bitmaps, failures and crashes.
//! They need QEMU (scripts/install-deps.sh) and fail without it.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use tresor_agent::{backup_vm, disk_sources, VmBackupOptions};
use tresor_engine::backup::{self, BackupRequest};
use tresor_engine::Consistency;
use tresor_qemu::{point_bitmap_name, QemuProvider, QemuVmConfig};
use tresor_vm::{CheckCode, Severity, ViewRequest, VmProvider, VmRef};

fn provider(qemu: &Qemu, dir: &Path) -> QemuProvider {
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    QemuProvider::new(vec![QemuVmConfig {
        name: Some("vm1".into()),
        qmp: Some(qemu.qmp_socket.clone()),
        scratch_dir: Some(scratch),
        ..QemuVmConfig::default()
    }])
}

fn vm() -> VmRef {
    VmRef("vm1".into())
}

async fn backup(
    repo: &tresor_engine::Repository,
    p: &QemuProvider,
) -> tresor_agent::VmBackupOutcome {
    backup_vm(repo, p, &vm(), VmBackupOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_then_incremental_reads_exactly_the_changed_extents() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = Qemu::create(dir.path(), &[64 * MIB]);
    let repo = repo(dir.path());
    let p = provider(&qemu, dir.path());
    let mut expected = vec![0u8; 64 * MIB as usize];
    {
        let qmp = qemu.qmp().await;
        write(&qmp, 0, &mut expected, 0, 4 * MIB, 0x11).await;
        write(&qmp, 0, &mut expected, 40 * MIB, MIB, 0x22).await;
    }

    let full = backup(&repo, &p).await;
    assert_eq!(full.manifest.name, "vm1");
    assert_eq!(full.manifest.parent, None);
    assert_eq!(full.manifest.consistency, Consistency::CrashConsistent);
    assert!(
        full.warnings.iter().any(|w| w.contains("no guest agent")),
        "{:?}",
        full.warnings
    );
    // Only the allocated 5 MiB were read.
    assert_eq!(full.manifest.stats.bytes_read, 5 * MIB);
    assert_same(
        &restored(&repo, &full.manifest, "drive0", dir.path()),
        &expected,
    );
    let config = full.manifest.vm_config.as_ref().unwrap();
    assert_eq!(config["provider"], "qemu");
    assert!(config["command_line"][0]
        .as_str()
        .unwrap()
        .contains("qemu-system"));

    let qmp = qemu.qmp().await;
    assert_eq!(
        bitmaps(&qmp, "disk0").await,
        vec![point_bitmap_name(&full.manifest.id)]
    );
    write(&qmp, 0, &mut expected, 8 * MIB, 64 * 1024, 0x33).await;
    write(&qmp, 0, &mut expected, 50 * MIB + 4096, 4096, 0x44).await;

    let inc = backup(&repo, &p).await;
    assert_eq!(
        inc.manifest.parent.as_deref(),
        Some(full.manifest.id.as_str())
    );
    assert_eq!(inc.full_reads, 0);
    // Two 64 KiB granules changed; nothing else is read.
    assert_eq!(inc.manifest.stats.bytes_read, 128 * 1024);
    assert_same(
        &restored(&repo, &inc.manifest, "drive0", dir.path()),
        &expected,
    );
    // The older point's bitmap is gone, the view too.
    assert_eq!(
        bitmaps(&qmp, "disk0").await,
        vec![point_bitmap_name(&inc.manifest.id)]
    );
    assert!(view_leftovers(&qmp).await.is_empty());
    assert!(files_with_prefix(&dir.path().join("scratch"), "tresor-view-").is_empty());

    // Nothing changed: nothing read.
    let same = backup(&repo, &p).await;
    assert_eq!(same.manifest.stats.bytes_read, 0);
    assert_eq!(same.manifest.disks[0].root, inc.manifest.disks[0].root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_a_backup_land_in_the_next_point() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = Qemu::create(dir.path(), &[32 * MIB, 16 * MIB]);
    let repo = repo(dir.path());
    let p = provider(&qemu, dir.path());
    let mut disk0 = vec![0u8; 32 * MIB as usize];
    let mut disk1 = vec![0u8; 16 * MIB as usize];
    let qmp = qemu.qmp().await;
    write(&qmp, 0, &mut disk0, 0, 2 * MIB, 0x10).await;
    write(&qmp, 1, &mut disk1, MIB, MIB, 0x20).await;
    let at_instant = (disk0.clone(), disk1.clone());

    // Take the view by hand, then write to both disks while it is open.
    let point = backup::new_point_id();
    let view = p
        .open_view(
            &vm(),
            &ViewRequest {
                point: point.clone(),
                parent: None,
                parent_tracking: None,
                quiesce: true,
            },
        )
        .await
        .unwrap();
    write(&qmp, 0, &mut disk0, MIB, 64 * 1024, 0x30).await;
    write(&qmp, 0, &mut disk0, 20 * MIB, 64 * 1024, 0x31).await;
    write(&qmp, 1, &mut disk1, MIB, 64 * 1024, 0x40).await;
    let mut req = BackupRequest::new("vm1", disk_sources(view.disks()));
    req.id = Some(point.clone());
    let first = tokio::task::block_in_place(|| backup::run(&repo, req)).unwrap();
    view.finish(true).await.unwrap();
    // Both disks are as they were at the one instant the view was taken.
    assert_same(
        &restored(&repo, &first, "drive0", dir.path()),
        &at_instant.0,
    );
    assert_same(
        &restored(&repo, &first, "drive1", dir.path()),
        &at_instant.1,
    );

    // The writes made meanwhile are in the next point, and only they are read.
    drop(qmp);
    let next = backup(&repo, &p).await;
    assert_eq!(next.manifest.parent.as_deref(), Some(first.id.as_str()));
    assert_eq!(next.manifest.stats.bytes_read, 3 * 64 * 1024);
    assert_same(
        &restored(&repo, &next.manifest, "drive0", dir.path()),
        &disk0,
    );
    assert_same(
        &restored(&repo, &next.manifest, "drive1", dir.path()),
        &disk1,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_loses_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = Qemu::create(dir.path(), &[16 * MIB]);
    let repo = repo(dir.path());
    let p = provider(&qemu, dir.path());
    let mut expected = vec![0u8; 16 * MIB as usize];
    let qmp = qemu.qmp().await;
    write(&qmp, 0, &mut expected, 0, MIB, 0x01).await;
    let full = backup(&repo, &p).await;

    write(&qmp, 0, &mut expected, 2 * MIB, 64 * 1024, 0x02).await;
    // A backup that fails after its view was taken (here: abandoned before commit).
    let view = p
        .open_view(
            &vm(),
            &ViewRequest {
                point: backup::new_point_id(),
                parent: Some(full.manifest.id.clone()),
                parent_tracking: None,
                quiesce: false,
            },
        )
        .await
        .unwrap();
    write(&qmp, 0, &mut expected, 4 * MIB, 64 * 1024, 0x03).await;
    view.finish(false).await.unwrap();
    assert_eq!(
        bitmaps(&qmp, "disk0").await,
        vec![point_bitmap_name(&full.manifest.id)]
    );
    assert!(view_leftovers(&qmp).await.is_empty());

    // The next backup covers the changes from before and during the failed one.
    let next = backup(&repo, &p).await;
    assert_eq!(
        next.manifest.parent.as_deref(),
        Some(full.manifest.id.as_str())
    );
    assert_eq!(next.manifest.stats.bytes_read, 2 * 64 * 1024);
    assert_same(
        &restored(&repo, &next.manifest, "drive0", dir.path()),
        &expected,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_qemu_is_killed_the_inconsistent_bitmap_means_a_full_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut qemu = Qemu::create(dir.path(), &[16 * MIB]);
    let repo = repo(dir.path());
    let p = provider(&qemu, dir.path());
    let mut expected = vec![0u8; 16 * MIB as usize];
    {
        let qmp = qemu.qmp().await;
        write(&qmp, 0, &mut expected, 0, 3 * MIB, 0x05).await;
    }
    let full = backup(&repo, &p).await;
    // A clean restart keeps the bitmap: still incremental.
    qemu.quit().await;
    let images = qemu.images.clone();
    drop(qemu);
    let mut qemu = Qemu::start(dir.path(), images);
    {
        let qmp = qemu.qmp().await;
        write(&qmp, 0, &mut expected, 5 * MIB, 64 * 1024, 0x06).await;
    }
    let inc = backup(&repo, &p).await;
    assert_eq!(inc.full_reads, 0, "{:?}", inc.warnings);
    assert_eq!(
        inc.manifest.parent.as_deref(),
        Some(full.manifest.id.as_str())
    );
    assert_eq!(inc.manifest.stats.bytes_read, 64 * 1024);

    // SIGKILL before a bitmap made at run time was ever saved: it is missing.
    {
        let qmp = qemu.qmp().await;
        write(&qmp, 0, &mut expected, 7 * MIB, 64 * 1024, 0x09).await;
        // What the guest flushed survives the kill (unflushed qcow2 metadata would not).
        flush(&qmp, 0).await;
    }
    qemu.kill();
    let images = qemu.images.clone();
    drop(qemu);
    let mut qemu = Qemu::start(dir.path(), images);
    let missing = backup(&repo, &p).await;
    assert_eq!(missing.full_reads, 1);
    assert!(
        missing
            .warnings
            .iter()
            .any(|w| w.contains("no dirty bitmap")),
        "{:?}",
        missing.warnings
    );
    assert_same(
        &restored(&repo, &missing.manifest, "drive0", dir.path()),
        &expected,
    );

    // SIGKILL of a QEMU that had loaded the bitmap from the image: the image keeps
    // it marked in use, and the next QEMU flags it inconsistent.
    qemu.quit().await;
    let images = qemu.images.clone();
    drop(qemu);
    let mut qemu = Qemu::start(dir.path(), images);
    {
        let qmp = qemu.qmp().await;
        assert_eq!(
            bitmaps(&qmp, "disk0").await,
            vec![point_bitmap_name(&missing.manifest.id)]
        );
        write(&qmp, 0, &mut expected, 9 * MIB, 64 * 1024, 0x07).await;
        flush(&qmp, 0).await;
    }
    qemu.kill();
    let images = qemu.images.clone();
    drop(qemu);
    let qemu = Qemu::start(dir.path(), images);
    {
        let qmp = qemu.qmp().await;
        write(&qmp, 0, &mut expected, 12 * MIB, 64 * 1024, 0x08).await;
    }
    let after = backup(&repo, &p).await;
    assert_eq!(after.full_reads, 1);
    assert!(
        after.warnings.iter().any(|w| w.contains("inconsistent")),
        "{:?}",
        after.warnings
    );
    // Read whole (every allocated byte), deduplicated against what is stored.
    assert!(after.manifest.stats.bytes_read >= 3 * MIB + 4 * 64 * 1024);
    assert!(after.manifest.stats.chunks_reused > 0);
    assert_same(
        &restored(&repo, &after.manifest, "drive0", dir.path()),
        &expected,
    );
    // The inconsistent bitmap is gone; the new one tracks from this point on.
    let qmp = qemu.qmp().await;
    assert_eq!(
        bitmaps(&qmp, "disk0").await,
        vec![point_bitmap_name(&after.manifest.id)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_left_by_a_crashed_agent_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = Qemu::create(dir.path(), &[8 * MIB]);
    let repo = repo(dir.path());
    let p = provider(&qemu, dir.path());
    let view = p
        .open_view(
            &vm(),
            &ViewRequest {
                point: backup::new_point_id(),
                parent: None,
                parent_tracking: None,
                quiesce: false,
            },
        )
        .await
        .unwrap();
    // The agent dies: the view is never finished (its QMP connection closes).
    drop(view);
    let qmp = qemu.qmp().await;
    assert!(!view_leftovers(&qmp).await.is_empty());
    drop(qmp);
    let out = backup(&repo, &p).await;
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("interrupted backup")),
        "{:?}",
        out.warnings
    );
    let qmp = qemu.qmp().await;
    assert!(view_leftovers(&qmp).await.is_empty());
    assert!(files_with_prefix(&dir.path().join("scratch"), "tresor-view-").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = Qemu::create(dir.path(), &[8 * MIB]);
    let p = provider(&qemu, dir.path());
    let checks = p.preflight(&vm()).await;
    let code_of = |subject: &str| {
        checks
            .iter()
            .find(|c| c.subject.starts_with(subject))
            .unwrap_or_else(|| panic!("no check of {subject}: {checks:?}"))
            .clone()
    };
    assert_eq!(code_of("QMP").severity, Severity::Ok);
    assert_eq!(code_of("disk drive0").severity, Severity::Ok);
    assert_eq!(
        code_of("guest agent").code,
        Some(CheckCode::GuestAgentNotConfigured)
    );
    assert_eq!(code_of("scratch").severity, Severity::Ok);

    // A guest agent socket nobody answers on; a scratch folder that does not exist.
    let silent = dir.path().join("silent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&silent).unwrap();
    let p = QemuProvider::new(vec![QemuVmConfig {
        name: Some("vm1".into()),
        qmp: Some(qemu.qmp_socket.clone()),
        guest_agent: Some(silent),
        scratch_dir: Some(dir.path().join("no-such-folder")),
        ..QemuVmConfig::default()
    }]);
    let checks = p.preflight(&vm()).await;
    let codes: Vec<_> = checks.iter().filter_map(|c| c.code).collect();
    assert!(
        codes.contains(&CheckCode::GuestAgentNotResponding),
        "{checks:?}"
    );
    assert!(
        codes.contains(&CheckCode::ScratchSpaceMissing),
        "{checks:?}"
    );
    assert!(checks.iter().all(|c| c.code.is_none() || c.fix.is_some()));
    // The backup itself fails with the same code, and leaves nothing behind.
    let repo = repo(dir.path());
    let e = backup_vm(&repo, &p, &vm(), VmBackupOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, CheckCode::ScratchSpaceMissing, "{e}");
    assert!(repo.list_points().unwrap().is_empty());

    // Unreachable QMP, no offline definition.
    let p = QemuProvider::new(vec![QemuVmConfig {
        name: Some("gone".into()),
        qmp: Some(dir.path().join("nothing.sock")),
        ..QemuVmConfig::default()
    }]);
    let checks = p.preflight(&VmRef("gone".into())).await;
    assert_eq!(checks[0].code, Some(CheckCode::QmpUnreachable));
    assert_eq!(checks[0].severity, Severity::Error);
    let checks = p.preflight(&VmRef("unknown".into())).await;
    assert_eq!(checks[0].code, Some(CheckCode::VmNotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_vm_is_backed_up_from_its_images_and_a_running_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut qemu = Qemu::create(dir.path(), &[8 * MIB]);
    let mut expected = vec![0u8; 8 * MIB as usize];
    {
        let qmp = qemu.qmp().await;
        write(&qmp, 0, &mut expected, MIB, MIB, 0x0a).await;
    }
    let repo = repo(dir.path());
    let config = QemuVmConfig {
        name: Some("vm1".into()),
        disks: qemu.images.clone(),
        ..QemuVmConfig::default()
    };
    // Running (QMP not configured, images held by QEMU): refused, image-locked.
    let offline = QemuProvider::new(vec![config.clone()]);
    let checks = offline.preflight(&vm()).await;
    assert!(
        checks
            .iter()
            .any(|c| c.code == Some(CheckCode::ImageLocked)),
        "{checks:?}"
    );
    let e = backup_vm(&repo, &offline, &vm(), VmBackupOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, CheckCode::ImageLocked, "{e}");

    qemu.quit().await;
    let out = backup_vm(&repo, &offline, &vm(), VmBackupOptions::default())
        .await
        .unwrap();
    assert_eq!(out.manifest.consistency, Consistency::CrashConsistent);
    assert_same(
        &restored(&repo, &out.manifest, "disk0.qcow2", dir.path()),
        &expected,
    );
    // Its bitmap was started after the commit: the next offline backup reads nothing.
    let again = backup_vm(&repo, &offline, &vm(), VmBackupOptions::default())
        .await
        .unwrap();
    assert_eq!(again.manifest.stats.bytes_read, 0);
    let _ = Arc::clone(&repo);
}
