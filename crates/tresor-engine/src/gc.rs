//! Garbage collection: reclaim what no recovery point references, without ever removing
//! what a running backup relies on.
//!
//! One run (one at a time, under the registry's exclusive `gc` lock):
//!
//! 1. **Mark**: walk the tree of every recovery point; every node and chunk reached is
//!    live. A tree that cannot be read aborts the run: nothing is swept on a partial mark.
//! 2. **Condemn**: every indexed blob not marked is written to `gc/condemned`. Backups
//!    that start from now on read that list and never reuse those blobs.
//! 3. **Who could have reused them**: list the live writers (backups registered in the
//!    writer registry). Mark again the points committed since step 1.
//! 4. **Sweep** only when no writer is alive: every still-unreferenced blob. With
//!    writers alive, the condemned list stays (so they and later backups avoid those
//!    blobs) and the sweep waits for a run when no backup is running.
//! 5. Packs holding only swept blobs are deleted; packs with more than the repack
//!    threshold of dead bytes are rewritten (live blobs copied as they are, still sealed);
//!    then one new index file lists what remains, then the old index files are deleted,
//!    then the old packs. Packs no index lists (left by a crashed backup) are deleted only
//!    while no writer is alive.

use std::collections::{HashMap, HashSet};
use std::fmt;

use jiff::Timestamp;
use tresor_format::blob::{BlobKind, SealedBlob};
use tresor_format::gc_state::{GcState, GC_STATE_NAME};
use tresor_format::index::{IndexFile, IndexedPack};
use tresor_format::pack::{read_pack_entries, PackBuilder, PackEntry};
use tresor_format::ChunkId;
use tresor_storage::ObjectKind;

use crate::pack_writer::{store_pack, write_index_files};
use crate::progress::Progress;
use crate::{Error, Repository, Result};

#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Rewrite a pack when more than this fraction of its bytes is dead (0.0 ..= 1.0).
    pub repack_threshold: f64,
    /// The recovery points that are live, as an authority outside the repository knows
    /// them (a vault server's catalogue). `None`: every manifest the repository holds
    /// (a repository without a server, where whoever can write is trusted).
    ///
    /// With a list, a listed point whose manifest is missing or unreadable stops the
    /// run before anything is removed, and manifests not listed keep nothing alive,
    /// except those stored while the run went on (a backup finishing meanwhile).
    pub points: Option<Vec<String>>,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            repack_threshold: 0.2,
            points: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub points: u64,
    pub blobs_live: u64,
    pub blobs_unreferenced: u64,
    pub blobs_removed: u64,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    pub unindexed_packs_removed: u64,
    /// Temp files of interrupted writes.
    pub leftovers_removed: u64,
    pub bytes_freed: u64,
    /// Backups that were running: unreferenced blobs they might reuse are kept until
    /// a later run.
    pub waited_for: Vec<String>,
    /// Packs kept although the index said they could go, because their own trailer
    /// lists a blob a point needs that no kept pack holds, or cannot be read.
    pub packs_kept: Vec<String>,
}

impl fmt::Display for GcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} recovery points, {} live blobs, {} unreferenced",
            self.points, self.blobs_live, self.blobs_unreferenced
        )?;
        writeln!(
            f,
            "removed {} blobs: {} packs deleted, {} repacked into {} new, {} packs and {} temp files left by crashed backups; {} bytes freed",
            self.blobs_removed,
            self.packs_deleted,
            self.packs_repacked,
            self.packs_written,
            self.unindexed_packs_removed,
            self.leftovers_removed,
            self.bytes_freed
        )?;
        for p in &self.packs_kept {
            writeln!(f, "kept: {p}")?;
        }
        if !self.waited_for.is_empty() {
            writeln!(
                f,
                "backups were running, so some unreferenced blobs wait for the next gc:"
            )?;
            for w in &self.waited_for {
                writeln!(f, "  {w}")?;
            }
        }
        Ok(())
    }
}

