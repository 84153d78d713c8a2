//! Writing a file through `O_DIRECT` where the file system allows it, and through the
//! page cache where it does not.
//!
//! Data that is fsynced at once gains nothing from the page cache, and on many virtual
//! machines allocating cache pages for it costs more CPU than the rest of the write.
//! `O_DIRECT` wants buffers, offsets and lengths aligned to the logical block size, so
//! the aligned part of a write is copied into an aligned staging buffer and written
//! directly; an unaligned tail goes through the page cache.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Alignment direct writes keep for buffers, offsets and lengths: 4 KiB covers the
/// logical block size of every common device.
pub const DIRECT_ALIGN: usize = 4096;
/// Most bytes staged and written directly at once.
pub const DIRECT_PIECE: usize = 4 << 20;

/// A file written with `O_DIRECT` where the file system allows it.
///
/// It holds two handles on one file: the one given (for unaligned writes and as the
/// fallback) and the same path opened again with `O_DIRECT`. Where that open fails
/// (tmpfs), or a direct write is refused with `EINVAL` (alignment stricter than 4 KiB,
/// FUSE), writes go through the page cache; after a refusal, all later ones do.
/// Positioned writes through `&self`, so several threads may write at once.
#[derive(Debug)]
pub struct DirectFile {
    direct: Option<File>,
    buffered: File,
    refused: AtomicBool,
}

impl DirectFile {
    /// `buffered` is `path` opened for writing; `path` is opened a second time with
    /// `O_DIRECT`.
    pub fn open(path: &Path, buffered: File) -> DirectFile {
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok();
        DirectFile {
            direct,
            buffered,
            refused: AtomicBool::new(false),
        }
    }

    /// Writes all of `data` at `offset`. When `offset` is aligned, the aligned part of
    /// `data` is written directly, in pieces of at most [`DIRECT_PIECE`] bytes copied
    /// into `staging` (grown as needed and left for the next call, so a caller writing
    /// often keeps one per thread); the unaligned tail, or everything at an unaligned
    /// offset, goes through the page cache.
    pub fn write_all_at(&self, data: &[u8], offset: u64, staging: &mut Vec<u8>) -> io::Result<()> {
        let aligned_len = data.len() / DIRECT_ALIGN * DIRECT_ALIGN;
        let direct = match &self.direct {
            Some(d) if aligned_len > 0 && offset.is_multiple_of(DIRECT_ALIGN as u64) => d,
            _ => return self.buffered.write_all_at(data, offset),
        };
        if self.refused.load(Ordering::Relaxed) {
            return self.buffered.write_all_at(data, offset);
        }
        let want = aligned_len.min(DIRECT_PIECE) + DIRECT_ALIGN;
        if staging.len() < want {
            staging.resize(want, 0);
        }
        let start = staging.as_ptr().align_offset(DIRECT_ALIGN);
        for (i, piece) in data[..aligned_len].chunks(DIRECT_PIECE).enumerate() {
            let buf = &mut staging[start..start + piece.len()];
            buf.copy_from_slice(piece);
            match direct.write_all_at(buf, offset + (i * DIRECT_PIECE) as u64) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.refused.store(true, Ordering::Relaxed);
                    return self.buffered.write_all_at(data, offset);
                }
                Err(e) => return Err(e),
            }
        }
        self.buffered
            .write_all_at(&data[aligned_len..], offset + aligned_len as u64)
    }

    /// Makes everything written durable (the handles share one file, so syncing one
    /// syncs both).
    pub fn sync_all(&self) -> io::Result<()> {
        self.buffered.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_unaligned_and_tail_writes_land_where_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let out = DirectFile::open(&path, f);
        let mut staging = Vec::new();
        let a: Vec<u8> = (0..DIRECT_PIECE + 3 * DIRECT_ALIGN + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        out.write_all_at(&a, 0, &mut staging).unwrap();
        let b = vec![7u8; 100];
        out.write_all_at(&b, a.len() as u64, &mut staging).unwrap();
        out.sync_all().unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), a.len() + b.len());
        assert_eq!(&back[..a.len()], &a[..]);
        assert_eq!(&back[a.len()..], &b[..]);
        assert!(staging.len() <= DIRECT_PIECE + DIRECT_ALIGN);
    }
}
