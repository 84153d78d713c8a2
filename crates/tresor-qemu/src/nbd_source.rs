//! An NBD export as a block source.

use std::io;
use std::path::Path;

use tresor_blocksource::{BlockSource, DirtyExtents, Extent, ExtentKind};
use tresor_nbd::{dirty_bitmap_context, NbdPool, BASE_ALLOCATION, STATE_DIRTY, STATE_ZERO};

use crate::{Error, Result};

/// Block status is asked for in pieces of this size, so one answer stays small.
const STATUS_WINDOW: u64 = 1 << 30;

/// A disk read over NBD: extents from `base:allocation`, parallel reads through a
/// pool of connections.
pub struct NbdSource {
    name: String,
    pool: NbdPool,
    bitmap_context: Option<String>,
}

impl NbdSource {
    /// Connects `connections` times to `export` on a Unix socket, negotiating
    /// `base:allocation` and, when `bitmap` is given, `qemu:dirty-bitmap:BITMAP`.
    pub fn connect_unix(
        name: &str,
        socket: &Path,
        export: &str,
        bitmap: Option<&str>,
        connections: usize,
    ) -> Result<NbdSource> {
        let bitmap_context = bitmap.map(dirty_bitmap_context);
        let mut contexts = vec![BASE_ALLOCATION];
        if let Some(c) = &bitmap_context {
            contexts.push(c);
        }
        let pool =
            NbdPool::connect_unix(socket, export, &contexts, connections).map_err(|source| {
                Error::Nbd {
                    export: name.to_string(),
                    source,
                }
            })?;
        Ok(NbdSource {
            name: name.to_string(),
            pool,
            bitmap_context,
        })
    }

    /// The extents the dirty bitmap marks, at its granularity.
    pub fn dirty_extents(&self) -> Result<DirtyExtents> {
        let context = self.bitmap_context.as_deref().ok_or_else(|| Error::Tool {
            program: "dirty bitmap".into(),
            image: self.name.clone(),
            message: "no bitmap was negotiated for this export".into(),
        })?;
        let mut dirty = DirtyExtents::new();
        let size = self.pool.size();
        let mut at = 0;
        while at < size {
            let len = STATUS_WINDOW.min(size - at);
            let mut pos = at;
            for (ext_len, flags) in self.status(context, at, len)? {
                if flags & STATE_DIRTY != 0 {
                    dirty.insert(pos, ext_len);
                }
                pos += ext_len;
            }
            at += len;
        }
        Ok(dirty)
    }

    fn status(&self, context: &str, offset: u64, len: u64) -> Result<Vec<(u64, u32)>> {
        self.pool
            .block_status(context, offset, len)
            .map_err(|source| Error::Nbd {
                export: self.name.clone(),
                source,
            })
    }
}

fn to_source_error(
    what: &str,
    offset: u64,
    e: impl std::fmt::Display,
) -> tresor_blocksource::Error {
    tresor_blocksource::Error::Read {
        what: what.to_string(),
        offset,
        source: io::Error::other(e.to_string()),
    }
}

impl BlockSource for NbdSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn size(&self) -> u64 {
        self.pool.size()
    }

    fn extents(&self, offset: u64, len: u64) -> tresor_blocksource::Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.size());
        let mut out: Vec<Extent> = Vec::new();
        if offset >= end {
            return Ok(out);
        }
        let status = self
            .status(BASE_ALLOCATION, offset, end - offset)
            .map_err(|e| to_source_error(&self.name, offset, e))?;
        let mut pos = offset;
        for (ext_len, flags) in status {
            // Only ZERO promises zeros; a HOLE alone may read from a backing file.
            let kind = if flags & STATE_ZERO != 0 {
                ExtentKind::Zero
            } else {
                ExtentKind::Data
            };
            let ext_len = ext_len.min(end - pos);
            match out.last_mut() {
                Some(last) if last.kind == kind && last.end() == pos => last.len += ext_len,
                _ => out.push(Extent {
                    offset: pos,
                    len: ext_len,
                    kind,
                }),
            }
            pos += ext_len;
            if pos >= end {
                break;
            }
        }
        if pos < end {
            // The server answered for less than asked; the rest is unknown, so data.
            out.push(Extent {
                offset: pos,
                len: end - pos,
                kind: ExtentKind::Data,
            });
        }
        Ok(out)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> tresor_blocksource::Result<()> {
        self.pool
            .read_at(offset, buf)
            .map_err(|e| to_source_error(&self.name, offset, e))
    }
}
