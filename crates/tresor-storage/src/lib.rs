//! Where a Tresor repository's objects live.
//!
//! A [`Backend`] is shaped like an object store: whole objects are put atomically, read
//! whole or by range, listed, and deleted. It assumes no rename and no append, so S3 or
//! Azure Blob can implement it later. [`LocalDir`] implements it on a local file system
//! with crash-safe writes (temp file, fsync, rename, fsync of the directory).
//!
//! A backend also carries a [`WriterRegistry`]: which backups are running right now, so
//! that garbage collection never removes what a running backup relies on.
//!
//! **Architecture invariant:** this crate knows nothing of what the objects contain: no
//! formats, no keys, no chunks. Names are opaque strings chosen by the caller.

mod direct;
mod file;
mod local;
mod writers;

pub use direct::{DirectFile, DIRECT_ALIGN, DIRECT_PIECE};
pub use file::write_file_atomic;
pub use local::LocalDir;
pub use writers::{LocalWriterRegistry, WriterGuard, WriterInfo, WriterRegistry};

use std::io;

/// The namespaces of a repository. Each maps to a folder of [`LocalDir`] and would be a
/// key prefix in an object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// The repository's configuration (one object, named `config`).
    Config,
    /// Wrapped master keys.
    Key,
    /// Pack files of sealed blobs.
    Pack,
    /// Index files: which blob is in which pack.
    Index,
    /// Recovery point manifests.
    Point,
    /// Garbage collection state (condemned blobs).
    Gc,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::Config,
        ObjectKind::Key,
        ObjectKind::Pack,
        ObjectKind::Index,
        ObjectKind::Point,
        ObjectKind::Gc,
    ];

    /// The kind's name where a name is needed (a path of the vault server's API):
    /// its folder, and `config` for the configuration.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Config => "config",
            other => other.dir(),
        }
    }

    /// The kind called `name` (see [`ObjectKind::name`]).
    pub fn from_name(name: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The folder (or key prefix) of this kind.
    pub fn dir(self) -> &'static str {
        match self {
            ObjectKind::Config => "",
            ObjectKind::Key => "keys",
            ObjectKind::Pack => "data",
            ObjectKind::Index => "index",
            ObjectKind::Point => "points",
            ObjectKind::Gc => "gc",
        }
    }
}

/// Size of a stored object, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{kind:?} object {name:?} not found in {backend}")]
    NotFound {
        backend: String,
        kind: ObjectKind,
        name: String,
    },
    #[error("{what} in {backend}: {source}")]
    Io {
        backend: String,
        what: String,
        source: io::Error,
    },
    #[error("{kind:?} object {name:?} in {backend} is {size} bytes; cannot read {len} bytes at offset {offset}")]
    ShortRead {
        backend: String,
        kind: ObjectKind,
        name: String,
        offset: u64,
        len: usize,
        size: u64,
    },
    #[error("invalid object name {0:?}: only letters, digits, '-' and '_' are allowed")]
    BadName(String),
}

impl Error {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An object store for one repository.
///
/// Every method may be called from several threads at once. `put` is atomic: a reader
/// sees the whole new object or none (or the old one), never a part, and once `put`
/// returns the object is durable.
pub trait Backend: Send + Sync {
    /// Where this is, for messages ("local directory /srv/tresor").
    fn describe(&self) -> String;

    /// Stores `data` as `kind/name`, replacing any object of that name, durably.
    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<()>;

    /// Reads a whole object.
    fn get(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>>;

    /// Reads `buf.len()` bytes at `offset`. Reading past the end is [`Error::ShortRead`].
    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Lists the objects of one kind, in no particular order.
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>>;

    /// Deletes an object. Deleting one that does not exist is not an error.
    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()>;

    /// The registry of running backups (see [`WriterRegistry`]).
    fn writers(&self) -> &dyn WriterRegistry;

    /// Removes what interrupted `put`s left behind (temp files), returning how many.
    /// Only safe while no writer runs: a running `put` looks the same.
    fn remove_leftovers(&self) -> Result<u64> {
        Ok(0)
    }

    /// Reads a range into a new buffer.
    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_range(kind, name, offset, &mut buf)?;
        Ok(buf)
    }

    /// The size of a stored object in bytes (an object store answers a HEAD). The
    /// default lists the kind; backends override it with something cheaper.
    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64> {
        self.list(kind)?
            .into_iter()
            .find(|o| o.name == name)
            .map(|o| o.size)
            .ok_or_else(|| Error::NotFound {
                backend: self.describe(),
                kind,
                name: name.to_string(),
            })
    }

    /// Whether an object exists.
    fn exists(&self, kind: ObjectKind, name: &str) -> Result<bool> {
        match self.get_range(kind, name, 0, 0) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Names are restricted so that no backend ever sees a path separator or a dot name.
/// Every name from outside (an agent's upload path) passes here before it reaches a
/// backend.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 200
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::BadName(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_found_by_their_names() {
        for k in ObjectKind::ALL {
            assert_eq!(ObjectKind::from_name(k.name()), Some(k));
        }
        assert_eq!(ObjectKind::Config.name(), "config");
        assert_eq!(ObjectKind::Pack.name(), "data");
        assert_eq!(ObjectKind::from_name(""), None);
        assert_eq!(ObjectKind::from_name("packs"), None);
    }
}