/// Marks every blob reachable from the given points. With `strict`, a point whose
/// manifest is gone is an error (its blobs would be swept) rather than one forgotten
/// meanwhile.
fn mark(
    repo: &Repository,
    points: &[String],
    strict: bool,
    marked: &mut HashSet<ChunkId>,
) -> Result<u64> {
    fn node(repo: &Repository, id: ChunkId, marked: &mut HashSet<ChunkId>) -> Result<()> {
        if id.is_zero() || !marked.insert(id) {
            return Ok(()); // zero, or a subtree shared with a point marked before
        }
        let n = repo.read_tree_node(&id)?;
        for c in n.children {
            if n.level == 0 {
                if !c.is_zero() {
                    marked.insert(c);
                }
            } else {
                node(repo, c, marked)?;
            }
        }
        Ok(())
    }
    let mut count = 0;
    for id in points {
        let m = match repo.load_point(id) {
            Ok(m) => m,
            Err(Error::PointNotFound { .. }) if !strict => continue, // forgotten meanwhile
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "garbage collection stopped without removing anything: recovery point {id} cannot be read ({e}). Run `tresor repo verify`"
                )))
            }
        };
        for d in &m.disks {
            node(repo, d.root, marked).map_err(|e| {
                Error::Invalid(format!(
                    "garbage collection stopped without removing anything: the tree of disk {} of point {} cannot be read ({e}). Run `tresor repo verify`",
                    d.name, m.id
                ))
            })?;
        }
        count += 1;
    }
    Ok(count)
}

