//! Building and reading disk trees (see `tresor_format::tree` for the layout).
//!
//! Items are numbered by *item level*: item level 0 is a chunk; item level `i ≥ 1` is a
//! tree node of tree level `i - 1`, which covers `F^i` chunks. A node of tree level `L`
//! lists items of item level `L`. The root is the one node of tree level `depth - 1`.

use std::collections::HashMap;
use std::sync::Arc;

use tresor_format::tree::{TreeNode, TreeShape};
use tresor_format::ChunkId;

use crate::{Repository, Result};

/// Chunks covered by one item of `item_level`.
pub(crate) fn item_span(shape: &TreeShape, item_level: u8) -> u64 {
    (shape.fanout as u64).saturating_pow(item_level as u32)
}

/// Number of items of `item_level` a disk has.
pub(crate) fn item_count(shape: &TreeShape, item_level: u8) -> u64 {
    shape.chunks.div_ceil(item_span(shape, item_level))
}

/// Assembles a tree from items pushed in disk order.
///
/// An item of level `i > 0` (a whole subtree, reused from a parent or all zero) may be
/// pushed only where a node of level `i - 1` starts: the planner guarantees that.
pub(crate) struct TreeBuilder {
    shape: TreeShape,
    levels: Vec<Vec<ChunkId>>,
}

impl TreeBuilder {
    pub fn new(shape: TreeShape) -> TreeBuilder {
        TreeBuilder {
            shape,
            levels: vec![Vec::new(); shape.depth as usize],
        }
    }

    /// Adds an item; `store` turns a full node of the given tree level into its id.
    pub fn push(
        &mut self,
        item_level: u8,
        id: ChunkId,
        store: &mut impl FnMut(u8, Vec<ChunkId>) -> Result<ChunkId>,
    ) -> Result<()> {
        debug_assert!(self.levels[..item_level as usize].iter().all(Vec::is_empty));
        let mut level = item_level as usize;
        self.levels[level].push(id);
        while level + 1 < self.levels.len()
            && self.levels[level].len() == self.shape.fanout as usize
        {
            let children = std::mem::take(&mut self.levels[level]);
            let node = store(level as u8, children)?;
            level += 1;
            self.levels[level].push(node);
        }
        Ok(())
    }

    /// Closes the partial nodes at the end of the disk and returns the root.
    pub fn finish(
        mut self,
        store: &mut impl FnMut(u8, Vec<ChunkId>) -> Result<ChunkId>,
    ) -> Result<ChunkId> {
        let top = self.levels.len() - 1;
        for level in 0..top {
            if !self.levels[level].is_empty() {
                let children = std::mem::take(&mut self.levels[level]);
                let node = store(level as u8, children)?;
                self.levels[level + 1].push(node);
            }
        }
        let children = std::mem::take(&mut self.levels[top]);
        if children.is_empty() {
            return Ok(ChunkId::ZERO);
        }
        store(top as u8, children)
    }
}

/// Reads items of a stored tree, caching the nodes on the way.
pub(crate) struct TreeReader<'r> {
    repo: &'r Repository,
    root: ChunkId,
    shape: TreeShape,
    cache: HashMap<ChunkId, Arc<TreeNode>>,
}

/// Nodes kept by a [`TreeReader`]: enough for every path of a deep tree with room to
/// spare, a few MiB at most.
const NODE_CACHE: usize = 1024;

