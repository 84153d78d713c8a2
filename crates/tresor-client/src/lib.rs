//! How agents and the command line reach the vault server: HTTPS with a
//! pinned certificate, through a proxy when configured, and a diagnosis of
//! what fails.
//!
//! - [`ServerAddress`]: the server's `https` URL and its certificate's
//!   fingerprint, the only certificate trusted (see `tresor-tls`).
//! - [`Transport`]: an HTTP client for that server, direct or through an
//!   HTTP proxy ([`ProxyConfig`], or the environment's `HTTPS_PROXY`,
//!   `ALL_PROXY` and `NO_PROXY`; [`Route`] tells exactly how).
//! - [`ApiClient`]: JSON and byte requests with a bearer token, the server's
//!   errors decoded; one typed method per API operation (`tresor-api`'s types).
//! - [`check`]: walks the way to the server step by step (proxy, DNS, TCP,
//!   TLS, HTTP, credential) and names the first failure with a stable code
//!   and a recommendation.

mod address;
mod api;
mod check;
mod error;
mod failure;
mod operations;
mod path;
mod transport;

pub use address::{ProxyConfig, ProxySource, Route, ServerAddress};
pub use api::ApiClient;
pub use check::{check, check_with_timeout, CheckReport, CheckStep, DEFAULT_CHECK_TIMEOUT};
pub use error::ClientError;
pub use failure::{ConnectFailure, FailureKind};
pub use operations::Region;
pub use transport::Transport;

pub use tresor_tls::Fingerprint;
pub use url::Url;
