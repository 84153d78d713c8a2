//! Backup policies as the API shows them: the domain's policy, with its id and use.

use serde::{Deserialize, Serialize};
pub use tresor_domain::BackupPolicy;
use utoipa::ToSchema;

/// A policy of a vault. Created and updated with a [`BackupPolicy`] body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub id: String,
    #[serde(flatten)]
    pub policy: BackupPolicy,
    /// Protected items that use it.
    pub protected_items: usize,
}
