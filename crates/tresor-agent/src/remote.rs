//! The agent's repository in a vault, reached over the server's API: a
//! [`Backend`] over the API client's typed calls (`ApiClient::objects`, `object`,
//! `put_object`; writer registrations through `register_writer`, `writers`,
//! `release_writer`).
//!
//! The engine runs on plain threads and calls the backend synchronously; each call
//! is run on the agent's tokio runtime through a [`Handle`]. Transient failures (the
//! server restarting, the network gone for a while) are retried with backoff for up
//! to [`RETRY_FOR`]; after that the call fails and the backup with it, leaving no
//! recovery point (the manifest is written last).
//!
//! An error answer of the server (not a transient one: a full storage target, an
//! upload it refused) is kept in [`RemoteBackend::refusal`], so that a backup failing
//! because of it ends with the server's code rather than a generic one.
//!
//! The server lets an agent add packs, index files and manifests and read anything of
//! its own repository; it never lets it delete or replace (the calls that would are
//! refused by the server, and [`Backend::delete`] here fails at once). The copy in the
//! secondary region is only read: a write to it fails here at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tresor_api::storage::RegisterWriter;
use tresor_client::{ApiClient, ClientError, Region};
use tresor_storage::{
    Backend, Error, ObjectInfo, ObjectKind, Result, WriterGuard, WriterInfo, WriterRegistry,
};

/// How long a call is retried while the server cannot be reached.
pub const RETRY_FOR: Duration = Duration::from_secs(180);

/// A repository on the vault server.
pub struct RemoteBackend {
    api: Arc<ApiClient>,
    handle: Handle,
    vault: String,
    /// The vault's own copy, or the one in its secondary region (read only, during
    /// a cross-region restore).
    region: Region,
    writers: RemoteWriters,
    refusal: RefusalSlot,
}

/// Where a backend keeps the server's last error answer (shared with its owner).
pub type RefusalSlot = Arc<Mutex<Option<Refusal>>>;

/// An error the server answered a call with: its code, message and recommendation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    pub recommendation: Option<String>,
}

impl RemoteBackend {
    /// The agent's repository in vault `vault_id`.
    pub fn new(api: Arc<ApiClient>, handle: Handle, vault_id: &str) -> RemoteBackend {
        RemoteBackend {
            writers: RemoteWriters {
                api: api.clone(),
                handle: handle.clone(),
                vault: vault_id.to_string(),
            },
            api,
            handle,
            vault: vault_id.to_string(),
            region: Region::Primary,
            refusal: Arc::default(),
        }
    }

    /// The last error answer of the server to a call of this backend (shared: it
    /// stays readable after the backend went into a repository).
    pub fn refusal(&self) -> RefusalSlot {
        self.refusal.clone()
    }

    /// Keeps the server's error answer, if `e` is one, and passes `e` on.
    fn noted(&self, e: ClientError) -> ClientError {
        if let ClientError::Api {
            code,
            message,
            recommendation,
            ..
        } = &e
        {
            *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(Refusal {
                code: code.clone(),
                message: message.clone(),
                recommendation: recommendation.clone(),
            });
        }
        e
    }

    /// The copy of the agent's repository in the vault's secondary region, which the
    /// server lets it read while it runs a cross-region restore.
    pub fn secondary(api: Arc<ApiClient>, handle: Handle, vault_id: &str) -> RemoteBackend {
        RemoteBackend {
            region: Region::Secondary,
            ..RemoteBackend::new(api, handle, vault_id)
        }
    }

    fn describe_path(&self) -> String {
        format!(
            "vault repository {} on {}",
            self.vault,
            self.api.transport().address().url
        )
    }
}

