//! Vaults: create, show, backup properties, vault credentials, verify.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
pub use tresor_domain::{Immutability, StorageRedundancy};
use utoipa::ToSchema;

/// `POST /api/v1/vaults`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateVault {
    #[schema(value_type = tresor_domain::VaultName)]
    pub name: String,
    #[schema(value_type = tresor_domain::ResourceGroupName)]
    pub resource_group: String,
    #[schema(value_type = tresor_domain::Location)]
    pub location: String,
    /// Default: GeoRedundant, as Azure.
    #[serde(default)]
    pub storage_redundancy: Option<StorageRedundancy>,
}

/// A vault as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Vault {
    pub id: String,
    pub name: String,
    pub resource_group: String,
    pub location: String,
    pub storage_redundancy: StorageRedundancy,
    /// True once the first backup is stored: redundancy can no longer change.
    pub redundancy_locked: bool,
    /// Recovery points can be listed and restored from the secondary region.
    pub cross_region_restore: bool,
    /// Days deleted backup data is kept (soft-deleted, undeletable) before it is purged.
    #[schema(minimum = 14, maximum = 180)]
    pub soft_delete_days: u32,
    /// Soft delete is always-on: no one can switch it off again.
    pub soft_delete_always_on: bool,
    /// While not `Disabled`, no operation may shorten a recovery point's life;
    /// `Locked` is for good.
    pub immutability: Immutability,
    /// The resource guard whose approvers must approve the vault's critical
    /// operations, if one is bound.
    #[serde(default)]
    #[schema(required)]
    pub resource_guard: Option<String>,
    /// The copy in the paired location: status, lag, bytes pending, last error.
    pub replication: ReplicationStatus,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
}

/// How the copy of a vault (or of one item) in the secondary region stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    pub status: ReplicationHealth,
    /// The paired location, for GeoRedundant vaults whose location has one.
    #[schema(required)]
    pub secondary_location: Option<String>,
    /// Figures, for GeoRedundant vaults with a paired location.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = progress_fields_schema)]
    pub progress: Option<ReplicationProgress>,
}

/// Where replication stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ReplicationHealth {
    /// The vault is LocallyRedundant.
    NotApplicable,
    /// GeoRedundant, but the server's configuration pairs its location with none.
    NoPairedLocation,
    /// Every point is on the secondary.
    UpToDate,
    /// Points wait to be copied.
    Replicating,
    /// The last run failed (see `lastError`); it is retried.
    Failing,
}

/// The figures of a GeoRedundant vault's replication.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationProgress {
    /// Age of the oldest point not yet copied, seconds (0 when none waits).
    #[schema(minimum = 0)]
    pub lag_seconds: f64,
    pub pending_recovery_points: usize,
    pub bytes_pending: u64,
    pub recovery_points_on_secondary: usize,
    /// Deleted from the primary, kept on the secondary until the soft-delete window ends.
    pub soft_deleted_recovery_points: usize,
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub last_success: Option<Timestamp>,
    #[schema(required)]
    pub last_error: Option<ReplicationError>,
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub next_attempt: Option<Timestamp>,
    pub bytes_replicated: u64,
}

/// Why the last replication run failed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationError {
    pub code: String,
    pub message: String,
    pub recommendation: String,
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
}

/// `PUT /api/v1/vaults/{vault}/backup-properties`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_redundancy: Option<StorageRedundancy>,
    /// Allow listing and restoring recovery points from the secondary region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_region_restore: Option<bool>,
    /// Days deleted backup data is kept before it is purged: 14..=180 (default 14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 14, maximum = 180)]
    pub soft_delete_days: Option<u32>,
    /// Make soft delete always-on; once true it cannot be set false (`SoftDeleteAlwaysOn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_delete_always_on: Option<bool>,
    /// `Disabled`, `Enabled` or `Locked` (`Locked` cannot be undone: `ImmutabilityLocked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutability: Option<Immutability>,
    /// Bind the vault to this resource guard; `""` unbinds it. Unbinding or binding
    /// a guarded vault to another guard needs an approval (`RemoveResourceGuard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_guard: Option<String>,
}

/// `POST /api/v1/vaults/{vault}/credentials` (the body may be left out).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialsRequest {
    /// Days the credentials stay valid: 1..=10 (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10)]
    pub valid_days: Option<u32>,
    /// The location of the agent that registers with them (default: the vault's).
    /// The agent gets this location whatever it claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// A vault credentials file: what an agent needs to register with this vault's
/// server. Written by `tresor vault credentials` and the portal, read by
/// `tresor agent register`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsFile {
    pub server: String,
    /// SHA-256 of the server's certificate: the agent trusts exactly this certificate.
    pub fingerprint: String,
    pub vault: String,
    /// One-time secret; registering an agent uses it up.
    pub secret: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires: Timestamp,
    /// The location the registering agent gets.
    #[serde(default)]
    pub location: Option<String>,
}

/// `POST /api/v1/vaults/{vault}/verify` (the body may be left out).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRequest {
    /// Verify the copy in the secondary region.
    #[serde(default)]
    pub use_secondary_region: bool,
}

/// [`ReplicationProgress`]'s fields, none required: a vault without figures has none
/// of them (the flattened `Option`).
fn progress_fields_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::{schema::Schema, RefOr};
    let mut schema = <ReplicationProgress as utoipa::PartialSchema>::schema();
    if let RefOr::T(Schema::Object(fields)) = &mut schema {
        fields.required.clear();
    }
    schema
}
