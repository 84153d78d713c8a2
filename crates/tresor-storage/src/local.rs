//! A repository in a local directory.
//!
//! Layout: `config`, `keys/NAME`, `data/XX/NAME` (XX = the first two characters of the
//! name, so no folder holds millions of files), `index/NAME`, `points/NAME`, `gc/NAME`,
//! and `writers/` for the [`LocalWriterRegistry`].
//!
//! Writes go to a temp file `.tmp-*` in the destination folder, are fsynced, renamed
//! into place, and the folder is fsynced: after a crash an object is either complete or
//! absent. Left-over temp files are ignored by `list`; [`LocalDir::remove_temp_files`]
//! removes them (garbage collection calls it while no backup runs).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::RngCore;

use crate::direct::DirectFile;
use crate::{
    check_name, Backend, Error, LocalWriterRegistry, ObjectInfo, ObjectKind, Result, WriterRegistry,
};

/// How many pack files stay open for range reads. Restores read thousands of blobs from
/// the same few packs; reopening each time would cost a syscall round trip per blob.
const OPEN_FILE_CACHE: usize = 128;

pub struct LocalDir {
    root: PathBuf,
    writers: LocalWriterRegistry,
    open_files: Mutex<HashMap<(ObjectKind, String), Arc<File>>>,
}

impl LocalDir {
    /// Creates the folder layout (the folder may exist but must be empty of a repository).
    pub fn create(root: &Path) -> Result<LocalDir> {
        let backend = LocalDir::at(root);
        fs::create_dir_all(root).map_err(|e| backend.io("create folder", e))?;
        for kind in ObjectKind::ALL {
            if kind != ObjectKind::Config {
                fs::create_dir_all(root.join(kind.dir()))
                    .map_err(|e| backend.io(&format!("create {}/", kind.dir()), e))?;
            }
        }
        fs::create_dir_all(root.join("writers")).map_err(|e| backend.io("create writers/", e))?;
        sync_dir(root).map_err(|e| backend.io("fsync folder", e))?;
        Ok(backend)
    }

    /// Opens an existing folder.
    pub fn open(root: &Path) -> Result<LocalDir> {
        let backend = LocalDir::at(root);
        if !root.join("writers").is_dir() {
            fs::create_dir_all(root.join("writers"))
                .map_err(|e| backend.io("create writers/", e))?;
        }
        Ok(backend)
    }

    fn at(root: &Path) -> LocalDir {
        LocalDir {
            root: root.to_path_buf(),
            writers: LocalWriterRegistry::new(root.join("writers")),
            open_files: Mutex::new(HashMap::new()),
        }
    }

