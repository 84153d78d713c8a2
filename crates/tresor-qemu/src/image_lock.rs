//! QEMU's image locks, taken by Tresor when it reads a raw image directly.
//!
//! QEMU (file-posix) announces what it does with an image by open-file-description
//! byte-range locks: it holds a shared lock on byte `100 + bit` for each permission it
//! has (bit 0 consistent read, bit 1 write, ...) and on byte `200 + bit` for each
//! permission it does not let others have. Before taking a permission it checks that
//! nobody refuses to share it, and before refusing one that nobody holds it. `qemu-nbd`
//! plays by these rules for us on qcow2; a raw image read with plain `pread` must take
//! the same locks itself, so that a VM started during an offline backup is refused
//! instead of writing under the reader (which would make the point lie).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::{Error, Result};

/// QEMU's lock byte offsets (block/file-posix.c: RAW_LOCK_PERM_BASE, RAW_LOCK_SHARED_BASE).
const PERM_BASE: i64 = 100;
const SHARED_BASE: i64 = 200;
/// BLK_PERM_CONSISTENT_READ and BLK_PERM_WRITE, as bit numbers.
const CONSISTENT_READ: i64 = 0;
const WRITE: i64 = 1;

/// Held while an image is read: "reading consistently; nobody may write".
/// Released when dropped (or when the process dies).
#[derive(Debug)]
pub struct ImageReadLock {
    _file: File,
}

impl ImageReadLock {
    /// Takes the locks on `image`, failing with [`Error::ImageLocked`] when a running
    /// QEMU holds the image for writing.
    pub fn acquire(image: &Path) -> Result<ImageReadLock> {
        let file = File::open(image).map_err(|e| Error::Tool {
            program: "open".into(),
            image: image.display().to_string(),
            message: e.to_string(),
        })?;
        let locked = || Error::ImageLocked {
            image: image.display().to_string(),
        };
        // Someone writing (holds the write permission) refuses us; so does someone
        // who does not share consistent reads.
        if conflicts(&file, PERM_BASE + WRITE)? || conflicts(&file, SHARED_BASE + CONSISTENT_READ)?
        {
            return Err(locked());
        }
        if !lock(&file, PERM_BASE + CONSISTENT_READ)? || !lock(&file, SHARED_BASE + WRITE)? {
            return Err(locked());
        }
        // A writer may have started between the test and the lock: look again.
        if conflicts(&file, PERM_BASE + WRITE)? {
            return Err(locked());
        }
        Ok(ImageReadLock { _file: file })
    }
}

fn flock_at(byte: i64, kind: libc::c_short) -> libc::flock {
    // SAFETY: `flock` is plain old data; all-zero is a valid value that we then fill.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte;
    fl.l_len = 1;
    fl
}

/// Whether another open file description holds a lock on `byte` that a write lock
/// would conflict with.
fn conflicts(file: &File, byte: i64) -> Result<bool> {
    let mut fl = flock_at(byte, libc::F_WRLCK as libc::c_short);
    // SAFETY: fcntl(F_OFD_GETLK) reads and writes the `flock` we pass, which lives
    // for the whole call; the fd is open for as long as `file` is borrowed.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if r == -1 {
        return Err(lock_error(std::io::Error::last_os_error()));
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Takes a shared lock on `byte`; `false` when another description holds it exclusively.
fn lock(file: &File, byte: i64) -> Result<bool> {
    let fl = flock_at(byte, libc::F_RDLCK as libc::c_short);
    // SAFETY: as above; F_OFD_SETLK only reads the `flock`.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == -1 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
            _ => Err(lock_error(e)),
        };
    }
    Ok(true)
}

fn lock_error(e: std::io::Error) -> Error {
    Error::Tool {
        program: "fcntl(F_OFD_SETLK)".into(),
        image: "image lock".into(),
        message: e.to_string(),
    }
}
