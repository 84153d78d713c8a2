//! What the API shows of the catalogue's rows: rows in, `tresor-api` types out.

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tresor_api::items::{ProtectedItem, RecoveryPoint};
use tresor_api::jobs::{Job, JobParams};
use tresor_api::vaults::{ReplicationStatus, Vault};
use tresor_domain::{JobErrorInfo, JobOperation, JobStatus, JobTask, ProtectionState};
use tresor_metadata::{ItemRow, JobRow, PointRow, VaultRow};

use crate::error::{ServiceError, ServiceResult};

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

/// A catalogue column that must hold one of an enum's names: anything else is the
/// catalogue's damage, an internal error.
fn catalogued<T: DeserializeOwned>(what: &str, name: &str) -> ServiceResult<T> {
    parse_enum(name)
        .ok_or_else(|| ServiceError::internal(format!("the catalogue holds {what} {name:?}")))
}

pub fn vault(v: &VaultRow, replication: ReplicationStatus) -> ServiceResult<Vault> {
    Ok(Vault {
        id: v.id.clone(),
        name: v.name.clone(),
        resource_group: v.resource_group.clone(),
        location: v.location.clone(),
        storage_redundancy: catalogued("storage redundancy", &v.redundancy)?,
        redundancy_locked: v.redundancy_locked,
        cross_region_restore: v.cross_region_restore,
        soft_delete_days: v.soft_delete_days,
        soft_delete_always_on: v.soft_delete_always_on,
        immutability: catalogued("immutability", &v.immutability)?,
        // Filled in by `usecases::vaults::vault_view` (the binding is its own column).
        resource_guard: None,
        replication,
        created: v.created,
    })
}

pub fn item(i: &ItemRow, host: &str, policy: Option<String>) -> ProtectedItem {
    ProtectedItem {
        id: i.id.clone(),
        vm_name: i.vm_name.clone(),
        vm: i.vm.clone(),
        host: host.to_string(),
        agent_id: i.agent_id.clone(),
        policy,
        // An unknown state is shown as an error of protection (as the rules treat it).
        protection_state: parse_enum(&i.state).unwrap_or(ProtectionState::ProtectionError),
        last_backup_time: i.last_backup,
        created: i.created,
        delete_at: i.delete_at,
        excluded_disks: i.excluded_disks.clone(),
        replication: None,
    }
}

/// What a job's `body` holds (the catalogue stores it as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobBody {
    pub vm_name: String,
    pub params: JobParams,
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

pub fn job(j: &JobRow, now: Timestamp) -> ServiceResult<Job> {
    let b = JobBody::of(j);
    let end = j.ended.unwrap_or(now);
    let status: JobStatus = catalogued("job status", &j.status)?;
    Ok(Job {
        id: j.id.clone(),
        operation: catalogued::<JobOperation>("job operation", &j.operation)?,
        status,
        item_id: j.item_id.clone(),
        vm_name: b.vm_name,
        start_time: j.created,
        end_time: j.ended,
        duration: (end.as_millisecond() - j.created.as_millisecond()).max(0) as f64 / 1000.0,
        tasks: b.tasks,
        bytes_done: b.bytes_done,
        bytes_total: b.bytes_total,
        percent: if j.ended.is_some()
            && matches!(
                status,
                JobStatus::Completed | JobStatus::CompletedWithWarnings
            ) {
            100.0
        } else if b.bytes_total > 0 {
            (b.bytes_done as f64 * 100.0 / b.bytes_total as f64).min(100.0)
        } else {
            0.0
        },
        warnings: b.warnings,
        error: b.error,
        result: b.result,
    })
}

/// A job's typed result as the JSON the catalogue keeps and the API shows.
pub fn result(r: &impl Serialize) -> ServiceResult<Value> {
    serde_json::to_value(r).map_err(ServiceError::internal)
}

pub fn point(p: &PointRow) -> RecoveryPoint {
    RecoveryPoint {
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
        delete_at: p.soft_delete_until,
    }
}