    /// Removes temp files that a crashed writer left. Only safe while no writer runs:
    /// a running writer's temp file looks the same.
    pub fn remove_temp_files(&self) -> Result<u64> {
        let mut removed = 0;
        let mut folders = vec![self.root.clone()];
        for kind in ObjectKind::ALL {
            folders.push(self.root.join(kind.dir()));
        }
        if let Ok(subs) = fs::read_dir(self.root.join(ObjectKind::Pack.dir())) {
            folders.extend(subs.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        for folder in folders {
            let Ok(entries) = fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    fs::remove_file(entry.path()).map_err(|e| self.io("remove temp file", e))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn io(&self, what: &str, source: io::Error) -> Error {
        Error::Io {
            backend: self.describe(),
            what: what.to_string(),
            source,
        }
    }

    fn folder(&self, kind: ObjectKind, name: &str) -> PathBuf {
        match kind {
            ObjectKind::Config => self.root.clone(),
            ObjectKind::Pack => self.root.join(kind.dir()).join(&name[..name.len().min(2)]),
            _ => self.root.join(kind.dir()),
        }
    }

    fn path(&self, kind: ObjectKind, name: &str) -> PathBuf {
        self.folder(kind, name).join(name)
    }

    fn not_found(&self, kind: ObjectKind, name: &str) -> Error {
        Error::NotFound {
            backend: self.describe(),
            kind,
            name: name.to_string(),
        }
    }

    fn open_for_read(&self, kind: ObjectKind, name: &str) -> Result<Arc<File>> {
        let key = (kind, name.to_string());
        if let Some(f) = self.open_files.lock().expect("cache lock").get(&key) {
            return Ok(f.clone());
        }
        let file = match File::open(self.path(kind, name)) {
            Ok(f) => Arc::new(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.not_found(kind, name)),
            Err(e) => return Err(self.io(&format!("open {kind:?} {name}"), e)),
        };
        let mut cache = self.open_files.lock().expect("cache lock");
        if cache.len() >= OPEN_FILE_CACHE {
            cache.clear();
        }
        cache.insert(key, file.clone());
        Ok(file)
    }

    fn forget_open(&self, kind: ObjectKind, name: &str) {
        self.open_files
            .lock()
            .expect("cache lock")
            .remove(&(kind, name.to_string()));
    }

    fn list_folder(&self, dir: &Path, out: &mut Vec<ObjectInfo>) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io(&format!("list {}", dir.display()), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || check_name(&name).is_err() {
                continue;
            }
            let meta = entry.metadata().map_err(|e| self.io("stat", e))?;
            if meta.is_file() {
                out.push(ObjectInfo {
                    name,
                    size: meta.len(),
                });
            }
        }
        Ok(())
    }
}

impl Backend for LocalDir {
    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<()> {
        check_name(name)?;
        let folder = self.folder(kind, name);
        if kind == ObjectKind::Pack {
            fs::create_dir_all(&folder).map_err(|e| self.io("create pack folder", e))?;
        }
        let mut suffix = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut suffix);
        let tmp = folder.join(format!(".tmp-{}", hex::encode(suffix)));
        let result = (|| -> io::Result<()> {
            write_durably(&tmp, data)?;
            fs::rename(&tmp, folder.join(name))?;
            sync_dir(&folder)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(self.io(&format!("write {kind:?} {name}"), e));
        }
        self.forget_open(kind, name);
        Ok(())
    }

    fn get(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        check_name(name)?;
        match fs::read(self.path(kind, name)) {
            Ok(data) => Ok(data),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.not_found(kind, name)),
            Err(e) => Err(self.io(&format!("read {kind:?} {name}"), e)),
        }
    }

    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64> {
        check_name(name)?;
        match fs::metadata(self.path(kind, name)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.not_found(kind, name)),
            Err(e) => Err(self.io(&format!("stat {kind:?} {name}"), e)),
        }
    }

    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_name(name)?;
        let file = self.open_for_read(kind, name)?;
        match file.read_exact_at(buf, offset) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Error::ShortRead {
                backend: self.describe(),
                kind,
                name: name.to_string(),
                offset,
                len: buf.len(),
                size: file.metadata().map(|m| m.len()).unwrap_or(0),
            }),
            Err(e) => Err(self.io(&format!("read {kind:?} {name} at {offset}"), e)),
        }
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        match kind {
            ObjectKind::Config => {
                if let Ok(meta) = fs::metadata(self.root.join("config")) {
                    out.push(ObjectInfo {
                        name: "config".into(),
                        size: meta.len(),
                    });
                }
            }
            ObjectKind::Pack => {
                let base = self.root.join(kind.dir());
                let subdirs = match fs::read_dir(&base) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(self.io("list data/", e)),
                };
                for sub in subdirs {
                    let sub = sub.map_err(|e| self.io("list data/", e))?;
                    if sub.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        self.list_folder(&sub.path(), &mut out)?;
                    }
                }
            }
            _ => self.list_folder(&self.root.join(kind.dir()), &mut out)?,
        }
        Ok(out)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        check_name(name)?;
        self.forget_open(kind, name);
        match fs::remove_file(self.path(kind, name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io(&format!("delete {kind:?} {name}"), e)),
        }
        sync_dir(&self.folder(kind, name)).map_err(|e| self.io("fsync folder", e))
    }

    fn writers(&self) -> &dyn WriterRegistry {
        &self.writers
    }

    fn remove_leftovers(&self) -> Result<u64> {
        self.remove_temp_files()
    }
}

