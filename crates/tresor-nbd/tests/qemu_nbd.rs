//! Integration tests against the real `qemu-nbd` (must be installed: the tests fail
//! without it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tresor_nbd::{
    dirty_bitmap_context, NbdClient, NbdError, NbdPool, BASE_ALLOCATION, STATE_DIRTY, STATE_HOLE,
    STATE_ZERO,
};

const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 72 * MIB;
const CLUSTER: u64 = 64 * 1024;

/// (pattern byte, offset, length) written with qemu-io.
const WRITES: &[(u8, u64, u64)] = &[
    (0xab, 0, 4096),
    (0xcd, MIB + 512, 1536),
    (0xef, 32 * MIB - 4096, 8192), // crosses the 32 MiB request split
    (0x11, 70 * MIB, 2 * CLUSTER),
    (0x5a, SIZE - 512, 512), // last sector
];

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (is QEMU installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn create(dir: &Path, name: &str, fmt: &str) -> PathBuf {
    let img = dir.join(name);
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            fmt,
            img.to_str().unwrap(),
            &SIZE.to_string(),
        ],
    );
    img
}

fn write_patterns(img: &Path, fmt: &str, writes: &[(u8, u64, u64)]) {
    for &(p, off, len) in writes {
        run(
            "qemu-io",
            &[
                "-f",
                fmt,
                "-c",
                &format!("write -P {p:#x} {off} {len}"),
                img.to_str().unwrap(),
            ],
        );
    }
}

fn model(writes: &[(u8, u64, u64)]) -> Vec<u8> {
    let mut m = vec![0u8; SIZE as usize];
    for &(p, off, len) in writes {
        m[off as usize..(off + len) as usize].fill(p);
    }
    m
}

/// A running `qemu-nbd`, killed on drop.
struct Server {
    child: Child,
    sock: PathBuf,
}

