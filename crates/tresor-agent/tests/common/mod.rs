//! Test support: a QEMU without guest OS whose disks are qcow2 images, a repository,
//! and the bytes each disk should hold.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tresor_engine::restore::{self, OutputFormat, RestoreRequest};
use tresor_engine::{InitOptions, KdfParams, LocalDir, Manifest, Repository};
use tresor_qmp::Qmp;

pub const MIB: u64 = 1 << 20;

/// A QEMU (`-machine none`, TCG) with qcow2 drives `drive0`, `drive1`, ... and two
/// QMP monitors: one for Tresor, one for the test (a QMP socket serves one client at
/// a time, and a view holds Tresor's for its lifetime). Killed on drop.
pub struct Qemu {
    child: Child,
    pub qmp_socket: PathBuf,
    test_socket: PathBuf,
    pub images: Vec<PathBuf>,
}

impl Qemu {
    /// Creates `sizes.len()` qcow2 images in `dir` and starts QEMU on them.
    pub fn create(dir: &Path, sizes: &[u64]) -> Qemu {
        let mut images = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            let img = dir.join(format!("disk{i}.qcow2"));
            let st = Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2"])
                .arg(&img)
                .arg(size.to_string())
                .status()
                .expect("qemu-img (qemu-utils) is needed; run scripts/install-deps.sh");
            assert!(st.success());
            images.push(img);
        }
        Qemu::start(dir, images)
    }

    /// Starts QEMU on existing images.
    pub fn start(dir: &Path, images: Vec<PathBuf>) -> Qemu {
        let qmp_socket = dir.join("qmp.sock");
        let test_socket = dir.join("test-qmp.sock");
        let _ = std::fs::remove_file(&qmp_socket);
        let _ = std::fs::remove_file(&test_socket);
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-machine",
            "none",
            "-accel",
            "tcg",
            "-nodefaults",
            "-display",
            "none",
        ])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp_socket.display()))
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", test_socket.display()));
        for (i, img) in images.iter().enumerate() {
            cmd.arg("-drive").arg(format!(
                "if=none,id=drive{i},node-name=disk{i},format=qcow2,file={}",
                img.display()
            ));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 (qemu-system-x86) is needed; run scripts/install-deps.sh");
        let started = Instant::now();
        while !qmp_socket.exists() || !test_socket.exists() {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("QEMU exited early: {st}");
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no QMP socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        Qemu {
            child,
            qmp_socket,
            test_socket,
            images,
        }
    }

    /// The test's own monitor.
    pub async fn qmp(&self) -> Qmp {
        Qmp::connect(&self.test_socket, Duration::from_secs(10))
            .await
            .unwrap()
    }

    /// SIGKILL: QEMU saves nothing, so persistent bitmaps stay marked in use.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A clean exit: QEMU stores persistent bitmaps in the images.
    pub async fn quit(&mut self) {
        let qmp = self.qmp().await;
        let _ = qmp.execute("quit", None).await;
        drop(qmp);
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `len` bytes of `pattern` at `offset` of drive `drive` through QEMU, and in
/// `expected` too.
pub async fn write(
    qmp: &Qmp,
    drive: usize,
    expected: &mut [u8],
    offset: u64,
    len: u64,
    pattern: u8,
) {
    qmp.qemu_io(
        &format!("drive{drive}"),
        &format!("write -P {pattern} {offset} {len}"),
    )
    .await
    .unwrap();
    expected[offset as usize..(offset + len) as usize].fill(pattern);
}

pub fn repo(dir: &Path) -> Arc<Repository> {
    let backend = Arc::new(LocalDir::create(&dir.join("repo")).unwrap());
    let opts = InitOptions {
        kdf: KdfParams {
            m_cost: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        },
        ..InitOptions::default()
    };
    Arc::new(Repository::init(backend, b"pw", &opts).unwrap())
}

/// Disk `disk` of `point`, restored to a raw file and read back.
/// A backup of `vm` by `provider` as the agent makes one (two workers); panics on failure.
pub async fn backup_of(
    repo: &Repository,
    provider: &dyn tresor_vm::VmProvider,
    vm: &str,
) -> tresor_agent::VmBackupOutcome {
    tresor_agent::backup_vm(
        repo,
        provider,
        &tresor_vm::VmRef(vm.into()),
        tresor_agent::VmBackupOptions {
            workers: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// The guest's bytes of an image file (read while a VM may hold it: `qemu-img -U`).
pub fn image_bytes(path: &Path, out: &Path) -> Vec<u8> {
    let _ = std::fs::remove_file(out);
    let st = Command::new("qemu-img")
        .args(["convert", "-U", "-O", "raw"])
        .arg(path)
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "qemu-img convert {}", path.display());
    std::fs::read(out).unwrap()
}

pub fn restored(repo: &Repository, point: &Manifest, disk: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("{}-{disk}.raw", point.id));
    restore::run(
        repo,
        RestoreRequest {
            point,
            disk,
            output: &out,
            format: OutputFormat::Raw,
            overwrite: true,
            progress: None,
            workers: 2,
        },
    )
    .unwrap();
    let data = std::fs::read(&out).unwrap();
    std::fs::remove_file(out).unwrap();
    data
}

/// Names of the dirty bitmaps on node `node`.
pub async fn bitmaps(qmp: &Qmp, node: &str) -> Vec<String> {
    let nodes = qmp.query_named_block_nodes().await.unwrap();
    let info = nodes
        .iter()
        .find(|n| n.node_name.as_deref() == Some(node))
        .unwrap();
    info.dirty_bitmaps
        .iter()
        .filter_map(|b| b.name.clone())
        .collect()
}

/// Whether anything a point-in-time view adds is still in QEMU.
pub async fn view_leftovers(qmp: &Qmp) -> Vec<String> {
    let nodes = qmp.query_named_block_nodes().await.unwrap();
    let mut out: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.node_name.clone())
        .filter(|n| n.starts_with("tresor-view-"))
        .collect();
    let jobs = qmp.execute("query-block-jobs", None).await.unwrap();
    out.extend(
        jobs.as_array()
            .unwrap()
            .iter()
            .map(|j| j["device"].as_str().unwrap().to_string()),
    );
    let exports = qmp.execute("query-block-exports", None).await.unwrap();
    out.extend(
        exports
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string()),
    );
    out
}

/// Files in `dir` whose names start with `prefix`.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Asserts two disks' bytes are equal, naming the first 64 KiB block that differs
/// (printing megabytes of bytes helps nobody).
#[track_caller]
pub fn assert_same(actual: &[u8], expected: &[u8]) {
    assert_eq!(actual.len(), expected.len(), "disk sizes differ");
    if let Some(block) = actual
        .chunks(64 * 1024)
        .zip(expected.chunks(64 * 1024))
        .position(|(a, b)| a != b)
    {
        let at = block * 64 * 1024;
        panic!(
            "disks differ in the 64 KiB block at offset {at} (byte there: {:#x}, expected {:#x})",
            actual[at], expected[at]
        );
    }
}

/// Makes QEMU write its caches to the image, as a guest's flush does.
pub async fn flush(qmp: &Qmp, drive: usize) {
    qmp.qemu_io(&format!("drive{drive}"), "flush")
        .await
        .unwrap();
}
