//! Replication to a secondary backend, with real backups of random data: what is copied,
//! in which order, what is never copied, and that the secondary restores byte for byte.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::TestDisk;
use rand::{Rng, RngCore, SeedableRng};
use tresor_blocksource::BlockSource;
use tresor_engine::backup::{self, BackupRequest, DiskSource};
use tresor_engine::progress::Progress;
use tresor_engine::replicate::{self, ReplicateOptions};
use tresor_engine::restore::{self, OutputFormat, RestoreRequest};
use tresor_engine::{gc, verify, Error, KdfParams, LocalDir, Manifest, Repository};
use tresor_storage::{Backend, ObjectInfo, ObjectKind, WriterGuard, WriterInfo, WriterRegistry};

const PW: &[u8] = b"replication test";
const CHUNK: usize = 8192;
const DISK: usize = 4 << 20;
/// (offset, length) reported as zeros by the source: stored as ZERO ids (holes) in the tree.
const HOLE: (u64, u64) = (1 << 20, 256 << 10);

fn init(path: &Path) -> Repository {
    common::small_repository(path, PW, CHUNK)
}

fn open_local(path: &Path) -> Repository {
    Repository::open(Arc::new(LocalDir::open(path).unwrap()), PW).unwrap()
}

fn first_disk(seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; DISK];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data[HOLE.0 as usize..(HOLE.0 + HOLE.1) as usize].fill(0);
    data
}

/// The same disk with a few chunks rewritten (after the hole).
fn changed(data: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = data.to_vec();
    for _ in 0..6 {
        let chunk = rng.gen_range((HOLE.0 + HOLE.1) as usize / CHUNK..DISK / CHUNK);
        rng.fill_bytes(&mut data[chunk * CHUNK..(chunk + 1) * CHUNK]);
    }
    data
}

fn backup(repo: &Repository, data: &[u8]) -> Manifest {
    let disk = Arc::new(TestDisk {
        data: data.to_vec(),
        holes: vec![HOLE],
    });
    let req = BackupRequest::new(
        "vm",
        vec![DiskSource {
            name: "vda".into(),
            source: disk as Arc<dyn BlockSource>,
            dirty: None,
        }],
    );
    backup::run(repo, req).unwrap()
}

fn restored(repo: &Repository, id: &str, dir: &Path) -> Vec<u8> {
    let point = repo.load_point(id).unwrap();
    let out = dir.join(format!("restore-{id}.raw"));
    restore::run(
        repo,
        RestoreRequest {
            point: &point,
            disk: "vda",
            output: &out,
            format: OutputFormat::Raw,
            overwrite: true,
            progress: None,
            workers: 2,
        },
    )
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(out).unwrap();
    bytes
}

fn assert_clean(repo: &Repository, points: usize) {
    let report = verify::run(repo, None, None).unwrap();
    assert!(
        report.damaged_points.is_empty() && report.problems.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.points_checked, points as u64);
}

/// A primary with two points: the second rewrites a few chunks of the first.
struct Fixture {
    dir: tempfile::TempDir,
    primary: Repository,
    /// (point id, disk content), oldest first.
    points: Vec<(String, Vec<u8>)>,
}

impl Fixture {
    fn one_point() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let primary = init(&dir.path().join("primary"));
        let data = first_disk(1);
        let p1 = backup(&primary, &data);
        Fixture {
            dir,
            primary,
            points: vec![(p1.id, data)],
        }
    }

    fn two_points() -> Fixture {
        let mut fx = Fixture::one_point();
        fx.add_point();
        fx
    }

    fn add_point(&mut self) -> String {
        let data = changed(&self.points.last().unwrap().1, self.points.len() as u64);
        let p = backup(&self.primary, &data);
        self.points.push((p.id.clone(), data));
        p.id
    }

    /// A second backup of the last disk: the same tree, nothing new stored.
    fn add_same_point(&mut self) {
        let data = self.points.last().unwrap().1.clone();
        let p = backup(&self.primary, &data);
        self.points.push((p.id, data));
    }

    fn ids(&self) -> Vec<String> {
        self.points.iter().map(|(id, _)| id.clone()).collect()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn primary_backend(&self) -> &dyn Backend {
        self.primary.backend().as_ref()
    }
}

