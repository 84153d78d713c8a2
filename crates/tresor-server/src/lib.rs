//! The vault server (`tresor serve`).
//!
//! One data directory holds everything of the embedded default:
//!
//! ```text
//! DATA/metadata.db       the catalogue (SQLite; see tresor-metadata)
//! DATA/server.toml       locations, their storage targets and pairs (optional)
//! DATA/tls/              the self-signed certificate and its key (0600)
//! DATA/vaults/V/hosts/A  the repository of host agent A in vault V (embedded default
//!                        primary target; a location may name another folder)
//! DATA/replica/V/hosts/A its copy in the paired location (embedded default secondary)
//! DATA/secrets/          each repository's passphrase (0700 folder, 0600 files)
//! DATA/cli.json          URL, certificate fingerprint and admin token for the CLI (0600)
//! ```
//!
//! This crate is the HTTP side of the vault service (`tresor-service`): it starts
//! the HTTPS listener and mounts two thin adapters over the same [`Service`]:
//!
//! - `api/`: the REST API, one module per resource, the routes in one table
//!   (`api/mod.rs`); each handler extracts the caller and the request, calls one
//!   service method, and answers. `openapi.rs` generates `/openapi.json` from the
//!   `tresor-api` types.
//! - the portal (`tresor-portal`), mounted beside it.
//! - `http_limits.rs`: connection limits and timeouts; `http_guard.rs`: security
//!   headers, request ids, 500s without their cause.
//!
//! **Architecture invariant:** decides nothing about who may do what, and reads no
//! catalogue row itself: both are the service's.

pub mod api;
pub mod http_guard;
pub mod http_limits;
pub mod openapi;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
pub use tresor_api::config::CliConfig;
use tresor_metadata::{MetadataStore, SqliteStore};
use tresor_service::locations::Locations;
use tresor_service::repos::Repos;
use tresor_service::{Clock, Service, SystemClock};

/// How to run the server.
#[derive(Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// Default 127.0.0.1:8443: loopback unless told otherwise.
    pub listen: SocketAddr,
    /// The URL agents and clients use; default `https://LISTEN`.
    pub public_url: Option<String>,
    /// Extra names for the certificate (the host's public name).
    pub tls_names: Vec<String>,
    /// Run the scheduler, lease sweeper, retention, replication and GC loops.
    pub background: bool,
    pub clock: Arc<dyn Clock>,
    /// The configuration file naming locations (default `DATA/server.toml`, optional).
    pub config_file: Option<PathBuf>,
    /// Connection limits and timeouts.
    pub http: http_limits::HttpLimits,
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            listen: "127.0.0.1:8443".parse().expect("literal address"),
            public_url: None,
            tls_names: Vec::new(),
            background: true,
            clock: Arc::new(SystemClock),
            config_file: None,
            http: http_limits::HttpLimits::default(),
        }
    }
}

