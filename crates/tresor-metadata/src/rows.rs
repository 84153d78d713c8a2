//! The rows of the catalogue. Enums are their names (`"GeoRedundant"`); documents the
//! server alone interprets are JSON.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// Its role assignments, as JSON: `[{"role": "Owner", "scope": "/"}]`
    /// (`tresor_domain::access::RoleAssignment`s; the store does not read them).
    pub role: String,
    pub created: Timestamp,
    /// The user it belongs to (deleting the user deletes it); `None`: the
    /// installation's.
    #[serde(default)]
    pub user_id: Option<String>,
    /// When it stops working; `None`: never.
    #[serde(default)]
    pub expires: Option<Timestamp>,
}

/// A person who signs in with a name and a password (and a TOTP code once enabled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRow {
    pub id: String,
    /// As given; unique whatever the case of its letters.
    pub name: String,
    /// Argon2id, as a PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
    /// The TOTP secret (base32) once its first code confirmed it.
    pub totp_secret: Option<String>,
    /// A TOTP secret handed out and waiting for its first code.
    pub totp_pending: Option<String>,
    /// Role assignments as JSON, like [`TokenRow::role`].
    pub role: String,
    pub created: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaultRow {
    pub id: String,
    pub name: String,
    pub resource_group: String,
    pub location: String,
    /// `GeoRedundant` or `LocallyRedundant`.
    pub redundancy: String,
    /// Set once the first backup is stored.
    pub redundancy_locked: bool,
    pub created: Timestamp,
    /// Recovery points may be listed and restored from the secondary (GeoRedundant only).
    pub cross_region_restore: bool,
    /// Days deleted backup data is kept (soft-deleted) before it is purged.
    pub soft_delete_days: u32,
    /// Soft delete was made always-on: the period cannot be shortened below it again
    /// nor the setting switched off.
    pub soft_delete_always_on: bool,
    /// `Disabled`, `Enabled` or `Locked`.
    pub immutability: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRow {
    pub id: String,
    pub vault_id: String,
    pub name: String,
    /// The policy as the domain model serializes it.
    pub body: Value,
    pub created: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollmentRow {
    pub id: String,
    pub vault_id: String,
    /// SHA-256 of the one-time secret, hex.
    pub secret_hash: String,
    pub expires: Timestamp,
    pub used: bool,
    /// The location an agent registering with it gets (`None`: the vault's).
    #[serde(default)]
    pub location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRow {
    pub id: String,
    /// The host's name as the agent reports it.
    pub host: String,
    pub location: String,
    /// SHA-256 of the agent's credential, hex.
    pub credential_hash: String,
    pub version: Option<String>,
    pub registered: Timestamp,
    pub last_seen: Option<Timestamp>,
    /// The vault whose credentials file registered it (`None`: the server's own
    /// agent, one registered before agents recorded it, or its vault was deleted).
    #[serde(default)]
    pub vault_id: Option<String>,
}

/// One VM an agent reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRow {
    pub agent_id: String,
    /// The agent's name for the VM.
    pub vm: String,
    /// What the agent knows of it (name, UUID, state, disks, guest agent).
    pub body: Value,
    pub seen: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRow {
    pub id: String,
    pub vault_id: String,
    pub agent_id: String,
    pub vm: String,
    pub vm_name: String,
    pub policy_id: Option<String>,
    /// `InitialBackupPending`, `Protected`, `ProtectionStopped`, ...
    pub state: String,
    /// The last scheduled window that was started (the scheduler never runs one twice).
    pub last_window: Option<Timestamp>,
    pub last_backup: Option<Timestamp>,
    pub created: Timestamp,
    /// False once protection was disabled and its data deleted (purged).
    pub active: bool,
    /// When its backup data was deleted (it is `SoftDeleted` until `delete_at`).
    pub soft_deleted: Option<Timestamp>,
    /// When the soft-deleted item and its points are purged.
    pub delete_at: Option<Timestamp>,
    /// The disks left out of its points (the VM's names for them: `vdb`).
    pub excluded_disks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRow {
    pub id: String,
    pub vault_id: String,
    pub item_id: Option<String>,
    /// `ConfigureBackup`, `Backup`, `Restore`, `DisableBackup`, `DeleteBackupData`.
    pub operation: String,
    /// `InProgress`, `Completed`, `CompletedWithWarnings`, `Failed`, `Cancelled`, `Cancelling`.
    pub status: String,
    /// The agent that took the job, once taken.
    pub agent_id: Option<String>,
    /// The agent the job is for (it alone may take it).
    pub target_agent: Option<String>,
    pub created: Timestamp,
    pub started: Option<Timestamp>,
    pub ended: Option<Timestamp>,
    /// A taken job whose lease runs out was abandoned by its agent.
    pub lease_until: Option<Timestamp>,
    /// Parameters, tasks, progress, warnings, error and result.
    pub body: Value,
}

impl JobRow {
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status.as_str(),
            "Completed" | "CompletedWithWarnings" | "Failed" | "Cancelled"
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointRow {
    pub id: String,
    pub vault_id: String,
    pub item_id: String,
    pub created: Timestamp,
    pub consistency: String,
    pub expires: Option<Timestamp>,
    /// Made by "back up now" (keeps its own expiry whatever the policy says).
    pub on_demand: bool,
    /// Bytes of the disks (virtual size).
    pub size: u64,
    /// Disks, stats, warnings.
    pub body: Value,
    /// When the point became visible on the secondary (GeoRedundant vaults).
    pub replicated: Option<Timestamp>,
    /// When it was deleted from the primary (retention or a delete); the row stays while
    /// the secondary still holds it (the soft-delete window).
    pub primary_deleted: Option<Timestamp>,
    /// When it was soft-deleted (with its item): still stored, kept from garbage
    /// collection and retention until `soft_delete_until`.
    pub soft_deleted: Option<Timestamp>,
    pub soft_delete_until: Option<Timestamp>,
}

/// An entry of the audit log as the service gives it: the store links it to the
/// chain (`seq`, `prev_hash`, `hash`) when it appends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAudit {
    pub time: Timestamp,
    /// `admin`, `agent` or `anonymous` (a caller without a valid credential).
    pub actor_kind: String,
    /// The token's name, the agent's host, or empty.
    pub actor: String,
    /// The client's IP address, or empty.
    pub origin: String,
    /// The vault the object belongs to, or empty.
    pub vault: String,
    /// `vault.create`, `item.disable`, `token.delete`, ...
    pub action: String,
    /// The object's name or id.
    pub object: String,
    /// `Succeeded` or the refusal's error code.
    pub result: String,
    /// A short text (or JSON) with more, or empty.
    pub detail: String,
}

/// An entry of the audit log: appended, never changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    /// 1, 2, 3... in order of appending.
    pub seq: u64,
    pub time: Timestamp,
    pub actor_kind: String,
    pub actor: String,
    pub origin: String,
    pub vault: String,
    pub action: String,
    pub object: String,
    pub result: String,
    pub detail: String,
    /// The previous entry's hash (32 zero bytes for the first).
    pub prev_hash: [u8; 32],
    /// SHA-256 of this entry's encoding (`audit::encode`).
    pub hash: [u8; 32],
}
