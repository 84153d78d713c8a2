//! Shared helpers of the integration tests: they drive the real `tresor` binary on disk
//! images with real file systems that the tests make themselves.

#![allow(dead_code)]

pub mod browser;
pub mod service;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::{Rng, RngCore, SeedableRng};

pub const PASSWORD: &str = "correct horse battery staple";

pub fn tresor() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tresor"));
    cmd.env("TRESOR_PASSWORD", PASSWORD)
        .env_remove("TRESOR_PASSWORD_FILE");
    cmd
}

/// Runs tresor with `args`; panics with its output unless it succeeds.
pub fn ok(args: &[&str]) -> String {
    let out = tresor().args(args).output().expect("run tresor");
    assert!(
        out.status.success(),
        "tresor {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs tresor with `args`; panics unless it fails. Returns stdout + stderr.
pub fn fails(args: &[&str]) -> String {
    let out = tresor().args(args).output().expect("run tresor");
    assert!(
        !out.status.success(),
        "tresor {args:?} should have failed:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    text(&out)
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The last line of a command's output (backup prints the point id there).
pub fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or_default().trim().to_string()
}

/// A new repository with the cheapest accepted key derivation, so tests stay fast.
pub fn init_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    ok(&[
        "repo",
        "init",
        repo.to_str().unwrap(),
        "--kdf-memory-mib",
        "8",
        "--kdf-iterations",
        "1",
    ]);
    repo
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Fills `dir` with about `bytes` of files: incompressible ones, text-like ones, and
/// duplicates of earlier files, as a guest's disk has.
pub fn make_files(dir: &Path, bytes: u64, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    fs::create_dir_all(dir).unwrap();
    let mut written = 0u64;
    let mut n = 0;
    let words = [
        "tresor", "vault", "backup", "policy", "recovery", "point", "qemu", "disk", "\n",
    ];
    while written < bytes {
        let sub = dir.join(format!("d{}", n % 7));
        fs::create_dir_all(&sub).unwrap();
        let size = rng.gen_range(1_000..2_000_000u64).min(bytes - written + 1);
        let mut data = vec![0u8; size as usize];
        match n % 3 {
            0 => rng.fill_bytes(&mut data),
            1 => {
                let mut text = Vec::with_capacity(size as usize);
                while text.len() < size as usize {
                    text.extend_from_slice(words[rng.gen_range(0..words.len())].as_bytes());
                    text.push(b' ');
                }
                text.truncate(size as usize);
                data = text;
            }
            _ => {
                // A copy of an earlier file: deduplication finds it.
                if let Some(prev) = fs::read_dir(dir.join("d0")).ok().and_then(|mut r| r.next()) {
                    data = fs::read(prev.unwrap().path()).unwrap();
                } else {
                    rng.fill_bytes(&mut data);
                }
            }
        }
        fs::write(sub.join(format!("f{n}")), &data).unwrap();
        written += data.len() as u64;
        n += 1;
    }
}

/// A sparse raw image of `size` bytes with an ext4 file system holding about `data` bytes.
pub fn make_ext4_image(dir: &Path, name: &str, size: u64, data: u64, seed: u64) -> PathBuf {
    let staging = dir.join(format!("{name}.files"));
    make_files(&staging, data, seed);
    let image = dir.join(name);
    File::create(&image).unwrap().set_len(size).unwrap();
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&staging)
        .arg(&image)
        .status()
        .expect("mkfs.ext4 (e2fsprogs) is needed by the tests");
    assert!(status.success(), "mkfs.ext4 failed");
    fs::remove_dir_all(&staging).unwrap();
    image
}

/// Writes `count` blocks of `block` random bytes at random `block`-aligned offsets;
/// returns the extents written and saves them as a dirty extents file.
pub fn random_writes(
    image: &Path,
    count: usize,
    block: u64,
    seed: u64,
) -> (Vec<(u64, u64)>, PathBuf) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let f = OpenOptions::new().write(true).open(image).unwrap();
    let size = f.metadata().unwrap().len();
    let mut extents = Vec::new();
    let mut buf = vec![0u8; block as usize];
    for _ in 0..count {
        let offset = rng.gen_range(0..size / block) * block;
        rng.fill_bytes(&mut buf);
        f.write_all_at(&buf, offset).unwrap();
        extents.push((offset, block));
    }
    f.sync_all().unwrap();
    let dirty = image.with_extension("dirty");
    let text: String = extents.iter().map(|(o, l)| format!("{o} {l}\n")).collect();
    fs::write(&dirty, text).unwrap();
    (extents, dirty)
}

pub fn same_content(a: &Path, b: &Path) -> bool {
    let status = Command::new("cmp")
        .arg("-s")
        .arg(a)
        .arg(b)
        .status()
        .unwrap();
    status.success()
}

pub fn du(path: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Bytes the file system actually allocated for a file.
pub fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().blocks() * 512
}

/// The files of one folder of a repository.
pub fn files_in(repo: &Path, folder: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo.join(folder)];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Flips one byte of a file.
pub fn flip_byte(path: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, offset).unwrap();
}

/// A JSON list of the repository's points.
pub fn points(repo: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(&["repo", "list", s(repo), "--json"])).unwrap()
}
