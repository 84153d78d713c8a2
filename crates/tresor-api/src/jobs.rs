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

/// What a job was asked to do: the parameters of its operation, kept with the job
/// and handed to the agent that runs it (`Assignment::params`). Each operation uses
/// its own fields; the others stay empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobParams {
    /// ConfigureBackup: the policy attached to the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Backup: made by "back up now" (kept until `retain_until`), not by the schedule.
    #[serde(default)]
    pub on_demand: bool,
    /// Backup on demand: keep the point until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retain_until: Option<Timestamp>,
    /// Backup: the disks its item leaves out of the point (the VM's names: `vdb`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_disks: Vec<String>,
    /// Backup: the item's newest recovery point when the job was made, which the new
    /// one follows (its change tracking, its unchanged data); none: every disk is
    /// read whole, deduplicated against what is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_point: Option<String>,
    /// Scheduled backup: the policy's window it runs for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub window: Option<Timestamp>,
    /// DisableBackup / DeleteBackupData: the item's points are deleted too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_backup_data: Option<bool>,
    /// Restore: the point to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point: Option<String>,
    /// Restore: `RestoreDisks`, `CreateVm` or `ReplaceDisks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Restore: the folder on the host (RestoreDisks, CreateVm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    /// Restore: `qcow2` or `raw` (default: each disk's own format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Restore (CreateVm): the new VM's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// Restore (CreateVm of a libvirt domain's point): the storage pool receiving
    /// the disks, instead of `target_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_pool: Option<String>,
    /// Restore (CreateVm of a libvirt domain's point): start the new domain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start: bool,
    /// Restore, Verify: work on the copy in the secondary region.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_secondary_region: bool,
    /// Replication: the paired location copied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_location: Option<String>,
    /// GarbageCollection: the host agent whose repository was collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_agent: Option<String>,
}

impl JobParams {
    /// A restore's parameters: the request as it was accepted.
    pub fn restore(req: &crate::items::RestoreRequest) -> JobParams {
        JobParams {
            recovery_point: Some(req.recovery_point.clone()),
            mode: Some(req.mode.clone()),
            target_path: req.target_path.clone(),
            format: req.format.clone(),
            new_name: req.new_name.clone(),
            target_pool: req.target_pool.clone(),
            start: req.start,
            use_secondary_region: req.use_secondary_region,
            ..JobParams::default()
        }
    }
}

/// A ConfigureBackup job's `result`: the protected item it made.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConfigureBackupResult {
    pub item: String,
}

/// A DisableBackup or DeleteBackupData job's `result`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisableBackupResult {
    pub deleted_recovery_points: usize,
}

/// A Replication job's `result`: what went to the secondary region.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationResult {
    /// The points whose manifests reached the secondary in this run.
    pub recovery_points_replicated: Vec<String>,
    pub objects_copied: u64,
    pub bytes_copied: u64,
    pub bytes_already_on_secondary: u64,
    pub objects_deleted_from_secondary: u64,
}

/// A GarbageCollection job's `result`: what one host's repository gave back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GarbageCollectionResult {
    pub host_agent: String,
    pub orphan_manifests_removed: u64,
    pub blobs_removed: u64,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub bytes_freed: u64,
    /// Packs kept, each with why (a blob a point needs is in it; FORMAT.md §15).
    pub packs_kept: Vec<String>,
}

/// A Restore job's `result`: what the restore made on the host.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResult {
    pub disks: Vec<RestoredDisk>,
    /// CreateVm: the new VM's definition (`vm.json`).
    #[schema(required)]
    pub definition: Option<String>,
    /// CreateVm: the script that starts the new VM.
    #[schema(required)]
    pub start_script: Option<String>,
    /// CreateVm of a libvirt domain's point: the domain defined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<RestoredLibvirtDomain>,
}

/// A libvirt domain a restore defined: a new name, and the UUID and MAC addresses
/// libvirt chose for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoredLibvirtDomain {
    pub name: String,
    pub uuid: String,
    pub macs: Vec<String>,
    /// Started, as the request asked.
    pub started: bool,
}

/// One disk a restore wrote.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RestoredDisk {
    /// The disk's name in the recovery point (`vda`).
    pub name: String,
    /// The file written on the host.
    pub path: String,
    /// `qcow2` or `raw`.
    pub format: String,
}
