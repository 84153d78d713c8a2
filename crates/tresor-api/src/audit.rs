//! The audit log: every change made through the service, who made it, from where,
//! and its result; and the check of its hash chain.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// 1, 2, 3... in the order the entries were appended.
    pub seq: u64,
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
    /// `admin`, `agent`, or `anonymous` (no valid credential).
    #[schema(example = "admin")]
    pub actor_kind: String,
    /// The token's name or the agent's host (empty for `anonymous`).
    pub actor: String,
    /// The client's IP address (empty when unknown).
    pub origin: String,
    /// The vault concerned (empty for tokens, sign-ins, ...).
    pub vault: String,
    #[schema(example = "vault.create")]
    pub action: String,
    /// The object's name or id.
    pub object: String,
    /// `Succeeded`, or the error code of the refusal or failure.
    #[schema(example = "Succeeded")]
    pub result: String,
    /// More about it, briefly (may be empty).
    pub detail: String,
    /// The previous entry's hash, hex (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 of this entry (FORMAT.md, appendix "Audit log"), hex.
    pub hash: String,
}

/// `GET /api/v1/audit?from=&limit=&vault=`: entries in seq order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// From this seq on; without it, the newest `limit` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// At most this many (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only the entries of this vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
}

/// `GET /api/v1/audit/verify`: whether the log's hash chain holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    /// True when every entry fits the chain.
    pub intact: bool,
    /// Entries checked (up to and including the first broken one).
    pub entries: u64,
    /// The last entry that fits: keep its seq and hash elsewhere, and compare later
    /// (entries removed from the end leave a shorter chain that still holds).
    #[schema(required)]
    pub last_seq: Option<u64>,
    #[schema(required)]
    pub last_hash: Option<String>,
    /// The first entry that does not fit.
    #[schema(required)]
    pub broken_seq: Option<u64>,
    /// Why it does not fit.
    #[schema(required)]
    pub problem: Option<String>,
}
