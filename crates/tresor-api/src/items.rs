//! Protectable VMs, protected items, back up now, restore, recovery points.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use tresor_domain::ProtectionState;
use utoipa::{IntoParams, ToSchema};

use crate::inventory::VmReport;
use crate::vaults::ReplicationStatus;

/// A VM a host agent of the vault's location reported, not yet protected.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtectableVm {
    pub host: String,
    pub agent_id: String,
    pub vm: String,
    pub name: String,
    pub location: String,
    pub agent_online: bool,
    /// What the agent reported (state, disks, guest agent, preflight).
    pub info: VmReport,
}

/// `POST /api/v1/vaults/{vault}/items`: enable protection of a VM.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnableProtection {
    /// The host (agent) the VM runs on: its host name or agent id.
    #[schema(example = "kvm1")]
    pub host: String,
    /// The VM: the agent's name for it (a libvirt domain's UUID, a QEMU VM's name),
    /// or a libvirt domain's name or UUID when exactly one VM of the host has it
    /// (`AmbiguousVmName`, listing them, when several do).
    #[schema(example = "app01")]
    pub vm: String,
    /// Default: DefaultPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Disks left out of the item's points, by the VM's name for each (a libvirt
    /// disk's target: `vdb`); each one the VM reported, at least one disk left. Only
    /// a libvirt domain's (`DiskExclusionNotSupported` otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_disks: Vec<String>,
}

/// A protected VM.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtectedItem {
    pub id: String,
    pub vm_name: String,
    /// The host agent's name for the VM.
    pub vm: String,
    pub host: String,
    pub agent_id: String,
    #[schema(required)]
    pub policy: Option<String>,
    pub protection_state: ProtectionState,
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub last_backup_time: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    /// A `SoftDeleted` item's purge date: until then it can be undeleted
    /// (`POST .../items/{item}/undelete`), with its recovery points.
    #[serde(default)]
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub delete_at: Option<Timestamp>,
    /// Disks left out of its points (by the VM's name for each: `vdb`).
    #[serde(default)]
    pub excluded_disks: Vec<String>,
    /// The item's copy in the secondary region (shown for one item, not in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
}

/// `POST .../items/{item}/backup` (the body may be left out).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupNow {
    /// Keep the point until then (default: 30 days from now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retain_until: Option<Timestamp>,
}

/// `POST .../items/{item}/disable` (the body may be left out).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Disable {
    /// Delete the item's recovery points too (otherwise they are kept, and retention stops).
    #[serde(default)]
    pub delete_backup_data: bool,
}

/// `PUT .../items/{item}`: protect the item under another policy, or resume the
/// protection of a stopped item (Azure's "modify protection" and "resume
/// protection"), and/or change which disks it leaves out. The item's scheduled
/// points then expire as that policy says. At least one of the two is given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModifyProtection {
    /// The backup policy's name (left out: the policy and state stay as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The disks to leave out from the next backup on, replacing the item's list
    /// (`[]`: back every disk up again; left out: unchanged). Checked as at
    /// enabling protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_disks: Option<Vec<String>>,
}

/// `?useSecondaryRegion=true`: the points as the secondary region holds them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RegionQuery {
    #[serde(default)]
    pub use_secondary_region: bool,
}

/// `POST .../items/{item}/restore`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    pub recovery_point: String,
    /// `RestoreDisks` (to a folder on the host), `CreateVm` (disks and a new VM's
    /// definition), `ReplaceDisks` (over the stopped original). A string, so that
    /// another value is answered with `InvalidRestoreMode` naming the three.
    #[schema(schema_with = restore_mode_schema)]
    pub mode: String,
    /// Folder on the host for RestoreDisks and CreateVm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    /// `qcow2` or `raw` (default: each disk's own format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = disk_format_schema)]
    pub format: Option<String>,
    /// Name of the new VM (CreateVm; 1 to 64 letters, digits, `-`, `_`, `.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// CreateVm of a libvirt domain's point, instead of `targetPath`: the libvirt
    /// storage pool (of type dir, fs or netfs) whose folder receives the disks; that
    /// folder must be under the host's restore roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_pool: Option<String>,
    /// CreateVm of a libvirt domain's point: start the new domain once defined
    /// (default: defined only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start: bool,
    /// Restore from the copy in the secondary region (cross-region restore).
    #[serde(default)]
    pub use_secondary_region: bool,
}

/// A recovery point.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPoint {
    pub id: String,
    pub item_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
    /// `AppConsistent`, `FileSystemConsistent` or `CrashConsistent`.
    #[schema(schema_with = consistency_schema)]
    pub consistency: String,
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub expiry: Option<Timestamp>,
    /// Made by "back up now": kept until its own date whatever the policy says.
    pub on_demand: bool,
    /// Virtual size of its disks, bytes.
    pub size: u64,
    /// Its disks, the backup's figures, its parent, warnings, freeze time, host.
    pub details: Value,
    /// When it reached the secondary region (GeoRedundant vaults).
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub replicated: Option<Timestamp>,
    /// When it was deleted from the primary; it stays restorable from the secondary
    /// until the soft-delete window ends.
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub deleted_from_primary: Option<Timestamp>,
    /// Soft-deleted with its item: kept (not restorable) until then, when it is purged
    /// unless the item is undeleted.
    #[serde(default)]
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub delete_at: Option<Timestamp>,
}

/// The restore modes a [`RestoreRequest`] names.
pub const RESTORE_MODES: [&str; 3] = ["RestoreDisks", "CreateVm", "ReplaceDisks"];

/// The formats a restore writes disks in.
pub const DISK_FORMATS: [&str; 2] = ["qcow2", "raw"];

/// The consistencies of a [`RecoveryPoint`].
pub const CONSISTENCIES: [&str; 3] = ["AppConsistent", "FileSystemConsistent", "CrashConsistent"];

fn names(names: &[&str]) -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(names.iter().copied()))
        .build()
}

fn restore_mode_schema() -> utoipa::openapi::schema::Object {
    names(&RESTORE_MODES)
}

fn disk_format_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(names(&DISK_FORMATS))
        .item(
            utoipa::openapi::schema::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Null),
        )
        .into()
}

fn consistency_schema() -> utoipa::openapi::schema::Object {
    names(&CONSISTENCIES)
}
