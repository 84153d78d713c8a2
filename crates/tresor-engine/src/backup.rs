//! The backup pipeline: disks in, one recovery point out.
//!
//! For each disk, threads connected by bounded channels (so memory stays bounded
//! whatever the disk size):
//!
//! ```text
//! planner ──jobs──► workers (N) ──ids──► assembler ──► tree nodes ─┐
//!   walks the tree     read, zero check,    puts ids back in      │
//!   shape; reuses      hash, dedup, zstd,   order, builds the     ▼
//!   parent subtrees    seal ───────sealed blobs─────────────────► pack writer
//!   and zero ranges                                               (packs, then index files)
//! ```
//!
//! The planner walks the disk tree from the top. A subtree whose range the source
//! reports as all zeros becomes ZERO without reading; in an incremental backup with
//! dirty extents, a subtree whose range has no dirty byte is the parent's subtree, reused
//! by id without reading either the disk or the parent's nodes below it. Everything
//! else is read chunk by chunk.
//!
//! Commit: once every disk is done, the pack writer stores its last packs and index
//! files, and only then is the manifest written. A backup that dies before that leaves
//! no recovery point, only unreferenced packs that garbage collection reclaims.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use jiff::Timestamp;
use parking_lot::Mutex;
use tresor_blocksource::{BlockSource, DirtyExtents, ExtentKind};
use tresor_format::blob::{seal_blob, BlobKind};
use tresor_format::manifest::{BackupStats, Consistency, DiskEntry, Manifest, MANIFEST_VERSION};
use tresor_format::tree::{TreeNode, TreeShape};
use tresor_format::ChunkId;

use crate::blob_index::BlobIndex;
use crate::pack_writer::{with_pack_writer, SealedMsg};
use crate::progress::Progress;
use crate::repository::{hostname, random_hex};
use crate::tree::{item_count, item_span, TreeBuilder, TreeReader};
use crate::{Error, Repository, Result};

/// One disk to back up.
pub struct DiskSource {
    /// The disk's name in the recovery point (`vda`, or an image's file name).
    pub name: String,
    pub source: Arc<dyn BlockSource>,
    /// What changed since the parent point. `None` reads the whole disk (deduplicated
    /// against everything stored, the parent included).
    pub dirty: Option<DirtyExtents>,
}

/// What to back up and how to label it.
pub struct BackupRequest<'a> {
    /// The new point's id, when the caller needs it before the backup (a VM's change
    /// tracking is named after it). Default: a new random id.
    pub id: Option<String>,
    pub name: String,
    pub disks: Vec<DiskSource>,
    /// The point this one follows. Needed to use dirty extents.
    pub parent: Option<Manifest>,
    pub consistency: Consistency,
    pub created: Option<Timestamp>,
    pub expires: Option<Timestamp>,
    pub vm_config: Option<serde_json::Value>,
    pub progress: Option<&'a Progress>,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
}

impl<'a> BackupRequest<'a> {
    pub fn new(name: impl Into<String>, disks: Vec<DiskSource>) -> BackupRequest<'a> {
        BackupRequest {
            id: None,
            name: name.into(),
            disks,
            parent: None,
            consistency: Consistency::CrashConsistent,
            created: None,
            expires: None,
            vm_config: None,
            progress: None,
            workers: 0,
        }
    }
}

/// Chunks in flight between the planner and the assembler, per worker.
const JOBS_PER_WORKER: usize = 16;

/// Extents fetched from a source at once while planning.
const EXTENT_WINDOW: u64 = 1 << 30;

