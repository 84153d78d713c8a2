//! `tresor repo ...` end to end: the real binary on real ext4 images.

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn backup(repo: &Path, name: &str, extra: &[&str], images: &[&Path]) -> String {
    let mut args = vec!["repo", "backup", s(repo), "--name", name];
    args.extend_from_slice(extra);
    for i in images {
        args.push(s(i));
    }
    last_line(&ok(&args))
}

fn restore(repo: &Path, point: &str, disk: &str, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "repo",
        "restore",
        s(repo),
        point,
        "--disk",
        disk,
        "--output",
        s(out),
    ];
    args.extend_from_slice(extra);
    ok(&args);
}

/// Runs a restore that must fail; returns what it said. `repo` is a path as text.
fn restore_fails(repo: &str, point: &str, disk: &str, out: &str) -> String {
    fails(&[
        "repo", "restore", repo, point, "--disk", disk, "--output", out,
    ])
}

fn stats(repo: &Path, point: &str) -> serde_json::Value {
    points(repo)
        .into_iter()
        .find(|p| p["id"] == point)
        .expect("point listed")["stats"]
        .clone()
}

#[test]
fn full_backup_restores_byte_identical_raw_and_qcow2() {
    let t = tempfile::tempdir().unwrap();
    let image = make_ext4_image(t.path(), "disk.raw", 96 << 20, 40 << 20, 1);
    let repo = init_repo(t.path());
    let id = backup(&repo, "vm1", &[], &[&image]);
    assert_eq!(id.len(), 32, "last line is the point id: {id}");

    let raw = t.path().join("restored.raw");
    restore(&repo, &id, "disk.raw", &raw, &[]);
    assert!(same_content(&image, &raw), "raw restore differs");
    // Zero regions stay holes.
    assert!(
        allocated(&raw) < allocated(&image) + (4 << 20),
        "restore is not sparse"
    );

    let qcow = t.path().join("restored.qcow2");
    restore(&repo, &id, "disk.raw", &qcow, &["--format", "qcow2"]);
    let cmp = std::process::Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&image)
        .arg(&qcow)
        .output()
        .expect("qemu-img (qemu-utils) is needed by the tests");
    assert!(
        cmp.status.success(),
        "qcow2 restore differs: {}",
        text(&cmp)
    );

    let list = ok(&["repo", "list", s(&repo)]);
    assert!(
        list.contains(&id) && list.contains("vm1") && list.contains("CrashConsistent"),
        "{list}"
    );
    assert!(ok(&["repo", "verify", s(&repo)]).contains("no errors found"));
    assert!(ok(&["repo", "verify", s(&repo), &id]).contains("no errors found"));

    // Existing outputs are not overwritten without --force.
    let err = restore_fails(s(&repo), &id, "disk.raw", s(&raw));
    assert!(err.contains("--force"), "{err}");
    restore(&repo, &id, "disk.raw", &raw, &["--force"]);
    assert!(same_content(&image, &raw));
}

#[test]
fn multi_disk_point_and_unknown_disk() {
    let t = tempfile::tempdir().unwrap();
    let a = make_ext4_image(t.path(), "a.raw", 32 << 20, 8 << 20, 2);
    let b = make_ext4_image(t.path(), "b.raw", 48 << 20, 8 << 20, 3);
    let repo = init_repo(t.path());
    let id = backup(&repo, "vm2", &[], &[&a, &b]);
    for (disk, src) in [("a.raw", &a), ("b.raw", &b)] {
        let out = t.path().join(format!("out-{disk}"));
        restore(&repo, &id, disk, &out, &[]);
        assert!(same_content(src, &out), "{disk} differs");
    }
    let err = restore_fails(s(&repo), &id, "c.raw", s(&t.path().join("x")));
    assert!(
        err.contains("no disk \"c.raw\"") && err.contains("a.raw, b.raw"),
        "{err}"
    );
}

