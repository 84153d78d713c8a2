//! `tresor repo backup --vm-qmp`, `tresor vm preflight` and `tresor repo restore-vm`
//! against a real QEMU (no guest OS; disks written through QEMU itself).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tresor_qmp::Qmp;

const MIB: u64 = 1 << 20;

/// QEMU named `testvm` with one qcow2 drive, a QMP socket for Tresor and one for the test.
struct Vm {
    child: Child,
    tresor_socket: PathBuf,
    test_socket: PathBuf,
}

fn wait_for(path: &Path, child: &mut Child) {
    let started = Instant::now();
    while !path.exists() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("QEMU exited early: {st}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Vm {
    fn start(dir: &Path, image: &Path) -> Vm {
        let tresor_socket = dir.join("tresor.qmp");
        let test_socket = dir.join("test.qmp");
        let mut child = Command::new("qemu-system-x86_64")
            .args([
                "-machine",
                "none",
                "-accel",
                "tcg",
                "-nodefaults",
                "-display",
                "none",
            ])
            .args([
                "-name",
                "testvm",
                "-uuid",
                "5f0c2b1e-8d7a-4c3e-9b21-0a1b2c3d4e5f",
            ])
            .arg("-drive")
            .arg(format!(
                "if=none,id=drive0,node-name=disk0,format=qcow2,file={}",
                image.display()
            ))
            .arg("-qmp")
            .arg(format!(
                "unix:{},server=on,wait=off",
                tresor_socket.display()
            ))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", test_socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 is needed; run scripts/install-deps.sh");
        wait_for(&tresor_socket, &mut child);
        wait_for(&test_socket, &mut child);
        Vm {
            child,
            tresor_socket,
            test_socket,
        }
    }

    /// Runs QMP commands on the test's monitor.
    fn qmp<T>(&self, f: impl AsyncFnOnce(&Qmp) -> T) -> T {
        qmp_at(&self.test_socket, f)
    }

    fn quit(&mut self) {
        self.qmp(async |q| {
            let _ = q.execute("quit", None).await;
        });
        let _ = self.child.wait();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn qmp_at<T>(socket: &Path, f: impl AsyncFnOnce(&Qmp) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let q = Qmp::connect(socket, Duration::from_secs(10)).await.unwrap();
        f(&q).await
    })
}

fn write(vm: &Vm, offset: u64, len: u64, pattern: u8, expected: &mut [u8]) {
    vm.qmp(async |q| {
        q.qemu_io("drive0", &format!("write -P {pattern} {offset} {len}"))
            .await
            .unwrap();
        q.qemu_io("drive0", "flush").await.unwrap();
    });
    expected[offset as usize..(offset + len) as usize].fill(pattern);
}

/// An image's guest-visible bytes.
fn raw_bytes(image: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("compare.raw");
    let st = Command::new("qemu-img")
        .args(["convert", "-U", "-O", "raw"])
        .arg(image)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let data = std::fs::read(&out).unwrap();
    std::fs::remove_file(out).unwrap();
    data
}

#[test]
fn running_vm_backup_preflight_and_restore_as_new_vm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = init_repo(d);
    let scratch = d.join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let image = d.join("disk0.qcow2");
    assert!(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg((32 * MIB).to_string())
        .status()
        .unwrap()
        .success());
    let mut vm = Vm::start(d, &image);
    let mut expected = vec![0u8; 32 * MIB as usize];
    write(&vm, 0, 2 * MIB, 0x61, &mut expected);
    let at_first = expected.clone();

    let socket = s(&vm.tresor_socket).to_string();
    let pre = ok(&[
        "vm",
        "preflight",
        "--vm-qmp",
        &socket,
        "--scratch-dir",
        s(&scratch),
    ]);
    assert!(pre.contains("guest-agent-not-configured"), "{pre}");
    let inspect = ok(&["vm", "inspect", "--vm-qmp", &socket, "--json"]);
    let info: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(info["name"], "testvm");
    assert_eq!(info["uuid"], "5f0c2b1e-8d7a-4c3e-9b21-0a1b2c3d4e5f");
    assert_eq!(info["disks"][0]["name"], "drive0");

    let out = tresor()
        .args([
            "repo",
            "backup",
            s(&repo),
            "--vm-qmp",
            &socket,
            "--scratch-dir",
            s(&scratch),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: no guest agent"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CrashConsistent point of testvm (full)"),
        "{stdout}"
    );
    let first = last_line(&stdout);

    write(&vm, 10 * MIB, 64 * 1024, 0x62, &mut expected);
    let out = ok(&[
        "repo",
        "backup",
        s(&repo),
        "--vm-qmp",
        &socket,
        "--scratch-dir",
        s(&scratch),
    ]);
    assert!(
        out.contains(&format!("(incremental after {first})")),
        "{out}"
    );
    assert!(out.contains("read 64.0 KiB"), "{out}");
    let second = last_line(&out);

    // Bad input names what is wrong.
    let e = fails(&["vm", "preflight", "--vm-qmp", s(&d.join("nothing.qmp"))]);
    assert!(e.contains("qmp-unreachable"), "{e}");
    let e = fails(&[
        "repo",
        "backup",
        s(&repo),
        "--vm-qmp",
        &socket,
        "--scratch-dir",
        s(&d.join("missing")),
    ]);
    assert!(e.contains("scratch-space-missing"), "{e}");

    // Restore the second point as a new VM and start it.
    vm.quit();
    let new = d.join("restored");
    ok(&["repo", "restore-vm", s(&repo), &second, "--to", s(&new)]);
    let new = new.canonicalize().unwrap();
    let new_image = new.join("drive0.qcow2");
    assert_eq!(raw_bytes(&new_image, d), expected);
    let definition: serde_json::Value =
        serde_json::from_slice(&std::fs::read(new.join("vm.json")).unwrap()).unwrap();
    assert_eq!(definition["name"], "testvm-restored");
    assert_eq!(definition["disks"][0], s(&new_image));
    let mut started = Command::new(new.join("start-vm.sh"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&new.join("qmp.sock"), &mut started);
    let (name, uuid, file) = qmp_at(&new.join("qmp.sock"), async |q| {
        let blocks = q.query_block().await.unwrap();
        (
            q.query_name().await.unwrap(),
            q.query_uuid().await.unwrap(),
            blocks[0].inserted.as_ref().unwrap().image.filename.clone(),
        )
    });
    let _ = started.kill();
    let _ = started.wait();
    assert_eq!(name.as_deref(), Some("testvm-restored"));
    assert_ne!(uuid, "5f0c2b1e-8d7a-4c3e-9b21-0a1b2c3d4e5f");
    assert_eq!(file, s(&new_image));

    // Put the stopped original back to the first point.
    ok(&["repo", "restore-vm", s(&repo), &first, "--replace-original"]);
    assert_eq!(raw_bytes(&image, d), at_first);
    // A running VM's disks are not replaced.
    let _vm = Vm::start(d, &image);
    let e = fails(&["repo", "restore-vm", s(&repo), &first, "--replace-original"]);
    assert!(e.contains("Stop the VM"), "{e}");
}
