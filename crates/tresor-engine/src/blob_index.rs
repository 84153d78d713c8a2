//! The in-memory blob index: where every stored blob is.
//!
//! Built at open from the index files. Keyed by full 32-byte ids: a shorter key would
//! make a hash collision silently reuse the wrong data, which a backup system must not
//! risk. Memory is about 80 bytes per stored blob (≈ 1.3 GiB per 1 TiB of unique data
//! at 64 KiB chunks); see ARCHITECTURE.md on what bounds it.

use std::collections::HashMap;

use tresor_format::blob::{BlobKind, Compression};
use tresor_format::index::IndexFile;
use tresor_format::pack::PackEntry;
use tresor_format::ChunkId;

/// Where one blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Index into [`BlobIndex::packs`].
    pub pack: u32,
    pub kind: BlobKind,
    pub compression: Compression,
    pub offset: u32,
    pub sealed_len: u32,
    pub raw_len: u32,
}

impl BlobLocation {
    pub fn entry(&self, id: ChunkId) -> PackEntry {
        PackEntry {
            kind: self.kind,
            compression: self.compression,
            offset: self.offset,
            sealed_len: self.sealed_len,
            raw_len: self.raw_len,
            id,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct BlobIndex {
    /// Pack ids (raw BLAKE3 hashes), referenced by position.
    pub packs: Vec<[u8; 32]>,
    pack_pos: HashMap<[u8; 32], u32>,
    pub blobs: HashMap<ChunkId, BlobLocation>,
    /// Names of the index files this was loaded from.
    pub files: Vec<String>,
}

impl BlobIndex {
    pub fn pack_name(&self, loc: &BlobLocation) -> String {
        hex::encode(self.packs[loc.pack as usize])
    }

    pub fn get(&self, id: &ChunkId) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    pub fn contains(&self, id: &ChunkId) -> bool {
        self.blobs.contains_key(id)
    }

    fn pack_slot(&mut self, pack_id: [u8; 32]) -> u32 {
        if let Some(&p) = self.pack_pos.get(&pack_id) {
            return p;
        }
        let p = self.packs.len() as u32;
        self.packs.push(pack_id);
        self.pack_pos.insert(pack_id, p);
        p
    }

    /// Adds every entry of one index file.
    pub fn add_file(&mut self, name: &str, file: &IndexFile) {
        for pack in &file.packs {
            self.add_pack(pack.pack_id, &pack.entries);
        }
        self.files.push(name.to_string());
    }

    pub fn add_pack(&mut self, pack_id: [u8; 32], entries: &[PackEntry]) {
        let p = self.pack_slot(pack_id);
        for e in entries {
            self.blobs.insert(
                e.id,
                BlobLocation {
                    pack: p,
                    kind: e.kind,
                    compression: e.compression,
                    offset: e.offset,
                    sealed_len: e.sealed_len,
                    raw_len: e.raw_len,
                },
            );
        }
    }

    /// The entries of every pack, grouped by pack.
    pub fn by_pack(&self) -> HashMap<u32, Vec<PackEntry>> {
        let mut out: HashMap<u32, Vec<PackEntry>> = HashMap::new();
        for (id, loc) in &self.blobs {
            out.entry(loc.pack).or_default().push(loc.entry(*id));
        }
        out
    }
}