#[test]
fn sparse_disk_reads_only_its_data() {
    let t = tempfile::tempdir().unwrap();
    let image = t.path().join("sparse.raw");
    let f = fs::File::create(&image).unwrap();
    f.set_len(64 << 30).unwrap(); // 64 GiB virtual
    drop(f);
    let (extents, _) = random_writes(&image, 64, 1 << 20, 4); // 64 MiB of data
    let repo = init_repo(t.path());
    let id = backup(&repo, "sparse", &[], &[&image]);
    let st = stats(&repo, &id);
    let read = st["bytes_read"].as_u64().unwrap();
    let data: u64 = extents.iter().map(|e| e.1).sum();
    assert!(
        read <= data + (8 << 20),
        "read {read} bytes of a disk holding {data}"
    );
    let out = t.path().join("out.raw");
    restore(&repo, &id, "sparse.raw", &out, &[]);
    assert_eq!(fs::metadata(&out).unwrap().len(), 64 << 30);
    assert!(allocated(&out) < 2 * data, "restored file is not sparse");
    // Compare the data regions, and that the rest reads as zeros via the same checksum.
    assert!(same_content(&image, &out));
}

#[test]
fn incremental_with_dirty_extents_reads_and_stores_only_the_change() {
    let t = tempfile::tempdir().unwrap();
    let image = make_ext4_image(t.path(), "disk.raw", 128 << 20, 48 << 20, 5);
    let original = t.path().join("original.raw");
    fs::copy(&image, &original).unwrap();
    let repo = init_repo(t.path());
    let first = backup(&repo, "vm", &[], &[&image]);
    let before = du(&repo);

    let (extents, dirty) = random_writes(&image, 48, 64 << 10, 6); // 3 MiB of 64 KiB writes
    let changed: u64 = extents.iter().map(|e| e.1).sum();
    let second = backup(
        &repo,
        "vm",
        &["--parent", &first, "--dirty-extents", s(&dirty)],
        &[&image],
    );
    let st = stats(&repo, &second);
    assert!(
        st["bytes_read"].as_u64().unwrap() <= changed,
        "read more than the dirty extents: {st}"
    );
    let added = du(&repo) - before;
    assert!(
        added as f64 <= 1.5 * changed as f64,
        "stored {added} bytes for {changed} changed"
    );

    let out = t.path().join("second.raw");
    restore(&repo, &second, "disk.raw", &out, &[]);
    assert!(
        same_content(&image, &out),
        "incremental point differs from the disk"
    );
    let out1 = t.path().join("first.raw");
    restore(&repo, &first, "disk.raw", &out1, &[]);
    assert!(same_content(&original, &out1), "the parent point changed");
    assert!(ok(&["repo", "verify", s(&repo)]).contains("no errors found"));
}

#[test]
fn incremental_by_full_read_deduplicates_against_the_parent() {
    let t = tempfile::tempdir().unwrap();
    let image = make_ext4_image(t.path(), "disk.raw", 96 << 20, 40 << 20, 7);
    let repo = init_repo(t.path());
    backup(&repo, "vm", &[], &[&image]);
    let before = du(&repo);
    let (extents, _) = random_writes(&image, 32, 64 << 10, 8);
    let changed: u64 = extents.iter().map(|e| e.1).sum();
    let second = backup(&repo, "vm", &["--parent", "latest"], &[&image]);
    let added = du(&repo) - before;
    assert!(
        added as f64 <= 1.5 * changed as f64,
        "stored {added} bytes for {changed} changed"
    );
    let out = t.path().join("out.raw");
    restore(&repo, &second, "disk.raw", &out, &[]);
    assert!(same_content(&image, &out));
}

#[test]
fn wrong_passphrase_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let repo = init_repo(t.path());
    let out = tresor()
        .env("TRESOR_PASSWORD", "not the passphrase")
        .args(["repo", "list", s(&repo)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("wrong passphrase"), "{}", text(&out));
}

