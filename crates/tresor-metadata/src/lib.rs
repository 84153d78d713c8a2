//! The vault server's metadata, behind one trait.
//!
//! [`MetadataStore`] is every read and write the server makes of its catalogue:
//! vaults, backup policies, enrollment secrets, host agents and the VMs they report,
//! protected items, jobs and the recovery points' catalogue entries. [`SqliteStore`]
//! implements it on one SQLite file (the embedded default); a PostgreSQL store can
//! implement the same trait.
//!
//! The store is deliberately dumb: rows in, rows out, with the few operations that must
//! be atomic in the database (claiming a job, one backup per item, one vault per VM).
//! Rules live in the domain model; enums travel here as their names, and documents
//! that only the server interprets (a policy, a job's progress) as JSON.
//!
//! The audit log is append-only: [`MetadataStore::append_audit`] links each entry
//! to the one before it by hash (`audit`), and no method changes or removes one.
//!
//! Times are [`jiff::Timestamp`]s, stored as milliseconds since the Unix epoch (UTC).
//!
//! **Architecture invariant:** knows nothing of HTTP, QEMU or repositories.

pub mod audit;
mod guards;
mod rows;
mod sqlite;

pub use guards::*;
pub use rows::*;
pub use sqlite::SqliteStore;

use jiff::Timestamp;
use serde_json::Value;

