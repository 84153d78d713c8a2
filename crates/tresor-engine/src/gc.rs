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
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            repack_threshold: 0.2,
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

/// Marks every blob reachable from the given points.
fn mark(repo: &Repository, points: &[String], marked: &mut HashSet<ChunkId>) -> Result<u64> {
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
            Err(Error::PointNotFound { .. }) => continue, // forgotten meanwhile
            Err(e) => return Err(e),
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
    report.points = mark(
        repo,
        &points_before.iter().cloned().collect::<Vec<_>>(),
        &mut marked,
    )?;

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
    report.points += mark(repo, &new_points, &mut marked)?;
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
    if changed {
        keep.packs.extend(new_packs);
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
            if !indexed.contains(name) && !deleted.contains(name) {
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
