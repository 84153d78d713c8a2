//! Stopped VMs' qcow2 images: read through qemu-nbd, incremental forever with
//! persistent dirty bitmaps, and QEMU's image locks respected.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .expect("QEMU's tools (qemu-utils) are needed by these tests");
    assert!(out.status.success(), "{cmd:?} failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A qcow2 image holding an ext4 file system with real files.
fn qcow2_image(dir: &Path) -> PathBuf {
    let raw = make_ext4_image(dir, "disk.raw", 64 << 20, 20 << 20, 50);
    let qcow = dir.join("vm.qcow2");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&qcow));
    fs::remove_file(raw).unwrap();
    qcow
}

fn qemu_io_write(image: &Path, pattern: u8, offset: u64, len: u64) {
    run(Command::new("qemu-io")
        .args([
            "-f",
            "qcow2",
            "-c",
            &format!("write -P {pattern} {offset} {len}"),
        ])
        .arg(image));
}

fn bitmaps(image: &Path) -> Vec<String> {
    let info: serde_json::Value = serde_json::from_str(&run(Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(image)))
    .unwrap();
    info["format-specific"]["data"]["bitmaps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| b["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Restores the point and checks it equals the qcow2 image's content.
fn assert_restores(repo: &Path, point: &str, image: &Path, dir: &Path) {
    let out = dir.join(format!("{point}.raw"));
    ok(&[
        "repo",
        "restore",
        s(repo),
        point,
        "--disk",
        "vm.qcow2",
        "--output",
        s(&out),
    ]);
    let cmp = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&out)
        .arg(image)
        .output()
        .unwrap();
    assert!(
        cmp.status.success(),
        "point {point} differs from the image: {}",
        text(&cmp)
    );
    fs::remove_file(out).unwrap();
}

fn read_bytes(repo: &Path, point: &str) -> u64 {
    points(repo).into_iter().find(|p| p["id"] == point).unwrap()["stats"]["bytes_read"]
        .as_u64()
        .unwrap()
}

#[test]
fn qcow2_image_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let image = qcow2_image(t.path());
    let repo = init_repo(t.path());
    let id = last_line(&ok(&[
        "repo",
        "backup",
        s(&repo),
        "--name",
        "vm",
        s(&image),
    ]));
    assert_restores(&repo, &id, &image, t.path());
}

#[test]
fn incremental_forever_with_persistent_bitmaps() {
    let t = tempfile::tempdir().unwrap();
    let image = qcow2_image(t.path());
    let repo = init_repo(t.path());
    let first = last_line(&ok(&[
        "repo",
        "backup",
        s(&repo),
        "--name",
        "vm",
        "--bitmaps",
        s(&image),
    ]));
    assert_eq!(bitmaps(&image), vec![format!("tresor-{first}")]);

    // The stopped VM's disk changes: 5 writes of 64 KiB.
    for (i, offset) in [0u64, 5 << 20, 17 << 20, 33 << 20, (64 << 20) - (64 << 10)]
        .into_iter()
        .enumerate()
    {
        qemu_io_write(&image, 0x10 + i as u8, offset, 64 << 10);
    }
    let second = last_line(&ok(&[
        "repo",
        "backup",
        s(&repo),
        "--name",
        "vm",
        "--bitmaps",
        "--parent",
        "latest",
        s(&image),
    ]));
    let read = read_bytes(&repo, &second);
    assert!(
        read <= 5 * (64 << 10),
        "read {read} bytes for 320 KiB of changes"
    );
    assert!(read > 0, "the changes were not read");
    assert_restores(&repo, &second, &image, t.path());
    assert_eq!(
        bitmaps(&image),
        vec![format!("tresor-{second}")],
        "old bitmaps are removed"
    );

    // A parent the bitmap does not belong to: the image is read whole, correctly.
    qemu_io_write(&image, 0x77, 9 << 20, 4096);
    let out = tresor()
        .args([
            "repo",
            "backup",
            s(&repo),
            "--name",
            "vm",
            "--bitmaps",
            "--parent",
            &first,
            s(&image),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no dirty bitmap for the parent"),
        "{}",
        text(&out)
    );
    let third = last_line(&String::from_utf8_lossy(&out.stdout));
    assert!(
        read_bytes(&repo, &third) > 1 << 20,
        "a whole read was expected"
    );
    assert_restores(&repo, &third, &image, t.path());
}

/// A writer holding the image, as a running VM would.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn image_in_use_by_a_writer_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let image = qcow2_image(t.path());
    let repo = init_repo(t.path());
    let socket = t.path().join("writer.sock");
    let holder = Holder(
        Command::new("qemu-nbd")
            .args(["--persistent", "--format=qcow2"])
            .arg(format!("--socket={}", socket.display()))
            .arg(&image)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-nbd (qemu-utils) is needed by this test"),
    );
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "qemu-nbd did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = fails(&["repo", "backup", s(&repo), "--name", "vm", s(&image)]);
    assert!(err.contains("in use by a running VM"), "{err}");
    assert!(points(&repo).is_empty());
    drop(holder);
    let id = last_line(&ok(&[
        "repo",
        "backup",
        s(&repo),
        "--name",
        "vm",
        s(&image),
    ]));
    assert_restores(&repo, &id, &image, t.path());
}