#[test]
fn bad_input_gets_errors_that_say_what_to_do() {
    let t = tempfile::tempdir().unwrap();
    let repo = init_repo(t.path());
    let err = fails(&[
        "repo",
        "backup",
        s(&repo),
        "--name",
        "x",
        s(&t.path().join("missing.raw")),
    ]);
    assert!(err.contains("missing.raw"), "{err}");
    let image = t.path().join("d.raw");
    fs::write(&image, vec![1u8; 1 << 20]).unwrap();
    let dirty = t.path().join("d.dirty");
    fs::write(&dirty, "0 65536\n").unwrap();
    let err = fails(&[
        "repo",
        "backup",
        s(&repo),
        "--name",
        "x",
        "--dirty-extents",
        s(&dirty),
        s(&image),
    ]);
    assert!(err.contains("--parent"), "{err}");
    fs::write(&dirty, "zero 65536\n").unwrap();
    let id = backup(&repo, "x", &[], &[&image]);
    let err = fails(&[
        "repo",
        "backup",
        s(&repo),
        "--name",
        "x",
        "--parent",
        &id,
        "--dirty-extents",
        s(&dirty),
        s(&image),
    ]);
    assert!(err.contains("line 1"), "{err}");
    let err = restore_fails(
        s(&repo),
        "0123456789abcdef0123456789abcdef",
        "d.raw",
        "/tmp/x",
    );
    assert!(
        err.contains("not found") && err.contains("repo list"),
        "{err}"
    );
    let err = fails(&["repo", "list", s(&t.path().join("nothing"))]);
    assert!(err.contains("not a Tresor repository"), "{err}");
    let err = fails(&[
        "repo",
        "init",
        s(&t.path().join("r2")),
        "--chunk-size",
        "3000",
    ]);
    assert!(err.contains("chunk size"), "{err}");
    assert!(
        !t.path().join("r2").exists(),
        "a refused init left a folder behind"
    );
    let out = tresor()
        .env_remove("TRESOR_PASSWORD")
        .args(["repo", "list", s(&repo)])
        .output()
        .unwrap();
    assert!(text(&out).contains("TRESOR_PASSWORD"), "{}", text(&out));
}

