//! Jobs: the record of every operation on a vault or protected item.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use tresor_domain::{JobErrorInfo, JobOperation, JobStatus, JobTask};

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub operation: JobOperation,
    pub status: JobStatus,
    pub item_id: Option<String>,
    pub vm_name: String,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    /// Seconds, so far or in all.
    pub duration: f64,
    pub tasks: Vec<JobTask>,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// 0..=100.
    pub percent: f64,
    pub warnings: Vec<String>,
    pub error: Option<JobErrorInfo>,
    /// What the operation produced (a backup's recovery point and figures, a
    /// restore's disks, a verify's findings); its shape is the operation's.
    pub result: Value,
}

/// `GET /api/v1/vaults/{vault}/jobs?status=&operation=&item=&from=&to=&limit=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// An item's id or VM name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}
