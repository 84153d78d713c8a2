//! Checks images written by `Qcow2Writer` with the real QEMU tools: `qemu-img check`
//! must find no errors, `qemu-img convert -O raw` must reproduce exactly the bytes of
//! a raw file written alongside, and `qemu-img info` must show the virtual size.
//!
//! The QEMU tools are required (`.ci/run` installs them): a missing tool fails the
//! test rather than letting it pass without checking anything.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tresor_qcow2::{Error, Qcow2Writer, DEFAULT_CLUSTER_BITS};

const QEMU_IMG: &str = "/usr/bin/qemu-img";
const QEMU_IO: &str = "/usr/bin/qemu-io";

fn have(tool: &str) -> bool {
    assert!(
        Path::new(tool).exists(),
        "{tool} is missing: install qemu-utils (see .ci/run)"
    );
    true
}

/// xorshift64*: deterministic pseudo-random numbers without extra dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .expect("run QEMU tool");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A qcow2 image under test plus the raw file with the same content.
struct Fixture {
    _dir: tempfile::TempDir,
    qcow2: PathBuf,
    raw: PathBuf,
    raw_file: File,
    virtual_size: u64,
}

impl Fixture {
    fn new(virtual_size: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let qcow2 = dir.path().join("image.qcow2");
        let raw = dir.path().join("expected.raw");
        let raw_file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&raw)
            .unwrap();
        raw_file.set_len(virtual_size).unwrap();
        Fixture {
            _dir: dir,
            qcow2,
            raw,
            raw_file,
            virtual_size,
        }
    }

    /// Records what the guest should see at `offset` (only up to the virtual size).
    fn expect(&self, offset: u64, data: &[u8]) {
        let len = data.len().min((self.virtual_size - offset) as usize);
        self.raw_file.write_all_at(&data[..len], offset).unwrap();
    }

    /// Runs `qemu-img check`, `info` and `convert` and compares the result.
    fn verify(&self) {
        if !have(QEMU_IMG) {
            return;
        }
        let q = self.qcow2.to_str().unwrap();
        let check = run(QEMU_IMG, &["check", "-f", "qcow2", q]);
        assert!(check.contains("No errors were found"), "{check}");

        let info = run(QEMU_IMG, &["info", "-f", "qcow2", "--output=json", q]);
        let compact: String = info.split_whitespace().collect();
        assert!(
            compact.contains(&format!("\"virtual-size\":{},", self.virtual_size)),
            "{info}"
        );
        assert!(compact.contains("\"format\":\"qcow2\""), "{info}");

        let converted = self.raw.with_extension("converted");
        run(
            QEMU_IMG,
            &[
                "convert",
                "-f",
                "qcow2",
                "-O",
                "raw",
                q,
                converted.to_str().unwrap(),
            ],
        );
        assert_same_content(&self.raw, &converted);
    }
}

