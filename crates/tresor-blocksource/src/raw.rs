//! Raw disk images and block devices.
//!
//! A raw image is the disk byte for byte, so reading it needs nothing but `pread`.
//! Sparse raw images (and the holes a guest's TRIM punches into them) are found with
//! `lseek(SEEK_DATA)` / `lseek(SEEK_HOLE)`, so a backup can skip them without reading
//! gigabytes of zeros.

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use crate::{BlockSource, Error, Extent, ExtentKind, Result};

/// A raw disk image file or a block device, opened read-only.
///
/// Backups must never modify the disk they read, so the file is only ever opened for
/// reading. Reads use positioned I/O (`pread`), so one `RawFile` can be shared by
/// several reader threads without a shared cursor.
#[derive(Debug)]
pub struct RawFile {
    file: File,
    path: PathBuf,
    size: u64,
    block_device: bool,
}

/// What `lseek(SEEK_DATA / SEEK_HOLE)` told us about a position.
enum Seek {
    /// The resulting offset.
    At(u64),
    /// ENXIO: there is no data (SEEK_DATA) at or after the position, or the position
    /// is at or past the end of the file.
    Nothing,
    /// The file system cannot tell holes from data.
    Unsupported,
}

impl RawFile {
    /// Opens a raw image or block device read-only and determines its size.
    ///
    /// Anything else (directories, character devices, FIFOs, sockets) is refused with
    /// [`Error::NotADisk`], before it is opened: opening a FIFO would block forever.
    pub fn open(path: &Path) -> Result<RawFile> {
        let describe = || path.display().to_string();
        let open_err = |source| Error::Open {
            path: describe(),
            source,
        };

        // Check the type before opening (a FIFO would block in open) and again on the
        // open descriptor (the path may have been replaced in between).
        let before = std::fs::metadata(path).map_err(open_err)?;
        check_disk_type(&before, path)?;
        let file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        check_disk_type(&meta, path)?;

        let block_device = meta.file_type().is_block_device();
        let size = if block_device {
            block_device_size(&file).map_err(open_err)?
        } else {
            meta.len()
        };
        Ok(RawFile {
            file,
            path: path.to_path_buf(),
            size,
            block_device,
        })
    }

    /// The path this disk was opened from, for messages and for recording where a
    /// backup came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a block device rather than an image file. Block devices have no
    /// holes that can be queried, so all of a block device is reported as data.
    pub fn is_block_device(&self) -> bool {
        self.block_device
    }

    /// One `lseek` with `whence` (SEEK_DATA or SEEK_HOLE) from `pos`.
    ///
    /// The side effect on the descriptor's file position is harmless even with
    /// concurrent callers: the result is taken from the return value, and reads use
    /// `pread`, which ignores the file position.
    fn seek(&self, pos: u64, whence: libc::c_int) -> Result<Seek> {
        let Ok(off) = libc::off_t::try_from(pos) else {
            // Beyond what lseek can address, hence beyond the end of any file.
            return Ok(Seek::Nothing);
        };
        // SAFETY: lseek only takes integers; the descriptor is owned by `self.file`
        // and stays open for the duration of the call.
        let r = unsafe { libc::lseek(self.file.as_raw_fd(), off, whence) };
        if r >= 0 {
            // `r` is non-negative, so the conversion is lossless.
            return Ok(Seek::At(r as u64));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENXIO) => Ok(Seek::Nothing),
            Some(e) if e == libc::EINVAL || e == libc::EOPNOTSUPP || e == libc::ENOTSUP => {
                Ok(Seek::Unsupported)
            }
            _ => Err(Error::Read {
                what: format!("the holes of {}", self.describe()),
                offset: pos,
                source: err,
            }),
        }
    }

    /// The extents of a regular file in `offset .. end` (`end <= size`, `offset < end`).
    fn file_extents(&self, offset: u64, end: u64) -> Result<Vec<Extent>> {
        let mut out = Vec::new();
        let mut pos = offset;
        while pos < end {
            let data = match self.seek(pos, libc::SEEK_DATA)? {
                // Guard against a misbehaving file system going backwards.
                Seek::At(d) => d.max(pos),
                // No data after `pos`: the rest is a hole. (If the file shrank since it
                // was opened, reading the rest will fail rather than return zeros.)
                Seek::Nothing => {
                    push(&mut out, pos, end, ExtentKind::Zero);
                    break;
                }
                Seek::Unsupported => {
                    push(&mut out, pos, end, ExtentKind::Data);
                    break;
                }
            };
            if data >= end {
                push(&mut out, pos, end, ExtentKind::Zero);
                break;
            }
            push(&mut out, pos, data, ExtentKind::Zero);
            let hole = match self.seek(data, libc::SEEK_HOLE)? {
                Seek::At(h) if h > data => h.min(end),
                // No usable answer for where the data ends: calling the rest data is
                // always safe (it only costs reading it).
                _ => end,
            };
            push(&mut out, data, hole, ExtentKind::Data);
            pos = hole;
        }
        Ok(out)
    }
}