/// Runs a backup and commits its recovery point.
pub fn run(repo: &Repository, req: BackupRequest<'_>) -> Result<Manifest> {
    let started = Instant::now();
    let created = req.created.unwrap_or_else(Timestamp::now);
    validate(&req)?;
    // Register before reading the index and the condemned list: garbage collection then
    // either sees this backup running, or condemned its blobs before we read the list.
    let _registration = repo.backend().writers().register(&format!(
        "backup of {} by pid {} on {}",
        req.name,
        std::process::id(),
        hostname()
    ))?;
    // The parent must still exist now that we are registered: if it was forgotten
    // and collected before, its subtrees may be gone, and reusing them would lie.
    if let Some(parent) = &req.parent {
        repo.load_point(&parent.id).map_err(|e| match e {
            Error::PointNotFound { id } => Error::Invalid(format!(
                "the parent recovery point {id} was deleted while this backup started; back up again without it"
            )),
            other => other,
        })?;
    }
    if let Some(id) = &req.id {
        if repo.load_point(id).is_ok() {
            return Err(Error::Invalid(format!(
                "recovery point {id} exists already; a new point needs a new id"
            )));
        }
    }
    repo.reload_index()?;
    let condemned: HashSet<ChunkId> = repo
        .condemned()?
        .map(|s| s.condemned.into_iter().collect())
        .unwrap_or_default();
    let session = Session {
        repo,
        known: repo.index(),
        condemned,
        added: Mutex::new(HashSet::new()),
        stats: Counters::default(),
        failed: AtomicBool::new(false),
        progress: req.progress,
    };
    if let Some(p) = req.progress {
        p.add_total(req.disks.iter().map(|d| d.source.size()).sum());
    }
    let workers = if req.workers == 0 {
        // One more than the cores: a worker waiting on a read or on the pack writer's
        // queue leaves its core to another.
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            + 1
    } else {
        req.workers
    };

    let (disks, pack_stats) = with_pack_writer(repo, |pack_tx| {
        let mut disks = Vec::new();
        for disk in &req.disks {
            let parent_disk = req
                .parent
                .as_ref()
                .and_then(|p| p.disks.iter().find(|d| d.name == disk.name))
                .filter(|d| {
                    d.size == disk.source.size()
                        && d.chunk_size == repo.config().chunk_size
                        && d.fanout == repo.config().tree_fanout
                });
            if disk.dirty.is_some() && parent_disk.is_none() {
                tracing::warn!(disk = %disk.name, "the parent point has no matching disk (missing, or another size): reading the whole disk");
            }
            disks.push(session.backup_disk(disk, parent_disk, workers, &pack_tx)?);
        }
        Ok(disks)
    })?;

    if req.progress.is_some_and(Progress::cancelled) {
        return Err(Error::Cancelled);
    }
    let stats = BackupStats {
        bytes_read: session.stats.bytes_read.load(Ordering::Relaxed),
        data_bytes: session.stats.data_bytes.load(Ordering::Relaxed),
        bytes_added: pack_stats.bytes,
        chunks_added: pack_stats.data_blobs,
        chunks_reused: session.stats.chunks_reused.load(Ordering::Relaxed),
        tree_nodes_added: pack_stats.tree_blobs,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        id: req.id.clone().unwrap_or_else(new_point_id),
        name: req.name.clone(),
        created,
        consistency: req.consistency,
        parent: req.parent.as_ref().map(|p| p.id.clone()),
        expires: req.expires,
        disks,
        host: hostname(),
        vm_config: req.vm_config.clone(),
        stats,
    };
    repo.put_point(&manifest)?;
    tracing::info!(point = %manifest.id, added = manifest.stats.bytes_added, "recovery point committed");
    Ok(manifest)
}

/// A new recovery point id: 32 random hex digits.
pub fn new_point_id() -> String {
    random_hex(16)
}

fn validate(req: &BackupRequest<'_>) -> Result<()> {
    if let Some(id) = &req.id {
        if !tresor_format::manifest::is_point_id(id) {
            return Err(Error::Invalid(format!(
                "{id:?} is not a recovery point id (32 lowercase hex digits)"
            )));
        }
    }
    if req.disks.is_empty() {
        return Err(Error::Invalid("nothing to back up: no disks given".into()));
    }
    if req.name.trim().is_empty() {
        return Err(Error::Invalid("the backup needs a name (--name)".into()));
    }
    let mut names = HashSet::new();
    for d in &req.disks {
        if !names.insert(&d.name) {
            return Err(Error::Invalid(format!(
                "two disks are named {:?}; disk names must be unique within a recovery point",
                d.name
            )));
        }
        if d.dirty.is_some() && req.parent.is_none() {
            return Err(Error::Invalid(
                "dirty extents describe changes since a parent point: give the parent (--parent)"
                    .into(),
            ));
        }
    }
    Ok(())
}

#[derive(Default)]
struct Counters {
    bytes_read: AtomicU64,
    data_bytes: AtomicU64,
    chunks_reused: AtomicU64,
}

/// State shared by the threads of one backup.
struct Session<'r, 'p> {
    repo: &'r Repository,
    /// The index as it was when the backup started.
    known: Arc<BlobIndex>,
    /// Blobs garbage collection condemned: never reused, stored again when needed.
    condemned: HashSet<ChunkId>,
    /// Blobs this backup has sent to the pack writer.
    added: Mutex<HashSet<ChunkId>>,
    stats: Counters,
    failed: AtomicBool,
    progress: Option<&'p Progress>,
}