/// Objects at least this large are written with `O_DIRECT`.
const DIRECT_MIN: usize = 1 << 20;

/// Creates `path` with `data` and fsyncs it.
///
/// Large objects (packs) are written with `O_DIRECT` except for their unaligned tail
/// ([`DirectFile`]): they are fsynced at once anyway, and on many virtual machines
/// allocating page-cache pages for them costs more CPU than the rest of the write.
/// Where the file system refuses `O_DIRECT` (tmpfs), the ordinary path is taken.
fn write_durably(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    if data.len() < DIRECT_MIN {
        f.write_all(data)?;
        return f.sync_all();
    }
    let out = DirectFile::open(path, f);
    out.write_all_at(data, 0, &mut Vec::new())?;
    out.sync_all()
}

/// Makes a rename or unlink in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direct::DIRECT_PIECE;

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalDir::create(dir.path()).unwrap();
        b.put(ObjectKind::Pack, "abcdef", b"hello pack").unwrap();
        b.put(ObjectKind::Index, "i1", b"index").unwrap();
        b.put(ObjectKind::Config, "config", b"cfg").unwrap();
        assert_eq!(b.get(ObjectKind::Pack, "abcdef").unwrap(), b"hello pack");
        assert_eq!(
            b.get_range(ObjectKind::Pack, "abcdef", 6, 4).unwrap(),
            b"pack"
        );
        assert!(matches!(
            b.get_range(ObjectKind::Pack, "abcdef", 8, 4),
            Err(Error::ShortRead { .. })
        ));
        assert!(dir.path().join("data/ab/abcdef").is_file());
        let packs = b.list(ObjectKind::Pack).unwrap();
        assert_eq!(
            packs,
            vec![ObjectInfo {
                name: "abcdef".into(),
                size: 10
            }]
        );
        assert_eq!(b.list(ObjectKind::Config).unwrap().len(), 1);
        assert!(b.exists(ObjectKind::Index, "i1").unwrap());
        b.delete(ObjectKind::Pack, "abcdef").unwrap();
        b.delete(ObjectKind::Pack, "abcdef").unwrap();
        assert!(b
            .get(ObjectKind::Pack, "abcdef")
            .unwrap_err()
            .is_not_found());
        assert!(!b.exists(ObjectKind::Pack, "abcdef").unwrap());
        assert!(b.list(ObjectKind::Pack).unwrap().is_empty());
    }

    #[test]
    fn overwrite_replaces_and_temp_files_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalDir::create(dir.path()).unwrap();
        b.put(ObjectKind::Point, "p", b"one").unwrap();
        let _ = b.get_range(ObjectKind::Point, "p", 0, 3).unwrap();
        b.put(ObjectKind::Point, "p", b"two!").unwrap();
        assert_eq!(b.get_range(ObjectKind::Point, "p", 0, 4).unwrap(), b"two!");
        fs::write(dir.path().join("points/.tmp-123"), b"partial").unwrap();
        let names: Vec<_> = b
            .list(ObjectKind::Point)
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, vec!["p".to_string()]);
    }

    #[test]
    fn large_unaligned_objects_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalDir::create(dir.path()).unwrap();
        for len in [
            DIRECT_MIN,
            DIRECT_MIN + 1,
            3 * DIRECT_PIECE + 4095,
            9 * 1024 * 1024 + 17,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
            b.put(ObjectKind::Pack, "aabbcc", &data).unwrap();
            assert_eq!(
                b.get(ObjectKind::Pack, "aabbcc").unwrap(),
                data,
                "length {len}"
            );
        }
    }

    #[test]
    fn bad_names_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalDir::create(dir.path()).unwrap();
        for name in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(matches!(
                b.put(ObjectKind::Key, name, b"x"),
                Err(Error::BadName(_))
            ));
        }
    }
}
