//! A real Linux guest (built at test time by `tresor-testguest`) writes files
//! continuously; Tresor backs it up with its file systems frozen by the guest agent;
//! the restored disk passes `e2fsck` and boots, and holds exactly the files the guest
//! had finished at the freeze.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{repo, MIB};
use tresor_agent::{backup_vm, VmBackupOptions};
use tresor_engine::restore::{self, OutputFormat, RestoreRequest};
use tresor_engine::{Consistency, Manifest, Repository};
use tresor_qemu::{QemuProvider, QemuVmConfig};
use tresor_testguest::{
    last_written, parse_check_report, GuestImage, GuestMode, TestDisk, TestVm, TestVmConfig,
};
use tresor_vm::{CheckCode, Severity, VmProvider, VmRef};

const BOOT: Duration = Duration::from_secs(60);

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A 64 MiB ext4 file system made on the host, as qcow2.
fn ext4_disk(dir: &Path) -> PathBuf {
    let raw = dir.join("data.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(64 * MIB)
        .unwrap();
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&raw));
    let qcow2 = dir.join("data.qcow2");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&qcow2));
    std::fs::remove_file(raw).unwrap();
    qcow2
}

fn restore_raw(repo: &Repository, point: &Manifest, out: &Path) {
    restore::run(
        repo,
        RestoreRequest {
            point,
            disk: "vda",
            output: out,
            format: OutputFormat::Raw,
            overwrite: false,
            progress: None,
            workers: 2,
        },
    )
    .unwrap();
}

/// The file indexes in a guest's check report; asserts every file is intact.
fn files_in_report(log: &str) -> Vec<u64> {
    let mut files: Vec<u64> = parse_check_report(log)
        .iter()
        .filter_map(|f| {
            let n = f.index()?;
            assert!(f.is_intact(), "{f} is torn or altered");
            Some(n)
        })
        .collect();
    files.sort_unstable();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writing_guest_is_backed_up_frozen_and_its_restored_disk_boots() {
    let image = GuestImage::build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let data = ext4_disk(dir.path());
    let mut vm = TestVm::start(TestVmConfig {
        disks: vec![TestDisk::new(&data, "qcow2", "disk0", "vda")],
        guest: Some((image.clone(), GuestMode::writer())),
        guest_agent: true,
        ..TestVmConfig::default()
    })
    .unwrap();
    vm.wait_for_serial("TRESOR-GUEST: wrote 3", BOOT).unwrap();
    let provider = QemuProvider::new(vec![QemuVmConfig {
        name: Some("guest".into()),
        qmp: Some(vm.qmp_socket()),
        guest_agent: Some(vm.guest_agent_socket()),
        scratch_dir: Some(scratch.clone()),
        ..QemuVmConfig::default()
    }]);
    let vm_ref = VmRef("guest".into());
    let checks = provider.preflight(&vm_ref).await;
    assert!(
        checks.iter().all(|c| c.severity == Severity::Ok),
        "{checks:?}"
    );
    let repo = repo(dir.path());

    // Two backups while the guest writes: a full one, then an incremental one.
    let mut points: Vec<(Manifest, u64, u64)> = Vec::new();
    for round in 0..2 {
        let before = last_written(&vm.serial_log()).unwrap();
        let out = backup_vm(&repo, &provider, &vm_ref, VmBackupOptions::default())
            .await
            .unwrap();
        let after = last_written(&vm.serial_log()).unwrap();
        assert_eq!(
            out.manifest.consistency,
            Consistency::FileSystemConsistent,
            "{:?}",
            out.warnings
        );
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let frozen = out.frozen_for.expect("the guest was frozen");
        println!(
            "round {round}: frozen for {frozen:?}, read {} bytes, files {before}..={after} around it",
            out.manifest.stats.bytes_read
        );
        if round == 1 {
            assert_eq!(
                out.manifest.parent.as_deref(),
                Some(points[0].0.id.as_str())
            );
            assert!(out.manifest.stats.bytes_read < 16 * MIB);
        }
        points.push((out.manifest, before, after));
        let next = after + 3;
        vm.wait_for_serial_where(&format!("wrote {next}"), BOOT, |log| {
            last_written(log) >= Some(next)
        })
        .unwrap();
    }
    vm.kill().unwrap();
    drop(vm);
    assert!(std::fs::read_dir(&scratch)
        .unwrap()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().ends_with(".qcow2")));

    for (i, (point, before, after)) in points.iter().enumerate() {
        let restored = dir.path().join(format!("restored-{i}.raw"));
        restore_raw(&repo, point, &restored);
        // Frozen means clean: no journal to replay, nothing for fsck to fix.
        run(Command::new("e2fsck").args(["-f", "-n"]).arg(&restored));
        if i + 1 < points.len() {
            continue;
        }
        // The restored disk boots, and holds f-0 ..= f-k for a k the guest had
        // finished by the freeze: none torn, none from after the thaw.
        let mut check = TestVm::start(TestVmConfig {
            disks: vec![TestDisk::new(&restored, "raw", "disk0", "vda")],
            guest: Some((image.clone(), GuestMode::Check)),
            ..TestVmConfig::default()
        })
        .unwrap();
        let log = check
            .wait_for_serial("TRESOR-GUEST: check done", BOOT)
            .unwrap();
        let files = files_in_report(&log);
        let k = *files
            .last()
            .expect("the restored disk holds the guest's files");
        assert_eq!(files, (0..=k).collect::<Vec<_>>(), "a file is missing");
        assert!(
            (*before..=*after).contains(&k),
            "f-{k} is the newest file, but the guest had written f-{before} before and f-{after} after the backup"
        );
        println!("restored point {}: boots, f-0..=f-{k} intact", point.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_without_a_running_agent_gives_a_crash_consistent_point_and_a_warning() {
    let image = GuestImage::build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let data = ext4_disk(dir.path());
    // The agent's port exists, but no agent runs in the guest.
    let port = dir.path().join("qga.sock");
    let mut vm = TestVm::start(TestVmConfig {
        disks: vec![TestDisk::new(&data, "qcow2", "disk0", "vda")],
        guest: Some((image, GuestMode::Idle)),
        guest_agent: false,
        extra_args: [
            "-chardev",
            &format!("socket,path={},server=on,wait=off,id=qga0", port.display()),
            "-device",
            "virtio-serial",
            "-device",
            "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        ]
        .map(String::from)
        .to_vec(),
        ..TestVmConfig::default()
    })
    .unwrap();
    vm.wait_for_serial("TRESOR-GUEST: up", BOOT).unwrap();
    let provider = QemuProvider::new(vec![QemuVmConfig {
        name: Some("quiet".into()),
        qmp: Some(vm.qmp_socket()),
        guest_agent: Some(port),
        scratch_dir: Some(scratch),
        ..QemuVmConfig::default()
    }]);
    let vm_ref = VmRef("quiet".into());
    let checks = provider.preflight(&vm_ref).await;
    assert!(
        checks
            .iter()
            .any(|c| c.code == Some(CheckCode::GuestAgentNotResponding)),
        "{checks:?}"
    );
    let repo = repo(dir.path());
    let started = std::time::Instant::now();
    let out = backup_vm(&repo, &provider, &vm_ref, VmBackupOptions::default())
        .await
        .unwrap();
    assert_eq!(out.manifest.consistency, Consistency::CrashConsistent);
    assert!(
        out.warnings.iter().any(|w| w.contains("does not answer")),
        "{:?}",
        out.warnings
    );
    // A silent agent costs a timeout, never a hang.
    assert!(started.elapsed() < Duration::from_secs(30));
}