/// A unit of work, numbered in disk order.
enum Work {
    /// An item whose id is already known (ZERO, or reused from the parent).
    Known { level: u8, id: ChunkId, chunks: u64 },
    /// Consecutive chunks to read with one call (one result each, numbered from the
    /// job's `seq`). Large reads let the source read ahead; small ones would interleave
    /// the workers' requests.
    Read { chunk: u64, count: u64 },
}

struct Job {
    seq: u64,
    work: Work,
}

struct Done {
    seq: u64,
    level: u8,
    id: ChunkId,
}

impl<'r, 'p> Session<'r, 'p> {
    fn stop_requested(&self) -> bool {
        self.failed.load(Ordering::Relaxed) || self.progress.is_some_and(Progress::cancelled)
    }

    /// Whether `id` must be stored by this backup (and claims it if so).
    fn claim(&self, id: &ChunkId) -> bool {
        if self.known.contains(id) && !self.condemned.contains(id) {
            return false;
        }
        self.added.lock().insert(*id)
    }

    fn backup_disk(
        &self,
        disk: &DiskSource,
        parent: Option<&DiskEntry>,
        workers: usize,
        pack_tx: &Sender<SealedMsg>,
    ) -> Result<DiskEntry> {
        let config = self.repo.config();
        let size = disk.source.size();
        let chunk_size = config.chunk_size as u64;
        let shape = TreeShape::for_chunks(size.div_ceil(chunk_size), config.tree_fanout);
        let (job_tx, job_rx) = bounded::<Job>(workers * JOBS_PER_WORKER);
        let (done_tx, done_rx) = bounded::<Done>(workers * JOBS_PER_WORKER);

        let root = std::thread::scope(|scope| -> Result<ChunkId> {
            let planner = scope.spawn(|| {
                let dirty = parent.and(disk.dirty.as_ref());
                let reader = parent.map(|p| TreeReader::new(self.repo, p.root, p.shape()));
                let mut planner = Planner {
                    session: self,
                    source: disk.source.as_ref(),
                    shape,
                    chunk_size,
                    dirty,
                    parent: reader,
                    zeros: ZeroMap::new(disk.source.as_ref()),
                    jobs: job_tx,
                    seq: 0,
                    run: None,
                    run_max: (READ_RUN_BYTES / chunk_size).max(1),
                };
                let result = planner.plan_top();
                if result.is_err() {
                    self.failed.store(true, Ordering::Relaxed);
                }
                result
            });
            let mut handles = Vec::new();
            for _ in 0..workers {
                let job_rx = job_rx.clone();
                let done_tx = done_tx.clone();
                let pack_tx = pack_tx.clone();
                handles.push(scope.spawn(move || {
                    let result = self.work(disk, size, chunk_size, job_rx, done_tx, pack_tx);
                    if result.is_err() {
                        self.failed.store(true, Ordering::Relaxed);
                    }
                    result
                }));
            }
            drop(job_rx);
            drop(done_tx);
            let assembled = self.assemble(shape, done_rx, pack_tx);
            if assembled.is_err() {
                self.failed.store(true, Ordering::Relaxed);
            }
            // Report the first real error: the others are consequences of stopping.
            planner.join().expect("planner thread panicked")?;
            for h in handles {
                h.join().expect("worker thread panicked")?;
            }
            if self.progress.is_some_and(Progress::cancelled) {
                return Err(Error::Cancelled);
            }
            assembled
        })?;
        Ok(DiskEntry {
            name: disk.name.clone(),
            size,
            chunk_size: config.chunk_size,
            fanout: config.tree_fanout,
            depth: shape.depth,
            root,
        })
    }