fn assert_same_content(expected: &Path, actual: &Path) {
    let (mut a, mut b) = (File::open(expected).unwrap(), File::open(actual).unwrap());
    assert_eq!(
        a.metadata().unwrap().len(),
        b.metadata().unwrap().len(),
        "converted image has the wrong length"
    );
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut a, &mut x);
        let m = read_full(&mut b, &mut y);
        assert_eq!(n, m);
        if n == 0 {
            break;
        }
        if x[..n] != y[..n] {
            let i = x[..n]
                .iter()
                .zip(&y[..n])
                .position(|(p, q)| p != q)
                .unwrap();
            panic!("content differs at byte {}", offset + i as u64);
        }
        offset += n as u64;
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Writes a random selection of clusters (random data, some all-zero, the last
/// partial cluster always included) in random order, then verifies with QEMU.
fn random_image(virtual_size: u64, cluster_bits: u32, fraction_percent: u64, seed: u64) {
    let f = Fixture::new(virtual_size);
    let w = Qcow2Writer::create(&f.qcow2, virtual_size, cluster_bits).unwrap();
    let cs = w.cluster_size();
    let clusters = virtual_size.div_ceil(cs);
    let mut rng = Rng(seed);
    let mut chosen: Vec<u64> = (0..clusters)
        .filter(|&c| c == clusters - 1 || rng.below(100) < fraction_percent)
        .collect();
    rng.shuffle(&mut chosen);
    for c in chosen {
        let offset = c * cs;
        let len = cs.min(virtual_size - offset) as usize;
        let mut data = vec![0u8; len];
        if rng.below(10) != 0 {
            rng.fill(&mut data);
        }
        f.expect(offset, &data);
        w.write_cluster(offset, &data).unwrap();
    }
    w.finish().unwrap();
    f.verify();
}

#[test]
fn small_clusters_several_l2_tables_and_partial_tail() {
    // 4 KiB clusters: one L2 table covers 2 MiB, so this needs an L1 of 4 entries,
    // and the last cluster is only 1536 bytes.
    random_image((6 << 20) + 1536, 12, 40, 1);
}

#[test]
fn medium_clusters_dense() {
    random_image((3 << 20) + 512, 13, 90, 2);
}

#[test]
fn default_clusters_several_l2_tables() {
    // 64 KiB clusters: one L2 table covers 512 MiB; 1 GiB + 512 bytes needs 3 L1 entries.
    random_image((1 << 30) + 512, DEFAULT_CLUSTER_BITS, 1, 3);
}

#[test]
fn largest_clusters() {
    random_image((40 << 20) + 4096, 21, 50, 4);
}

#[test]
fn enough_clusters_for_several_refcount_blocks() {
    // A 4 KiB refcount block covers 2048 clusters: write ~5000 clusters.
    random_image(24 << 20, 12, 85, 5);
}

#[test]
fn image_without_data() {
    let f = Fixture::new(100 << 20);
    Qcow2Writer::create(&f.qcow2, 100 << 20, DEFAULT_CLUSTER_BITS)
        .unwrap()
        .finish()
        .unwrap();
    f.verify();
    // Header, L1 table, refcount table and one refcount block.
    assert_eq!(std::fs::metadata(&f.qcow2).unwrap().len(), 4 << 16);
}

#[test]
fn zero_sized_image() {
    let f = Fixture::new(0);
    Qcow2Writer::create(&f.qcow2, 0, DEFAULT_CLUSTER_BITS)
        .unwrap()
        .finish()
        .unwrap();
    f.verify();
}

#[test]
fn all_zero_clusters_take_no_space() {
    let f = Fixture::new(8 << 20);
    let w = Qcow2Writer::create(&f.qcow2, 8 << 20, 16).unwrap();
    let zeros = vec![0u8; 1 << 16];
    for c in 0..128 {
        w.write_cluster(c << 16, &zeros).unwrap();
    }
    // Still counted as written.
    assert!(matches!(
        w.write_cluster(5 << 16, &zeros),
        Err(Error::ClusterWrittenTwice {
            guest_offset: 0x50000
        })
    ));
    w.finish().unwrap();
    f.verify();
    assert_eq!(std::fs::metadata(&f.qcow2).unwrap().len(), 4 << 16);
}

#[test]
fn full_buffer_for_partial_last_cluster_is_truncated() {
    let size = (1 << 20) + 512;
    let f = Fixture::new(size);
    let w = Qcow2Writer::create(&f.qcow2, size, 16).unwrap();
    let data = vec![0x5a; 1 << 16];
    w.write_cluster(1 << 20, &data).unwrap();
    f.expect(1 << 20, &data);
    w.finish().unwrap();
    f.verify();
}

#[test]
fn parallel_writes() {
    let size = (64 << 20) + 3072;
    let bits = 12;
    let f = Fixture::new(size);
    let w = Qcow2Writer::create(&f.qcow2, size, bits).unwrap();
    let cs = w.cluster_size();
    let clusters = size.div_ceil(cs);
    let mut rng = Rng(42);
    let mut order: Vec<u64> = (0..clusters).filter(|_| rng.below(4) != 0).collect();
    if order.last() != Some(&(clusters - 1)) {
        order.push(clusters - 1);
    }
    rng.shuffle(&mut order);
    let threads = 6;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (w, f, order) = (&w, &f, &order);
            s.spawn(move || {
                let mut rng = Rng(1000 + t as u64);
                for &c in order.iter().skip(t).step_by(threads) {
                    let offset = c * cs;
                    let mut data = vec![0u8; cs.min(size - offset) as usize];
                    rng.fill(&mut data);
                    f.expect(offset, &data);
                    w.write_cluster(offset, &data).unwrap();
                }
            });
        }
    });
    w.finish().unwrap();
    f.verify();
}

#[test]
fn huge_virtual_size_with_little_data() {
    let size: u64 = 1 << 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.qcow2");
    let start = Instant::now();
    let w = Qcow2Writer::create(&path, size, DEFAULT_CLUSTER_BITS).unwrap();
    let cs = w.cluster_size();
    let offsets = [0, 777 * cs, (300 << 30) + 5 * cs, size / 2, size - cs];
    for (i, &off) in offsets.iter().enumerate() {
        w.write_cluster(off, &vec![0x11 * (i as u8 + 1); cs as usize])
            .unwrap();
    }
    w.finish().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let meta = std::fs::metadata(&path).unwrap();
    // 5 data clusters, 4 L2 tables, 1 L1 cluster (2048 entries), refcount table and
    // block, header.
    assert_eq!(meta.len(), 13 * cs);
    assert!(meta.blocks() * 512 <= 2 * meta.len());

    if !have(QEMU_IMG) {
        return;
    }
    let p = path.to_str().unwrap();
    let check = run(QEMU_IMG, &["check", "-f", "qcow2", p]);
    assert!(check.contains("No errors were found"), "{check}");
    let info: String = run(QEMU_IMG, &["info", "-f", "qcow2", "--output=json", p])
        .split_whitespace()
        .collect();
    assert!(
        info.contains(&format!("\"virtual-size\":{size},")),
        "{info}"
    );
    let map: String = run(QEMU_IMG, &["map", "-f", "qcow2", "--output=json", p])
        .split_whitespace()
        .collect();
    let data_extents = map.matches("\"data\":true").count();
    // Clusters 0 and 777 are separate extents, like the other three.
    assert_eq!(data_extents, 5, "{map}");

    if !have(QEMU_IO) {
        return;
    }
    for (i, &off) in offsets.iter().enumerate() {
        let pattern = 0x11 * (i + 1);
        let cmd = format!("read -P {pattern} {off} {cs}");
        let out = run(QEMU_IO, &["-f", "qcow2", "-r", "-c", &cmd, p]);
        assert!(!out.contains("Pattern verification failed"), "{out}");
    }
    let cmd = format!("read -P 0 {} {}", cs, 776 * cs);
    let out = run(QEMU_IO, &["-f", "qcow2", "-r", "-c", &cmd, p]);
    assert!(!out.contains("Pattern verification failed"), "{out}");
}