/// Wraps a backend: records every successful put; optionally fails every put after the
/// first `allowed` ones.
struct Recording {
    inner: Arc<dyn Backend>,
    puts: Mutex<Vec<(ObjectKind, String)>>,
    allowed: Option<usize>,
    attempts: AtomicUsize,
    /// Each put takes at least this long, so that parallel puts overlap.
    delay: std::time::Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Listed but gone when read whole, as if garbage collection deleted it meanwhile.
    vanished: Option<(ObjectKind, String)>,
}

impl Recording {
    fn new(inner: Arc<dyn Backend>) -> Recording {
        Recording {
            inner,
            puts: Mutex::new(Vec::new()),
            allowed: None,
            attempts: AtomicUsize::new(0),
            delay: std::time::Duration::ZERO,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            vanished: None,
        }
    }

    fn failing_after(inner: Arc<dyn Backend>, allowed: usize) -> Recording {
        Recording {
            allowed: Some(allowed),
            ..Recording::new(inner)
        }
    }

    fn puts(&self) -> Vec<(ObjectKind, String)> {
        self.puts.lock().unwrap().clone()
    }
}

impl Backend for Recording {
    fn describe(&self) -> String {
        format!("recording {}", self.inner.describe())
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> tresor_storage::Result<()> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.allowed.is_some_and(|allowed| n >= allowed) {
            return Err(tresor_storage::Error::Io {
                backend: self.describe(),
                what: format!("write {kind:?} {name}"),
                source: std::io::Error::other("injected failure"),
            });
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        let result = self.inner.put(kind, name, data);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result?;
        self.puts.lock().unwrap().push((kind, name.to_string()));
        Ok(())
    }

    fn get(&self, kind: ObjectKind, name: &str) -> tresor_storage::Result<Vec<u8>> {
        if self.vanished.as_ref() == Some(&(kind, name.to_string())) {
            return Err(tresor_storage::Error::NotFound {
                backend: self.describe(),
                kind,
                name: name.into(),
            });
        }
        self.inner.get(kind, name)
    }

    fn read_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> tresor_storage::Result<()> {
        self.inner.read_range(kind, name, offset, buf)
    }

    fn list(&self, kind: ObjectKind) -> tresor_storage::Result<Vec<ObjectInfo>> {
        self.inner.list(kind)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> tresor_storage::Result<()> {
        self.inner.delete(kind, name)
    }

    fn writers(&self) -> &dyn WriterRegistry {
        self.inner.writers()
    }
}

/// A registry for a backend nobody backs up to.
struct NoWriters;

impl WriterRegistry for NoWriters {
    fn register(&self, description: &str) -> tresor_storage::Result<WriterGuard> {
        let info = WriterInfo {
            id: "memory".into(),
            description: description.into(),
        };
        Ok(WriterGuard::with_release(info, || {}))
    }

    fn live(&self) -> tresor_storage::Result<Vec<WriterInfo>> {
        Ok(Vec::new())
    }

    fn try_exclusive(&self, name: &str) -> tresor_storage::Result<Option<WriterGuard>> {
        Ok(Some(self.register(name)?))
    }
}

/// A secondary that is not a directory.
#[derive(Default)]
struct Memory {
    objects: Mutex<HashMap<(ObjectKind, String), Vec<u8>>>,
}

impl Memory {
    fn not_found(&self, kind: ObjectKind, name: &str) -> tresor_storage::Error {
        tresor_storage::Error::NotFound {
            backend: self.describe(),
            kind,
            name: name.into(),
        }
    }
}

impl Backend for Memory {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> tresor_storage::Result<()> {
        self.objects
            .lock()
            .unwrap()
            .insert((kind, name.into()), data.to_vec());
        Ok(())
    }

    fn get(&self, kind: ObjectKind, name: &str) -> tresor_storage::Result<Vec<u8>> {
        self.objects
            .lock()
            .unwrap()
            .get(&(kind, name.into()))
            .cloned()
            .ok_or_else(|| self.not_found(kind, name))
    }

    fn read_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> tresor_storage::Result<()> {
        let objects = self.objects.lock().unwrap();
        let data = objects
            .get(&(kind, name.into()))
            .ok_or_else(|| self.not_found(kind, name))?;
        let range = offset as usize..offset as usize + buf.len();
        let part = data
            .get(range)
            .ok_or_else(|| tresor_storage::Error::ShortRead {
                backend: self.describe(),
                kind,
                name: name.into(),
                offset,
                len: buf.len(),
                size: data.len() as u64,
            })?;
        buf.copy_from_slice(part);
        Ok(())
    }

    fn list(&self, kind: ObjectKind) -> tresor_storage::Result<Vec<ObjectInfo>> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, name), data)| ObjectInfo {
                name: name.clone(),
                size: data.len() as u64,
            })
            .collect())
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> tresor_storage::Result<()> {
        self.objects.lock().unwrap().remove(&(kind, name.into()));
        Ok(())
    }

    fn writers(&self) -> &dyn WriterRegistry {
        &NoWriters
    }
}