/// Errors of metadata stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule of the catalogue was broken (`what` names it).
    #[error("{what} already exists")]
    Conflict { what: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("metadata database: {0}")]
    Database(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which jobs [`MetadataStore::list_jobs`] returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub vault_id: Option<String>,
    pub item_id: Option<String>,
    pub status: Option<String>,
    pub operation: Option<String>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub to: Option<Timestamp>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

/// Which audit entries [`MetadataStore::list_audit`] returns, in seq order.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// From this seq on; without it, the newest `limit` entries.
    pub from: Option<u64>,
    /// Only entries of this vault (by name, as recorded).
    pub vault: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

/// Everything the server stores besides the repositories themselves.
///
/// Resource guards are [`GuardStore`]'s part of it.
pub trait MetadataStore: GuardStore + Send + Sync {
    // Installation-wide settings (schema version, admin token hash, ...).
    fn get_setting(&self, key: &str) -> Result<Option<String>>;
    fn set_setting(&self, key: &str, value: &str) -> Result<()>;

    // API tokens (hashes only).
    fn insert_token(&self, token: &TokenRow) -> Result<()>;
    fn find_token(&self, hash: &str) -> Result<Option<TokenRow>>;
    fn list_tokens(&self) -> Result<Vec<TokenRow>>;
    fn delete_token(&self, id: &str) -> Result<()>;

    // Users: names unique case-insensitively; deleting one deletes its tokens.
    fn insert_user(&self, user: &UserRow) -> Result<()>;
    fn find_user_by_name(&self, name: &str) -> Result<Option<UserRow>>;
    fn list_users(&self) -> Result<Vec<UserRow>>;
    /// Replaces the password hash, TOTP secrets and roles of the user `user.id`.
    fn update_user(&self, user: &UserRow) -> Result<()>;
    fn get_user(&self, id: &str) -> Result<Option<UserRow>>;
    /// Records that the user's sign-in used the TOTP code of time step `step`, if no
    /// code of it or a later step was used before: whether it was (the replay guard;
    /// atomic, so two sign-ins racing with one code cannot both pass).
    fn accept_totp_step(&self, user_id: &str, step: u64) -> Result<bool>;
    fn delete_user(&self, id: &str) -> Result<()>;

    // Vaults: names unique case-insensitively.
    fn insert_vault(&self, vault: &VaultRow) -> Result<()>;
    fn get_vault(&self, id: &str) -> Result<VaultRow>;
    fn find_vault_by_name(&self, name: &str) -> Result<Option<VaultRow>>;
    fn list_vaults(&self) -> Result<Vec<VaultRow>>;
    fn update_vault(&self, vault: &VaultRow) -> Result<()>;
    /// Deletes a vault and its policies, enrollments, items, jobs and points.
    fn delete_vault(&self, id: &str) -> Result<()>;

    // Backup policies: names unique within a vault.
    fn insert_policy(&self, policy: &PolicyRow) -> Result<()>;
    fn get_policy(&self, id: &str) -> Result<PolicyRow>;
    fn find_policy(&self, vault_id: &str, name: &str) -> Result<Option<PolicyRow>>;
    fn list_policies(&self, vault_id: &str) -> Result<Vec<PolicyRow>>;
    fn update_policy(&self, policy: &PolicyRow) -> Result<()>;
    fn delete_policy(&self, id: &str) -> Result<()>;
    /// Active items that use the policy.
    fn items_using_policy(&self, policy_id: &str) -> Result<Vec<ItemRow>>;

    // Enrollment secrets (vault credentials files); single use.
    fn insert_enrollment(&self, enrollment: &EnrollmentRow) -> Result<()>;
    /// The enrollment with this secret hash, used or not, expired or not (to say
    /// which, when it cannot be used).
    fn find_enrollment(&self, secret_hash: &str) -> Result<Option<EnrollmentRow>>;
    /// Marks the unexpired, unused enrollment with this secret hash used and returns it.
    fn consume_enrollment(
        &self,
        secret_hash: &str,
        now: Timestamp,
    ) -> Result<Option<EnrollmentRow>>;

    // Host agents.
    fn insert_agent(&self, agent: &AgentRow) -> Result<()>;
    fn get_agent(&self, id: &str) -> Result<AgentRow>;
    fn find_agent_by_credential(&self, hash: &str) -> Result<Option<AgentRow>>;
    fn list_agents(&self) -> Result<Vec<AgentRow>>;
    fn touch_agent(&self, id: &str, seen: Timestamp, version: Option<&str>) -> Result<()>;
    /// Replaces what an agent reported of its VMs.
    fn replace_inventory(&self, agent_id: &str, vms: &[VmRow]) -> Result<()>;
    fn list_inventory(&self) -> Result<Vec<VmRow>>;

    // Protected items: a VM is actively protected by at most one vault.
    fn insert_item(&self, item: &ItemRow) -> Result<()>;
    fn get_item(&self, id: &str) -> Result<ItemRow>;
    fn find_active_item(&self, agent_id: &str, vm: &str) -> Result<Option<ItemRow>>;
    /// Items of a vault (inactive ones too, when `include_inactive`).
    fn list_items(&self, vault_id: &str, include_inactive: bool) -> Result<Vec<ItemRow>>;
    /// Every active item of every vault (the scheduler's view).
    fn list_active_items(&self) -> Result<Vec<ItemRow>>;
    fn update_item(&self, item: &ItemRow) -> Result<()>;

    // Jobs.
    /// Fails with [`StoreError::Conflict`] for a second unfinished backup of an item.
    fn insert_job(&self, job: &JobRow) -> Result<()>;
    fn get_job(&self, id: &str) -> Result<JobRow>;
    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>>;
    fn update_job(&self, job: &JobRow) -> Result<()>;
    /// Gives agent `agent_id` its oldest waiting job (unclaimed, `InProgress`), if any,
    /// claimed until `lease_until`.
    fn claim_job(
        &self,
        agent_id: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<JobRow>>;
    /// Unfinished jobs whose lease ran out before `now`.
    fn jobs_with_expired_lease(&self, now: Timestamp) -> Result<Vec<JobRow>>;
    /// Unfinished jobs claimed by an agent.
    fn running_jobs_of_agent(&self, agent_id: &str) -> Result<Vec<JobRow>>;

    // Recovery point catalogue.
    fn insert_point(&self, point: &PointRow) -> Result<()>;
    fn get_point(&self, id: &str) -> Result<PointRow>;
    /// An item's points on the primary (not deleted there), oldest first.
    fn list_points(&self, item_id: &str) -> Result<Vec<PointRow>>;
    /// A vault's points on the primary, oldest first.
    fn list_vault_points(&self, vault_id: &str) -> Result<Vec<PointRow>>;
    /// A vault's points including those deleted from the primary but kept on the
    /// secondary (`primary_deleted` set), oldest first.
    fn list_vault_points_with_deleted(&self, vault_id: &str) -> Result<Vec<PointRow>>;
    fn update_point(&self, point: &PointRow) -> Result<()>;
    fn delete_point(&self, id: &str) -> Result<()>;

    // Replication state of a vault (lag, errors, pending deletions), a JSON document
    // only the server interprets.
    fn get_replication(&self, vault_id: &str) -> Result<Option<Value>>;
    fn put_replication(&self, vault_id: &str, body: &Value) -> Result<()>;

    // The audit log: append and read, nothing else.
    /// Appends an entry, linked to the last one (reading the last hash and inserting
    /// in one transaction); returns its seq.
    fn append_audit(&self, entry: &NewAudit) -> Result<u64>;
    /// Entries in seq order (see [`AuditFilter`]).
    fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>>;
}
