//! Replication: copies a repository to a second backend, the *secondary*, so that a
//! geo-redundant vault survives the loss of its primary storage.
//!
//! Only the [`Backend`] trait is used on the secondary: it may be another directory, an
//! object store or anything else that stores whole objects atomically.
//!
//! # The ordering invariant
//!
//! **A manifest is never on the secondary unless everything it references is there.**
//! The secondary is what one restores from once the primary is lost; a point that is
//! listed there but cannot be restored would be discovered at the worst moment. A
//! backup keeps the same rule on the primary (FORMAT.md: packs, then the index files
//! that list them, then the manifest, each durable before the next), and a run copies
//! in the same order:
//!
//! 1. the key files the secondary lacks, then the config if it has none (a config
//!    without a key is an unopenable repository, see [`Repository::init`]);
//! 2. every pack the secondary lacks, in parallel;
//! 3. every index file it lacks: an index file must not be durable before the packs it
//!    lists, or a backup made after promoting the secondary would deduplicate against
//!    blobs that are not there;
//! 4. only once every copy above has succeeded, the manifests of the requested points,
//!    each after walking its trees on the primary to check that every pack they use is
//!    on the secondary or was just copied.
//!
//! [`Backend::put`] is atomic and durable when it returns, so a crash or an error at any
//! moment leaves on the secondary at most packs and index files that no manifest uses
//! yet. They are harmless, and the next run does not send them again.
//!
//! Packs and index files are named by the BLAKE3 hash of their bytes, so an object of
//! the same name and size on the secondary is that object and is skipped (one of another
//! size is damaged and is replaced), and an object damaged on the primary is caught
//! before it is sent: its bytes no longer hash to its name. A damaged primary object is
//! never spread to the secondary.
//!
//! # Running beside backups and garbage collection
//!
//! The primary may change during a run. Objects are listed on the primary in the reverse
//! of the order they are written there (manifests, then index files, then packs), so
//! whatever a listed object needs was written before its own kind was listed and is
//! listed too, unless a garbage collection deleted it meanwhile.
//! Reading an object that has vanished since the listing fails the run with a
//! [`tresor_storage::Error::NotFound`] error, before any manifest is copied: the caller
//! retries later and the next run sees the new state.
//!
//! # Removing what the primary no longer has
//!
//! [`orphans`] lists what the secondary holds and the primary no longer does, in the
//! order it must be deleted: manifests, then index files, then packs (the reverse of the
//! copy order, for the same reason).
//!
//! Garbage collection state is never copied: it describes the backups running on the
//! primary, and no backup runs on the secondary. Temp files of interrupted writes are
//! not objects and are never listed.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::bounded;
use parking_lot::Mutex;
use tresor_format::manifest::{is_point_id, Manifest};
use tresor_format::ChunkId;
use tresor_storage::{Backend, ObjectKind};

use crate::blob_index::BlobIndex;
use crate::progress::Progress;
use crate::{Error, Repository, Result};

/// One object: its kind, name and size (on the primary).
pub type Object = (ObjectKind, String, u64);

#[derive(Debug, Clone)]
pub struct ReplicateOptions {
    /// Packs copied at once. Each holds one pack (up to the repository's pack size) in
    /// memory; a few keep a remote secondary's link busy.
    pub threads: usize,
}

impl Default for ReplicateOptions {
    fn default() -> Self {
        ReplicateOptions { threads: 4 }
    }
}

/// What a run would do, from listings of the primary and the secondary.
#[derive(Debug, Clone, Default)]
pub struct ReplicationPlan {
    /// Copied before anything else: the key files the secondary lacks (or holds with
    /// another size), then the config when the secondary has none.
    pub setup: Vec<Object>,
    /// Packs and index files the secondary lacks or holds with another size (damaged):
    /// every pack first, then every index file.
    pub copy: Vec<Object>,
    /// Bytes of everything to copy: setup, copy and the manifests of `publish`.
    pub bytes: u64,
    /// Points whose manifest will be copied, last.
    pub publish: Vec<String>,
    /// Requested points whose manifest is already on the secondary.
    pub already: Vec<String>,
    /// Requested points the primary no longer has (forgotten meanwhile): neither copied
    /// nor an error.
    pub gone: Vec<String>,
    /// Requested points that cannot be published, with why (a pack they need is missing
    /// on the primary, a tree node is damaged there). The rest of the run goes on.
    pub unpublishable: Vec<(String, String)>,
    /// Bytes of primary packs and index files the secondary already holds.
    pub skipped_bytes: u64,
}