/// Runs `call` on the runtime, retrying transient failures for [`RETRY_FOR`].
fn with_retries<T, F, Fut>(
    handle: &Handle,
    what: &str,
    mut call: F,
) -> std::result::Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, ClientError>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match handle.block_on(call()) {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && started.elapsed() < RETRY_FOR => {
                tracing::warn!(what, error = %e, retry_in_ms = delay.as_millis() as u64, "server unreachable; retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The server's name of an object kind (its folder in the repository, FORMAT.md).
fn io_error(backend: String, what: String, e: ClientError) -> Error {
    Error::Io {
        backend,
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

impl Backend for RemoteBackend {
    fn describe(&self) -> String {
        self.describe_path()
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<()> {
        if self.region == Region::Secondary {
            return Err(Error::Io {
                backend: self.describe_path(),
                what: format!("uploading {kind:?} {name}"),
                source: std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the copy in the secondary region is read only; the server replicates to it",
                ),
            });
        }
        let bytes = bytes::Bytes::copy_from_slice(data);
        with_retries(&self.handle, "upload", || {
            self.api
                .put_object(&self.vault, kind.name(), name, bytes.clone())
        })
        .map_err(|e| {
            io_error(
                self.describe_path(),
                format!("uploading {kind:?} {name}"),
                self.noted(e),
            )
        })
    }

    fn get(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        match with_retries(&self.handle, "download", || {
            self.api
                .object(&self.vault, self.region, kind.name(), name, None)
        }) {
            Ok(b) => Ok(b.to_vec()),
            Err(e) if e.status() == Some(404) => Err(Error::NotFound {
                backend: self.describe_path(),
                kind,
                name: name.to_string(),
            }),
            Err(e) => Err(io_error(
                self.describe_path(),
                format!("reading {kind:?} {name}"),
                self.noted(e),
            )),
        }
    }

    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        let data = match with_retries(&self.handle, "download", || {
            self.api.object(
                &self.vault,
                self.region,
                kind.name(),
                name,
                Some((offset, len)),
            )
        }) {
            Ok(b) => b,
            Err(e) if e.status() == Some(404) => {
                return Err(Error::NotFound {
                    backend: self.describe_path(),
                    kind,
                    name: name.to_string(),
                })
            }
            Err(e) => {
                return Err(io_error(
                    self.describe_path(),
                    format!("reading {kind:?} {name}"),
                    self.noted(e),
                ))
            }
        };
        if data.len() != buf.len() {
            return Err(Error::ShortRead {
                backend: self.describe_path(),
                kind,
                name: name.to_string(),
                offset,
                len: buf.len(),
                size: offset + data.len() as u64,
            });
        }
        buf.copy_from_slice(&data);
        Ok(())
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        let entries = with_retries(&self.handle, "list", || {
            self.api.objects(&self.vault, self.region, kind.name())
        })
        .map_err(|e| {
            io_error(
                self.describe_path(),
                format!("listing {kind:?}"),
                self.noted(e),
            )
        })?;
        Ok(entries
            .into_iter()
            .map(|e| ObjectInfo {
                name: e.name,
                size: e.size,
            })
            .collect())
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        Err(Error::Io {
            backend: self.describe_path(),
            what: format!("deleting {kind:?} {name}"),
            source: std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "agents never delete from a vault; the server does (retention, garbage collection)",
            ),
        })
    }

    fn writers(&self) -> &dyn WriterRegistry {
        &self.writers
    }
}

/// Writer registrations held by the server on the agent's behalf.
struct RemoteWriters {
    api: Arc<ApiClient>,
    handle: Handle,
    vault: String,
}

impl WriterRegistry for RemoteWriters {
    fn register(&self, description: &str) -> Result<WriterGuard> {
        let request = RegisterWriter {
            description: description.to_string(),
        };
        let writer = with_retries(&self.handle, "register", || {
            self.api.register_writer(&self.vault, &request)
        })
        .map_err(|e| io_error(self.vault.clone(), "registering the backup".into(), e))?;
        let api = self.api.clone();
        let handle = self.handle.clone();
        let vault = self.vault.clone();
        let id = writer.id.clone();
        Ok(WriterGuard::with_release(
            WriterInfo {
                id: writer.id,
                description: request.description,
            },
            move || {
                // Best effort: the server also drops registrations when the job ends.
                if let Err(e) = handle.block_on(api.release_writer(&vault, &id)) {
                    tracing::warn!(error = %e, "releasing the writer registration failed");
                }
            },
        ))
    }

    fn live(&self) -> Result<Vec<WriterInfo>> {
        let live = with_retries(&self.handle, "writers", || self.api.writers(&self.vault))
            .map_err(|e| io_error(self.vault.clone(), "listing writers".into(), e))?;
        Ok(live
            .into_iter()
            .map(|w| WriterInfo {
                id: w.id,
                description: w.description.unwrap_or_default(),
            })
            .collect())
    }

    fn try_exclusive(&self, name: &str) -> Result<Option<WriterGuard>> {
        Err(Error::Io {
            backend: self.vault.clone(),
            what: format!("taking the exclusive lock {name}"),
            source: std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "only the server collects garbage",
            ),
        })
    }
}
