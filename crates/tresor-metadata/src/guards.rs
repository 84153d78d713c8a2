//! Resource guards and their requests for approval, behind [`GuardStore`] (a part
//! of [`MetadataStore`](crate::MetadataStore): every store implements it).
//!
//! A vault's binding to a guard is the vault's `resource_guard` column, read and
//! written only here (so `VaultRow` and `update_vault` leave it alone). Statuses and
//! operations travel as their names; whether a request expired is the service's
//! computation from `expires` and its clock.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Result;

/// A resource guard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardRow {
    pub id: String,
    /// As given; unique whatever the case of its letters.
    pub name: String,
    /// The approvers' user ids (stored as a JSON list).
    pub approvers: Vec<String>,
    pub validity_minutes: u32,
    pub created: Timestamp,
}

/// A request for approval of one critical operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardRequestRow {
    pub id: String,
    pub guard_id: String,
    /// The vault's id and name (none for an operation on the guard itself). No
    /// foreign key: the request outlives a deleted vault, and a vault made again
    /// under the name has another id.
    pub vault_id: Option<String>,
    pub vault: Option<String>,
    /// A `CriticalOperation`'s name.
    pub operation: String,
    pub reason: String,
    /// `user` or `token`, with its id and name.
    pub requester_kind: String,
    pub requester_id: String,
    pub requester_name: String,
    pub created: Timestamp,
    /// `Pending`, `Approved`, `Rejected` or `Used` (never `Expired`: computed).
    pub status: String,
    /// The approver's name and user id.
    pub decided_by: Option<String>,
    pub decided_by_id: Option<String>,
    pub decided_at: Option<Timestamp>,
    /// Until when a pending request waits, or an approved one may be used.
    pub expires: Timestamp,
    /// When the approved operation was done.
    pub used: Option<Timestamp>,
}

/// How a decision changes a pending request.
#[derive(Debug, Clone)]
pub struct GuardDecision {
    /// `Approved` or `Rejected`.
    pub status: String,
    pub decided_by: String,
    pub decided_by_id: String,
    pub decided_at: Timestamp,
    /// The new `expires` (an approval's validity starts at the decision).
    pub expires: Timestamp,
}

/// The catalogue of resource guards.
pub trait GuardStore {
    /// Names unique case-insensitively ([`crate::StoreError::Conflict`]).
    fn insert_guard(&self, guard: &GuardRow) -> Result<()>;
    fn get_guard(&self, id: &str) -> Result<GuardRow>;
    fn find_guard_by_name(&self, name: &str) -> Result<Option<GuardRow>>;
    fn list_guards(&self) -> Result<Vec<GuardRow>>;
    /// Replaces the approvers and the validity of the guard `guard.id`.
    fn update_guard(&self, guard: &GuardRow) -> Result<()>;
    /// Deletes a guard and its requests; refused by the database while a vault is
    /// bound to it.
    fn delete_guard(&self, id: &str) -> Result<()>;

    /// The id of the guard the vault is bound to.
    fn vault_guard(&self, vault_id: &str) -> Result<Option<String>>;
    fn set_vault_guard(&self, vault_id: &str, guard_id: Option<&str>) -> Result<()>;
    /// The names of the vaults bound to the guard.
    fn vaults_guarded_by(&self, guard_id: &str) -> Result<Vec<String>>;

    fn insert_guard_request(&self, request: &GuardRequestRow) -> Result<()>;
    fn get_guard_request(&self, id: &str) -> Result<GuardRequestRow>;
    /// A guard's requests, newest first, at most `limit`.
    fn list_guard_requests(&self, guard_id: &str, limit: u32) -> Result<Vec<GuardRequestRow>>;
    /// Approved requests for the operation on the vault (or on the guard, for
    /// `vault_id` none) that expire after `now`, oldest first.
    fn usable_guard_requests(
        &self,
        guard_id: &str,
        vault_id: Option<&str>,
        operation: &str,
        now: Timestamp,
    ) -> Result<Vec<GuardRequestRow>>;
    /// Decides the request if it is still pending and unexpired at `decision.decided_at`;
    /// whether it was.
    fn decide_guard_request(&self, id: &str, decision: &GuardDecision) -> Result<bool>;
    /// Marks the approved, unexpired request used at `now`; whether it was (a
    /// request is used once, whoever races for it).
    fn use_guard_request(&self, id: &str, now: Timestamp) -> Result<bool>;
}