#[test]
fn unfinished_image_is_rejected_by_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unfinished.qcow2");
    let w = Qcow2Writer::create(&path, 1 << 20, 16).unwrap();
    w.write_cluster(0, &[7; 1 << 16]).unwrap();
    drop(w);
    if !have(QEMU_IMG) {
        return;
    }
    for args in [
        &["info", path.to_str().unwrap()][..],
        &["check", "-f", "qcow2", path.to_str().unwrap()][..],
    ] {
        let out = Command::new(QEMU_IMG).args(args).output().unwrap();
        assert!(
            !out.status.success(),
            "{args:?} accepted an unfinished image"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Unsupported qcow2 feature"), "{stderr}");
    }
}

#[test]
fn errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.qcow2");
    let size = (1 << 20) + 1024;
    let w = Qcow2Writer::create(&path, size, 16).unwrap();
    let cs = 1usize << 16;

    let e = w.write_cluster(512, &vec![1; cs]).unwrap_err();
    assert!(matches!(
        e,
        Error::MisalignedOffset {
            guest_offset: 512,
            ..
        }
    ));
    assert!(
        e.to_string().contains("512") && e.to_string().contains("aligned"),
        "{e}"
    );

    let e = w.write_cluster(0, &vec![1; cs - 1]).unwrap_err();
    assert!(matches!(e, Error::WrongLength { len, expected: 65536, .. } if len == cs - 1));
    assert!(e.to_string().contains("65535"), "{e}");

    let e = w.write_cluster(1 << 20, &[1; 512]).unwrap_err();
    assert!(
        matches!(e, Error::WrongTailLength { tail: 1024, .. }),
        "{e}"
    );
    w.write_cluster(1 << 20, &[1; 1024]).unwrap();

    let e = w.write_cluster(17 << 16, &vec![1; cs]).unwrap_err();
    assert!(matches!(e, Error::BeyondVirtualSize { .. }), "{e}");
    assert!(e.to_string().contains("beyond the virtual size"), "{e}");

    w.write_cluster(3 << 16, &vec![1; cs]).unwrap();
    let e = w.write_cluster(3 << 16, &vec![2; cs]).unwrap_err();
    assert!(matches!(
        e,
        Error::ClusterWrittenTwice {
            guest_offset: 0x30000
        }
    ));
    assert!(e.to_string().contains("written twice"), "{e}");
    // A failed call changes nothing: the image is still fine.
    w.finish().unwrap();
    if have(QEMU_IMG) {
        let check = run(QEMU_IMG, &["check", "-f", "qcow2", path.to_str().unwrap()]);
        assert!(check.contains("No errors were found"), "{check}");
    }

    // The file exists now: create_new refuses to overwrite it.
    let e = Qcow2Writer::create(&path, size, 16).err().unwrap();
    assert!(
        matches!(&e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
    );

    let other = dir.path().join("other.qcow2");
    for bits in [9, 11, 22, 30] {
        let e = Qcow2Writer::create(&other, 1 << 20, bits).err().unwrap();
        assert!(
            matches!(e, Error::InvalidClusterBits(b) if b == bits),
            "{e}"
        );
    }
    let e = Qcow2Writer::create(&other, 1000, 16).err().unwrap();
    assert!(matches!(e, Error::UnalignedVirtualSize(1000)), "{e}");
    // 4 KiB clusters: the 32 MiB L1 limit allows 8 TiB.
    Qcow2Writer::create(&other, 8 << 40, 12).unwrap();
    std::fs::remove_file(&other).unwrap();
    let e = Qcow2Writer::create(&other, (8 << 40) + 512, 12)
        .err()
        .unwrap();
    assert!(matches!(e, Error::VirtualSizeTooLarge { .. }), "{e}");
    assert!(
        !other.exists(),
        "validation errors must not create the file"
    );
}

#[test]
fn writer_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Qcow2Writer>();
}