    /// A worker: reads, hashes, deduplicates, compresses and seals chunks.
    fn work(
        &self,
        disk: &DiskSource,
        size: u64,
        chunk_size: u64,
        jobs: Receiver<Job>,
        done: Sender<Done>,
        pack_tx: Sender<SealedMsg>,
    ) -> Result<()> {
        let mut compressor = zstd::bulk::Compressor::new(1).expect("zstd level 1");
        let mut scratch = Vec::new();
        let mut buf = Vec::new();
        for job in jobs {
            if self.stop_requested() {
                return Ok(());
            }
            let (level, id) = match job.work {
                Work::Known { level, id, chunks } => {
                    if let Some(p) = self.progress {
                        p.add_done((chunks * chunk_size).min(size));
                    }
                    if !id.is_zero() {
                        self.stats
                            .chunks_reused
                            .fetch_add(chunks, Ordering::Relaxed);
                    }
                    (level, id)
                }
                Work::Read { chunk, count } => {
                    let offset = chunk * chunk_size;
                    let total = (count * chunk_size).min(size - offset) as usize;
                    if buf.len() < total {
                        buf.resize(total, 0);
                    }
                    disk.source.read_at(offset, &mut buf[..total])?;
                    self.stats
                        .bytes_read
                        .fetch_add(total as u64, Ordering::Relaxed);
                    if let Some(p) = self.progress {
                        p.add_done(total as u64);
                    }
                    for (i, data) in buf[..total].chunks(chunk_size as usize).enumerate() {
                        let Some(id) =
                            self.store_chunk(data, &mut compressor, &mut scratch, &pack_tx)
                        else {
                            return Ok(()); // the pack writer failed; its error is reported
                        };
                        let result = Done {
                            seq: job.seq + i as u64,
                            level: 0,
                            id,
                        };
                        if done.send(result).is_err() {
                            return Ok(());
                        }
                    }
                    continue;
                }
            };
            if done
                .send(Done {
                    seq: job.seq,
                    level,
                    id,
                })
                .is_err()
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Zero check, hash, dedup and, for a new chunk, compression and sealing. `None`
    /// when the pack writer has stopped.
    fn store_chunk(
        &self,
        data: &[u8],
        compressor: &mut zstd::bulk::Compressor<'_>,
        scratch: &mut Vec<u8>,
        pack_tx: &Sender<SealedMsg>,
    ) -> Option<ChunkId> {
        if is_zero(data) {
            return Some(ChunkId::ZERO);
        }
        self.stats
            .data_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let id = self.repo.id_key().id_of(data);
        if !self.claim(&id) {
            self.stats.chunks_reused.fetch_add(1, Ordering::Relaxed);
            return Some(id);
        }
        let mut bytes = Vec::with_capacity(data.len() + 64);
        let meta = seal_blob(
            self.repo.sealer(),
            compressor,
            scratch,
            BlobKind::Data,
            &id,
            data,
            &mut bytes,
        );
        let msg = SealedMsg {
            kind: BlobKind::Data,
            id,
            meta,
            bytes,
        };
        pack_tx.send(msg).ok().map(|_| id)
    }

    /// Puts finished items back in disk order and builds the tree.
    fn assemble(
        &self,
        shape: TreeShape,
        done: Receiver<Done>,
        pack_tx: &Sender<SealedMsg>,
    ) -> Result<ChunkId> {
        let sealer = self.repo.sealer();
        let id_key = self.repo.id_key();
        let mut compressor = zstd::bulk::Compressor::new(1).expect("zstd level 1");
        let mut scratch = Vec::new();
        let mut store = |level: u8, children: Vec<ChunkId>| -> Result<ChunkId> {
            let node = TreeNode { level, children };
            if node.is_all_zero() {
                return Ok(ChunkId::ZERO);
            }
            let plain = node.encode();
            let id = id_key.id_of(&plain);
            if self.claim(&id) {
                let mut bytes = Vec::with_capacity(plain.len() + 64);
                let meta = seal_blob(
                    sealer,
                    &mut compressor,
                    &mut scratch,
                    BlobKind::Tree,
                    &id,
                    &plain,
                    &mut bytes,
                );
                pack_tx
                    .send(SealedMsg {
                        kind: BlobKind::Tree,
                        id,
                        meta,
                        bytes,
                    })
                    .map_err(|_| Error::Invalid("the pack writer stopped".into()))?;
            }
            Ok(id)
        };
        let mut builder = TreeBuilder::new(shape);
        let mut pending: BTreeMap<u64, (u8, ChunkId)> = BTreeMap::new();
        let mut next = 0u64;
        for d in done {
            pending.insert(d.seq, (d.level, d.id));
            while let Some((level, id)) = pending.remove(&next) {
                builder.push(level, id, &mut store)?;
                next += 1;
            }
        }
        if self.stop_requested() {
            return Err(Error::Cancelled);
        }
        if !pending.is_empty() {
            return Err(Error::Invalid("backup pipeline lost a chunk result".into()));
        }
        builder.finish(&mut store)
    }
}

/// Walks a disk's tree shape and emits jobs in disk order.
struct Planner<'s, 'r, 'p> {
    session: &'s Session<'r, 'p>,
    source: &'s dyn BlockSource,
    shape: TreeShape,
    chunk_size: u64,
    dirty: Option<&'s DirtyExtents>,
    parent: Option<TreeReader<'r>>,
    zeros: ZeroMap<'s>,
    jobs: Sender<Job>,
    seq: u64,
    /// Chunks to read that are not sent yet: (first chunk, count).
    run: Option<(u64, u64)>,
    /// Chunks one read job may cover.
    run_max: u64,
}

/// Bytes one read job covers at most.
const READ_RUN_BYTES: u64 = 1 << 20;

impl Planner<'_, '_, '_> {
    fn emit(&mut self, work: Work) -> Result<bool> {
        if !self.flush_run()? {
            return Ok(false);
        }
        let job = Job {
            seq: self.seq,
            work,
        };
        self.seq += 1;
        Ok(self.jobs.send(job).is_ok())
    }

