//! Disk trees: the map from a disk's regions to chunk ids.
//!
//! A disk of `n` chunks is described by a tree of fan-out `F` (recorded per disk in the
//! manifest). A leaf (level 0) lists the ids of `F` consecutive chunks; a node of level
//! `L` lists the ids of `F` nodes of level `L - 1`, so it covers `F^(L+1)` chunks. The
//! root's level is `depth - 1`. The last node of a level may list fewer than `F`.
//! [`ChunkId::ZERO`] stands for an all-zero chunk, or a subtree that is all zeros.
//!
//! Nodes are stored as blobs of kind [`crate::blob::BlobKind::Tree`], named by the
//! keyed hash of their plaintext like data. Because a node's id depends only on what it
//! covers, an incremental recovery point rewrites only the nodes on the paths to changed
//! chunks and shares every other node with its parent: metadata grows with the change,
//! not with the disk.
//!
//! Plaintext of a node:
//! ```text
//! TREE_MAGIC_V1 (8) | level u8 | reserved (3) = 0 | count u32 LE | count × id (32)
//! ```

use crate::magic::TREE_MAGIC_V1;
use crate::{id_at, malformed, need, u32_at, ChunkId, Error, Result};

pub const TREE_HEADER_LEN: usize = 16;
/// Largest tree fan-out a repository (and a manifest's disk) may use.
pub const MAX_FANOUT: u32 = 4096;
/// Largest encoded tree node: a node lists at most [`MAX_FANOUT`] children.
pub const MAX_TREE_NODE_LEN: usize = TREE_HEADER_LEN + 32 * MAX_FANOUT as usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    pub level: u8,
    pub children: Vec<ChunkId>,
}

impl TreeNode {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TREE_HEADER_LEN + 32 * self.children.len());
        out.extend_from_slice(&TREE_MAGIC_V1);
        out.push(self.level);
        out.extend_from_slice(&[0u8; 3]);
        out.extend_from_slice(&(self.children.len() as u32).to_le_bytes());
        for c in &self.children {
            out.extend_from_slice(c.as_bytes());
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<TreeNode> {
        const WHAT: &str = "tree node";
        need(WHAT, b, TREE_HEADER_LEN)?;
        if b[..8] != TREE_MAGIC_V1 {
            return Err(Error::BadMagic { what: WHAT });
        }
        if b[9..12] != [0, 0, 0] {
            return Err(malformed(WHAT, "reserved bytes are not zero"));
        }
        let count = u32_at(b, 12) as usize;
        // No writer produces more children than the largest fan-out; checked before
        // the length so that the arithmetic below stays small.
        if count > MAX_FANOUT as usize {
            return Err(malformed(
                WHAT,
                format!("{count} children, more than the largest fan-out {MAX_FANOUT}"),
            ));
        }
        if b.len() != TREE_HEADER_LEN + 32 * count {
            return Err(malformed(
                WHAT,
                format!("{} bytes for {count} children", b.len()),
            ));
        }
        let children = (0..count)
            .map(|i| id_at(b, TREE_HEADER_LEN + 32 * i))
            .collect();
        Ok(TreeNode {
            level: b[8],
            children,
        })
    }

    /// Whether every child is [`ChunkId::ZERO`]: such a node is never stored, its parent
    /// records ZERO instead.
    pub fn is_all_zero(&self) -> bool {
        self.children.iter().all(ChunkId::is_zero)
    }
}

/// The shape of a disk's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeShape {
    pub chunks: u64,
    pub fanout: u32,
    pub depth: u8,
}

impl TreeShape {
    /// The smallest depth ≥ 1 whose root covers `chunks`.
    pub fn for_chunks(chunks: u64, fanout: u32) -> TreeShape {
        let mut depth = 1u8;
        let mut covered = fanout as u64;
        while covered < chunks {
            covered = covered.saturating_mul(fanout as u64);
            depth += 1;
        }
        TreeShape {
            chunks,
            fanout,
            depth,
        }
    }

    /// Chunks covered by one node of `level`.
    pub fn span(&self, level: u8) -> u64 {
        (self.fanout as u64).saturating_pow(level as u32 + 1)
    }

    /// Refuses shapes that no writer produces (a hostile or damaged manifest).
    pub fn check(&self) -> Result<()> {
        if !(2..=MAX_FANOUT).contains(&self.fanout) {
            return Err(malformed(
                "disk",
                format!("tree fan-out {} outside 2..=4096", self.fanout),
            ));
        }
        if self.depth != TreeShape::for_chunks(self.chunks, self.fanout).depth {
            return Err(malformed(
                "disk",
                format!(
                    "tree depth {} does not fit {} chunks",
                    self.depth, self.chunks
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_node_claiming_more_children_than_the_largest_fanout_is_refused() {
        let mut b = TreeNode {
            level: 0,
            children: vec![],
        }
        .encode();
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = TreeNode::decode(&b).unwrap_err();
        assert!(e.to_string().contains("largest fan-out"), "{e}");
        let full = TreeNode {
            level: 1,
            children: vec![ChunkId([9; 32]); MAX_FANOUT as usize],
        }
        .encode();
        assert_eq!(full.len(), MAX_TREE_NODE_LEN);
        assert_eq!(TreeNode::decode(&full).unwrap().children.len(), 4096);
    }
}