impl ReplicationPlan {
    /// Objects to copy, manifests included.
    pub fn objects(&self) -> u64 {
        (self.setup.len() + self.copy.len() + self.publish.len()) as u64
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct ReplicationReport {
    /// Objects and bytes the plan meant to copy, manifests included.
    pub objects_planned: u64,
    pub bytes_planned: u64,
    /// Bytes of packs and index files already on the secondary, not sent.
    pub skipped_bytes: u64,
    pub objects_copied: u64,
    pub bytes_copied: u64,
    pub points_published: Vec<String>,
    pub points_already: Vec<String>,
    /// Requested points forgotten on the primary before they were published.
    pub points_gone: Vec<String>,
    pub unpublishable: Vec<(String, String)>,
}

impl fmt::Display for ReplicationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "copied {} objects ({} bytes), {} bytes already there; {} points published, {} already there, {} gone",
            self.objects_copied,
            self.bytes_copied,
            self.skipped_bytes,
            self.points_published.len(),
            self.points_already.len(),
            self.points_gone.len()
        )?;
        for (id, why) in &self.unpublishable {
            writeln!(f, "  point {id} not published: {why}")?;
        }
        Ok(())
    }
}

/// Plans a run: compares listings of the primary and the secondary and walks the trees
/// of the points to publish. Copies nothing.
///
/// Fails when the secondary holds another repository (its config differs).
pub fn plan(src: &Repository, dst: &dyn Backend, points: &[String]) -> Result<ReplicationPlan> {
    let primary = src.backend().as_ref();
    if let Some(bad) = points.iter().find(|id| !is_point_id(id)) {
        return Err(Error::Invalid(format!(
            "{bad:?} is not a recovery point id (32 hex digits)"
        )));
    }
    let mut plan = ReplicationPlan {
        setup: setup_objects(primary, dst)?,
        ..ReplicationPlan::default()
    };

    // Points, then the index, then packs: each is written on the primary after what it
    // needs, so listing in this order sees what every listed object needs.
    let src_points = sizes(primary, ObjectKind::Point)?;
    src.reload_index()?;
    let index = src.index();
    let src_index = sizes(primary, ObjectKind::Index)?;
    let src_packs = sizes(primary, ObjectKind::Pack)?;
    let dst_points = sizes(dst, ObjectKind::Point)?;
    let dst_index = sizes(dst, ObjectKind::Index)?;
    let dst_packs = sizes(dst, ObjectKind::Pack)?;

    for (kind, ours, theirs) in [
        (ObjectKind::Pack, &src_packs, &dst_packs),
        (ObjectKind::Index, &src_index, &dst_index),
    ] {
        let mut names: Vec<(&String, &u64)> = ours.iter().collect();
        names.sort();
        for (name, &size) in names {
            if theirs.get(name) == Some(&size) {
                plan.skipped_bytes += size;
            } else {
                plan.copy.push((kind, name.clone(), size));
            }
        }
    }

    let mut checker = Checker::new(src, &index, &src_packs, &dst_packs);
    let mut seen = HashSet::new();
    for id in points {
        if !seen.insert(id) {
            continue;
        }
        let Some(&size) = src_points.get(id) else {
            plan.gone.push(id.clone());
            continue;
        };
        // Another size on the secondary is a damaged manifest: published again.
        if dst_points.get(id) == Some(&size) {
            plan.already.push(id.clone());
            continue;
        }
        match checker.point(id)? {
            Check::Complete => {
                plan.bytes += size;
                plan.publish.push(id.clone());
            }
            Check::Gone => plan.gone.push(id.clone()),
            Check::Incomplete(why) => plan.unpublishable.push((id.clone(), why)),
        }
    }
    plan.bytes += plan
        .setup
        .iter()
        .chain(&plan.copy)
        .map(|o| o.2)
        .sum::<u64>();
    Ok(plan)
}

