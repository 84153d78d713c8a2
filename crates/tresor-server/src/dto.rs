//! What the API shows of the catalogue's rows (JSON, camelCase, Azure's names).

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tresor_domain::{BackupPolicy, JobErrorInfo, JobTask};
use tresor_metadata::{ItemRow, JobRow, PointRow, VaultRow};

/// The name a domain enum has in JSON and in the catalogue (`"GeoRedundant"`).
pub fn enum_name<T: Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The domain enum called `name`, if it is one.
pub fn parse_enum<T: DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(Value::String(name.to_string())).ok()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultDto {
    pub id: String,
    pub name: String,
    pub resource_group: String,
    pub location: String,
    pub storage_redundancy: String,
    /// True once the first backup is stored: redundancy can no longer change.
    pub redundancy_locked: bool,
    /// Recovery points can be listed and restored from the secondary region.
    pub cross_region_restore: bool,
    /// The copy in the paired location: status, lag, bytes pending, last error.
    pub replication: Value,
    pub created: Timestamp,
}

impl VaultDto {
    pub fn new(v: &VaultRow, replication: Value) -> VaultDto {
        VaultDto {
            id: v.id.clone(),
            name: v.name.clone(),
            resource_group: v.resource_group.clone(),
            location: v.location.clone(),
            storage_redundancy: v.redundancy.clone(),
            redundancy_locked: v.redundancy_locked,
            cross_region_restore: v.cross_region_restore,
            replication,
            created: v.created,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDto {
    pub id: String,
    #[serde(flatten)]
    pub policy: BackupPolicy,
    /// Protected items that use it.
    pub protected_items: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemDto {
    pub id: String,
    pub vm_name: String,
    /// The host agent's name for the VM.
    pub vm: String,
    pub host: String,
    pub agent_id: String,
    pub policy: Option<String>,
    pub protection_state: String,
    pub last_backup_time: Option<Timestamp>,
    pub created: Timestamp,
    /// The item's copy in the secondary region (shown for one item, not in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<Value>,
}

impl ItemDto {
    pub fn new(i: &ItemRow, host: &str, policy: Option<String>) -> ItemDto {
        ItemDto {
            id: i.id.clone(),
            vm_name: i.vm_name.clone(),
            vm: i.vm.clone(),
            host: host.to_string(),
            agent_id: i.agent_id.clone(),
            policy,
            protection_state: i.state.clone(),
            last_backup_time: i.last_backup,
            created: i.created,
            replication: None,
        }
    }
}

/// What a job's `body` holds (the catalogue stores it as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobBody {
    pub vm_name: String,
    pub params: Value,
    pub tasks: Vec<JobTask>,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub warnings: Vec<String>,
    pub error: Option<JobErrorInfo>,
    pub result: Value,
    pub cancel_requested: bool,
}

impl JobBody {
    pub fn of(job: &JobRow) -> JobBody {
        serde_json::from_value(job.body.clone()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDto {
    pub id: String,
    pub operation: String,
    pub status: String,
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
    pub result: Value,
}

impl JobDto {
    pub fn new(j: &JobRow, now: Timestamp) -> JobDto {
        let b = JobBody::of(j);
        let end = j.ended.unwrap_or(now);
        JobDto {
            id: j.id.clone(),
            operation: j.operation.clone(),
            status: j.status.clone(),
            item_id: j.item_id.clone(),
            vm_name: b.vm_name,
            start_time: j.created,
            end_time: j.ended,
            duration: (end.as_millisecond() - j.created.as_millisecond()).max(0) as f64 / 1000.0,
            tasks: b.tasks,
            bytes_done: b.bytes_done,
            bytes_total: b.bytes_total,
            percent: if j.ended.is_some() && j.status.starts_with("Completed") {
                100.0
            } else if b.bytes_total > 0 {
                (b.bytes_done as f64 * 100.0 / b.bytes_total as f64).min(100.0)
            } else {
                0.0
            },
            warnings: b.warnings,
            error: b.error,
            result: b.result,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointDto {
    pub id: String,
    pub item_id: String,
    pub time: Timestamp,
    pub consistency: String,
    pub expiry: Option<Timestamp>,
    /// Made by "back up now": kept until its own date whatever the policy says.
    pub on_demand: bool,
    /// Virtual size of its disks, bytes.
    pub size: u64,
    pub details: Value,
    /// When it reached the secondary region (GeoRedundant vaults).
    pub replicated: Option<Timestamp>,
    /// When it was deleted from the primary; it stays restorable from the secondary
    /// until the soft-delete window ends.
    pub deleted_from_primary: Option<Timestamp>,
}

impl From<&PointRow> for PointDto {
    fn from(p: &PointRow) -> PointDto {
        PointDto {
            id: p.id.clone(),
            item_id: p.item_id.clone(),
            time: p.created,
            consistency: p.consistency.clone(),
            expiry: p.expires,
            on_demand: p.on_demand,
            size: p.size,
            details: p.body.clone(),
            replicated: p.replicated,
            deleted_from_primary: p.primary_deleted,
        }
    }
}
