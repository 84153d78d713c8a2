//! The engine through its library API, with tiny chunks and a fan-out of 4 so that disk
//! trees are deep and every edge of the planner (partial nodes, reused subtrees at each
//! level, zero subtrees, a last chunk shorter than the others) is exercised.

mod common;

use std::sync::Arc;

use common::TestDisk;
use rand::{Rng, RngCore, SeedableRng};
use tresor_blocksource::{BlockSource, DirtyExtents};
use tresor_engine::backup::{self, BackupRequest, DiskSource};
use tresor_engine::restore::{self, OutputFormat, RestoreRequest};
use tresor_engine::{gc, verify, InitOptions, KdfParams, LocalDir, Manifest, Repository};

const CHUNK: u64 = 4096;

fn repo(dir: &std::path::Path) -> Repository {
    let backend = Arc::new(LocalDir::create(&dir.join("repo")).unwrap());
    let opts = InitOptions {
        chunk_size: CHUNK as u32,
        tree_fanout: 4,
        pack_size: 1 << 20,
        kdf: KdfParams {
            m_cost: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        },
    };
    Repository::init(backend, b"pw", &opts).unwrap()
}

fn disk(size: usize, seed: u64) -> TestDisk {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; size];
    rng.fill_bytes(&mut data);
    // Holes: reported as zero extents (and zero in the data).
    let mut holes = Vec::new();
    for _ in 0..4 {
        let start = rng.gen_range(0..size as u64 / CHUNK) * CHUNK;
        let len = (rng.gen_range(1..40u64) * CHUNK).min(size as u64 - start);
        data[start as usize..(start + len) as usize].fill(0);
        holes.push((start, len));
    }
    // Zero runs that are data to the source (the pipeline must notice them by reading).
    let start = rng.gen_range(0..size / 2);
    let end = (start + 3 * CHUNK as usize).min(size);
    data[start..end].fill(0);
    TestDisk { data, holes }
}

fn backup(
    repo: &Repository,
    d: &Arc<TestDisk>,
    parent: Option<Manifest>,
    dirty: Option<DirtyExtents>,
) -> Manifest {
    let mut req = BackupRequest::new(
        "vm",
        vec![DiskSource {
            name: "vda".into(),
            source: d.clone() as Arc<dyn BlockSource>,
            dirty,
        }],
    );
    req.parent = parent;
    backup::run(repo, req).unwrap()
}

fn restored(repo: &Repository, point: &Manifest, dir: &std::path::Path) -> Vec<u8> {
    let out = dir.join(format!("{}.raw", point.id));
    restore::run(
        repo,
        RestoreRequest {
            point,
            disk: "vda",
            output: &out,
            format: OutputFormat::Raw,
            overwrite: false,
            progress: None,
            workers: 3,
        },
    )
    .unwrap();
    std::fs::read(out).unwrap()
}

#[test]
fn deep_trees_round_trip_for_awkward_sizes() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo(t.path());
    for (i, size) in [
        1usize,
        4095,
        4096,
        4097,
        4 * 4096,
        16 * 4096 + 1,
        65 * 4096 - 7,
        300 * 4096 + 123,
    ]
    .into_iter()
    .enumerate()
    {
        let mut d = disk(size.max(8192), i as u64);
        d.data.truncate(size);
        d.holes.retain(|(s, l)| s + l <= size as u64);
        let d = Arc::new(d);
        let point = backup(&repo, &d, None, None);
        assert_eq!(restored(&repo, &point, t.path()), d.data, "size {size}");
    }
    let report = verify::run(&repo, None, None).unwrap();
    assert!(
        report.damaged_points.is_empty() && report.problems.is_empty(),
        "{report:?}"
    );
}

#[test]
fn incremental_reuses_parent_subtrees_and_restores_exactly() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo(t.path());
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut current = disk(777 * CHUNK as usize + 1000, 1);
    let mut parent = backup(
        &repo,
        &Arc::new(TestDisk {
            data: current.data.clone(),
            holes: current.holes.clone(),
        }),
        None,
        None,
    );
    let mut history = vec![(parent.clone(), current.data.clone())];
    for round in 0..12 {
        let mut dirty = DirtyExtents::new();
        for _ in 0..rng.gen_range(0..20) {
            let off = rng.gen_range(0..current.data.len() as u64);
            let len = rng
                .gen_range(1..3 * CHUNK)
                .min(current.data.len() as u64 - off);
            if round % 3 == 0 {
                current.data[off as usize..(off + len) as usize].fill(0); // zeroed: still a change
            } else {
                rng.fill_bytes(&mut current.data[off as usize..(off + len) as usize]);
            }
            current
                .holes
                .retain(|(s, l)| off + len <= *s || s + l <= off);
            dirty.insert(off, len);
        }
        let d = Arc::new(TestDisk {
            data: current.data.clone(),
            holes: current.holes.clone(),
        });
        let point = backup(&repo, &d, Some(parent.clone()), Some(dirty.clone()));
        assert!(
            point.stats.bytes_read <= dirty.total_bytes() + 2 * CHUNK * dirty.len() as u64,
            "round {round}: read {} for {} dirty bytes",
            point.stats.bytes_read,
            dirty.total_bytes()
        );
        history.push((point.clone(), current.data.clone()));
        parent = point;
    }
    for (point, data) in &history {
        assert_eq!(
            &restored(&repo, point, t.path()),
            data,
            "point {}",
            point.id
        );
    }
}

#[test]
fn unchanged_disk_adds_nothing_and_gc_keeps_shared_data() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo(t.path());
    let d = Arc::new(disk(500 * CHUNK as usize, 7));
    let first = backup(&repo, &d, None, None);
    let second = backup(&repo, &d, Some(first.clone()), Some(DirtyExtents::new()));
    assert_eq!(
        second.stats.bytes_added, 0,
        "an unchanged disk stored new blobs"
    );
    assert_eq!(second.stats.bytes_read, 0);
    assert_eq!(second.disks[0].root, first.disks[0].root);
    let third = backup(&repo, &d, None, None);
    assert_eq!(
        third.stats.bytes_added, 0,
        "a full read of an unchanged disk stored new blobs"
    );
    repo.forget(&first.id).unwrap();
    repo.forget(&third.id).unwrap();
    let report = gc::run(
        &repo,
        &gc::GcOptions {
            repack_threshold: 0.0,
            ..gc::GcOptions::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(
        report.blobs_removed, 0,
        "gc removed blobs that the remaining point shares: {report:?}"
    );
    assert_eq!(restored(&repo, &second, t.path()), d.data);
}

#[test]
fn cancelled_backup_commits_nothing() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo(t.path());
    let d = Arc::new(disk(2000 * CHUNK as usize, 8));
    let progress = tresor_engine::progress::Progress::default();
    progress
        .cancel
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut req = BackupRequest::new(
        "vm",
        vec![DiskSource {
            name: "vda".into(),
            source: d,
            dirty: None,
        }],
    );
    req.progress = Some(&progress);
    let err = backup::run(&repo, req).unwrap_err();
    assert!(matches!(err, tresor_engine::Error::Cancelled), "{err}");
    assert!(repo.list_points().unwrap().is_empty());
}
