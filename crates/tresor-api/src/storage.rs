//! An agent's access to its own repository in a vault, through the server.
//!
//! Object kinds are the repository's folders (`tresor_storage::ObjectKind`'s names,
//! FORMAT.md): `config`, `keys`, `data`, `index`, `points`, `gc`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One stored object, as `GET .../objects/{kind}` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ObjectEntry {
    pub name: String,
    pub size: u64,
}

/// `POST .../writers`: a running backup registers, so that garbage collection keeps
/// what it writes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterWriter {
    /// Shown with the registration (host, VM, job).
    pub description: String,
}

/// A writer registration: its id (to release it), and as listed its description.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Writer {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