/// Every object of the replicated kinds, sorted.
fn listing(b: &dyn Backend) -> Vec<(ObjectKind, String, u64)> {
    let mut out = Vec::new();
    for kind in ObjectKind::ALL {
        for o in b.list(kind).unwrap() {
            out.push((kind, o.name, o.size));
        }
    }
    out.sort_by(|a, b| (rank(a.0), &a.1).cmp(&(rank(b.0), &b.1)));
    out
}

/// The order of kinds in a run and, reversed, in a clean-up.
fn rank(kind: ObjectKind) -> u8 {
    match kind {
        ObjectKind::Key => 0,
        ObjectKind::Config => 1,
        ObjectKind::Pack => 2,
        ObjectKind::Index => 3,
        ObjectKind::Point => 4,
        ObjectKind::Gc => 5,
    }
}

fn names(b: &dyn Backend, kind: ObjectKind) -> HashSet<String> {
    b.list(kind).unwrap().into_iter().map(|o| o.name).collect()
}

fn assert_no_duplicates(puts: &[(ObjectKind, String)]) {
    let mut seen = HashSet::new();
    for p in puts {
        assert!(seen.insert(p), "{p:?} was put twice: {puts:?}");
    }
}

fn opts() -> ReplicateOptions {
    ReplicateOptions::default()
}

#[test]
fn local_replica_verifies_and_restores_identically() {
    let fx = Fixture::two_points();
    // Garbage collection state stays on the primary.
    fx.primary_backend()
        .put(
            ObjectKind::Gc,
            "state-of-the-primary",
            b"not for the secondary",
        )
        .unwrap();
    let secondary = fx.path("secondary");
    let dst = Recording {
        delay: std::time::Duration::from_millis(20),
        ..Recording::new(Arc::new(LocalDir::create(&secondary).unwrap()))
    };
    let ids = fx.ids();

    let plan = replicate::plan(&fx.primary, &dst, &ids).unwrap();
    assert!(dst.puts().is_empty(), "planning copied something");
    assert_eq!(plan.publish, ids);
    assert!(plan.already.is_empty() && plan.unpublishable.is_empty() && plan.gone.is_empty());
    assert_eq!(plan.skipped_bytes, 0);

    let progress = Progress::default();
    let threads = ReplicateOptions { threads: 3 };
    let report = replicate::run(&fx.primary, &dst, &ids, &threads, Some(&progress)).unwrap();
    let parallel = dst.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=3).contains(&parallel), "{parallel} puts at once");
    assert_eq!(report.points_published, ids);
    assert_eq!(report.objects_copied, plan.objects());
    assert_eq!(report.bytes_copied, plan.bytes);
    assert_eq!(progress.snapshot(), (plan.bytes, plan.bytes));

    // Keys, config, packs, index files, manifests: never a step back.
    let puts = dst.puts();
    assert_no_duplicates(&puts);
    assert_eq!(puts[0].0, ObjectKind::Key, "{puts:?}");
    assert!(
        puts.windows(2).all(|w| rank(w[0].0) <= rank(w[1].0)),
        "out of order: {puts:?}"
    );
    assert_eq!(puts.len() as u64, report.objects_copied);

    // The same objects, the garbage collection state aside.
    let mut expected = listing(fx.primary_backend());
    expected.retain(|o| o.0 != ObjectKind::Gc);
    assert!(expected.iter().filter(|o| o.0 == ObjectKind::Pack).count() >= 3);
    assert_eq!(listing(&dst), expected);

    let replica = open_local(&secondary);
    assert_clean(&replica, 2);
    for (id, data) in &fx.points {
        let from_replica = restored(&replica, id, fx.dir.path());
        assert!(from_replica == *data, "point {id} differs on the secondary");
        assert!(from_replica == restored(&fx.primary, id, fx.dir.path()));
    }
}