#[test]
fn damaged_chunk_is_named_and_never_restored() {
    let t = tempfile::tempdir().unwrap();
    let image = make_ext4_image(t.path(), "disk.raw", 48 << 20, 16 << 20, 9);
    let repo = init_repo(t.path());
    let id = backup(&repo, "vm", &[], &[&image]);
    // The largest pack holds data chunks; damage a byte in its middle.
    let pack = files_in(&repo, "data")
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let len = fs::metadata(&pack).unwrap().len();
    flip_byte(&pack, len / 2);

    let out = tresor()
        .args(["repo", "verify", s(&repo)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report = text(&out);
    assert!(
        report.contains(&format!("DAMAGED recovery point {id}")),
        "{report}"
    );
    let out = tresor()
        .args(["repo", "verify", s(&repo), &id])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && text(&out).contains("DAMAGED"),
        "{}",
        text(&out)
    );

    let target = t.path().join("out.raw");
    let err = restore_fails(s(&repo), &id, "disk.raw", s(&target));
    assert!(
        err.contains("damaged chunk") && err.contains("offset"),
        "{err}"
    );
    assert!(!target.exists(), "a failed restore left its output");
    assert!(fs::read_dir(t.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("partial")));
}

#[test]
fn damaged_index_is_detected_and_rebuilt_from_packs() {
    let t = tempfile::tempdir().unwrap();
    let image = make_ext4_image(t.path(), "disk.raw", 32 << 20, 8 << 20, 10);
    let repo = init_repo(t.path());
    let id = backup(&repo, "vm", &[], &[&image]);
    let index = files_in(&repo, "index").remove(0);
    flip_byte(&index, 40);
    let err = fails(&["repo", "list", s(&repo)]);
    assert!(
        err.contains("index file") && err.contains("rebuild-index"),
        "{err}"
    );
    ok(&["repo", "rebuild-index", s(&repo)]);
    assert!(ok(&["repo", "verify", s(&repo)]).contains("no errors found"));
    let out = t.path().join("out.raw");
    restore(&repo, &id, "disk.raw", &out, &[]);
    assert!(same_content(&image, &out));
}

#[test]
fn tampered_manifest_is_detected_and_the_others_still_listed() {
    let t = tempfile::tempdir().unwrap();
    let image = t.path().join("d.raw");
    fs::write(&image, vec![7u8; 1 << 20]).unwrap();
    let repo = init_repo(t.path());
    let good = backup(&repo, "vm", &[], &[&image]);
    let id = backup(&repo, "vm", &[], &[&image]);
    let manifest = repo.join("points").join(&id);
    flip_byte(&manifest, 30);
    let target = t.path().join("o");
    let err = restore_fails(s(&repo), &id, "d.raw", s(&target));
    assert!(err.contains("authentication failed"), "{err}");
    let listing = fails(&["repo", "list", s(&repo)]);
    assert!(
        listing.contains(&good),
        "the intact point is not listed: {listing}"
    );
    assert!(
        listing.contains(&format!("DAMAGED recovery point {id}")),
        "{listing}"
    );
    let report = fails(&["repo", "verify", s(&repo)]);
    assert!(
        report.contains(&format!("DAMAGED recovery point {id}")),
        "{report}"
    );
    assert!(
        !report.contains(&format!("DAMAGED recovery point {good}")),
        "{report}"
    );
    // A manifest copied under another point's name is refused too.
    fs::copy(
        repo.join("points").join(&good),
        repo.join("points").join("0123456789abcdef0123456789abcdef"),
    )
    .unwrap();
    let listing = fails(&["repo", "list", s(&repo)]);
    assert!(
        listing.contains("DAMAGED recovery point 0123456789abcdef0123456789abcdef"),
        "{listing}"
    );
}

#[test]
fn forget_then_gc_reclaims_space_and_keeps_the_rest() {
    let t = tempfile::tempdir().unwrap();
    let a = make_ext4_image(t.path(), "a.raw", 64 << 20, 24 << 20, 11);
    let b = make_ext4_image(t.path(), "b.raw", 64 << 20, 24 << 20, 12);
    let repo = init_repo(t.path());
    let pa = backup(&repo, "a", &[], &[&a]);
    let pb = backup(&repo, "b", &[], &[&b]);
    let full = du(&repo);
    ok(&["repo", "forget", s(&repo), &pa]);
    let report = ok(&["repo", "gc", s(&repo), "--repack-threshold", "0"]);
    assert!(report.contains("removed"), "{report}");
    let after = du(&repo);
    assert!(
        after < full * 3 / 4,
        "gc freed too little: {full} -> {after}"
    );
    assert!(ok(&["repo", "verify", s(&repo)]).contains("no errors found"));
    let out = t.path().join("b.out");
    restore(&repo, &pb, "b.raw", &out, &[]);
    assert!(same_content(&b, &out));
    // A second gc finds nothing more to do.
    let again = ok(&["repo", "gc", s(&repo)]);
    assert!(again.contains("removed 0 blobs"), "{again}");
}

#[test]
fn key_export_and_import() {
    let t = tempfile::tempdir().unwrap();
    let image = t.path().join("d.raw");
    fs::write(&image, vec![3u8; 1 << 20]).unwrap();
    let repo = init_repo(t.path());
    let id = backup(&repo, "vm", &[], &[&image]);
    let key = t.path().join("key.json");
    ok(&["repo", "key", "export", s(&repo), "--output", s(&key)]);
    for k in files_in(&repo, "keys") {
        fs::remove_file(k).unwrap();
    }
    let err = fails(&["repo", "list", s(&repo)]);
    assert!(err.contains("wrong passphrase"), "{err}");
    ok(&["repo", "key", "import", s(&repo), "--input", s(&key)]);
    assert!(ok(&["repo", "list", s(&repo)]).contains(&id));
    // A second passphrase opens the same repository.
    let out = tresor()
        .env("TRESOR_NEW_PASSWORD", "second passphrase")
        .args(["repo", "key", "add", s(&repo)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = tresor()
        .env("TRESOR_PASSWORD", "second passphrase")
        .args(["repo", "list", s(&repo)])
        .output()
        .unwrap();
    assert!(out.status.success() && text(&out).contains(&id));
}

/// The key file kinds of `repo` (`kdf.algorithm` of each).
fn key_kinds(repo: &Path) -> Vec<String> {
    let mut kinds: Vec<String> = files_in(repo, "keys")
        .iter()
        .map(|k| {
            let v: serde_json::Value = serde_json::from_slice(&fs::read(k).unwrap()).unwrap();
            v["kdf"]["algorithm"].as_str().unwrap().to_string()
        })
        .collect();
    kinds.sort();
    kinds
}

#[test]
fn a_generated_passphrase_opens_without_argon2_and_a_chosen_one_never_does() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    let out = tresor()
        .env_remove("TRESOR_PASSWORD")
        .args(["repo", "init", s(&repo), "--generate-passphrase"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let secret = last_line(&String::from_utf8_lossy(&out.stdout));
    assert!(
        secret.starts_with("tresor_repo_") && secret.len() == 12 + 64,
        "{secret}"
    );
    assert_eq!(key_kinds(&repo), ["hkdf-sha256"]);
    let list = |pass: &str| {
        tresor()
            .env("TRESOR_PASSWORD", pass)
            .args(["repo", "list", s(&repo)])
            .output()
            .unwrap()
    };
    assert!(list(&secret).status.success());
    // Another secret of the same form, and a chosen passphrase, do not open it.
    let mut other = secret.clone();
    let last = if other.ends_with('0') { "1" } else { "0" };
    other.replace_range(other.len() - 1.., last);
    for wrong in [other.as_str(), "correct horse", &secret.to_uppercase()] {
        let out = list(wrong);
        assert!(!out.status.success(), "{wrong}");
        assert!(text(&out).contains("wrong passphrase"), "{}", text(&out));
    }
    // A passphrase a person chooses is wrapped with Argon2id; both open it.
    let out = tresor()
        .env("TRESOR_PASSWORD", &secret)
        .env("TRESOR_NEW_PASSWORD", "second passphrase")
        .args(["repo", "key", "add", s(&repo)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(key_kinds(&repo), ["argon2id", "hkdf-sha256"]);
    assert!(list("second passphrase").status.success());
    assert!(list(&secret).status.success());
}

/// A loop device standing in for a block device; detached when dropped.
struct LoopDevice(String);

impl LoopDevice {
    fn attach(file: &Path) -> LoopDevice {
        let out = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .expect("losetup (util-linux) is needed by this test");
        assert!(
            out.status.success(),
            "attaching a loop device failed (the tests run as root): {}",
            text(&out)
        );
        LoopDevice(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .status();
    }
}

#[test]
fn restore_onto_a_block_device_overwrites_old_data_with_zeros_too() {
    let t = tempfile::tempdir().unwrap();
    let image = make_ext4_image(t.path(), "disk.raw", 32 << 20, 8 << 20, 13);
    let repo = init_repo(t.path());
    let id = backup(&repo, "vm", &[], &[&image]);
    // A "device" full of old data: every zero region of the disk must be overwritten.
    let backing = t.path().join("device.img");
    fs::write(&backing, vec![0xa5u8; 32 << 20]).unwrap();
    let dev = LoopDevice::attach(&backing);
    restore(&repo, &id, "disk.raw", Path::new(&dev.0), &[]);
    assert!(
        same_content(&image, Path::new(&dev.0)),
        "device content differs"
    );
    // A device too small is refused before anything is written.
    let small = t.path().join("small.img");
    fs::write(&small, vec![0u8; 1 << 20]).unwrap();
    let small_dev = LoopDevice::attach(&small);
    let err = restore_fails(s(&repo), &id, "disk.raw", &small_dev.0);
    assert!(err.contains("holds") && err.contains("needs"), "{err}");
}

#[test]
fn replicate_copies_a_restorable_repository_and_then_nothing_twice() {
    let t = tempfile::tempdir().unwrap();
    let image = make_ext4_image(t.path(), "disk.raw", 64 << 20, 24 << 20, 21);
    let repo = init_repo(t.path());
    let id = backup(&repo, "vm1", &[], &[&image]);
    let copy = t.path().join("copy");

    let first = ok(&["repo", "replicate", s(&repo), "--to", s(&copy)]);
    assert!(first.contains("1 points published"), "{first}");
    assert!(
        last_line(&first).starts_with("replicated ") && last_line(&first).contains("MiB/s"),
        "{first}"
    );
    assert!(ok(&["repo", "verify", s(&copy)]).contains("no errors found"));
    let out = t.path().join("restored.raw");
    restore(&copy, &id, "disk.raw", &out, &[]);
    assert!(same_content(&image, &out), "restore from the copy differs");

    // Nothing new on the source: nothing is sent again.
    let second = ok(&["repo", "replicate", s(&repo), "--to", s(&copy)]);
    assert!(
        second.contains("copied 0 objects (0 bytes)") && second.contains("1 already there"),
        "{second}"
    );
    assert!(
        last_line(&second).starts_with("replicated 0 bytes"),
        "{second}"
    );

    // A folder holding something else is refused, and left alone.
    let other = t.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("notes.txt"), b"mine").unwrap();
    let err = fails(&["repo", "replicate", s(&repo), "--to", s(&other)]);
    assert!(err.contains("holds no repository"), "{err}");
    assert_eq!(fs::read_dir(&other).unwrap().count(), 1);
}
