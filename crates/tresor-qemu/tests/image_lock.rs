//! Tresor's read locks on raw images interoperate with QEMU's own image locking.
//! Needs qemu-system-x86_64 and qemu-img (scripts/install-deps.sh).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tresor_qemu::{open_offline_disk, Error, ImageReadLock};

fn raw_image(dir: &Path) -> std::path::PathBuf {
    let img = dir.join("disk.raw");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(8 << 20).unwrap();
    img
}

/// Starts a VM (no guest OS: the firmware finds nothing to boot) with `img` as its
/// virtio disk, which QEMU opens for writing; `Err(stderr)` if it refuses to start.
fn start_qemu(img: &Path) -> Result<Child, String> {
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "pc",
            "-accel",
            "tcg",
            "-nodefaults",
            "-display",
            "none",
        ])
        .arg("-drive")
        .arg(format!("if=none,id=d0,format=raw,file={}", img.display()))
        .args(["-device", "virtio-blk-pci,drive=d0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 is needed; run scripts/install-deps.sh");
    // QEMU opens its drives before it would run; give it a moment to fail.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child)
}

#[test]
fn a_raw_image_a_vm_writes_to_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = raw_image(dir.path());
    let mut qemu = start_qemu(&img).expect("QEMU starts on a free image");
    assert!(matches!(
        ImageReadLock::acquire(&img),
        Err(Error::ImageLocked { .. })
    ));
    assert!(matches!(
        open_offline_disk(&img, false, None),
        Err(Error::ImageLocked { .. })
    ));
    qemu.kill().unwrap();
    qemu.wait().unwrap();
    assert!(ImageReadLock::acquire(&img).is_ok());
}

#[test]
fn a_vm_cannot_start_on_an_image_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let img = raw_image(dir.path());
    let reading = open_offline_disk(&img, false, None).unwrap();
    // Readers share: a second backup (or qemu-img -U) may read too.
    let _second = ImageReadLock::acquire(&img).unwrap();
    let refused = start_qemu(&img).map(|mut c| {
        let _ = c.kill();
    });
    let stderr = refused.expect_err("QEMU must not write to an image being backed up");
    assert!(stderr.contains("lock"), "{stderr}");
    drop(reading);
    drop(_second);
    let mut qemu = start_qemu(&img).expect("QEMU starts once the backup let go");
    qemu.kill().unwrap();
    qemu.wait().unwrap();
}