#[test]
fn incremental_run_copies_only_what_the_secondary_lacks() {
    let mut fx = Fixture::one_point();
    let dst = Recording::new(Arc::new(LocalDir::create(&fx.path("secondary")).unwrap()));
    let p1 = fx.ids();
    let first = replicate::run(&fx.primary, &dst, &p1, &opts(), None).unwrap();
    assert_eq!(first.points_published, p1);
    let after_first = dst.puts();

    let p2 = fx.add_point();
    let lacking: HashSet<(ObjectKind, String)> = listing(fx.primary_backend())
        .into_iter()
        .filter(|o| matches!(o.0, ObjectKind::Pack | ObjectKind::Index))
        .filter(|o| !dst.inner.exists(o.0, &o.1).unwrap())
        .map(|o| (o.0, o.1))
        .chain([(ObjectKind::Point, p2.clone())])
        .collect();
    assert!(lacking.iter().any(|o| o.0 == ObjectKind::Pack));
    let on_secondary = listing(&dst);
    let present: u64 = listing(fx.primary_backend())
        .into_iter()
        .filter(|o| matches!(o.0, ObjectKind::Pack | ObjectKind::Index))
        .filter(|o| on_secondary.contains(o))
        .map(|o| o.2)
        .sum();
    assert!(present > 0);

    let second =
        replicate::run(&fx.primary, &dst, std::slice::from_ref(&p2), &opts(), None).unwrap();
    assert_eq!(second.points_published, vec![p2.clone()]);
    assert_eq!(second.objects_copied, lacking.len() as u64);
    let all = dst.puts();
    let new: HashSet<(ObjectKind, String)> = all[after_first.len()..].iter().cloned().collect();
    assert_eq!(new, lacking);
    assert_no_duplicates(&all);
    assert!(
        second.bytes_copied * 4 < first.bytes_copied,
        "a few changed chunks cost {} bytes after {}",
        second.bytes_copied,
        first.bytes_copied
    );
    assert_eq!(second.skipped_bytes, present);

    // Nothing left to do.
    let third = replicate::run(&fx.primary, &dst, &fx.ids(), &opts(), None).unwrap();
    assert_eq!(third.objects_copied, 0);
    assert_eq!(third.points_already, fx.ids());
    assert_eq!(dst.puts().len(), all.len());
}

#[test]
fn secondary_that_is_not_a_directory() {
    let fx = Fixture::two_points();
    let memory = Arc::new(Memory::default());
    let report = replicate::run(&fx.primary, memory.as_ref(), &fx.ids(), &opts(), None).unwrap();
    assert_eq!(report.points_published, fx.ids());

    let replica = Repository::open(memory.clone() as Arc<dyn Backend>, PW).unwrap();
    assert_eq!(replica.config().id, fx.primary.config().id);
    assert_clean(&replica, 2);
    for (id, data) in &fx.points {
        assert!(
            restored(&replica, id, fx.dir.path()) == *data,
            "point {id} differs"
        );
    }
}

