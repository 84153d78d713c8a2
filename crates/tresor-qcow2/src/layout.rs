//! The qcow2 version 3 format as this writer lays it out: every constant of the
//! format (never change one: QEMU reads them), the header's byte layout, the
//! tables' encoding and the sizes of the L1 and refcount structures. Pure: no I/O.

/// `log2` of the default cluster size (64 KiB, QEMU's default).
pub const DEFAULT_CLUSTER_BITS: u32 = 16;
/// Smallest supported `cluster_bits` (4 KiB clusters).
pub const MIN_CLUSTER_BITS: u32 = 12;
/// Largest supported `cluster_bits` (2 MiB clusters, QEMU's implementation limit).
pub const MAX_CLUSTER_BITS: u32 = 21;

/// The qcow2 magic, `"QFI\xfb"`.
pub(crate) const QCOW_MAGIC: u32 = 0x5146_49fb;
/// L1/L2 entry flag: the referenced cluster has refcount exactly one.
pub(crate) const QCOW_OFLAG_COPIED: u64 = 1 << 63;
/// Incompatible feature bit written by `create` and cleared by `finish`. It is
/// reserved in the specification, so QEMU refuses to open an unfinished image.
pub(crate) const INCOMPLETE_MARKER: u64 = 1 << 63;
/// Length of the header structure we write: 104 bytes of version 3 fields, the
/// one-byte `compression_type` and 7 bytes of padding.
pub(crate) const HEADER_LENGTH: u32 = 112;
/// `refcount_order` 4: 16-bit refcounts.
pub(crate) const REFCOUNT_ORDER: u32 = 4;
/// Bytes per refcount entry.
pub(crate) const REFCOUNT_BYTES: u64 = 2;
/// QEMU's limit on the L1 table size in bytes (`QCOW_MAX_L1_SIZE`).
pub(crate) const MAX_L1_BYTES: u64 = 32 << 20;
/// QEMU's limit on the refcount table size in bytes (`QCOW_MAX_REFTABLE_SIZE`).
pub(crate) const MAX_REFTABLE_BYTES: u64 = 8 << 20;
/// Host offsets in L1/L2 entries are limited to bits 9..=55 (64 PiB).
pub(crate) const MAX_HOST_OFFSET: u64 = 1 << 56;
/// qcow2 (in QEMU) describes disk sizes in 512-byte sectors.
pub(crate) const SECTOR_SIZE: u64 = 512;

/// Number of L1 entries needed for a disk of `virtual_size` bytes: each L1 entry
/// points to an L2 table of `cluster_size / 8` entries.
pub(crate) fn l1_entries(virtual_size: u64, cluster_bits: u32) -> u64 {
    let clusters = virtual_size.div_ceil(1 << cluster_bits);
    clusters.div_ceil(1 << (cluster_bits - 3))
}

/// Sizes of the refcount structures, see [`refcount_layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefcountLayout {
    /// Clusters of the refcount table.
    pub(crate) table_clusters: u64,
    /// Number of refcount blocks.
    pub(crate) blocks: u64,
    /// Clusters in the whole file, including the refcount structures.
    pub(crate) total_clusters: u64,
}

/// Computes how many refcount blocks and refcount table clusters are needed when
/// `used_clusters` clusters precede them and they themselves must be counted too.
///
/// A refcount block (16-bit entries) covers `cluster_size / 2` clusters, a refcount
/// table cluster points to `cluster_size / 8` blocks. Adding blocks can require more
/// blocks and table clusters, so iterate until the sizes no longer change; the sizes
/// only grow and are bounded, so this converges (in at most a few rounds).
pub(crate) fn refcount_layout(used_clusters: u64, cluster_bits: u32) -> RefcountLayout {
    let cluster_size = 1u64 << cluster_bits;
    let per_block = cluster_size / REFCOUNT_BYTES;
    let per_table_cluster = cluster_size / 8;
    let (mut table_clusters, mut blocks) = (0u64, 0u64);
    loop {
        let total = used_clusters + table_clusters + blocks;
        let new_blocks = total.div_ceil(per_block);
        let new_table_clusters = new_blocks.div_ceil(per_table_cluster);
        if (new_blocks, new_table_clusters) == (blocks, table_clusters) {
            return RefcountLayout {
                table_clusters,
                blocks,
                total_clusters: total,
            };
        }
        (blocks, table_clusters) = (new_blocks, new_table_clusters);
    }
}

/// Header fields that vary between images.
pub(crate) struct Header {
    pub(crate) cluster_bits: u32,
    pub(crate) virtual_size: u64,
    pub(crate) l1_size: u32,
    pub(crate) l1_table_offset: u64,
    pub(crate) refcount_table_offset: u64,
    pub(crate) refcount_table_clusters: u32,
    pub(crate) incompatible_features: u64,
}