pub fn run(repo: &Repository, opts: &GcOptions, progress: Option<&Progress>) -> Result<GcReport> {
    let backend = repo.backend();
    let _lock = backend
        .writers()
        .try_exclusive("gc")?
        .ok_or(Error::GcBusy)?;
    let mut report = GcReport::default();
    repo.reload_index()?;
    let index = repo.index();

    // 1. Mark.
    let points_before: HashSet<String> = repo.point_ids()?.into_iter().collect();
    let mut marked = HashSet::new();
    report.points = match &opts.points {
        Some(live) => mark(repo, live, true, &mut marked)?,
        None => mark(
            repo,
            &points_before.iter().cloned().collect::<Vec<_>>(),
            false,
            &mut marked,
        )?,
    };

    // 2. Condemn.
    let mut unreferenced: HashSet<ChunkId> = index
        .blobs
        .keys()
        .filter(|id| !marked.contains(id))
        .copied()
        .collect();
    let state = GcState {
        version: 1,
        created: Timestamp::now(),
        condemned: unreferenced.iter().copied().collect(),
        writers: Vec::new(),
    };
    backend.put(ObjectKind::Gc, GC_STATE_NAME, &state.seal(repo.sealer()))?;
    let stored_packs: HashMap<String, u64> = backend
        .list(ObjectKind::Pack)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();

    // 3. Who runs now; mark points committed meanwhile.
    let live = backend.writers().live()?;
    let new_points: Vec<String> = repo
        .point_ids()?
        .into_iter()
        .filter(|p| !points_before.contains(p))
        .collect();
    report.points += mark(repo, &new_points, false, &mut marked)?;
    unreferenced.retain(|id| !marked.contains(id));
    report.blobs_live = index.blobs.keys().filter(|id| marked.contains(id)).count() as u64;
    report.blobs_unreferenced = unreferenced.len() as u64;

    // 4. What is safe to sweep: everything still unreferenced, but only when no backup
    //    runs. A running backup may have chosen to reuse a condemned blob before it read
    //    the list, or may have stored a new copy of one under the same id that it has
    //    indexed but not yet referenced; telling those apart would need more state than
    //    it is worth, so with backups running everything waits for the next run.
    let sweep: HashSet<ChunkId> = if live.is_empty() {
        unreferenced.clone()
    } else {
        report.waited_for = live.iter().map(|w| w.description.clone()).collect();
        HashSet::new()
    };

    // 5. Sweep.
    let by_pack = index.by_pack();
    if let Some(p) = progress {
        p.add_total(by_pack.len() as u64);
    }
    let mut keep = IndexFile::default();
    let mut to_delete: Vec<String> = Vec::new();
    let mut builders: HashMap<BlobKind, PackBuilder> = HashMap::new();
    let mut new_packs: Vec<IndexedPack> = Vec::new();
    let mut changed = false;
    for (pack, entries) in by_pack {
        if let Some(p) = progress {
            p.add_done(1);
        }
        let pack_id = index.packs[pack as usize];
        let name = hex::encode(pack_id);
        let size = stored_packs.get(&name).copied().unwrap_or(0);
        let (dead, live_entries): (Vec<PackEntry>, Vec<PackEntry>) =
            entries.into_iter().partition(|e| sweep.contains(&e.id));
        let live_bytes: u64 = live_entries.iter().map(|e| e.sealed_len as u64).sum();
        if live_entries.is_empty() {
            report.blobs_removed += dead.len() as u64;
            report.packs_deleted += 1;
            report.bytes_freed += size;
            to_delete.push(name);
            changed = true;
        } else if size > 0
            && (size - live_bytes.min(size)) as f64 > opts.repack_threshold * size as f64
        {
            let bytes = backend.get(ObjectKind::Pack, &name)?;
            for e in &live_entries {
                let sealed = bytes
                    .get(e.offset as usize..(e.offset + e.sealed_len) as usize)
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "pack {name} is shorter than its index says; run `tresor repo verify`"
                        ))
                    })?;
                let builder = builders.entry(e.kind).or_default();
                let meta = SealedBlob {
                    compression: e.compression,
                    raw_len: e.raw_len,
                    sealed_len: e.sealed_len,
                };
                builder.add(e.kind, e.id, meta, sealed);
                if builder.len() >= repo.config().pack_size as usize {
                    let full = std::mem::take(builder);
                    new_packs.push(store_pack(repo, full.finish(repo.sealer()))?);
                }
            }
            report.blobs_removed += dead.len() as u64;
            report.packs_repacked += 1;
            report.bytes_freed += size;
            to_delete.push(name);
            changed = true;
        } else {
            if !dead.is_empty() {
                // Dead blobs stay in the pack until it is worth rewriting; the index
                // stops listing them so nothing reuses them.
                report.blobs_removed += dead.len() as u64;
                changed = true;
            }
            keep.packs.push(IndexedPack {
                pack_id,
                entries: live_entries,
            });
        }
    }
    for (_, builder) in builders {
        if !builder.is_empty() {
            new_packs.push(store_pack(repo, builder.finish(repo.sealer()))?);
        }
    }
    report.packs_written = new_packs.len() as u64;
    for p in &new_packs {
        report.bytes_freed = report
            .bytes_freed
            .saturating_sub(p.entries.iter().map(|e| e.sealed_len as u64).sum());
    }
    keep.packs.extend(new_packs);
    // A stored pack that the new index will not list (deleted, repacked, or dropped
    // from the index) must hold nothing a point needs that a listed pack does not,
    // by the packs' own trailers (authenticated, and checked when they were stored).
    // The index grouped the blobs; this guards against an index that put a blob
    // somewhere it is not. Checked before anything is written or deleted.
    let mut kept = KeptCopies::new(repo, &keep, &stored_packs);
    let listed: HashSet<String> = keep.packs.iter().map(IndexedPack::name).collect();
    let mut unlisted: Vec<(&String, &u64)> = stored_packs
        .iter()
        .filter(|(name, _)| !listed.contains(*name))
        .collect();
    unlisted.sort();
    let mut needed = Vec::new();
    let mut unreadable = HashSet::new();
    for (name, size) in unlisted {
        match removable(repo, name, *size, &marked, &mut kept) {
            Verdict::Removable => {}
            Verdict::Needed(why) => needed.push(format!("pack {name}: {why}")),
            Verdict::Unreadable(why) => {
                tracing::warn!(pack = %name, "pack kept: {why}");
                report.packs_kept.push(format!("pack {name}: {why}"));
                unreadable.insert(name.clone());
            }
        }
    }
    if !needed.is_empty() {
        return Err(Error::Invalid(format!(
            "garbage collection stopped without removing anything: {}. Run `tresor repo verify` and `tresor repo rebuild-index`",
            needed.join("; ")
        )));
    }
    // A pack whose trailer cannot be read is never deleted: what it holds is unknown.
    to_delete.retain(|name| !unreadable.contains(name));
    if changed {
        // New index first, then drop the old index files, then the packs they listed.
        write_index_files(repo, &keep.packs)?;
        for f in &index.files {
            backend.delete(ObjectKind::Index, f)?;
        }
        for name in &to_delete {
            backend.delete(ObjectKind::Pack, name)?;
        }
    }

    // Packs no index lists: only while nobody writes (a running backup's packs are
    // unindexed until it finishes). Compared with an index read after the check.
    if live.is_empty() {
        report.leftovers_removed = backend.remove_leftovers()?;
        repo.reload_index()?;
        let indexed: HashSet<String> = repo.index().packs.iter().map(hex::encode).collect();
        let deleted: HashSet<&String> = to_delete.iter().collect();
        for (name, size) in &stored_packs {
            // Checked above: nothing in these is needed by a point.
            if !indexed.contains(name) && !deleted.contains(name) && !unreadable.contains(name) {
                backend.delete(ObjectKind::Pack, name)?;
                report.unindexed_packs_removed += 1;
                report.bytes_freed += size;
            }
        }
    }

    // What stays condemned, and which writers must end before it may go.
    let remaining: Vec<ChunkId> = unreferenced
        .iter()
        .filter(|id| !sweep.contains(id))
        .copied()
        .collect();
    if remaining.is_empty() {
        backend.delete(ObjectKind::Gc, GC_STATE_NAME)?;
    } else {
        let state = GcState {
            version: 1,
            created: Timestamp::now(),
            condemned: remaining,
            writers: live.iter().map(|w| w.id.clone()).collect(),
        };
        backend.put(ObjectKind::Gc, GC_STATE_NAME, &state.seal(repo.sealer()))?;
    }
    repo.reload_index()?;
    Ok(report)
}

