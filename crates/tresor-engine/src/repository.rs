//! An opened repository: storage, keys, configuration and the blob index.

use std::sync::Arc;

use jiff::Timestamp;
use parking_lot::RwLock;
use rand::RngCore;
use tresor_crypto::{ChunkIdKey, KdfParams, MasterKey, Sealer};
use tresor_format::blob::{open_blob, BlobKind};
use tresor_format::config::{RepoConfig, REPOSITORY_FORMAT, REPOSITORY_VERSION};
use tresor_format::gc_state::{GcState, GC_STATE_NAME};
use tresor_format::index::IndexFile;
use tresor_format::key_file::KeyFile;
use tresor_format::manifest::{is_point_id, Manifest};
use tresor_format::tree::TreeNode;
use tresor_format::ChunkId;
use tresor_storage::{Backend, ObjectKind};

use crate::blob_index::BlobIndex;
use crate::{Error, Result};

/// Choices made once, when a repository is created.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Bytes per chunk: a power of two, 4 KiB ..= 4 MiB. Small chunks keep incremental
    /// backups of scattered guest writes small; 64 KiB matches qcow2's default cluster.
    pub chunk_size: u32,
    /// Children per disk tree node.
    pub tree_fanout: u32,
    /// Target pack size in bytes.
    pub pack_size: u32,
    pub kdf: KdfParams,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunk_size: 64 * 1024,
            tree_fanout: 64,
            pack_size: 16 * 1024 * 1024,
            kdf: KdfParams::default(),
        }
    }
}

impl InitOptions {
    /// Checks the options and returns the configuration they make, with a fresh id.
    pub fn validate(&self) -> Result<RepoConfig> {
        let config = RepoConfig {
            format: REPOSITORY_FORMAT.into(),
            version: REPOSITORY_VERSION,
            id: random_hex(16),
            chunk_size: self.chunk_size,
            tree_fanout: self.tree_fanout,
            pack_size: self.pack_size,
            created: Timestamp::now(),
        };
        // Through the same decoder that will read them back.
        RepoConfig::decode(&config.encode()).map_err(|e| Error::Invalid(e.to_string()))?;
        self.kdf
            .check()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(config)
    }
}

/// What [`Repository::scan_points`] found.
pub struct PointScan {
    /// Readable points, oldest first.
    pub points: Vec<Manifest>,
    /// Ids of manifests that cannot be read, with why.
    pub unreadable: Vec<(String, Error)>,
}

pub struct Repository {
    backend: Arc<dyn Backend>,
    config: RepoConfig,
    key: MasterKey,
    sealer: Sealer,
    id_key: ChunkIdKey,
    key_name: String,
    pub(crate) index: RwLock<Arc<BlobIndex>>,
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    hex::encode(raw)
}

impl Repository {
    /// Creates a repository in an empty backend, with a fresh master key wrapped by
    /// `passphrase`.
    pub fn init(
        backend: Arc<dyn Backend>,
        passphrase: &[u8],
        opts: &InitOptions,
    ) -> Result<Repository> {
        if !backend.list(ObjectKind::Config)?.is_empty()
            || !backend.list(ObjectKind::Key)?.is_empty()
        {
            return Err(Error::AlreadyExists {
                path: backend.describe(),
            });
        }
        if passphrase.is_empty() {
            return Err(Error::Invalid(
                "the passphrase is empty; choose one (TRESOR_PASSWORD or the prompt)".into(),
            ));
        }
        let config = opts.validate()?;
        let key = MasterKey::generate();
        let wrapped = key
            .wrap(passphrase, opts.kdf)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let key_file = KeyFile::new(&config.id, &hostname(), Timestamp::now(), &wrapped);
        let key_name = random_hex(16);
        // Key first: a config without a key would be an unopenable repository.
        backend.put(ObjectKind::Key, &key_name, &key_file.encode())?;
        backend.put(ObjectKind::Config, "config", &config.encode())?;
        Ok(Repository::assemble(backend, config, key, key_name))
    }

    /// Opens a repository with a passphrase and loads its index.
    pub fn open(backend: Arc<dyn Backend>, passphrase: &[u8]) -> Result<Repository> {
        let repo = Repository::open_for_repair(backend, passphrase)?;
        repo.reload_index()?;
        Ok(repo)
    }

