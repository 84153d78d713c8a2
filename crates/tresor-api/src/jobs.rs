//! Jobs: the record of every operation on a vault or protected item.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use tresor_domain::{JobErrorInfo, JobOperation, JobStatus, JobTask};
use utoipa::{IntoParams, ToSchema};

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub operation: JobOperation,
    pub status: JobStatus,
    #[schema(required)]
    pub item_id: Option<String>,
    pub vm_name: String,
    #[schema(value_type = String, format = DateTime)]
    pub start_time: Timestamp,
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub end_time: Option<Timestamp>,
    /// Seconds, so far or in all.
    #[schema(minimum = 0)]
    pub duration: f64,
    pub tasks: Vec<JobTask>,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// 0..=100.
    #[schema(minimum = 0, maximum = 100)]
    pub percent: f64,
    pub warnings: Vec<String>,
    #[schema(required)]
    pub error: Option<JobErrorInfo>,
    /// What the operation produced (a backup's recovery point and figures, a
    /// restore's disks, a verify's findings); its shape is the operation's.
    pub result: Value,
}

/// `GET /api/v1/vaults/{vault}/jobs?status=&operation=&item=&from=&to=&limit=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// An item's id or VM name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A backup job's `result`: its recovery point and figures.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupResult {
    pub recovery_point: String,
    /// `AppConsistent`, `FileSystemConsistent` or `CrashConsistent`.
    pub consistency: String,
    /// Bytes read from the VM's disks.
    #[serde(default)]
    pub bytes_read: Option<u64>,
    /// Bytes the vault stored anew (after deduplication and compression).
    #[serde(default)]
    pub bytes_added: Option<u64>,
    /// How long the guest's file systems were frozen, milliseconds.
    #[serde(default)]
    pub frozen_ms: Option<u64>,
}

/// A verify job's `result`: what was read, and the damage found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResult {
    /// `Primary` or `Secondary`.
    pub region: String,
    pub points_checked: u64,
    pub packs_checked: u64,
    pub bytes_checked: u64,
    pub damaged_points: Vec<DamagedPoint>,
    /// Damage in the storage itself (packs, index), whether or not a point needs it.
    pub problems: Vec<String>,
}

/// A recovery point a verify found damaged or missing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DamagedPoint {
    pub id: String,
    /// The point's name (its VM's history), when its manifest could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created: Option<Timestamp>,
    pub problems: Vec<String>,
}