impl Server {
    fn start(dir: &Path, img: &Path, fmt: &str, extra: &[&str]) -> Server {
        let sock = dir.join("nbd.sock");
        let _ = std::fs::remove_file(&sock);
        let mut args = vec![
            "--read-only".to_string(),
            "-t".into(),
            "-e".into(),
            "4".into(),
            "-f".into(),
            fmt.into(),
            "-k".into(),
            sock.to_str().unwrap().into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(img.to_str().unwrap().into());
        let child = Command::new("qemu-nbd")
            .args(&args)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start qemu-nbd (is it installed?): {e}"));
        let mut s = Server { child, sock };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !s.sock.exists() {
            if let Some(status) = s.child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                s.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("qemu-nbd exited with {status}: {err}");
            }
            assert!(Instant::now() < deadline, "qemu-nbd socket did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn check_extents_cover(ext: &[(u64, u32)], len: u64) {
    assert!(ext.iter().all(|&(l, _)| l > 0), "{ext:?}");
    assert_eq!(ext.iter().map(|e| e.0).sum::<u64>(), len, "{ext:?}");
}

/// Ranges `[start, end)` of extents whose flags satisfy `pred`, starting at `base`.
fn ranges(ext: &[(u64, u32)], base: u64, pred: impl Fn(u32) -> bool) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut at = base;
    for &(l, f) in ext {
        if pred(f) {
            match out.last_mut() {
                Some(last) if last.1 == at => last.1 = at + l,
                _ => out.push((at, at + l)),
            }
        }
        at += l;
    }
    out
}

/// The union of `gran`-aligned blocks touched by `writes`, as sorted ranges.
fn touched(writes: &[(u8, u64, u64)], gran: u64) -> Vec<(u64, u64)> {
    let mut blocks: Vec<u64> = writes
        .iter()
        .flat_map(|&(_, off, len)| (off / gran)..(off + len).div_ceil(gran))
        .collect();
    blocks.sort();
    blocks.dedup();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for b in blocks {
        match out.last_mut() {
            Some(last) if last.1 == b * gran => last.1 += gran,
            _ => out.push((b * gran, (b + 1) * gran)),
        }
    }
    out
}

fn check_reads(c: &mut NbdClient, m: &[u8]) {
    assert_eq!(c.size(), SIZE);
    // The whole image in one call: split into several requests, mostly holes.
    let mut all = vec![0x77u8; SIZE as usize];
    c.read_at(0, &mut all).unwrap();
    assert!(all == m, "whole-image read differs");
    // Unaligned reads around the written data.
    for (off, len) in [
        (MIB + 500, 2000u64),
        (MIB + 513, 1),
        (3, 4090),
        (32 * MIB - 4097, 8194),
        (70 * MIB - 1, 2 * CLUSTER + 2),
        (SIZE - 1000, 1000),
        (SIZE - 1, 1),
        (12345, 33 * MIB + 7),
    ] {
        let mut b = vec![0x77u8; len as usize];
        c.read_at(off, &mut b).unwrap();
        assert!(
            b == m[off as usize..(off + len) as usize],
            "read {off}+{len} differs"
        );
    }
    c.read_at(SIZE, &mut []).unwrap();
    let e = c.read_at(SIZE - 10, &mut [0u8; 11]).unwrap_err();
    assert!(matches!(e, NbdError::OutOfRange { .. }), "{e}");
}

#[test]
fn raw_image_reads_and_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let img = create(dir.path(), "disk.raw", "raw");
    write_patterns(&img, "raw", WRITES);
    let srv = Server::start(dir.path(), &img, "raw", &[]);
    let mut c = NbdClient::connect_unix(&srv.sock, "", &[BASE_ALLOCATION]).unwrap();
    assert!(c.structured_replies());
    assert!(c.is_read_only());
    assert!(c.meta_contexts().contains_key(BASE_ALLOCATION));
    let bs = c.block_size();
    assert!(bs.minimum >= 1 && bs.maximum >= bs.minimum, "{bs:?}");
    check_reads(&mut c, &model(WRITES));

    let ext = c.block_status(BASE_ALLOCATION, 0, SIZE).unwrap();
    check_extents_cover(&ext, SIZE);
    // Every written byte is in a data extent (not zero); the file system decides
    // the granularity, so only containment is checked.
    let data = ranges(&ext, 0, |f| f & STATE_ZERO == 0);
    for &(_, off, len) in WRITES {
        assert!(
            data.iter().any(|&(s, e)| s <= off && off + len <= e),
            "write {off}+{len} not in data extents {data:?}"
        );
    }
    // Far from any write: hole and zero.
    let mid = c.block_status(BASE_ALLOCATION, 10 * MIB, 10 * MIB).unwrap();
    assert_eq!(mid, vec![(10 * MIB, STATE_HOLE | STATE_ZERO)]);
    // Unaligned start, range past the end is clamped.
    let tail = c.block_status(BASE_ALLOCATION, SIZE - 1000, 5000).unwrap();
    check_extents_cover(&tail, 1000);
    assert_eq!(tail.last().unwrap().1 & STATE_ZERO, 0);
    assert!(c
        .block_status(BASE_ALLOCATION, SIZE, 10)
        .unwrap()
        .is_empty());
    c.disconnect().unwrap();
    assert!(matches!(c.read_at(0, &mut [0u8; 1]), Err(NbdError::Broken)));
}

#[test]
fn qcow2_allocation_and_dirty_bitmap() {
    let dir = tempfile::tempdir().unwrap();
    let img = create(dir.path(), "disk.qcow2", "qcow2");
    // Written before the bitmap exists: allocated but not dirty.
    let before: &[(u8, u64, u64)] = &[(0x22, 5 * MIB, CLUSTER), (0x33, 20 * MIB + 100, 10)];
    write_patterns(&img, "qcow2", before);
    run(
        "qemu-img",
        &["bitmap", "--add", img.to_str().unwrap(), "b0"],
    );
    write_patterns(&img, "qcow2", WRITES);
    let all_writes: Vec<_> = before.iter().chain(WRITES).copied().collect();

    let srv = Server::start(dir.path(), &img, "qcow2", &["-x", "vda", "-B", "b0"]);
    let bitmap = dirty_bitmap_context("b0");
    let mut c = NbdClient::connect_unix(&srv.sock, "vda", &[BASE_ALLOCATION, &bitmap]).unwrap();
    assert_eq!(c.export_name(), "vda");
    let ids: Vec<u32> = c.meta_contexts().values().copied().collect();
    assert_eq!(ids.len(), 2);
    check_reads(&mut c, &model(&all_writes));

    // QEMU reports qcow2 allocation down to the host file's holes, so data extents
    // contain every write and lie within the clusters the writes touched.
    let alloc = c.block_status(BASE_ALLOCATION, 0, SIZE).unwrap();
    check_extents_cover(&alloc, SIZE);
    let clusters = touched(&all_writes, CLUSTER);
    for flag in [STATE_HOLE, STATE_ZERO] {
        let data = ranges(&alloc, 0, |f| f & flag == 0);
        for &(_, off, len) in &all_writes {
            assert!(
                data.iter().any(|&(s, e)| s <= off && off + len <= e),
                "write {off}+{len} not in data extents {data:?}"
            );
        }
        for &(s, e) in &data {
            assert!(
                clusters.iter().any(|&(cs, ce)| cs <= s && e <= ce),
                "data extent {s}..{e} outside written clusters {clusters:?}"
            );
        }
    }

    // The bitmap (64 KiB granularity) has exactly the writes made after --add.
    let dirty = c.block_status(&bitmap, 0, SIZE).unwrap();
    check_extents_cover(&dirty, SIZE);
    assert_eq!(
        ranges(&dirty, 0, |f| f & STATE_DIRTY != 0),
        touched(WRITES, CLUSTER)
    );

    // A sub-range starting mid-granule.
    let off = 70 * MIB - 100;
    let part = c.block_status(&bitmap, off, 1000).unwrap();
    assert_eq!(part, vec![(100, 0), (900, STATE_DIRTY)]);

    let e = c.block_status("qemu:dirty-bitmap:other", 0, 1).unwrap_err();
    assert!(matches!(e, NbdError::ContextNotNegotiated(ref n) if n == "qemu:dirty-bitmap:other"));
}

#[test]
fn negotiation_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let img = create(dir.path(), "disk.qcow2", "qcow2");
    run(
        "qemu-img",
        &["bitmap", "--add", img.to_str().unwrap(), "b0"],
    );
    let srv = Server::start(dir.path(), &img, "qcow2", &["-x", "vda", "-B", "b0"]);