#[test]
fn interrupted_run_never_leaves_a_manifest_without_its_data() {
    let fx = Fixture::two_points();
    let ids = fx.ids();
    let scratch = Recording::new(Arc::new(LocalDir::create(&fx.path("scratch")).unwrap()));
    replicate::run(&fx.primary, &scratch, &ids, &opts(), None).unwrap();
    let total = scratch.puts().len();
    assert!(total >= 8, "{:?}", scratch.puts());

    let mut cases = vec![0, 1, 2, 3, total / 2, total - 3, total - 2, total - 1];
    cases.dedup();
    for allowed in cases {
        let path = fx.path(&format!("secondary-{allowed}"));
        let local: Arc<dyn Backend> = Arc::new(LocalDir::create(&path).unwrap());
        let broken = Recording::failing_after(local.clone(), allowed);
        let err = replicate::run(&fx.primary, &broken, &ids, &opts(), None).unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");

        let visible = names(local.as_ref(), ObjectKind::Point);
        if allowed <= total - 2 {
            // The two manifests are the last two puts.
            assert!(visible.is_empty(), "after {allowed} puts: {visible:?}");
        } else {
            assert_eq!(visible.len(), 1);
        }
        if !visible.is_empty() {
            // Whatever is visible is complete.
            assert_clean(&open_local(&path), visible.len());
        }

        let healthy = Recording::new(local.clone());
        let report = replicate::run(&fx.primary, &healthy, &ids, &opts(), None).unwrap();
        assert_eq!(
            report.points_published.len() + report.points_already.len(),
            2
        );
        let mut puts = broken.puts();
        puts.extend(healthy.puts());
        assert_no_duplicates(&puts);
        assert_eq!(puts.len(), total, "after {allowed} puts");

        let replica = open_local(&path);
        assert_clean(&replica, 2);
        if allowed == total / 2 {
            for (id, data) in &fx.points {
                assert!(restored(&replica, id, fx.dir.path()) == *data);
            }
        }
    }
}

#[test]
fn damaged_primary_pack_is_not_spread() {
    let fx = Fixture::two_points();
    let primary_dir = fx.path("primary");
    let (name, size) = fx
        .primary_backend()
        .list(ObjectKind::Pack)
        .unwrap()
        .into_iter()
        .map(|o| (o.name, o.size))
        .max_by_key(|o| o.1)
        .unwrap();
    let file = primary_dir.join("data").join(&name[..2]).join(&name);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[size as usize / 2] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();

    let secondary = LocalDir::create(&fx.path("secondary")).unwrap();
    let err = replicate::run(&fx.primary, &secondary, &fx.ids(), &opts(), None).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains(&name), "{err}");
    assert!(!secondary.exists(ObjectKind::Pack, &name).unwrap());
    assert!(names(&secondary, ObjectKind::Point).is_empty());
    assert!(names(&secondary, ObjectKind::Index).is_empty());
}

