//! The service: the catalogue, the repositories, the clock, and what running work
//! shares (writers, wake-ups, sessions, attempt limits). Every use case is a method
//! of [`Service`] taking a [`Principal`](crate::Principal).

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use parking_lot::Mutex;
use tresor_metadata::MetadataStore;
use tresor_storage::WriterGuard;

use crate::error::{ServiceError, ServiceResult};
use crate::repos::Repos;

/// The time, from the system or (in tests) from a hand.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A writer registration an agent holds through the server (see `usecases/storage.rs`).
pub struct HeldWriter {
    pub agent_id: String,
    pub guard: WriterGuard,
}

pub struct Service {
    pub(crate) store: Arc<dyn MetadataStore>,
    pub(crate) repos: Repos,
    pub(crate) clock: Arc<dyn Clock>,
    /// The address agents and clients use (`https://host:port`), for credentials files.
    pub(crate) public_url: String,
    /// SHA-256 of the server's certificate, hex, for credentials files.
    pub(crate) fingerprint: String,
    /// Wakes agents waiting for a job.
    pub(crate) jobs_changed: tokio::sync::Notify,
    /// Registrations agents hold while they write, by registration id.
    pub(crate) writers: Mutex<HashMap<String, HeldWriter>>,
    /// Held by garbage collection and replication runs: collection removes objects a
    /// run may be copying.
    pub(crate) storage_maintenance: Mutex<()>,
    /// Wakes the replication loop (a backup completed).
    pub(crate) replication_wake: tokio::sync::Notify,
    /// The portal's signed-in sessions.
    pub(crate) sessions: crate::sessions::Sessions,
    /// Failed sign-ins and registrations, counted per client address.
    pub(crate) limiters: crate::attempts::Limiters,
}

impl Service {
    /// A service over the catalogue `store` and the repositories `repos`, telling
    /// agents and clients `public_url` and the certificate's `fingerprint`.
    pub fn new(
        store: Arc<dyn MetadataStore>,
        repos: Repos,
        clock: Arc<dyn Clock>,
        public_url: String,
        fingerprint: String,
    ) -> Service {
        Service {
            store,
            repos,
            clock,
            public_url,
            fingerprint,
            jobs_changed: tokio::sync::Notify::new(),
            writers: Mutex::new(HashMap::new()),
            storage_maintenance: Mutex::new(()),
            replication_wake: tokio::sync::Notify::new(),
            sessions: Default::default(),
            limiters: Default::default(),
        }
    }

    /// The catalogue, for tests and tools that inspect it. Adapters never use it: they
    /// reach data through the use cases (their crates do not even depend on the
    /// catalogue's crate; `crates/tresor-cli/tests/architecture.rs` checks).
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Runs catalogue (or repository) work off the async threads.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Service) -> ServiceResult<T> + Send + 'static,
    ) -> ServiceResult<T> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || f(&state))
            .await
            .map_err(ServiceError::internal)?
    }
}