/// Appends `start .. end` of `kind`, merging with the previous extent if it is
/// adjacent and of the same kind. Empty ranges are dropped.
fn push(out: &mut Vec<Extent>, start: u64, end: u64, kind: ExtentKind) {
    if start >= end {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last.kind == kind && last.end() == start {
            last.len = end - last.offset;
            return;
        }
    }
    out.push(Extent {
        offset: start,
        len: end - start,
        kind,
    });
}

fn check_disk_type(meta: &Metadata, path: &Path) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_file() || ft.is_block_device() {
        Ok(())
    } else {
        Err(Error::NotADisk {
            path: path.display().to_string(),
        })
    }
}

/// The size of a block device: its length is not in its metadata (`st_size` is 0).
#[cfg(target_os = "linux")]
fn block_device_size(file: &File) -> io::Result<u64> {
    // BLKGETSIZE64 from <linux/fs.h>: _IOR(0x12, 114, size_t).
    const BLKGETSIZE64: libc::Ioctl = libc::_IOR::<libc::size_t>(0x12, 114);
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes exactly one u64 through the pointer, which points to
    // a live, properly aligned u64; the descriptor is owned by `file` and stays open.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// The size of a block device: its length is not in its metadata, but seeking to the
/// end reports it on the BSDs and macOS.
#[cfg(not(target_os = "linux"))]
fn block_device_size(file: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    // `Seek` is implemented for `&File`; the position is irrelevant as reads use pread.
    let mut f = file;
    f.seek(SeekFrom::End(0))
}

impl BlockSource for RawFile {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        if self.block_device {
            return Ok(vec![Extent {
                offset,
                len: end - offset,
                kind: ExtentKind::Data,
            }]);
        }
        self.file_extents(offset, end)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        match offset.checked_add(len) {
            Some(end) if end <= self.size => {}
            _ => {
                return Err(Error::OutOfRange {
                    what: self.describe(),
                    offset,
                    len,
                    size: self.size,
                })
            }
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| Error::Read {
                what: self.describe(),
                offset,
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    /// The largest allocation block we expect (ext4/xfs/tmpfs use 4 KiB; some file
    /// systems use up to 64 KiB). Data extents may be rounded out to it, no further.
    const MAX_BLOCK: u64 = 64 * KIB;

    /// A sparse file of `size` bytes with `writes` (offset, bytes) written into it.
    fn sparse(size: u64, writes: &[(u64, &[u8])]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(size).unwrap();
        for (off, bytes) in writes {
            f.as_file().write_all_at(bytes, *off).unwrap();
        }
        f.as_file().sync_all().unwrap();
        f
    }

    /// Checks the structural contract: exact coverage of the clamped range, in
    /// order, no gaps, no empty extents, adjacent extents of different kinds.
    fn check_cover(ext: &[Extent], offset: u64, len: u64, size: u64) {
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            assert!(ext.is_empty(), "{ext:?}");
            return;
        }
        assert!(!ext.is_empty());
        assert_eq!(ext[0].offset, offset, "{ext:?}");
        assert_eq!(ext.last().unwrap().end(), end, "{ext:?}");
        for e in ext {
            assert!(e.len > 0, "empty extent in {ext:?}");
        }
        for w in ext.windows(2) {
            assert_eq!(w[0].end(), w[1].offset, "gap or overlap in {ext:?}");
            assert_ne!(w[0].kind, w[1].kind, "unmerged extents in {ext:?}");
        }
    }

    fn kind_at(ext: &[Extent], pos: u64) -> ExtentKind {
        ext.iter()
            .find(|e| e.offset <= pos && pos < e.end())
            .unwrap()
            .kind
    }

    #[test]
    fn sparse_file_holes_and_data() {
        let size = 16 * MIB;
        let a = (MIB + 10, vec![0xAA; 100]);
        // Crosses a 4 KiB (and 64 KiB) boundary.
        let b = (8 * MIB - 100, vec![0xBB; 5000]);
        let f = sparse(size, &[(a.0, &a.1[..]), (b.0, &b.1[..])]);
        let raw = RawFile::open(f.path()).unwrap();
        assert_eq!(raw.size(), size);
        assert!(!raw.is_block_device());

        let ext = raw.extents(0, size).unwrap();
        check_cover(&ext, 0, size, size);
        // hole, data, hole, data, hole
        let kinds: Vec<_> = ext.iter().map(|e| e.kind).collect();
        use ExtentKind::*;
        assert_eq!(kinds, [Zero, Data, Zero, Data, Zero], "{ext:?}");

        for (data, (off, bytes)) in [ext[1], ext[3]].iter().zip([&a, &b]) {
            let w_end = off + bytes.len() as u64;
            // A superset of what was written, aligned to blocks, not much bigger.
            assert!(data.offset <= *off && data.end() >= w_end, "{data:?}");
            assert_eq!(data.offset % 4096, 0, "{data:?}");
            assert!(data.end() % 4096 == 0 || data.end() == size, "{data:?}");
            assert!(
                off - data.offset < MAX_BLOCK && data.end() - w_end < MAX_BLOCK,
                "{data:?}"
            );
        }

        // Every byte reported as zero reads as zero; written bytes read back.
        let mut buf = vec![0u8; size as usize];
        raw.read_at(0, &mut buf).unwrap();
        for e in ext.iter().filter(|e| e.kind == Zero) {
            assert!(
                buf[e.offset as usize..e.end() as usize]
                    .iter()
                    .all(|&x| x == 0),
                "{e:?}"
            );
        }
        assert_eq!(&buf[a.0 as usize..][..a.1.len()], &a.1[..]);
        assert_eq!(&buf[b.0 as usize..][..b.1.len()], &b.1[..]);
    }

    #[test]
    fn sub_ranges_agree_with_the_full_map() {
        let size = 4 * MIB + 123; // not block-aligned: the last block is partial
        let f = sparse(
            size,
            &[
                (0, &[1; 10][..]),
                (MIB, &[2; 3 * 4096][..]),
                (3 * MIB + 5, &[3; 7][..]),
                (size - 3, &[4; 3][..]),
            ],
        );
        let raw = RawFile::open(f.path()).unwrap();
        let full = raw.extents(0, u64::MAX).unwrap();
        check_cover(&full, 0, u64::MAX, size);
        assert_eq!(
            full.iter().filter(|e| e.kind == ExtentKind::Zero).count(),
            3,
            "{full:?}"
        );
        assert_eq!(full.first().unwrap().kind, ExtentKind::Data);
        assert_eq!(full.last().unwrap().kind, ExtentKind::Data);

        // Deterministic pseudo-random sub-ranges, including ones past the end.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..500 {
            let offset = next() % (size + 8192);
            let len = next() % (2 * MIB);
            let ext = raw.extents(offset, len).unwrap();
            check_cover(&ext, offset, len, size);
            for e in &ext {
                for pos in [e.offset, e.end() - 1, e.offset + e.len / 2] {
                    assert_eq!(kind_at(&full, pos), e.kind, "at {pos}: {ext:?} vs {full:?}");
                }
            }
        }
    }

    #[test]
    fn all_hole_all_data_and_empty_files() {
        let size = 2 * MIB;
        let f = sparse(size, &[]);
        let raw = RawFile::open(f.path()).unwrap();
        assert_eq!(
            raw.extents(0, size).unwrap(),
            [Extent {
                offset: 0,
                len: size,
                kind: ExtentKind::Zero
            }]
        );
        assert_eq!(
            raw.extents(100, 50).unwrap(),
            [Extent {
                offset: 100,
                len: 50,
                kind: ExtentKind::Zero
            }]
        );

        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&vec![7u8; 3 * 4096 + 5]).unwrap();
        f.as_file().sync_all().unwrap();
        let raw = RawFile::open(f.path()).unwrap();
        assert_eq!(
            raw.extents(0, u64::MAX).unwrap(),
            [Extent {
                offset: 0,
                len: 3 * 4096 + 5,
                kind: ExtentKind::Data
            }]
        );
        assert_eq!(
            raw.extents(4097, 10).unwrap(),
            [Extent {
                offset: 4097,
                len: 10,
                kind: ExtentKind::Data
            }]
        );
        assert!(raw.extents(3 * 4096 + 5, 10).unwrap().is_empty());
        assert!(raw.extents(10, 0).unwrap().is_empty());
        assert!(raw.extents(u64::MAX, u64::MAX).unwrap().is_empty());

        let f = tempfile::NamedTempFile::new().unwrap();
        let raw = RawFile::open(f.path()).unwrap();
        assert_eq!(raw.size(), 0);
        assert!(raw.extents(0, 100).unwrap().is_empty());
        raw.read_at(0, &mut []).unwrap();
        assert!(matches!(
            raw.read_at(0, &mut [0]),
            Err(Error::OutOfRange { .. })
        ));
    }

    /// The lseek walk alternates kinds by itself; merging matters when a file system
    /// stops answering mid-walk (data followed by "unsupported" data).
    #[test]
    fn push_merges_and_drops_empty() {
        use ExtentKind::*;
        let mut out = Vec::new();
        push(&mut out, 0, 10, Data);
        push(&mut out, 10, 10, Zero);
        push(&mut out, 10, 20, Data);
        push(&mut out, 20, 30, Zero);
        push(&mut out, 30, 35, Zero);
        push(&mut out, 35, 40, Data);
        assert_eq!(
            out,
            [
                Extent {
                    offset: 0,
                    len: 20,
                    kind: Data
                },
                Extent {
                    offset: 20,
                    len: 15,
                    kind: Zero
                },
                Extent {
                    offset: 35,
                    len: 5,
                    kind: Data
                },
            ]
        );
    }

    #[test]
    fn reads_and_out_of_range() {
        let size = 64 * KIB;
        let f = sparse(size, &[(1000, &b"hello"[..]), (size - 4, &b"tail"[..])]);
        let raw = RawFile::open(f.path()).unwrap();

        let mut buf = [0u8; 7];
        raw.read_at(999, &mut buf).unwrap();
        assert_eq!(&buf, b"\0hello\0");
        let mut buf = [0u8; 4];
        raw.read_at(size - 4, &mut buf).unwrap();
        assert_eq!(&buf, b"tail");
        raw.read_at(size, &mut []).unwrap();

        for (offset, len) in [(size - 3, 4usize), (size, 1), (size + 10, 1), (u64::MAX, 2)] {
            let mut buf = vec![0u8; len];
            match raw.read_at(offset, &mut buf) {
                Err(Error::OutOfRange {
                    what,
                    offset: o,
                    len: l,
                    size: s,
                }) => {
                    assert_eq!((o, l, s), (offset, len as u64, size));
                    assert_eq!(what, f.path().display().to_string());
                }
                other => panic!("read at {offset}+{len}: expected OutOfRange, got {other:?}"),
            }
        }
        let msg = raw.read_at(size - 3, &mut [0; 4]).unwrap_err().to_string();
        assert!(msg.contains("read past the end"), "{msg}");
    }

    #[test]
    fn parallel_reads_share_one_file() {
        let size = 4 * MIB;
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let f = sparse(size, &[(0, &data[..])]);
        let raw = RawFile::open(f.path()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (raw, data) = (&raw, &data);
                s.spawn(move || {
                    for i in 0..64u64 {
                        let off = (t * 64 + i) * 16 * KIB - t;
                        let mut buf = vec![0u8; 12345];
                        raw.read_at(off, &mut buf).unwrap();
                        assert_eq!(&buf[..], &data[off as usize..][..buf.len()]);
                        raw.extents(off, 100 * KIB).unwrap();
                    }
                });
            }
        });
    }

    #[test]
    fn open_errors_and_accessors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.img");
        match RawFile::open(&missing) {
            Err(Error::Open { path, source }) => {
                assert_eq!(path, missing.display().to_string());
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected Open error, got {other:?}"),
        }
        assert!(matches!(
            RawFile::open(dir.path()),
            Err(Error::NotADisk { .. })
        ));
        // A character device is not a disk either.
        assert!(matches!(
            RawFile::open(Path::new("/dev/null")),
            Err(Error::NotADisk { .. })
        ));

        let img = dir.path().join("disk.img");
        std::fs::write(&img, b"abc").unwrap();
        let raw = RawFile::open(&img).unwrap();
        assert_eq!(raw.path(), img);
        assert_eq!(raw.describe(), img.display().to_string());
        assert_eq!(raw.size(), 3);

        // Through the trait object, as the backup pipeline uses it.
        let src: &dyn BlockSource = &raw;
        let mut buf = [0u8; 3];
        src.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"abc");
    }

    /// Needs a readable block device, e.g. a loop device as root:
    /// `truncate -s 10M /tmp/d && losetup -f --show /tmp/d` then
    /// `TRESOR_TEST_BLOCK_DEVICE=/dev/loopN cargo test -p tresor-blocksource -- --ignored`.
    #[test]
    #[ignore = "needs TRESOR_TEST_BLOCK_DEVICE=/dev/... (a readable block device)"]
    fn block_device() {
        let dev = std::env::var("TRESOR_TEST_BLOCK_DEVICE")
            .expect("set TRESOR_TEST_BLOCK_DEVICE to a readable block device");
        let raw = RawFile::open(Path::new(&dev)).unwrap();
        assert!(raw.is_block_device());
        let size = raw.size();
        assert!(size > 0);
        assert_eq!(size % 512, 0, "size {size}");
        assert_eq!(
            raw.extents(0, u64::MAX).unwrap(),
            [Extent {
                offset: 0,
                len: size,
                kind: ExtentKind::Data
            }]
        );
        let mut buf = [0u8; 512];
        raw.read_at(size - 512, &mut buf).unwrap();
        assert!(matches!(
            raw.read_at(size - 511, &mut buf),
            Err(Error::OutOfRange { .. })
        ));
    }
}