    let e = NbdClient::connect_unix(
        &srv.sock,
        "vda",
        &[BASE_ALLOCATION, "qemu:dirty-bitmap:nope"],
    )
    .unwrap_err();
    assert!(
        matches!(&e, NbdError::MetaContextUnsupported { name, .. } if name == "qemu:dirty-bitmap:nope"),
        "{e}"
    );
    assert!(e.to_string().contains("qemu:dirty-bitmap:nope"), "{e}");

    let e = NbdClient::connect_unix(&srv.sock, "nosuch", &[]).unwrap_err();
    assert!(e.to_string().contains("nosuch"), "{e}");

    let e = NbdClient::connect_unix(dir.path().join("missing.sock"), "vda", &[]).unwrap_err();
    assert!(matches!(e, NbdError::Connect { .. }), "{e}");

    // The server is still usable after refused negotiations.
    let c = NbdClient::connect_unix(&srv.sock, "vda", &[&dirty_bitmap_context("b0")]).unwrap();
    assert_eq!(c.size(), SIZE);
}

#[test]
fn pool_parallel_reads() {
    let dir = tempfile::tempdir().unwrap();
    let img = create(dir.path(), "disk.qcow2", "qcow2");
    write_patterns(&img, "qcow2", WRITES);
    let srv = Server::start(dir.path(), &img, "qcow2", &[]);
    let m = model(WRITES);
    let pool = NbdPool::connect_unix(&srv.sock, "", &[BASE_ALLOCATION], 4).unwrap();
    assert_eq!(pool.connections(), 4);
    assert_eq!(pool.size(), SIZE);
    let chunk = 3 * MIB + 4097; // unaligned pieces
    let next = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                let mut buf = Vec::new();
                loop {
                    let off = next.fetch_add(chunk, std::sync::atomic::Ordering::Relaxed);
                    if off >= SIZE {
                        break;
                    }
                    let len = chunk.min(SIZE - off);
                    buf.resize(len as usize, 0);
                    let mut c = pool.get();
                    c.read_at(off, &mut buf).unwrap();
                    assert!(
                        buf == m[off as usize..(off + len) as usize],
                        "chunk at {off}"
                    );
                    let ext = c.block_status(BASE_ALLOCATION, off, len).unwrap();
                    check_extents_cover(&ext, len);
                }
            });
        }
    });
    let mut b = [0u8; 10];
    pool.read_at(MIB + 510, &mut b).unwrap();
    assert_eq!(&b, &m[(MIB + 510) as usize..(MIB + 520) as usize]);
}