/// Plans, then copies in the order the module documentation gives.
///
/// `progress` gets the planned bytes as its total and each object's bytes as it is
/// copied. Cancelling ends the run with [`Error::Cancelled`]; what was copied by then is
/// invisible (no manifest uses it yet) and is not sent again by the next run.
pub fn run(
    src: &Repository,
    dst: &dyn Backend,
    points: &[String],
    opts: &ReplicateOptions,
    progress: Option<&Progress>,
) -> Result<ReplicationReport> {
    let plan = plan(src, dst, points)?;
    if let Some(p) = progress {
        p.add_total(plan.bytes);
    }
    let primary = src.backend().as_ref();
    let copied = Copied {
        objects: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        progress,
    };
    let mut report = ReplicationReport {
        objects_planned: plan.objects(),
        bytes_planned: plan.bytes,
        skipped_bytes: plan.skipped_bytes,
        points_already: plan.already,
        points_gone: plan.gone,
        unpublishable: plan.unpublishable,
        ..ReplicationReport::default()
    };

    // 1. Keys, then the config (the plan lists them in that order).
    for (kind, name, _) in &plan.setup {
        check_cancel(progress)?;
        copied.add(copy_object(primary, dst, *kind, name)?);
    }

    // 2. Packs, in parallel; 3. then index files. A failure stops before the manifests.
    let packs: Vec<&Object> = plan
        .copy
        .iter()
        .filter(|o| o.0 == ObjectKind::Pack)
        .collect();
    copy_parallel(primary, dst, &packs, opts.threads, &copied)?;
    for (kind, name, _) in plan.copy.iter().filter(|o| o.0 == ObjectKind::Index) {
        check_cancel(progress)?;
        copied.add(copy_object(primary, dst, *kind, name)?);
    }

    // 4. Manifests, now that everything they use is durable on the secondary.
    for id in plan.publish {
        check_cancel(progress)?;
        let bytes = match primary.get(ObjectKind::Point, &id) {
            Ok(b) => b,
            // Forgotten since the plan: publishing it would bring it back to life there.
            Err(e) if e.is_not_found() => {
                report.points_gone.push(id);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = Manifest::open(src.sealer(), &id, &bytes) {
            report.unpublishable.push((
                id,
                format!("its manifest cannot be read on the primary: {e}"),
            ));
            continue;
        }
        dst.put(ObjectKind::Point, &id, &bytes)?;
        copied.add(bytes.len() as u64);
        report.points_published.push(id);
    }
    report.objects_copied = copied.objects.into_inner();
    report.bytes_copied = copied.bytes.into_inner();
    Ok(report)
}

/// Objects on the secondary that the primary no longer has (kinds Point, Index and
/// Pack), in the order they must be deleted: manifests, then index files, then packs.
///
/// Index files and packs are listed only when the secondary holds every index file the
/// primary has. Until then an old index file may be what still makes a point on the
/// secondary readable (a garbage collection on the primary replaced it by one not copied
/// yet): run [`run`] first, then this, then delete, and do not run both at once.
///
/// Key files are never listed: a key missing on the primary may be the last copy of
/// one. A secondary without a config lists nothing (nothing there was put by a run,
/// which copies the config before any pack); one holding another repository is an error.
pub fn orphans(src: &dyn Backend, dst: &dyn Backend) -> Result<Vec<Object>> {
    let theirs = match dst.get(ObjectKind::Config, "config") {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if theirs != read_config(src)? {
        return Err(another_repository(dst));
    }
    // The secondary first: whatever a run copied there is then still listed on the
    // primary unless the primary has deleted it since.
    let dst_points = sizes(dst, ObjectKind::Point)?;
    let dst_index = sizes(dst, ObjectKind::Index)?;
    let dst_packs = sizes(dst, ObjectKind::Pack)?;
    // Packs before index files: garbage collection deletes an index file before the
    // packs it lists, so an index file still listed after the packs had its packs listed
    // too, and none of them is taken for an orphan while it stays.
    let src_packs = sizes(src, ObjectKind::Pack)?;
    let src_index = sizes(src, ObjectKind::Index)?;
    let src_points = sizes(src, ObjectKind::Point)?;

    let missing =
        |kind: ObjectKind, on_dst: &HashMap<String, u64>, on_src: &HashMap<String, u64>| {
            let mut out: Vec<Object> = on_dst
                .iter()
                .filter(|(name, _)| !on_src.contains_key(*name))
                .map(|(name, &size)| (kind, name.clone(), size))
                .collect();
            out.sort_by(|a, b| a.1.cmp(&b.1));
            out
        };
    let mut out = missing(ObjectKind::Point, &dst_points, &src_points);
    let caught_up = src_index
        .iter()
        .all(|(name, size)| dst_index.get(name) == Some(size));
    if caught_up {
        out.extend(missing(ObjectKind::Index, &dst_index, &src_index));
        out.extend(missing(ObjectKind::Pack, &dst_packs, &src_packs));
    }
    Ok(out)
}

/// Name → size of every object of one kind.
fn sizes(backend: &dyn Backend, kind: ObjectKind) -> Result<HashMap<String, u64>> {
    Ok(backend
        .list(kind)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect())
}

fn read_config(primary: &dyn Backend) -> Result<Vec<u8>> {
    match primary.get(ObjectKind::Config, "config") {
        Ok(b) => Ok(b),
        Err(e) if e.is_not_found() => Err(Error::NotARepository {
            path: primary.describe(),
        }),
        Err(e) => Err(e.into()),
    }
}

fn another_repository(dst: &dyn Backend) -> Error {
    Error::Invalid(format!(
        "the secondary ({}) holds another repository: its config differs from this one's, so nothing was copied. Replicate to an empty location, or empty that one if what it holds is not needed",
        dst.describe()
    ))
}

/// The key files the secondary lacks, then the config when it has none. Fails when it
/// holds another repository's config.
fn setup_objects(primary: &dyn Backend, dst: &dyn Backend) -> Result<Vec<Object>> {
    let ours = read_config(primary)?;
    let theirs = match dst.get(ObjectKind::Config, "config") {
        Ok(b) => Some(b),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    if theirs.as_ref().is_some_and(|t| *t != ours) {
        return Err(another_repository(dst));
    }
    let dst_keys = sizes(dst, ObjectKind::Key)?;
    let mut out: Vec<Object> = sizes(primary, ObjectKind::Key)?
        .into_iter()
        .filter(|(name, size)| dst_keys.get(name) != Some(size))
        .map(|(name, size)| (ObjectKind::Key, name, size))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    if theirs.is_none() {
        out.push((ObjectKind::Config, "config".into(), ours.len() as u64));
    }
    Ok(out)
}

/// Copies one object; packs and index files only when their bytes hash to their name.
fn copy_object(
    primary: &dyn Backend,
    dst: &dyn Backend,
    kind: ObjectKind,
    name: &str,
) -> Result<u64> {
    let bytes = primary.get(kind, name)?;
    if matches!(kind, ObjectKind::Pack | ObjectKind::Index) {
        // Index files are named by the same unkeyed hash as packs (FORMAT.md §6.2, §7).
        let hash = tresor_format::pack::pack_name(&bytes);
        if hash != name {
            let what = if kind == ObjectKind::Pack {
                "pack"
            } else {
                "index file"
            };
            return Err(Error::Invalid(format!(
                "{what} {name} on the primary ({}) is damaged: its bytes hash to {hash}, not to its name. It was not copied and no recovery point was published; run `tresor repo verify` on the primary",
                primary.describe()
            )));
        }
    }
    dst.put(kind, name, &bytes)?;
    Ok(bytes.len() as u64)
}

/// Copies objects with `threads` workers; stops at the first error and returns it.
fn copy_parallel(
    primary: &dyn Backend,
    dst: &dyn Backend,
    objects: &[&Object],
    threads: usize,
    copied: &Copied<'_>,
) -> Result<()> {
    if objects.is_empty() {
        return Ok(());
    }
    let threads = threads.clamp(1, objects.len());
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let fail = |e: Error| {
        first_error.lock().get_or_insert(e);
        failed.store(true, Ordering::Relaxed);
    };
    let (tx, rx) = bounded::<&Object>(threads);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let rx = rx.clone();
            let (failed, fail) = (&failed, &fail);
            scope.spawn(move || {
                // Drains the channel even after a failure so that the sender never blocks.
                for (kind, name, _) in rx {
                    if failed.load(Ordering::Relaxed) {
                        continue;
                    }
                    match check_cancel(copied.progress)
                        .and_then(|()| copy_object(primary, dst, *kind, name))
                    {
                        Ok(n) => copied.add(n),
                        Err(e) => fail(e),
                    }
                }
            });
        }
        drop(rx);
        for o in objects {
            if failed.load(Ordering::Relaxed) || tx.send(*o).is_err() {
                break;
            }
        }
        drop(tx);
    });
    match first_error.into_inner() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn check_cancel(progress: Option<&Progress>) -> Result<()> {
    match progress {
        Some(p) if p.cancelled() => Err(Error::Cancelled),
        _ => Ok(()),
    }
}

/// Counts what was copied, for the report and the caller's progress.
struct Copied<'p> {
    objects: AtomicU64,
    bytes: AtomicU64,
    progress: Option<&'p Progress>,
}

impl Copied<'_> {
    fn add(&self, bytes: u64) {
        self.objects.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(p) = self.progress {
            p.add_done(bytes);
        }
    }
}

