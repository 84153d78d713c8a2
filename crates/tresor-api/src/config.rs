//! Files the server writes for its clients, and the unauthenticated ping.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the CLI needs to talk to a server: written by `tresor serve` to
/// `DATA/cli.json` at first start (mode 0600), read by the CLI from `TRESOR_CONFIG`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CliConfig {
    /// `https://host:port`.
    pub server: String,
    /// SHA-256 of the server's certificate, hex: the CLI trusts exactly this one.
    pub fingerprint: String,
    /// The admin token or an API token.
    pub token: String,
}

/// `GET /api/v1/ping`: that a Tresor server answers, and its version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ping {
    /// Always `tresor`.
    pub service: String,
    pub version: String,
}