#[test]
fn secondary_holding_another_repository_is_refused() {
    let fx = Fixture::one_point();
    let other = init(&fx.path("other"));
    backup(&other, &first_disk(7));
    let before = listing(other.backend().as_ref());
    let config = other.backend().get(ObjectKind::Config, "config").unwrap();

    let dst = Recording::new(other.backend().clone());
    let err = replicate::run(&fx.primary, &dst, &fx.ids(), &opts(), None).unwrap_err();
    match &err {
        Error::Invalid(msg) => assert!(msg.contains("another repository"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(replicate::plan(&fx.primary, &dst, &fx.ids()).is_err());
    assert!(replicate::orphans(fx.primary_backend(), &dst).is_err());
    assert!(dst.puts().is_empty());
    assert_eq!(listing(&dst), before);
    assert_eq!(dst.get(ObjectKind::Config, "config").unwrap(), config);
}

/// The packs the last backup added: (name, size), smallest first.
fn new_packs(b: &dyn Backend, before: &HashSet<String>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = b
        .list(ObjectKind::Pack)
        .unwrap()
        .into_iter()
        .filter(|o| !before.contains(&o.name))
        .map(|o| (o.name, o.size))
        .collect();
    out.sort_by_key(|o| o.1);
    out
}

#[test]
fn point_missing_data_on_the_primary_is_not_published_and_blocks_nothing() {
    let mut fx = Fixture::one_point();
    // Point 2 loses the data pack of its changed chunks (its largest new pack: tree
    // nodes go to separate, small packs), and so does point 3, a second backup of the
    // same disk (the same tree); point 4 loses its new tree nodes.
    let before = names(fx.primary_backend(), ObjectKind::Pack);
    fx.add_point();
    let added = new_packs(fx.primary_backend(), &before);
    assert!(added.len() >= 2, "{added:?}");
    let data_pack = added.last().unwrap().0.clone();
    fx.add_same_point();
    let before = names(fx.primary_backend(), ObjectKind::Pack);
    fx.add_point();
    let tree_pack = new_packs(fx.primary_backend(), &before)[0].0.clone();
    for name in [&data_pack, &tree_pack] {
        fx.primary_backend().delete(ObjectKind::Pack, name).unwrap();
    }
    let forgotten = "0123456789abcdef0123456789abcdef".to_string();
    let mut requested = fx.ids();
    requested.push(forgotten.clone());

    let secondary = LocalDir::create(&fx.path("secondary")).unwrap();
    let report = replicate::run(&fx.primary, &secondary, &requested, &opts(), None).unwrap();
    let ids = fx.ids();
    assert_eq!(report.points_published, vec![ids[0].clone()]);
    assert_eq!(report.points_gone, vec![forgotten]);
    let why: HashMap<String, String> = report.unpublishable.iter().cloned().collect();
    assert_eq!(why.len(), 3, "{why:?}");
    assert!(
        why[&ids[1]].contains("chunk") && why[&ids[1]].contains(&data_pack),
        "{why:?}"
    );
    assert_eq!(why[&ids[2]], why[&ids[1]], "same tree, same reason");
    assert!(
        why[&ids[3]].contains("tree node") && why[&ids[3]].contains(&tree_pack),
        "{why:?}"
    );
    assert_eq!(
        names(&secondary, ObjectKind::Point),
        HashSet::from([ids[0].clone()])
    );
    let replica = open_local(&fx.path("secondary"));
    assert!(restored(&replica, &ids[0], fx.dir.path()) == fx.points[0].1);
}

#[test]
fn orphans_are_listed_in_deletion_order_once_the_secondary_caught_up() {
    let fx = Fixture::two_points();
    let secondary_path = fx.path("secondary");
    let dst = LocalDir::create(&secondary_path).unwrap();
    let ids = fx.ids();
    replicate::run(&fx.primary, &dst, &ids, &opts(), None).unwrap();
    assert!(replicate::orphans(fx.primary_backend(), &dst)
        .unwrap()
        .is_empty());

    let (p1, p2) = (ids[0].clone(), ids[1].clone());
    fx.primary.forget(&p1).unwrap();
    let gc = gc::run(
        &fx.primary,
        &gc::GcOptions {
            repack_threshold: 0.0,
            ..gc::GcOptions::default()
        },
        None,
    )
    .unwrap();
    assert!(gc.packs_deleted + gc.packs_repacked > 0, "{gc:?}");
    let p1_size = dst
        .list(ObjectKind::Point)
        .unwrap()
        .into_iter()
        .find(|o| o.name == p1)
        .unwrap()
        .size;

    // The primary's new index file is not on the secondary yet: the old ones still make
    // point 2 readable there, so only the manifest may go.
    let early = replicate::orphans(fx.primary_backend(), &dst).unwrap();
    assert_eq!(early, vec![(ObjectKind::Point, p1.clone(), p1_size)]);

    let catch_up = replicate::run(&fx.primary, &dst, &ids, &opts(), None).unwrap();
    assert_eq!(catch_up.points_gone, vec![p1.clone()]);
    assert_eq!(catch_up.points_already, vec![p2.clone()]);
    assert!(catch_up.objects_copied > 0);

    let orphans = replicate::orphans(fx.primary_backend(), &dst).unwrap();
    assert_eq!(orphans[0], (ObjectKind::Point, p1.clone(), p1_size));
    assert!(orphans.iter().any(|o| o.0 == ObjectKind::Index));
    assert!(orphans.iter().any(|o| o.0 == ObjectKind::Pack));
    assert!(
        orphans.windows(2).all(|w| rank(w[0].0) >= rank(w[1].0)),
        "not manifests, index files, packs: {orphans:?}"
    );
    // Exactly what the secondary holds and the primary does not.
    let mut expected: Vec<(ObjectKind, String, u64)> = listing(&dst)
        .into_iter()
        .filter(|o| {
            matches!(
                o.0,
                ObjectKind::Point | ObjectKind::Index | ObjectKind::Pack
            )
        })
        .filter(|o| !fx.primary_backend().exists(o.0, &o.1).unwrap())
        .collect();
    expected.sort_by(|a, b| (rank(b.0), &a.1).cmp(&(rank(a.0), &b.1)));
    assert_eq!(orphans, expected);

    for (kind, name, _) in &orphans {
        dst.delete(*kind, name).unwrap();
    }
    assert!(replicate::orphans(fx.primary_backend(), &dst)
        .unwrap()
        .is_empty());
    let replica = open_local(&secondary_path);
    assert_clean(&replica, 1);
    assert!(restored(&replica, &p2, fx.dir.path()) == fx.points[1].1);
}

#[test]
fn damaged_copies_are_replaced_and_new_keys_follow() {
    let fx = Fixture::two_points();
    let secondary_path = fx.path("secondary");
    let dst = Recording::new(Arc::new(LocalDir::create(&secondary_path).unwrap()));
    let ids = fx.ids();

    // Cancelled before it starts: nothing is copied.
    let cancelled = Progress::default();
    cancelled.cancel.store(true, Ordering::Relaxed);
    let err = replicate::run(&fx.primary, &dst, &ids, &opts(), Some(&cancelled)).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    assert!(dst.puts().is_empty());

    replicate::run(&fx.primary, &dst, &ids, &opts(), None).unwrap();
    let first = dst.puts().len();

    // A pack and a manifest cut short on the secondary, and a key added on the primary.
    let pack = dst.list(ObjectKind::Pack).unwrap().remove(0);
    let bytes = dst.get(ObjectKind::Pack, &pack.name).unwrap();
    dst.inner
        .put(ObjectKind::Pack, &pack.name, &bytes[..bytes.len() - 1])
        .unwrap();
    let point = dst.get(ObjectKind::Point, &ids[1]).unwrap();
    dst.inner
        .put(ObjectKind::Point, &ids[1], &point[..point.len() / 2])
        .unwrap();
    let key = fx
        .primary
        .add_key(
            b"second passphrase",
            KdfParams {
                m_cost: 8 * 1024,
                t_cost: 1,
                p_cost: 1,
            },
        )
        .unwrap();

    let report = replicate::run(&fx.primary, &dst, &ids, &opts(), None).unwrap();
    assert_eq!(report.points_already, vec![ids[0].clone()]);
    assert_eq!(report.points_published, vec![ids[1].clone()]);
    assert_eq!(
        dst.puts()[first..].to_vec(),
        vec![
            (ObjectKind::Key, key),
            (ObjectKind::Pack, pack.name.clone()),
            (ObjectKind::Point, ids[1].clone()),
        ]
    );
    let replica = Repository::open(
        Arc::new(LocalDir::open(&secondary_path).unwrap()),
        b"second passphrase",
    )
    .unwrap();
    assert_clean(&replica, 2);
}

#[test]
fn pack_vanishing_from_the_primary_fails_the_run_before_any_manifest() {
    let fx = Fixture::two_points();
    let (pack, _) = new_packs(fx.primary_backend(), &HashSet::new())
        .pop()
        .unwrap();
    let primary = Recording {
        vanished: Some((ObjectKind::Pack, pack.clone())),
        ..Recording::new(Arc::new(LocalDir::open(&fx.path("primary")).unwrap()))
    };
    let primary = Repository::open(Arc::new(primary), PW).unwrap();
    let secondary = LocalDir::create(&fx.path("secondary")).unwrap();
    let err = replicate::run(&primary, &secondary, &fx.ids(), &opts(), None).unwrap_err();
    match &err {
        Error::Storage(e) => assert!(e.is_not_found() && e.to_string().contains(&pack), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(names(&secondary, ObjectKind::Point).is_empty());
    assert!(names(&secondary, ObjectKind::Index).is_empty());
}
