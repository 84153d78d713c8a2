//! Tresor's domain model: vaults, backup policies, schedules, retention,
//! protected items, jobs and recovery points, and every rule they obey.
//!
//! The model and its limits follow Azure Backup's Recovery Services vault,
//! so that someone who knows one knows the other: the same names, the same
//! policy shapes, the same error codes in spirit.
//!
//! # Architecture
//!
//! This crate is pure. It knows nothing of HTTP, databases, QEMU or storage
//! and does no I/O (its one contact with the outside is reading the time
//! zone database to interpret a schedule's time zone). Every rule the vault
//! enforces lives here, so that the server, the CLI and the portal agree on
//! what is valid, when a backup runs and how long a point is kept. A rule
//! broken returns a [`RuleError`] with a stable code.
//!
//! JSON uses camelCase field names and spells enum values as Azure does
//! (`"GeoRedundant"`, `"InProgress"`, `"Sunday"`, `"January"`).
//!
//! # Modules
//!
//! - [`names`]: vault, resource group, location and policy names;
//! - [`vault`]: vaults and their storage redundancy;
//! - [`policy`]: backup policies, their schedules and retention rules, and
//!   the checks between them (the types are defined in `policy_types`, which
//!   `schedule` and `retention` read, and re-exported from `policy`);
//! - [`schedule`]: the instants a schedule runs at, across daylight saving;
//! - [`retention`]: how long each recovery point is kept;
//! - [`item`]: the protection state of a protected item;
//! - [`disk_exclusion`]: which disks a protected item leaves out of its points;
//! - [`job`]: jobs, their tasks and errors;
//! - [`access`]: permissions, roles, scopes and role assignments: who may do
//!   what, and where;
//! - [`guard`]: resource guards (multi-user authorization): critical operations
//!   and the approvals they need.

#![forbid(unsafe_code)]

pub mod access;
pub mod disk_exclusion;
pub mod error;
pub mod guard;
pub mod item;
pub mod job;
pub mod names;
pub mod policy;
mod policy_types;
pub mod retention;
pub mod schedule;
pub mod vault;

pub use access::{authorize, Permission, Reach, Role, RoleAssignment, Scope, Target};
pub use disk_exclusion::{excluded_disks, parse_excluded_disks};
pub use error::{codes, RuleError};
pub use guard::{CriticalOperation, RequestStatus};
pub use item::ProtectionState;
pub use job::{JobErrorInfo, JobOperation, JobStatus, JobTask};
pub use names::{Location, PolicyName, ResourceGroupName, VaultName};
pub use policy::{
    BackupPolicy, DailyRetention, DaySelector, Frequency, MonthDay, MonthlyRetention, Retention,
    Schedule, WeekOfMonth, WeeklyRetention, YearlyRetention, MONTH_NAMES,
};
pub use retention::{
    default_retain_until, expired, validate_retain_until, RetentionRule, RetentionTag,
};
pub use vault::{Immutability, SoftDelete, StorageRedundancy, Vault};
