//! Which backups are running right now.
//!
//! Garbage collection must never remove a blob that a running backup has decided to
//! reuse, nor a pack that a running backup has written but not yet indexed. Backups
//! therefore register themselves for their whole run, and garbage collection looks at
//! who is registered.
//!
//! The local registry ties a registration to the life of the process by an exclusive
//! `flock` on the registration file: the kernel drops the lock when the process ends,
//! however it ends (SIGKILL included), so a registration can never turn stale and no
//! timeout guesses whether its owner is still alive.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;

use rand::RngCore;

use crate::{Error, Result};

/// What a running writer says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterInfo {
    /// Unique id of the registration.
    pub id: String,
    /// Free text: what runs ("backup of vm1 by pid 1234 on host").
    pub description: String,
}

/// Registers running writers and tells which are alive.
pub trait WriterRegistry: Send + Sync {
    /// Registers a writer for as long as the guard lives.
    fn register(&self, description: &str) -> Result<WriterGuard>;

    /// The writers alive now. Registrations whose owner is gone are removed on the way.
    fn live(&self) -> Result<Vec<WriterInfo>>;

    /// Takes the registry-wide exclusive lock named `name` (one garbage collection at a
    /// time), or returns `None` when someone else holds it.
    fn try_exclusive(&self, name: &str) -> Result<Option<WriterGuard>>;
}

/// Holds a registration or lock; dropping it releases it.
pub struct WriterGuard {
    pub info: WriterInfo,
    file: Option<File>,
    path: Option<PathBuf>,
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl WriterGuard {
    /// A guard of a registry kept elsewhere (a remote one): dropping it runs `release`.
    pub fn with_release(info: WriterInfo, release: impl FnOnce() + Send + 'static) -> WriterGuard {
        WriterGuard {
            info,
            file: None,
            path: None,
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        // Remove the file before unlocking so that a lister never sees an unlocked file of
        // a writer that finished cleanly. (A crashed writer's file is removed by `live`.)
        if let Some(path) = self.path.take() {
            let _ = fs::remove_file(path);
        }
        self.file.take();
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// The registry of a [`crate::LocalDir`]: files under `writers/`, each held by `flock`.
pub struct LocalWriterRegistry {
    dir: PathBuf,
}

impl LocalWriterRegistry {
    pub fn new(dir: PathBuf) -> LocalWriterRegistry {
        LocalWriterRegistry { dir }
    }

    fn io(&self, what: &str, source: io::Error) -> Error {
        Error::Io {
            backend: format!("writer registry {}", self.dir.display()),
            what: what.to_string(),
            source,
        }
    }
}

/// Tries to take an exclusive flock without waiting. `Ok(false)` when another holds it.
fn try_flock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a file descriptor we own; it has no memory effects.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

impl WriterRegistry for LocalWriterRegistry {
    fn register(&self, description: &str) -> Result<WriterGuard> {
        fs::create_dir_all(&self.dir).map_err(|e| self.io("create writers/", e))?;
        let mut raw = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut raw);
        let id = hex::encode(raw);
        // Lock a temp file first and rename it into place, so that no lister can ever see
        // the registration unlocked and take it for a dead writer's.
        let tmp = self.dir.join(format!(".tmp-{id}"));
        let path = self.dir.join(&id);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| self.io("create registration", e))?;
        if !try_flock(&file).map_err(|e| self.io("lock registration", e))? {
            return Err(self.io(
                "lock registration",
                io::Error::other("locked by another process"),
            ));
        }
        file.write_all(description.as_bytes())
            .and_then(|_| file.sync_all())
            .and_then(|_| fs::rename(&tmp, &path))
            .and_then(|_| File::open(&self.dir)?.sync_all())
            .map_err(|e| self.io("write registration", e))?;
        Ok(WriterGuard {
            info: WriterInfo {
                id,
                description: description.to_string(),
            },
            file: Some(file),
            path: Some(path),
            release: None,
        })
    }

    fn live(&self) -> Result<Vec<WriterInfo>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(self.io("list writers/", e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list writers/", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("lock-") {
                continue;
            }
            if name.starts_with(".tmp-") {
                // A registration being written holds its lock already; an unlocked one
                // was left by a writer killed while registering.
                if let Ok(file) = File::open(entry.path()) {
                    if try_flock(&file).unwrap_or(false) {
                        let _ = fs::remove_file(entry.path());
                    }
                }
                continue;
            }
            if name.starts_with('.') {
                continue;
            }
            let mut file = match File::open(entry.path()) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("open registration", e)),
            };
            if try_flock(&file).map_err(|e| self.io("probe registration", e))? {
                // Nobody holds it: its writer is gone. Remove it while we hold the lock.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let mut description = String::new();
            let _ = file.read_to_string(&mut description);
            out.push(WriterInfo {
                id: name,
                description,
            });
        }
        Ok(out)
    }

    fn try_exclusive(&self, name: &str) -> Result<Option<WriterGuard>> {
        crate::check_name(name)?;
        fs::create_dir_all(&self.dir).map_err(|e| self.io("create writers/", e))?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.dir.join(format!("lock-{name}")))
            .map_err(|e| self.io("open lock", e))?;
        if !try_flock(&file).map_err(|e| self.io("take lock", e))? {
            return Ok(None);
        }
        Ok(Some(WriterGuard {
            info: WriterInfo {
                id: format!("lock-{name}"),
                description: String::new(),
            },
            file: Some(file),
            path: None,
            release: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_lives_with_its_guard() {
        let dir = tempfile::tempdir().unwrap();
        let reg = LocalWriterRegistry::new(dir.path().join("writers"));
        assert!(reg.live().unwrap().is_empty());
        let g = reg.register("backup of vm1").unwrap();
        let live = reg.live().unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].description, "backup of vm1");
        drop(g);
        assert!(reg.live().unwrap().is_empty());
    }

    #[test]
    fn unlocked_leftover_counts_as_dead() {
        let dir = tempfile::tempdir().unwrap();
        let reg = LocalWriterRegistry::new(dir.path().to_path_buf());
        fs::write(dir.path().join("0123abcd"), "crashed writer").unwrap();
        assert!(reg.live().unwrap().is_empty());
        assert!(!dir.path().join("0123abcd").exists());
    }

    #[test]
    fn half_written_registration_of_a_dead_writer_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let reg = LocalWriterRegistry::new(dir.path().to_path_buf());
        fs::write(dir.path().join(".tmp-0123"), "killed while registering").unwrap();
        assert!(reg.live().unwrap().is_empty());
        assert!(!dir.path().join(".tmp-0123").exists());
    }

    #[test]
    fn exclusive_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let reg = LocalWriterRegistry::new(dir.path().to_path_buf());
        let a = reg.try_exclusive("gc").unwrap();
        assert!(a.is_some());
        assert!(reg.try_exclusive("gc").unwrap().is_none());
        drop(a);
        assert!(reg.try_exclusive("gc").unwrap().is_some());
    }
}