impl<'r> TreeReader<'r> {
    pub fn new(repo: &'r Repository, root: ChunkId, shape: TreeShape) -> TreeReader<'r> {
        TreeReader {
            repo,
            root,
            shape,
            cache: HashMap::new(),
        }
    }

    pub fn node(&mut self, id: &ChunkId) -> Result<Arc<TreeNode>> {
        if let Some(n) = self.cache.get(id) {
            return Ok(n.clone());
        }
        let node = Arc::new(self.repo.read_tree_node(id)?);
        if self.cache.len() >= NODE_CACHE {
            self.cache.clear();
        }
        self.cache.insert(*id, node.clone());
        Ok(node)
    }

    /// The id of item `k` of `item_level` (ZERO when that region is all zeros).
    pub fn item(&mut self, item_level: u8, k: u64) -> Result<ChunkId> {
        let depth = self.shape.depth;
        if item_level >= depth {
            return Ok(self.root);
        }
        let fanout = self.shape.fanout as u64;
        let mut current = self.root;
        let mut level = depth - 1; // tree level of `current`
        let mut index = 0u64; // index of `current` among nodes of its level
        loop {
            if current.is_zero() {
                return Ok(ChunkId::ZERO);
            }
            let node = self.node(&current)?;
            if node.level != level {
                return Err(crate::Error::Invalid(format!(
                    "tree node {current} has level {} where {level} was expected",
                    node.level
                )));
            }
            // The ancestor of the target among the items of item level `level`.
            let ancestor = k / fanout.pow((level - item_level) as u32);
            let slot = ancestor - index * fanout;
            let child = *node.children.get(slot as usize).ok_or_else(|| {
                crate::Error::Invalid(format!(
                    "tree node {current} has no child {slot}: the tree does not cover the disk"
                ))
            })?;
            if level == item_level {
                return Ok(child);
            }
            current = child;
            index = ancestor;
            level -= 1;
        }
    }
}

/// Calls `visit(chunk_index, id)` for every chunk of a tree in order, skipping zero
/// subtrees without reading them (`zero(first_chunk, count)` is told instead).
pub(crate) fn walk_chunks(
    repo: &Repository,
    root: ChunkId,
    shape: TreeShape,
    visit: &mut dyn FnMut(u64, ChunkId) -> Result<()>,
    zero: &mut dyn FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    fn go(
        repo: &Repository,
        shape: &TreeShape,
        id: ChunkId,
        tree_level: u8,
        first_chunk: u64,
        visit: &mut dyn FnMut(u64, ChunkId) -> Result<()>,
        zero: &mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Result<()> {
        let span = item_span(shape, tree_level + 1);
        if id.is_zero() {
            let count = span.min(shape.chunks.saturating_sub(first_chunk));
            return zero(first_chunk, count);
        }
        let node = repo.read_tree_node(&id)?;
        if node.level != tree_level {
            return Err(crate::Error::Invalid(format!(
                "tree node {id} has level {} where {tree_level} was expected",
                node.level
            )));
        }
        let child_span = item_span(shape, tree_level);
        let expected = span.min(shape.chunks - first_chunk).div_ceil(child_span);
        if node.children.len() as u64 != expected {
            return Err(crate::Error::Invalid(format!(
                "tree node {id} lists {} children where the disk needs {expected}",
                node.children.len()
            )));
        }
        for (slot, child) in node.children.iter().enumerate() {
            let start = first_chunk + slot as u64 * child_span;
            if tree_level == 0 {
                if child.is_zero() {
                    zero(start, 1)?;
                } else {
                    visit(start, *child)?;
                }
            } else {
                go(repo, shape, *child, tree_level - 1, start, visit, zero)?;
            }
        }
        Ok(())
    }
    if shape.chunks == 0 {
        return Ok(());
    }
    go(repo, &shape, root, shape.depth - 1, 0, visit, zero)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tree in memory and checks its nodes' shapes.
    fn build(chunks: u64, fanout: u32, ids: &[ChunkId]) -> (ChunkId, Vec<(u8, Vec<ChunkId>)>) {
        let shape = TreeShape::for_chunks(chunks, fanout);
        let mut nodes = Vec::new();
        let mut store = |level: u8, children: Vec<ChunkId>| -> Result<ChunkId> {
            let mut id = [0u8; 32];
            id[0] = level + 1;
            id[1..9].copy_from_slice(&(nodes.len() as u64).to_le_bytes());
            nodes.push((level, children));
            Ok(ChunkId(id))
        };
        let mut b = TreeBuilder::new(shape);
        for id in ids {
            b.push(0, *id, &mut store).unwrap();
        }
        let root = b.finish(&mut store).unwrap();
        (root, nodes)
    }

    fn chunk(i: u64) -> ChunkId {
        let mut id = [0xffu8; 32];
        id[..8].copy_from_slice(&i.to_le_bytes());
        ChunkId(id)
    }

    #[test]
    fn shapes() {
        for (chunks, fanout, expect_nodes) in [
            (1u64, 4u32, 1usize),
            (4, 4, 1),
            (5, 4, 3),
            (16, 4, 5),
            (17, 4, 8),
        ] {
            let ids: Vec<_> = (0..chunks).map(chunk).collect();
            let (_, nodes) = build(chunks, fanout, &ids);
            assert_eq!(
                nodes.len(),
                expect_nodes,
                "{chunks} chunks, fan-out {fanout}"
            );
            let shape = TreeShape::for_chunks(chunks, fanout);
            let root = nodes.last().unwrap();
            assert_eq!(root.0, shape.depth - 1);
            let leaves: Vec<ChunkId> = nodes
                .iter()
                .filter(|n| n.0 == 0)
                .flat_map(|n| n.1.clone())
                .collect();
            assert_eq!(leaves, ids);
        }
    }

    #[test]
    fn spans() {
        let shape = TreeShape::for_chunks(100, 4);
        assert_eq!(shape.depth, 4);
        assert_eq!(item_count(&shape, 0), 100);
        assert_eq!(item_count(&shape, 1), 25);
        assert_eq!(item_count(&shape, 2), 7);
        assert_eq!(item_count(&shape, 3), 2);
    }
}
