//! What overview pages show beside the resources themselves: a vault's storage
//! figures, every VM the host agents reported with the vault protecting it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::inventory::VmReport;
use crate::items::ProtectionState;

/// How much a vault stores.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultStorage {
    /// Bytes of the objects (packs, indexes, points) in the vault's primary storage.
    pub stored_bytes: u64,
    /// The logical size of all its recovery points (their disks' virtual sizes).
    pub logical_bytes: u64,
}

/// A VM a host agent reported, with the vault that protects it, if any.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportedVmProtection {
    pub agent_id: String,
    pub host: String,
    /// The agent's location.
    pub location: String,
    /// The agent's name for the VM.
    pub vm: String,
    /// What the agent last reported of it.
    pub info: VmReport,
    #[schema(required)]
    pub protected_by: Option<Protection>,
}

/// The protected item of a VM: its vault and state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Protection {
    pub vault: String,
    pub item_id: String,
    pub state: ProtectionState,
}