/// A started server.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub url: String,
    pub fingerprint: String,
    /// The admin token, when this start created it (first start).
    pub new_admin_token: Option<String>,
    pub state: Arc<Service>,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Cancelled to stop the background loops.
    stop: CancellationToken,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Serves until the process ends or [`RunningServer::shutdown`] is called.
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }

    /// Stops accepting, lets requests in flight end (at most 10 s), and ends the
    /// background loops after the step each is in.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.handle.graceful_shutdown(Some(Duration::from_secs(10)));
        let _ = self.task.await;
        for b in self.background {
            let _ = b.await;
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata: {0}")]
    Metadata(#[from] tresor_metadata::StoreError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}. Is another server running there? Choose another address with --listen")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// Sets TCP_NODELAY on the listening socket; Linux gives it to every accepted
/// connection. Without it, a small answer waits for the client's delayed ACK and
/// every API call costs some 40 ms.
fn set_nodelay(listener: &std::net::TcpListener) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `one`, which lives
    // through the call; the fd is open while `listener` is borrowed.
    let r = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the mode of `path` if it exists (and is not a symbolic link, which
/// `set_permissions` would follow).
fn restrict(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Ok(()),
        Ok(m) if m.permissions().mode() & 0o7777 == mode => Ok(()),
        Ok(_) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The data directory holds the catalogue, the TLS key, repository passphrases and
/// the admin token: only the server's user may read it. Modes are set at every
/// start, so that a copied or restored directory is closed again too.
fn restrict_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    restrict(dir, 0o700)?;
    for f in ["metadata.db-wal", "metadata.db-shm", "cli.json"] {
        restrict(&dir.join(f), 0o600)?;
    }
    restrict(&dir.join("tls"), 0o700)?;
    restrict(&dir.join("tls").join("key.pem"), 0o600)?;
    let secrets = dir.join("secrets");
    restrict(&secrets, 0o700)?;
    if secrets.is_dir() {
        for e in std::fs::read_dir(&secrets)? {
            let e = e?;
            if e.file_type()?.is_file() {
                restrict(&e.path(), 0o600)?;
            }
        }
    }
    Ok(())
}

/// Creates the catalogue file 0600 before SQLite opens it: SQLite gives its -wal and
/// -shm files the mode of the database file.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => restrict(path, 0o600),
        Err(e) => Err(e),
    }
}

/// Opens (or creates) the data directory and starts serving HTTPS.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    let dir = config.data_dir.clone();
    let data_err = |source| StartError::DataDir {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(data_err)?;
    restrict(&dir, 0o700).map_err(data_err)?;
    let locations =
        Locations::load(&dir, config.config_file.as_deref()).map_err(StartError::Config)?;
    create_private(&dir.join("metadata.db")).map_err(data_err)?;
    let store = SqliteStore::open(&dir.join("metadata.db"))?;
    let identity = tresor_tls::ServerIdentity::load_or_create(&dir.join("tls"), &config.tls_names)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    let fingerprint = identity.fingerprint().to_string();

    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    listener.set_nonblocking(true).map_err(data_err)?;
    set_nodelay(&listener).map_err(data_err)?;
    let addr = listener.local_addr().map_err(data_err)?;
    let url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("https://{addr}"));

    let state = Arc::new(Service::new(
        Arc::new(store) as Arc<dyn MetadataStore>,
        Repos::new(&dir, locations).map_err(data_err)?,
        config.clock.clone(),
        url.clone(),
        fingerprint.clone(),
    ));
    state
        .recover_after_restart()
        .map_err(|e| StartError::Other(e.to_string()))?;

    // First start: an admin token, shown once, kept as a hash, and the CLI's
    // configuration with it.
    let new_admin_token = state
        .first_admin_token()
        .map_err(|e| StartError::Other(e.to_string()))?;
    if let Some(token) = &new_admin_token {
        let cli = CliConfig {
            server: url.clone(),
            fingerprint: fingerprint.clone(),
            token: token.clone(),
        };
        tresor_storage::write_file_atomic(
            &dir.join("cli.json"),
            &serde_json::to_vec_pretty(&cli).map_err(|e| StartError::Other(e.to_string()))?,
            0o600,
        )
        .map_err(data_err)?;
    }

    // Files made before this start (an older server, the TLS key, repositories'
    // secrets) and the catalogue's -wal/-shm, now that SQLite made them.
    restrict_data_dir(&dir).map_err(data_err)?;

    let app = http_guard::guard(
        api::router(state.clone())
            .merge(tresor_portal::router(state.clone()))
            .fallback(http_guard::not_found),
    );
    let limits = config.http.clone();
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(identity.rustls_server_config());
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
        .handshake_timeout(limits.tls_handshake)
        .acceptor(http_limits::LimitAcceptor::new(&limits));
    let handle = axum_server::Handle::new();
    let mut server = axum_server::from_tcp(listener)
        .map_err(data_err)?
        .acceptor(acceptor)
        .first_request_timeout(limits.first_request)
        .handle(handle.clone());
    let http = server.http_builder();
    http.http1()
        .header_read_timeout(limits.header_read)
        .max_headers(100)
        .max_buf_size(64 << 10);
    http.http2()
        .max_concurrent_streams(64)
        .max_header_list_size(64 << 10)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(100);
    let task = tokio::spawn(async move {
        server
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
    });
    tracing::info!(%url, %fingerprint, "vault server listening");

    let stop = CancellationToken::new();
    let background = if config.background {
        tresor_service::background::start(state.clone(), stop.clone())
    } else {
        Vec::new()
    };
    Ok(RunningServer {
        addr,
        url,
        fingerprint,
        new_admin_token,
        state,
        handle,
        task,
        stop,
        background,
    })
}

pub use tresor_service::usecases::agents::LocalAgent;
