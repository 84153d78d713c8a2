//! Interrupted backups and garbage collection racing backups: nothing lies, nothing is lost.

mod common;

use std::fs;
use std::process::Stdio;

use common::*;
use rand::{Rng, SeedableRng};

/// Every point listed must restore exactly the image it was taken from.
fn check_points(
    repo: &std::path::Path,
    dir: &std::path::Path,
    images: &std::collections::HashMap<String, std::path::PathBuf>,
) {
    for p in points(repo) {
        let id = p["id"].as_str().unwrap();
        let name = p["name"].as_str().unwrap();
        let expected = images
            .get(name)
            .unwrap_or_else(|| panic!("point {id} named {name} was never completed"));
        let out = dir.join(format!("check-{id}.raw"));
        ok(&[
            "repo",
            "restore",
            s(repo),
            id,
            "--disk",
            "disk.raw",
            "--output",
            s(&out),
        ]);
        assert!(
            same_content(expected, &out),
            "point {id} ({name}) does not restore its image"
        );
        fs::remove_file(out).unwrap();
    }
}

#[test]
fn backups_killed_at_random_moments_leave_no_lying_point() {
    let t = tempfile::tempdir().unwrap();
    let image = t.path().join("disk.raw");
    fs::File::create(&image)
        .unwrap()
        .set_len(160 << 20)
        .unwrap();
    random_writes(&image, 1200, 64 << 10, 20); // ~75 MiB of incompressible data
    let repo = init_repo(t.path());
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    // Which image content each completed backup name stands for.
    let mut completed = std::collections::HashMap::new();
    let mut killed = 0;
    // How long an uninterrupted backup of this much new data takes here, so that the
    // kills land inside backups whatever the machine's speed.
    let started = std::time::Instant::now();
    ok(&["repo", "backup", s(&repo), "--name", "warmup", s(&image)]);
    let duration = started.elapsed();
    ok(&[
        "repo",
        "forget",
        s(&repo),
        points(&repo)[0]["id"].as_str().unwrap(),
    ]);
    ok(&["repo", "gc", s(&repo)]);
    for round in 0..8 {
        // New data every round, so every backup writes packs.
        random_writes(&image, 100, 64 << 10, 100 + round);
        let snapshot = t.path().join(format!("image-{round}.raw"));
        fs::copy(&image, &snapshot).unwrap();
        let name = format!("round{round}");
        let mut child = tresor()
            .args(["repo", "backup", s(&repo), "--name", &name, s(&image)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(duration.mul_f64(rng.gen_range(0.05..0.9)));
        match child.try_wait().unwrap() {
            Some(status) => assert!(status.success(), "backup failed by itself"),
            None => {
                child.kill().unwrap(); // SIGKILL
                killed += 1;
            }
        }
        let status = child.wait().unwrap();
        // A backup that got to commit counts as complete whether or not it was killed
        // right after: its point must then be whole.
        if status.success() || points(&repo).iter().any(|p| p["name"] == name.as_str()) {
            completed.insert(name, snapshot);
        } else {
            fs::remove_file(&snapshot).unwrap();
        }
        check_points(&repo, t.path(), &completed);
        assert!(ok(&["repo", "verify", s(&repo)]).contains("no errors found"));
    }
    assert!(
        killed > 0,
        "no backup was interrupted; the test checked nothing"
    );
    let report = ok(&["repo", "gc", s(&repo)]);
    assert!(report.contains("removed"), "{report}");
    assert!(ok(&["repo", "verify", s(&repo)]).contains("no errors found"));
    check_points(&repo, t.path(), &completed);
    // No temp file survives a gc with no backup running.
    let leftovers = walk(&repo)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .count();
    assert_eq!(leftovers, 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn gc_racing_backups_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let image = t.path().join("disk.raw");
    fs::File::create(&image).unwrap().set_len(96 << 20).unwrap();
    random_writes(&image, 600, 64 << 10, 30);
    let repo = init_repo(t.path());
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let mut images = std::collections::HashMap::new();
    for round in 0..6u64 {
        random_writes(&image, 40, 64 << 10, 200 + round);
        let snapshot = t.path().join(format!("image-{round}.raw"));
        fs::copy(&image, &snapshot).unwrap();
        // A point holding this content, then forgotten: its blobs become garbage that
        // the next backup (same content) wants to reuse while gc wants to remove it.
        let doomed = last_line(&ok(&[
            "repo",
            "backup",
            s(&repo),
            "--name",
            "doomed",
            s(&image),
        ]));
        ok(&["repo", "forget", s(&repo), &doomed]);
        let name = format!("keep{round}");
        let backup = tresor()
            .args(["repo", "backup", s(&repo), "--name", &name, s(&image)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(0..400)));
        let gc = tresor()
            .args(["repo", "gc", s(&repo), "--repack-threshold", "0"])
            .output()
            .unwrap();
        assert!(gc.status.success(), "gc failed: {}", text(&gc));
        let out = backup.wait_with_output().unwrap();
        assert!(out.status.success(), "backup failed: {}", text(&out));
        images.insert(name, snapshot);
        // A gc after the backup ended reclaims whatever the racing one deferred.
        ok(&["repo", "gc", s(&repo)]);
        assert!(ok(&["repo", "verify", s(&repo)]).contains("no errors found"));
        check_points(&repo, t.path(), &images);
    }
}

#[test]
fn only_one_gc_at_a_time() {
    let t = tempfile::tempdir().unwrap();
    let image = t.path().join("disk.raw");
    fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
    random_writes(&image, 400, 64 << 10, 40);
    let repo = init_repo(t.path());
    for _ in 0..3 {
        let id = last_line(&ok(&["repo", "backup", s(&repo), "--name", "x", s(&image)]));
        ok(&["repo", "forget", s(&repo), &id]);
        random_writes(&image, 100, 64 << 10, 41);
    }
    let a = tresor()
        .args(["repo", "gc", s(&repo)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b = tresor().args(["repo", "gc", s(&repo)]).output().unwrap();
    let a = a.wait_with_output().unwrap();
    let outcomes = [&a, &b];
    let busy = outcomes
        .iter()
        .filter(|o| text(o).contains("another garbage collection is running"))
        .count();
    let succeeded = outcomes.iter().filter(|o| o.status.success()).count();
    // Either they overlapped (one refused with a clear message) or ran one after the other.
    assert_eq!(busy + succeeded, 2, "a: {}\nb: {}", text(&a), text(&b));
    assert!(succeeded >= 1);
    assert!(ok(&["repo", "verify", s(&repo)]).contains("no errors found"));
}
