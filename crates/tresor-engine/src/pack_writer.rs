//! Collects sealed blobs into packs, stores the packs, then the index files that list them.
//!
//! Data chunks and tree nodes go to separate packs, so that reading a disk's tree (to
//! restore, verify or mark for garbage collection) touches few, small packs.
//!
//! Order of writes: a pack is stored (durably) before any index file lists it, and an
//! index file is stored before the manifest that needs it. An index file is written
//! every [`PACKS_PER_INDEX`] packs so that memory stays bounded on huge disks.

use tresor_format::blob::{BlobKind, SealedBlob};
use tresor_format::index::{IndexFile, IndexedPack};
use tresor_format::pack::PackBuilder;
use tresor_format::ChunkId;
use tresor_storage::ObjectKind;

use crate::{Repository, Result};

/// Packs listed by one index file at most.
const PACKS_PER_INDEX: usize = 64;

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

pub(crate) struct PackWriter<'r> {
    repo: &'r Repository,
    data: PackBuilder,
    tree: PackBuilder,
    pending: IndexFile,
    pub stats: PackStats,
}

impl<'r> PackWriter<'r> {
    pub fn new(repo: &'r Repository) -> PackWriter<'r> {
        PackWriter {
            repo,
            data: PackBuilder::new(),
            tree: PackBuilder::new(),
            pending: IndexFile::default(),
            stats: PackStats::default(),
        }
    }

    pub fn add(&mut self, msg: SealedMsg) -> Result<()> {
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
        self.repo
            .backend()
            .put(ObjectKind::Pack, &pack.name, &pack.bytes)?;
        self.stats.packs += 1;
        let mut pack_id = [0u8; 32];
        hex::decode_to_slice(&pack.name, &mut pack_id).expect("pack names are 64 hex digits");
        self.pending.packs.push(IndexedPack {
            pack_id,
            entries: pack.entries,
        });
        if self.pending.packs.len() >= PACKS_PER_INDEX {
            self.write_index()?;
        }
        Ok(())
    }

    fn write_index(&mut self) -> Result<()> {
        if self.pending.packs.is_empty() {
            return Ok(());
        }
        let file = std::mem::take(&mut self.pending);
        self.repo.new_index_file_name(&file)?;
        Ok(())
    }

    /// Stores the last packs and the index file listing them. After this returns, every
    /// blob added is durable and findable: a manifest may reference it.
    pub fn finish(mut self) -> Result<PackStats> {
        self.flush(BlobKind::Data)?;
        self.flush(BlobKind::Tree)?;
        self.write_index()?;
        Ok(self.stats)
    }
}