/// Where the blobs that stay are, confirmed against the packs' own trailers.
struct KeptCopies<'a> {
    repo: &'a Repository,
    /// Blob id -> the pack the new index lists it in.
    at: HashMap<ChunkId, [u8; 32]>,
    stored: &'a HashMap<String, u64>,
    /// Trailers read so far: pack name -> its blobs (empty when unreadable).
    trailers: HashMap<String, HashSet<ChunkId>>,
}

impl<'a> KeptCopies<'a> {
    fn new(repo: &'a Repository, keep: &IndexFile, stored: &'a HashMap<String, u64>) -> Self {
        let at = keep
            .packs
            .iter()
            .flat_map(|p| p.entries.iter().map(move |e| (e.id, p.pack_id)))
            .collect();
        KeptCopies {
            repo,
            at,
            stored,
            trailers: HashMap::new(),
        }
    }

    /// Whether a pack that stays holds `id`, by its own trailer.
    fn holds(&mut self, id: &ChunkId) -> bool {
        let Some(pack) = self.at.get(id) else {
            return false;
        };
        let name = hex::encode(pack);
        if !self.trailers.contains_key(&name) {
            // Packs this run wrote are not in the listing made before it.
            let entries = match self.stored.get(&name) {
                Some(&size) => crate::intake::pack_entries_of_size(self.repo, &name, size),
                None => crate::intake::stored_pack_entries(self.repo, &name),
            };
            let ids = entries
                .map(|es| es.into_iter().map(|e| e.id).collect())
                .unwrap_or_default();
            self.trailers.insert(name.clone(), ids);
        }
        self.trailers[&name].contains(id)
    }
}

/// What a pack's own trailer says about deleting it.
enum Verdict {
    Removable,
    /// It holds a blob a point needs that no pack that stays holds.
    Needed(String),
    /// Its trailer cannot be read: what it holds is unknown.
    Unreadable(String),
}

/// Whether a pack may be deleted: its own trailer opens, and every blob in it that a
/// point needs is also in a pack that stays.
fn removable(
    repo: &Repository,
    name: &str,
    size: u64,
    marked: &HashSet<ChunkId>,
    kept: &mut KeptCopies,
) -> Verdict {
    let entries = match crate::intake::pack_entries_of_size(repo, name, size) {
        Ok(e) => e,
        Err(e) => return Verdict::Unreadable(format!("its trailer cannot be read ({e})")),
    };
    match entries
        .iter()
        .find(|e| marked.contains(&e.id) && !kept.holds(&e.id))
    {
        Some(e) => Verdict::Needed(format!(
            "it holds blob {}, which a recovery point needs and no pack that stays holds",
            e.id
        )),
        None => Verdict::Removable,
    }
}

#[derive(Debug, Default)]
pub struct RebuildReport {
    pub packs: u64,
    pub blobs: u64,
    pub unreadable: Vec<String>,
}

/// Rebuilds the index from the packs' own trailers, then replaces the old index files.
pub fn rebuild_index(repo: &Repository) -> Result<RebuildReport> {
    let backend = repo.backend();
    let _lock = backend
        .writers()
        .try_exclusive("gc")?
        .ok_or(Error::GcBusy)?;
    let old: Vec<String> = backend
        .list(ObjectKind::Index)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    let mut report = RebuildReport::default();
    let mut packs = Vec::new();
    for info in backend.list(ObjectKind::Pack)? {
        let bytes = backend.get(ObjectKind::Pack, &info.name)?;
        match read_pack_entries(repo.sealer(), &bytes) {
            Ok(entries) => {
                let mut pack_id = [0u8; 32];
                if hex::decode_to_slice(&info.name, &mut pack_id).is_err() {
                    report
                        .unreadable
                        .push(format!("{}: not a pack name", info.name));
                    continue;
                }
                report.packs += 1;
                report.blobs += entries.len() as u64;
                packs.push(IndexedPack { pack_id, entries });
            }
            Err(e) => report.unreadable.push(format!("{}: {e}", info.name)),
        }
    }
    let written: HashSet<String> = write_index_files(repo, &packs)?.into_iter().collect();
    for name in old.iter().filter(|n| !written.contains(*n)) {
        backend.delete(ObjectKind::Index, name)?;
    }
    repo.reload_index()?;
    Ok(report)
}