    /// Opens a repository without reading its index files, for rebuilding them when
    /// they are damaged. Only [`crate::gc::rebuild_index`] should follow.
    pub fn open_for_repair(backend: Arc<dyn Backend>, passphrase: &[u8]) -> Result<Repository> {
        let config = match backend.get(ObjectKind::Config, "config") {
            Ok(bytes) => RepoConfig::decode(&bytes)?,
            Err(e) if e.is_not_found() => {
                return Err(Error::NotARepository {
                    path: backend.describe(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let mut key_files = Vec::new();
        for o in backend.list(ObjectKind::Key)? {
            let key_file = KeyFile::decode(&backend.get(ObjectKind::Key, &o.name)?)?;
            if key_file.repository != config.id {
                tracing::warn!(key = %o.name, "key file belongs to another repository; ignored");
                continue;
            }
            key_files.push((key_file.wrapped()?, o.name));
        }
        // Cheap derivations first: a generated secret's key file opens at once, and
        // a person's passphrase skips those without deriving anything.
        key_files.sort_by(|(a, an), (b, bn)| (a.kdf.is_slow(), an).cmp(&(b.kdf.is_slow(), bn)));
        let mut opened = None;
        for (wrapped, name) in key_files {
            match wrapped.unwrap_key(passphrase) {
                Ok(key) => {
                    opened = Some((key, name));
                    break;
                }
                Err(tresor_crypto::Error::WrongPassphrase) => continue,
                Err(e) => return Err(Error::Invalid(format!("key file {name}: {e}"))),
            }
        }
        let (key, key_name) = opened.ok_or(Error::WrongPassphrase)?;
        Ok(Repository::assemble(backend, config, key, key_name))
    }

    fn assemble(
        backend: Arc<dyn Backend>,
        config: RepoConfig,
        key: MasterKey,
        key_name: String,
    ) -> Repository {
        Repository {
            backend,
            sealer: key.sealer(),
            id_key: key.chunk_id_key(),
            key,
            key_name,
            config,
            index: RwLock::new(Arc::new(BlobIndex::default())),
        }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub(crate) fn id_key(&self) -> &ChunkIdKey {
        &self.id_key
    }

    pub(crate) fn index(&self) -> Arc<BlobIndex> {
        self.index.read().clone()
    }

    /// Reads every index file again (after another process added or repacked blobs).
    pub fn reload_index(&self) -> Result<()> {
        let mut index = BlobIndex::default();
        let mut names: Vec<String> = self
            .backend
            .list(ObjectKind::Index)?
            .into_iter()
            .map(|o| o.name)
            .collect();
        names.sort();
        for name in names {
            let bytes = match self.backend.get(ObjectKind::Index, &name) {
                Ok(b) => b,
                // Removed by a garbage collection since the listing: its content is in a newer file.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let file = IndexFile::open(&self.sealer, &bytes).map_err(|e| {
                Error::Invalid(format!(
                    "index file {name} is damaged ({e}). The packs are unaffected: run `tresor repo rebuild-index` to rebuild the index from them"
                ))
            })?;
            index.add_file(&name, &file);
        }
        *self.index.write() = Arc::new(index);
        Ok(())
    }

    /// Adds an index file that was just stored (and checked) to the loaded index, so
    /// that what it lists is known without reading every index file again.
    pub fn add_index_file(&self, name: &str, file: &IndexFile) {
        let mut index = self.index.write();
        Arc::make_mut(&mut index).add_file(name, file);
    }

    /// The exported form of the key that opened this repository (still wrapped by its
    /// passphrase): keep it somewhere safe to open the repository if its key files are lost.
    pub fn export_key(&self) -> Result<Vec<u8>> {
        Ok(self.backend.get(ObjectKind::Key, &self.key_name)?)
    }

    /// Adds a key file wrapping the master key with another passphrase; returns its name.
    pub fn add_key(&self, passphrase: &[u8], kdf: KdfParams) -> Result<String> {
        if passphrase.is_empty() {
            return Err(Error::Invalid("the new passphrase is empty".into()));
        }
        let wrapped = self
            .key
            .wrap(passphrase, kdf)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let key_file = KeyFile::new(&self.config.id, &hostname(), Timestamp::now(), &wrapped);
        let name = random_hex(16);
        self.backend
            .put(ObjectKind::Key, &name, &key_file.encode())?;
        Ok(name)
    }

    /// Restores a key file exported earlier (for a repository whose key files were lost).
    pub fn import_key(backend: &dyn Backend, exported: &[u8], passphrase: &[u8]) -> Result<String> {
        let key_file = KeyFile::decode(exported)?;
        key_file
            .wrapped()?
            .unwrap_key(passphrase)
            .map_err(|_| Error::WrongPassphrase)?;
        let name = random_hex(16);
        backend.put(ObjectKind::Key, &name, exported)?;
        Ok(name)
    }

    /// Ids of every recovery point.
    pub fn point_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .backend
            .list(ObjectKind::Point)?
            .into_iter()
            .map(|o| o.name)
            .filter(|n| is_point_id(n))
            .collect())
    }

    /// Every recovery point, oldest first. A manifest that cannot be read fails the
    /// whole listing; [`Repository::scan_points`] lists around it.
    pub fn list_points(&self) -> Result<Vec<Manifest>> {
        let mut scan = self.scan_points()?;
        match scan.unreadable.pop() {
            Some((_, e)) => Err(e),
            None => Ok(scan.points),
        }
    }

    /// Every readable recovery point, oldest first, and the ids of those whose
    /// manifests cannot be read (damaged, tampered with, or of a newer format) with why.
    pub fn scan_points(&self) -> Result<PointScan> {
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for id in self.point_ids()? {
            match self.load_point(&id) {
                Ok(m) => out.push(m),
                // Forgotten since the listing.
                Err(Error::PointNotFound { .. }) => continue,
                Err(e @ (Error::Format(_) | Error::Invalid(_))) => unreadable.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(PointScan {
            points: out,
            unreadable,
        })
    }

    /// Finds a point by its id or an unambiguous prefix of it (at least 6 digits).
    pub fn resolve_point(&self, id_or_prefix: &str) -> Result<String> {
        if is_point_id(id_or_prefix) {
            return Ok(id_or_prefix.to_string());
        }
        if id_or_prefix.len() >= 6 {
            let matches: Vec<String> = self
                .point_ids()?
                .into_iter()
                .filter(|id| id.starts_with(id_or_prefix))
                .collect();
            match matches.len() {
                1 => return Ok(matches[0].clone()),
                n if n > 1 => {
                    return Err(Error::Invalid(format!(
                        "recovery point prefix {id_or_prefix} is ambiguous ({n} points); give more digits"
                    )))
                }
                _ => {}
            }
        }
        Err(Error::PointNotFound {
            id: id_or_prefix.to_string(),
        })
    }

    pub fn load_point(&self, id: &str) -> Result<Manifest> {
        let id = self.resolve_point(id)?;
        let bytes = match self.backend.get(ObjectKind::Point, &id) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(Error::PointNotFound { id }),
            Err(e) => return Err(e.into()),
        };
        Ok(Manifest::open(&self.sealer, &id, &bytes)?)
    }

    /// Commits a manifest: the last write of a backup.
    pub(crate) fn put_point(&self, manifest: &Manifest) -> Result<()> {
        self.backend.put(
            ObjectKind::Point,
            &manifest.id,
            &manifest.seal(&self.sealer),
        )?;
        Ok(())
    }

    /// Deletes a recovery point's manifest. Its data stays until garbage collection.
    pub fn forget(&self, id: &str) -> Result<Manifest> {
        let manifest = self.load_point(id)?;
        self.backend.delete(ObjectKind::Point, &manifest.id)?;
        Ok(manifest)
    }

    /// Reads, opens and checks one blob. When its pack has vanished (repacked by a
    /// garbage collection since the index was loaded) the index is reloaded once.
    pub fn read_blob(&self, kind: BlobKind, id: &ChunkId) -> Result<Vec<u8>> {
        match self.read_blob_once(kind, id) {
            Err(Error::Storage(e)) if e.is_not_found() => {
                self.reload_index()?;
                self.read_blob_once(kind, id)
            }
            Err(Error::MissingBlob { .. }) => {
                self.reload_index()?;
                self.read_blob_once(kind, id)
            }
            other => other,
        }
    }

    fn read_blob_once(&self, kind: BlobKind, id: &ChunkId) -> Result<Vec<u8>> {
        let index = self.index();
        let loc = *index.get(id).ok_or_else(|| Error::MissingBlob {
            id: *id,
            context: format!("a {kind:?} reference"),
        })?;
        let pack = index.pack_name(&loc);
        let mut sealed = self.backend.get_range(
            ObjectKind::Pack,
            &pack,
            loc.offset as u64,
            loc.sealed_len as usize,
        )?;
        Ok(open_blob(
            &self.sealer,
            &self.id_key,
            loc.kind,
            id,
            loc.compression,
            loc.raw_len,
            &mut sealed,
        )?)
    }

    pub(crate) fn read_tree_node(&self, id: &ChunkId) -> Result<TreeNode> {
        Ok(TreeNode::decode(&self.read_blob(BlobKind::Tree, id)?)?)
    }

    /// The blobs garbage collection has condemned (backups must not reuse them).
    pub(crate) fn condemned(&self) -> Result<Option<GcState>> {
        match self.backend.get(ObjectKind::Gc, GC_STATE_NAME) {
            Ok(bytes) => Ok(Some(GcState::open(&self.sealer, &bytes)?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn new_index_file_name(&self, file: &IndexFile) -> Result<String> {
        let (name, bytes) = file.seal(&self.sealer);
        self.backend.put(ObjectKind::Index, &name, &bytes)?;
        Ok(name)
    }
}
