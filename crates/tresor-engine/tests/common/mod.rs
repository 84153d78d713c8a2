//! What the engine's integration tests share: a disk in memory, and a small
//! repository that opens fast.

use std::path::Path;
use std::sync::Arc;

use tresor_blocksource::{BlockSource, Extent, ExtentKind};
use tresor_engine::{InitOptions, KdfParams, LocalDir, Repository};

/// A new repository in `path` with `chunk` bytes per chunk, fan-out 4, 1 MiB packs
/// and the cheapest key derivation (tests open it often).
#[allow(dead_code)] // not every test binary uses it
pub fn small_repository(path: &Path, passphrase: &[u8], chunk: usize) -> Repository {
    let backend = Arc::new(LocalDir::create(path).unwrap());
    let opts = InitOptions {
        chunk_size: chunk as u32,
        tree_fanout: 4,
        pack_size: 1 << 20,
        kdf: KdfParams {
            m_cost: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        },
    };
    Repository::init(backend, passphrase, &opts).unwrap()
}

/// A disk in memory whose zero ranges are reported as extents, like holes of a file.
pub struct TestDisk {
    pub data: Vec<u8>,
    /// (offset, length) ranges reported as zero extents.
    pub holes: Vec<(u64, u64)>,
}

impl BlockSource for TestDisk {
    fn describe(&self) -> String {
        "test disk".into()
    }

    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn extents(&self, offset: u64, len: u64) -> tresor_blocksource::Result<Vec<Extent>> {
        let end = (offset + len).min(self.size());
        let mut out = Vec::new();
        let mut at = offset;
        while at < end {
            let hole = self.holes.iter().find(|(s, l)| *s <= at && at < s + l);
            let (kind, next) = match hole {
                Some((s, l)) => (ExtentKind::Zero, (s + l).min(end)),
                None => {
                    let next_hole = self
                        .holes
                        .iter()
                        .filter(|(s, _)| *s > at)
                        .map(|(s, _)| *s)
                        .min()
                        .unwrap_or(end);
                    (ExtentKind::Data, next_hole.min(end))
                }
            };
            out.push(Extent {
                offset: at,
                len: next - at,
                kind,
            });
            at = next;
        }
        Ok(out)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> tresor_blocksource::Result<()> {
        buf.copy_from_slice(&self.data[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
}