enum Check {
    Complete,
    /// Forgotten on the primary since it was listed.
    Gone,
    Incomplete(String),
}

/// Checks that every blob of a point will be on the secondary after the copy.
struct Checker<'a> {
    repo: &'a Repository,
    index: &'a BlobIndex,
    /// By pack position in `index`: the primary lists the pack, so the run copies it.
    on_primary: Vec<bool>,
    /// By pack position in `index`: the secondary holds the pack.
    on_secondary: Vec<bool>,
    /// Tree nodes already walked: `None` when everything under them is there, else why
    /// not. Points share most of their subtrees, each is walked once.
    nodes: HashMap<ChunkId, Option<String>>,
}

impl<'a> Checker<'a> {
    fn new(
        repo: &'a Repository,
        index: &'a BlobIndex,
        src_packs: &HashMap<String, u64>,
        dst_packs: &HashMap<String, u64>,
    ) -> Checker<'a> {
        let names: Vec<String> = index.packs.iter().map(hex::encode).collect();
        Checker {
            repo,
            index,
            on_primary: names.iter().map(|n| src_packs.contains_key(n)).collect(),
            on_secondary: names.iter().map(|n| dst_packs.contains_key(n)).collect(),
            nodes: HashMap::new(),
        }
    }

    fn point(&mut self, id: &str) -> Result<Check> {
        let manifest = match self.repo.load_point(id) {
            Ok(m) => m,
            Err(Error::PointNotFound { .. }) => return Ok(Check::Gone),
            Err(e @ (Error::Format(_) | Error::Invalid(_))) => {
                return Ok(Check::Incomplete(format!(
                    "its manifest cannot be read on the primary: {e}"
                )))
            }
            Err(e) => return Err(e),
        };
        for disk in &manifest.disks {
            if let Some(why) = self.node(disk.root)? {
                return Ok(Check::Incomplete(format!("disk {}: {why}", disk.name)));
            }
        }
        Ok(Check::Complete)
    }

    /// Why a data chunk will not be on the secondary, if it will not.
    fn chunk(&self, id: &ChunkId) -> Option<String> {
        let Some(loc) = self.index.get(id) else {
            return Some(format!(
                "chunk {id} is listed by no index file of the primary"
            ));
        };
        let p = loc.pack as usize;
        if self.on_primary[p] || self.on_secondary[p] {
            None
        } else {
            Some(format!(
                "chunk {id} is in pack {}, which neither the primary nor the secondary holds",
                self.index.pack_name(loc)
            ))
        }
    }

    /// Why a subtree will not be entirely on the secondary, if it will not.
    fn node(&mut self, id: ChunkId) -> Result<Option<String>> {
        if id.is_zero() {
            return Ok(None); // a hole: nothing stored
        }
        if let Some(known) = self.nodes.get(&id) {
            return Ok(known.clone());
        }
        let why = self.walk(id)?;
        self.nodes.insert(id, why.clone());
        Ok(why)
    }

    fn walk(&mut self, id: ChunkId) -> Result<Option<String>> {
        // The node is read on the primary, so its pack must be there (and is then copied).
        let Some(loc) = self.index.get(&id) else {
            return Ok(Some(format!(
                "tree node {id} is listed by no index file of the primary"
            )));
        };
        if !self.on_primary[loc.pack as usize] {
            return Ok(Some(format!(
                "tree node {id} is in pack {}, which the primary does not hold",
                self.index.pack_name(loc)
            )));
        }
        let node = match self.repo.read_tree_node(&id) {
            Ok(n) => n,
            // Damage on the primary: this point cannot be published, others may.
            Err(e @ Error::Storage(tresor_storage::Error::ShortRead { .. })) => {
                return Ok(Some(format!("tree node {id} cannot be read: {e}")))
            }
            // Vanished since the listing (garbage collection) or an I/O error: retry later.
            Err(e @ Error::Storage(_)) => return Err(e),
            Err(e) => return Ok(Some(format!("tree node {id} cannot be read: {e}"))),
        };
        for child in node.children {
            let why = if node.level == 0 {
                if child.is_zero() {
                    None
                } else {
                    self.chunk(&child)
                }
            } else {
                self.node(child)?
            };
            if why.is_some() {
                return Ok(why);
            }
        }
        Ok(None)
    }
}