    /// Adds a chunk to the pending read run, sending the run when it cannot grow.
    fn read(&mut self, chunk: u64) -> Result<bool> {
        if let Some((first, count)) = self.run.as_mut() {
            if *first + *count == chunk && *count < self.run_max {
                *count += 1;
                return Ok(true);
            }
        }
        let sent = self.flush_run()?;
        self.run = Some((chunk, 1));
        Ok(sent)
    }

    fn flush_run(&mut self) -> Result<bool> {
        let Some((chunk, count)) = self.run.take() else {
            return Ok(true);
        };
        let job = Job {
            seq: self.seq,
            work: Work::Read { chunk, count },
        };
        self.seq += count;
        Ok(self.jobs.send(job).is_ok())
    }

    fn plan_top(&mut self) -> Result<()> {
        if self.shape.chunks == 0 {
            return Ok(());
        }
        let top = self.shape.depth - 1;
        for k in 0..item_count(&self.shape, top) {
            if !self.plan(top, k)? {
                return Ok(());
            }
        }
        self.flush_run().map(|_| ())
    }

    /// Plans item `k` of `level`; returns false when the backup is stopping.
    fn plan(&mut self, level: u8, k: u64) -> Result<bool> {
        if self.session.stop_requested() {
            return Ok(false);
        }
        let span = item_span(&self.shape, level);
        let first = k * span;
        let chunks = span.min(self.shape.chunks - first);
        let start = first * self.chunk_size;
        let end = ((first + chunks) * self.chunk_size).min(self.source.size());
        if self.zeros.all_zero(start, end)? {
            return self.emit(Work::Known {
                level,
                id: ChunkId::ZERO,
                chunks,
            });
        }
        if let (Some(dirty), Some(parent)) = (self.dirty, self.parent.as_mut()) {
            if !dirty.intersects(start, end - start) {
                let id = parent.item(level, k)?;
                return self.emit(Work::Known { level, id, chunks });
            }
        }
        if level == 0 {
            return self.read(k);
        }
        let fanout = self.shape.fanout as u64;
        let below = item_count(&self.shape, level - 1);
        for child in k * fanout..((k + 1) * fanout).min(below) {
            if !self.plan(level - 1, child)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Answers "is this range all zeros?" from a source's extents, fetching them in windows
/// as the planner moves forward through the disk.
struct ZeroMap<'s> {
    source: &'s dyn BlockSource,
    extents: VecDeque<tresor_blocksource::Extent>,
    covered_to: u64,
}

impl<'s> ZeroMap<'s> {
    fn new(source: &'s dyn BlockSource) -> ZeroMap<'s> {
        ZeroMap {
            source,
            extents: VecDeque::new(),
            covered_to: 0,
        }
    }

    /// Queries must come with non-decreasing `start`.
    fn all_zero(&mut self, start: u64, end: u64) -> Result<bool> {
        while self.extents.front().is_some_and(|e| e.end() <= start) {
            self.extents.pop_front();
        }
        let mut i = 0;
        loop {
            while i < self.extents.len() {
                let e = self.extents[i];
                if e.offset >= end {
                    return Ok(true);
                }
                if e.end() > start && e.kind == ExtentKind::Data {
                    return Ok(false);
                }
                i += 1;
            }
            if self.covered_to >= end || self.covered_to >= self.source.size() {
                return Ok(self.covered_to >= end);
            }
            let from = self.covered_to.max(start);
            let fetched = self.source.extents(from, EXTENT_WINDOW)?;
            if fetched.is_empty() {
                return Ok(false);
            }
            self.covered_to = fetched.last().map(|e| e.end()).unwrap_or(from);
            self.extents.extend(fetched);
        }
    }
}

/// Whether a buffer is all zero bytes, at memory speed.
pub(crate) fn is_zero(buf: &[u8]) -> bool {
    let (prefix, words, suffix) = unsafe {
        // SAFETY: any byte pattern is a valid u64; align_to only reinterprets the aligned middle.
        buf.align_to::<u64>()
    };
    prefix.iter().all(|&b| b == 0)
        && suffix.iter().all(|&b| b == 0)
        && words.iter().all(|&w| w == 0)
}
