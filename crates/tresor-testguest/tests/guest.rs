//! Tests of the test guest itself: building and caching the image, booting it
//! with a writer and the guest agent, freezing its file system, and checking what
//! it wrote. They need the packages `scripts/install-deps.sh` installs and fail
//! (never skip) without them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tresor_qmp::{FsFreezeStatus, GuestAgent, Qmp};
use tresor_testguest::{
    expected_file_content, last_written, parse_check_report, GuestImage, GuestMode, TestDisk,
    TestVm, TestVmConfig, FILE_SIZE,
};

const BOOT: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh 64 MiB ext4 file system, formatted on the host, as a qcow2 image.
fn ext4_disk(dir: &Path) -> PathBuf {
    let raw = dir.join("disk.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&raw));
    let qcow2 = dir.join("disk.qcow2");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&qcow2));
    std::fs::remove_file(&raw).unwrap();
    qcow2
}

fn disk(image: &Path) -> TestDisk {
    TestDisk::new(image, "qcow2", "disk0", "vda")
}

#[test]
fn image_is_built_once_and_cached() {
    let cache = tempfile::tempdir().unwrap();
    // Three builders race on an empty cache: all get the same, complete image.
    let t = Instant::now();
    let images: Vec<GuestImage> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| GuestImage::build_in(cache.path()).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let cold = t.elapsed();
    assert!(images.iter().all(|i| *i == images[0]));
    let image = &images[0];
    assert!(image.kernel.is_file() && image.initrd.is_file());
    let entries: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "leftover build directories: {entries:?}");

    let t = Instant::now();
    let again = GuestImage::build_in(cache.path()).unwrap();
    let cached = t.elapsed();
    assert_eq!(again, *image);
    let size = std::fs::metadata(&image.initrd).unwrap().len();
    println!(
        "guest image (kernel {}, initrd {} KiB): cold build {cold:?}, cached {cached:?}",
        image.kernel_version,
        size / 1024
    );
    assert!(
        cached < Duration::from_secs(1),
        "cached build took {cached:?}"
    );

    // The default cache works too.
    let default = GuestImage::build().unwrap();
    assert!(default.initrd.is_file());
    println!("default cache: {}", default.dir.display());
}

#[test]
fn writer_survives_freeze_and_files_check_out() {
    let image = GuestImage::build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let disk_image = ext4_disk(dir.path());
    let rt = runtime();

    // Writer with the agent.
    let mut vm = TestVm::start(TestVmConfig {
        disks: vec![disk(&disk_image)],
        guest: Some((image.clone(), GuestMode::writer())),
        guest_agent: true,
        ..TestVmConfig::default()
    })
    .unwrap();
    vm.wait_for_serial("TRESOR-GUEST: up", BOOT).unwrap();
    let up = vm.uptime();
    vm.wait_for_serial("TRESOR-GUEST: wrote 3", BOOT).unwrap();
    println!("writer: up after {up:?}, 4 files after {:?}", vm.uptime());

    rt.block_on(async {
        let mut agent = GuestAgent::connect(vm.guest_agent_socket(), Duration::from_secs(10))
            .await
            .unwrap();
        agent.ping().await.unwrap();
        assert_eq!(
            agent.fsfreeze_status().await.unwrap(),
            FsFreezeStatus::Thawed
        );
        let frozen = agent.fsfreeze_freeze().await.unwrap();
        assert!(frozen >= 1, "froze {frozen} file systems");
        assert_eq!(
            agent.fsfreeze_status().await.unwrap(),
            FsFreezeStatus::Frozen
        );
        // A file finished just before the freeze may still be reported.
        std::thread::sleep(Duration::from_millis(300));
        let before = last_written(&vm.serial_log());
        std::thread::sleep(Duration::from_secs(1));
        let during = last_written(&vm.serial_log());
        assert_eq!(before, during, "the guest wrote while frozen");
        let thawed = agent.fsfreeze_thaw().await.unwrap();
        assert_eq!(thawed, frozen);
        let next = before.unwrap() + 1;
        vm.wait_for_serial_where(&format!("wrote {next}"), BOOT, |log| {
            last_written(log) >= Some(next)
        })
        .unwrap();
        println!("froze {frozen} file system(s); writing resumed with file {next} after thaw");

        let qmp = Qmp::connect(vm.qmp_socket(), Duration::from_secs(10))
            .await
            .unwrap();
        let _ = qmp.execute("quit", None).await;
    });
    vm.wait_exit(Duration::from_secs(10)).unwrap();
    let written = last_written(&vm.serial_log()).unwrap();
    drop(vm);

    // The same disk in check mode.
    let mut vm = TestVm::start(TestVmConfig {
        disks: vec![disk(&disk_image)],
        guest: Some((image, GuestMode::Check)),
        ..TestVmConfig::default()
    })
    .unwrap();
    let log = vm
        .wait_for_serial("TRESOR-GUEST: check done", BOOT)
        .unwrap();
    let boot = vm.uptime();
    vm.wait_exit(Duration::from_secs(10)).unwrap();
    let files = parse_check_report(&log);
    let mut seen = vec![false; written as usize + 1];
    for f in &files {
        if let Some(n) = f.index() {
            assert!(f.is_intact(), "{f} is not what the writer writes");
            if let Some(s) = seen.get_mut(n as usize) {
                *s = true;
            }
        }
    }
    assert!(
        seen.iter().all(|s| *s),
        "missing files up to f-{written}: {files:?}"
    );
    println!(
        "check: {} files ({} written and reported), boot to report {boot:?}",
        files.len(),
        written + 1
    );
    assert_eq!(expected_file_content(0).len(), FILE_SIZE);
}

#[test]
fn vm_without_guest_has_block_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("16M"));
    let mut vm = TestVm::start(TestVmConfig {
        disks: vec![disk(&image)],
        guest_agent: true,
        ..TestVmConfig::default()
    })
    .unwrap();
    assert!(vm.command_line().iter().any(|a| a == "none"));
    assert!(vm.guest_agent_socket().exists());
    assert!(vm.wait_for_serial("x", Duration::from_millis(10)).is_err());
    runtime().block_on(async {
        let qmp = Qmp::connect(vm.qmp_socket(), Duration::from_secs(10))
            .await
            .unwrap();
        let nodes = qmp.query_named_block_nodes().await.unwrap();
        let names: Vec<_> = nodes
            .iter()
            .filter_map(|n| n.node_name.as_deref())
            .collect();
        assert!(
            names.contains(&"disk0") && names.contains(&"disk0-file"),
            "{names:?}"
        );
        qmp.qemu_io("disk0", "write -P 0x5a 0 64k").await.unwrap();
    });
    assert!(vm.pid() > 0);
    let status = vm.kill().unwrap();
    assert!(!status.success());
    assert_eq!(vm.try_wait().unwrap(), Some(status));
}

#[test]
fn qemu_failing_at_start_is_reported() {
    let err = TestVm::start(TestVmConfig {
        disks: vec![disk(Path::new("/nonexistent/disk.qcow2"))],
        ..TestVmConfig::default()
    })
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("exited") && msg.contains("nonexistent"),
        "{msg}"
    );
}