/// Encodes the version 3 header (112 bytes) followed by the end-of-extensions
/// marker, zero-padded to a whole cluster.
pub(crate) fn encode_header(h: &Header) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 << h.cluster_bits);
    b.extend_from_slice(&QCOW_MAGIC.to_be_bytes()); // 0: magic
    b.extend_from_slice(&3u32.to_be_bytes()); // 4: version
    b.extend_from_slice(&0u64.to_be_bytes()); // 8: backing_file_offset
    b.extend_from_slice(&0u32.to_be_bytes()); // 16: backing_file_size
    b.extend_from_slice(&h.cluster_bits.to_be_bytes()); // 20: cluster_bits
    b.extend_from_slice(&h.virtual_size.to_be_bytes()); // 24: size
    b.extend_from_slice(&0u32.to_be_bytes()); // 32: crypt_method
    b.extend_from_slice(&h.l1_size.to_be_bytes()); // 36: l1_size
    b.extend_from_slice(&h.l1_table_offset.to_be_bytes()); // 40: l1_table_offset
    b.extend_from_slice(&h.refcount_table_offset.to_be_bytes()); // 48: refcount_table_offset
    b.extend_from_slice(&h.refcount_table_clusters.to_be_bytes()); // 56: refcount_table_clusters
    b.extend_from_slice(&0u32.to_be_bytes()); // 60: nb_snapshots
    b.extend_from_slice(&0u64.to_be_bytes()); // 64: snapshots_offset
    b.extend_from_slice(&h.incompatible_features.to_be_bytes()); // 72: incompatible_features
    b.extend_from_slice(&0u64.to_be_bytes()); // 80: compatible_features
    b.extend_from_slice(&0u64.to_be_bytes()); // 88: autoclear_features
    b.extend_from_slice(&REFCOUNT_ORDER.to_be_bytes()); // 96: refcount_order
    b.extend_from_slice(&HEADER_LENGTH.to_be_bytes()); // 100: header_length
    b.push(0); // 104: compression_type (zlib; no compressed clusters are written)
    b.extend_from_slice(&[0; 7]); // 105: padding to a multiple of 8
    debug_assert_eq!(b.len(), HEADER_LENGTH as usize);
    b.extend_from_slice(&[0; 8]); // end of header extensions: type 0, length 0
    b.resize(1 << h.cluster_bits, 0);
    b
}

/// Encodes big-endian 64-bit entries, zero-padded to `len` bytes.
pub(crate) fn encode_u64_table(entries: &[u64], len: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(len as usize);
    for e in entries {
        b.extend_from_slice(&e.to_be_bytes());
    }
    b.resize(len as usize, 0);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcount_layout_counts_itself() {
        for bits in MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS {
            let per_block = (1u64 << bits) / 2;
            let per_table = (1u64 << bits) / 8;
            for used in [
                1,
                2,
                100,
                per_block - 2,
                per_block - 1,
                per_block,
                per_block + 1,
            ]
            .into_iter()
            .chain([per_block * per_table - 3, per_block * per_table * 3 + 7])
            {
                let l = refcount_layout(used, bits);
                assert_eq!(l.total_clusters, used + l.table_clusters + l.blocks);
                assert!(l.blocks * per_block >= l.total_clusters, "{bits} {used}");
                assert!(l.table_clusters * per_table >= l.blocks, "{bits} {used}");
                // Minimal: one block fewer would not suffice.
                assert!((l.blocks - 1) * per_block < l.total_clusters);
                assert!((l.table_clusters - 1) * per_table < l.blocks);
            }
        }
    }

    #[test]
    fn refcount_layout_boundary() {
        // 4 KiB clusters: a block covers 2048 clusters. 2046 used + 1 table + 1 block fit.
        let l = refcount_layout(2046, 12);
        assert_eq!((l.table_clusters, l.blocks, l.total_clusters), (1, 1, 2048));
        // One more used cluster needs a second block.
        let l = refcount_layout(2047, 12);
        assert_eq!((l.table_clusters, l.blocks, l.total_clusters), (1, 2, 2050));
    }

    #[test]
    fn header_layout() {
        let h = encode_header(&Header {
            cluster_bits: 16,
            virtual_size: 0x1234_5678_9000,
            l1_size: 7,
            l1_table_offset: 0x30000,
            refcount_table_offset: 0x40000,
            refcount_table_clusters: 1,
            incompatible_features: 0,
        });
        assert_eq!(h.len(), 65536);
        assert_eq!(&h[0..4], b"QFI\xfb");
        assert_eq!(&h[4..8], &3u32.to_be_bytes());
        assert_eq!(&h[20..24], &16u32.to_be_bytes());
        assert_eq!(&h[24..32], &0x1234_5678_9000u64.to_be_bytes());
        assert_eq!(&h[36..40], &7u32.to_be_bytes());
        assert_eq!(&h[40..48], &0x30000u64.to_be_bytes());
        assert_eq!(&h[48..56], &0x40000u64.to_be_bytes());
        assert_eq!(&h[56..60], &1u32.to_be_bytes());
        assert_eq!(&h[96..100], &4u32.to_be_bytes());
        assert_eq!(&h[100..104], &112u32.to_be_bytes());
        assert!(h[104..].iter().all(|&b| b == 0));
    }

    #[test]
    fn l1_size_rounds_up() {
        // 64 KiB clusters: one L2 table covers 8192 * 64 KiB = 512 MiB.
        assert_eq!(l1_entries(0, 16), 0);
        assert_eq!(l1_entries(512, 16), 1);
        assert_eq!(l1_entries(512 << 20, 16), 1);
        assert_eq!(l1_entries((512 << 20) + 512, 16), 2);
        assert_eq!(l1_entries(1 << 40, 16), 2048);
    }
}
