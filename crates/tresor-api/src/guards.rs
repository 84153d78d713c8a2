//! Resource guards (multi-user authorization): guards, their approvers, and the
//! requests for approval of critical operations.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
pub use tresor_domain::guard::{CriticalOperation, RequestStatus};
use utoipa::ToSchema;

/// `POST /api/v1/resourceGuards`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateResourceGuard {
    /// 2 to 50 letters, digits and hyphens, a letter first; unique whatever the case.
    #[schema(min_length = 2, max_length = 50, example = "Guard-1")]
    pub name: String,
    /// User names: 1 to 20 existing users, each once.
    #[schema(min_items = 1, max_items = 20)]
    pub approvers: Vec<String>,
    /// Minutes a request waits for a decision, and an approval stays usable:
    /// 5..=10080, default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 5, maximum = 10080)]
    pub validity_minutes: Option<u32>,
}

/// `PUT /api/v1/resourceGuards/{guard}`: a critical operation on the guard
/// (`ChangeResourceGuard`), needing an approval of one of its approvers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateResourceGuard {
    /// The approvers, all of them (1 to 20 existing users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 5, maximum = 10080)]
    pub validity_minutes: Option<u32>,
}

/// A resource guard as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGuard {
    pub id: String,
    pub name: String,
    /// The approvers' user names.
    pub approvers: Vec<String>,
    pub validity_minutes: u32,
    /// The vaults bound to it.
    pub vaults: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
}

/// `POST /api/v1/resourceGuards/{guard}/requests`: ask for approval of one critical
/// operation on one vault (none for `ChangeResourceGuard`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGuardRequest {
    /// The vault bound to the guard; left out for `ChangeResourceGuard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
    pub operation: CriticalOperation,
    /// Why, for the approver: 1 to 500 characters on one line.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// A request for approval.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardRequest {
    pub id: String,
    pub guard: String,
    #[schema(required)]
    pub vault: Option<String>,
    pub operation: CriticalOperation,
    pub reason: String,
    /// The user (or, for a token of no user, the token) that asked.
    pub requested_by: String,
    /// `user` or `token`.
    pub requested_by_kind: String,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    /// Expired is the server clock's word: a pending or approved request past `expires`.
    pub status: RequestStatus,
    #[schema(required)]
    pub decided_by: Option<String>,
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<Timestamp>,
    /// Until when it waits for a decision (pending) or may be used (approved).
    #[schema(value_type = String, format = DateTime)]
    pub expires: Timestamp,
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub used: Option<Timestamp>,
}
