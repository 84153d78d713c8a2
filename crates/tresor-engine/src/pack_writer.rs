//! Collects sealed blobs into packs, stores the packs, then the index files that list them.
//!
//! Data chunks and tree nodes go to separate packs, so that reading a disk's tree (to
//! restore, verify or mark for garbage collection) touches few, small packs.
//!
//! Storing a pack (write and fsync) takes long enough that doing it inline would stall
//! the whole pipeline, so finished packs go to [`UPLOADERS`] uploader threads through a
//! short queue; at most `UPLOADERS + QUEUED_PACKS` packs wait in memory.
//!
//! Order of writes: a pack is stored (durably) before any index file lists it, and an
//! index file is stored before the manifest that needs it. An index file is written
//! every [`PACKS_PER_INDEX`] stored packs so that memory stays bounded on huge disks.

use std::thread::ScopedJoinHandle;

use crossbeam_channel::{bounded, Sender};
use parking_lot::Mutex;
use tresor_format::blob::{BlobKind, SealedBlob};
use tresor_format::index::{IndexFile, IndexedPack};
use tresor_format::pack::{FinishedPack, PackBuilder};
use tresor_format::ChunkId;
use tresor_storage::ObjectKind;

use crate::{Repository, Result};

/// Packs listed by one index file at most.
const PACKS_PER_INDEX: usize = 64;
/// Threads storing packs at once.
const UPLOADERS: usize = 2;
/// Finished packs waiting for an uploader.
const QUEUED_PACKS: usize = 1;

/// A sealed blob on its way to a pack.
pub(crate) struct SealedMsg {
    pub kind: BlobKind,
    pub id: ChunkId,
    pub meta: SealedBlob,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PackStats {
    pub packs: u64,
    pub bytes: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
}

/// Packs stored but not yet listed by an index file.
struct Stored<'r> {
    repo: &'r Repository,
    pending: Mutex<IndexFile>,
}

/// Stores a finished pack durably; returns what an index file must list for it.
pub(crate) fn store_pack(repo: &Repository, pack: FinishedPack) -> Result<IndexedPack> {
    repo.backend()
        .put(ObjectKind::Pack, &pack.name, &pack.bytes)?;
    let mut pack_id = [0u8; 32];
    hex::decode_to_slice(&pack.name, &mut pack_id).expect("pack names are 64 hex digits");
    Ok(IndexedPack {
        pack_id,
        entries: pack.entries,
    })
}

/// Writes index files listing `packs`, [`PACKS_PER_INDEX`] to a file; returns their names.
pub(crate) fn write_index_files(repo: &Repository, packs: &[IndexedPack]) -> Result<Vec<String>> {
    packs
        .chunks(PACKS_PER_INDEX)
        .map(|chunk| {
            repo.new_index_file_name(&IndexFile {
                packs: chunk.to_vec(),
            })
        })
        .collect()
}

impl Stored<'_> {
    fn add(&self, pack: FinishedPack) -> Result<()> {
        let stored = store_pack(self.repo, pack)?;
        let full = {
            let mut pending = self.pending.lock();
            pending.packs.push(stored);
            (pending.packs.len() >= PACKS_PER_INDEX).then(|| std::mem::take(&mut *pending))
        };
        if let Some(file) = full {
            self.repo.new_index_file_name(&file)?;
        }
        Ok(())
    }

    fn flush_index(&self) -> Result<()> {
        let file = std::mem::take(&mut *self.pending.lock());
        if !file.packs.is_empty() {
            self.repo.new_index_file_name(&file)?;
        }
        Ok(())
    }
}

/// Runs a pack writer for the duration of `body`, which sends it sealed blobs through
/// the given sender. Returns what `body` returned and the writer's statistics, once
/// every pack and index file is stored.
pub(crate) fn with_pack_writer<T>(
    repo: &Repository,
    body: impl FnOnce(Sender<SealedMsg>) -> Result<T>,
) -> Result<(T, PackStats)> {
    let stored = Stored {
        repo,
        pending: Mutex::new(IndexFile::default()),
    };
    let (blob_tx, blob_rx) = bounded::<SealedMsg>(64);
    let (pack_tx, pack_rx) = bounded::<FinishedPack>(QUEUED_PACKS);
    std::thread::scope(|scope| {
        let uploaders: Vec<ScopedJoinHandle<Result<()>>> = (0..UPLOADERS)
            .map(|_| {
                let pack_rx = pack_rx.clone();
                let stored = &stored;
                scope.spawn(move || {
                    for pack in pack_rx {
                        stored.add(pack)?;
                    }
                    Ok(())
                })
            })
            .collect();
        drop(pack_rx);
        let builder = scope.spawn(move || -> Result<PackStats> {
            let mut writer = PackWriter {
                repo,
                data: PackBuilder::new(),
                tree: PackBuilder::new(),
                stats: PackStats::default(),
                out: pack_tx,
            };
            for msg in blob_rx {
                writer.add(msg)?;
            }
            writer.flush(BlobKind::Data)?;
            writer.flush(BlobKind::Tree)?;
            Ok(writer.stats)
        });
        let result = body(blob_tx);
        let stats = builder.join().expect("pack builder thread panicked");
        let mut upload_result = Ok(());
        for u in uploaders {
            if let Err(e) = u.join().expect("uploader thread panicked") {
                upload_result = Err(e);
            }
        }
        // The body's own error first: the writer's are usually its consequence.
        let value = result?;
        let stats = stats?;
        upload_result?;
        stored.flush_index()?;
        Ok((value, stats))
    })
}

struct PackWriter<'r> {
    repo: &'r Repository,
    data: PackBuilder,
    tree: PackBuilder,
    stats: PackStats,
    out: Sender<FinishedPack>,
}

impl PackWriter<'_> {
    fn add(&mut self, msg: SealedMsg) -> Result<()> {
        let limit = self.repo.config().pack_size as usize;
        match msg.kind {
            BlobKind::Data => self.stats.data_blobs += 1,
            BlobKind::Tree => self.stats.tree_blobs += 1,
        }
        self.stats.bytes += msg.bytes.len() as u64;
        let builder = match msg.kind {
            BlobKind::Data => &mut self.data,
            BlobKind::Tree => &mut self.tree,
        };
        builder.add(msg.kind, msg.id, msg.meta, &msg.bytes);
        if builder.len() >= limit {
            self.flush(msg.kind)?;
        }
        Ok(())
    }

    fn flush(&mut self, kind: BlobKind) -> Result<()> {
        let builder = match kind {
            BlobKind::Data => std::mem::take(&mut self.data),
            BlobKind::Tree => std::mem::take(&mut self.tree),
        };
        if builder.is_empty() {
            return Ok(());
        }
        let pack = builder.finish(self.repo.sealer());
        self.stats.packs += 1;
        if self.out.send(pack).is_err() {
            return Err(crate::Error::Invalid("the pack uploaders stopped".into()));
        }
        Ok(())
    }
}
