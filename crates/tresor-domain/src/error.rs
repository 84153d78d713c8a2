//! The one error type of the domain: a broken rule, with a stable code.
//!
//! Codes are PascalCase identifiers in the style of Azure's error codes
//! (`InvalidVaultName`, `RetentionOutOfRange`, ...). They are part of the
//! API: the server returns them, the CLI and the portal match on them, and
//! they never change meaning. [`codes`] lists every one.

use serde::Serialize;

/// A rule of the vault that a request breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{code}: {message} {recommendation}")]
pub struct RuleError {
    /// Stable, PascalCase, one per rule: see [`codes`].
    pub code: &'static str,
    /// What is wrong, naming the offending value.
    pub message: String,
    /// What to do about it.
    pub recommendation: String,
}

impl RuleError {
    pub fn new(
        code: &'static str,
        message: impl Into<String>,
        recommendation: impl Into<String>,
    ) -> Self {
        RuleError {
            code,
            message: message.into(),
            recommendation: recommendation.into(),
        }
    }
}

/// A date or instant outside the range jiff represents.
pub(crate) fn out_of_range(e: jiff::Error) -> RuleError {
    RuleError::new(
        codes::TIME_OUT_OF_RANGE,
        format!("A date or time falls outside the supported range: {e}."),
        "Use dates well within the years -9999 to 9999.",
    )
}

/// Every code a [`RuleError`] can carry.
pub mod codes {
    // Names.
    pub const INVALID_VAULT_NAME: &str = "InvalidVaultName";
    pub const INVALID_RESOURCE_GROUP_NAME: &str = "InvalidResourceGroupName";
    pub const INVALID_LOCATION: &str = "InvalidLocation";
    pub const INVALID_POLICY_NAME: &str = "InvalidPolicyName";
    // Vault.
    pub const REDUNDANCY_LOCKED: &str = "RedundancyLocked";
    pub const SOFT_DELETE_DAYS_OUT_OF_RANGE: &str = "SoftDeleteDaysOutOfRange";
    pub const SOFT_DELETE_ALWAYS_ON: &str = "SoftDeleteAlwaysOn";
    // Immutable vaults.
    pub const IMMUTABILITY_LOCKED: &str = "ImmutabilityLocked";
    pub const IMMUTABLE_VAULT: &str = "ImmutableVault";
    // Schedule.
    pub const INVALID_SCHEDULE_TIME: &str = "InvalidScheduleTime";
    pub const INVALID_TIME_ZONE: &str = "InvalidTimeZone";
    /// A date or instant outside the range jiff represents.
    pub const TIME_OUT_OF_RANGE: &str = "TimeOutOfRange";
    // Sets of days, weeks and months in a policy.
    pub const EMPTY_SELECTION: &str = "EmptySelection";
    pub const DUPLICATE_SELECTION: &str = "DuplicateSelection";
    pub const INVALID_DAY_OF_MONTH: &str = "InvalidDayOfMonth";
    pub const INVALID_MONTH: &str = "InvalidMonth";
    // Retention counts and consistency with the schedule.
    pub const RETENTION_OUT_OF_RANGE: &str = "RetentionOutOfRange";
    pub const DAILY_RETENTION_REQUIRED: &str = "DailyRetentionRequired";
    pub const WEEKLY_RETENTION_REQUIRED: &str = "WeeklyRetentionRequired";
    pub const DAILY_RETENTION_NOT_ALLOWED: &str = "DailyRetentionNotAllowed";
    pub const WEEKLY_RETENTION_DAY_NOT_SCHEDULED: &str = "WeeklyRetentionDayNotScheduled";
    pub const SCHEDULED_DAY_NOT_RETAINED: &str = "ScheduledDayNotRetained";
    pub const SELECTOR_DAY_NOT_SCHEDULED: &str = "SelectorDayNotScheduled";
    pub const DAYS_OF_MONTH_NEED_DAILY_SCHEDULE: &str = "DaysOfMonthNeedDailySchedule";
    pub const INSTANT_RESTORE_OUT_OF_RANGE: &str = "InstantRestoreOutOfRange";
    // On-demand retention.
    pub const RETAIN_UNTIL_IN_PAST: &str = "RetainUntilInPast";
    pub const RETAIN_UNTIL_TOO_FAR: &str = "RetainUntilTooFar";
    // Protected items.
    pub const PROTECTION_STOPPED: &str = "ProtectionStopped";
    pub const PROTECTION_ALREADY_STOPPED: &str = "ProtectionAlreadyStopped";
    pub const PROTECTION_NOT_STOPPED: &str = "ProtectionNotStopped";
    pub const ITEM_SOFT_DELETED: &str = "ItemSoftDeleted";
    pub const ITEM_NOT_SOFT_DELETED: &str = "ItemNotSoftDeleted";
    /// Disks to exclude that are malformed, unknown, named twice, or all of them.
    pub const INVALID_EXCLUDED_DISKS: &str = "InvalidExcludedDisks";
    /// Excluding disks of a VM whose provider cannot leave one out (plain QEMU).
    pub const DISK_EXCLUSION_NOT_SUPPORTED: &str = "DiskExclusionNotSupported";
    // Access.
    pub const INVALID_SCOPE: &str = "InvalidScope";
    /// No role assignment grants the permission on the target (HTTP 403).
    pub const MISSING_PERMISSION: &str = "MissingPermission";
    /// A token asked for a role assignment its maker does not hold (HTTP 403).
    pub const TOKEN_ROLE_NOT_HELD: &str = "TokenRoleNotHeld";
    // Resource guards (multi-user authorization).
    pub const INVALID_RESOURCE_GUARD_NAME: &str = "InvalidResourceGuardName";
    pub const APPROVAL_VALIDITY_OUT_OF_RANGE: &str = "ApprovalValidityOutOfRange";
    pub const INVALID_APPROVERS: &str = "InvalidApprovers";
    pub const INVALID_REQUEST_REASON: &str = "InvalidRequestReason";
    pub const INVALID_GUARD_REQUEST: &str = "InvalidGuardRequest";
    /// A critical operation on a guarded vault without an approval (HTTP 403).
    pub const APPROVAL_REQUIRED: &str = "ApprovalRequired";
    /// Approving or rejecting one's own request (HTTP 403).
    pub const SELF_APPROVAL: &str = "SelfApproval";
    /// Deciding a request without being an approver of its guard (HTTP 403).
    pub const NOT_AN_APPROVER: &str = "NotAnApprover";
    /// Someone else changing an approver's credentials or roles (HTTP 403).
    pub const GUARD_APPROVER: &str = "GuardApprover";
    /// Deleting a guard that protects vaults (HTTP 409).
    pub const RESOURCE_GUARD_IN_USE: &str = "ResourceGuardInUse";
    /// Deciding a request that is not pending (HTTP 409).
    pub const REQUEST_NOT_PENDING: &str = "RequestNotPending";

    /// Every code above (the API's error codes include each; a test there checks).
    pub const ALL: &[&str] = &[
        INVALID_VAULT_NAME,
        INVALID_RESOURCE_GROUP_NAME,
        INVALID_LOCATION,
        INVALID_POLICY_NAME,
        REDUNDANCY_LOCKED,
        SOFT_DELETE_DAYS_OUT_OF_RANGE,
        SOFT_DELETE_ALWAYS_ON,
        IMMUTABILITY_LOCKED,
        IMMUTABLE_VAULT,
        INVALID_SCHEDULE_TIME,
        INVALID_TIME_ZONE,
        TIME_OUT_OF_RANGE,
        EMPTY_SELECTION,
        DUPLICATE_SELECTION,
        INVALID_DAY_OF_MONTH,
        INVALID_MONTH,
        RETENTION_OUT_OF_RANGE,
        DAILY_RETENTION_REQUIRED,
        WEEKLY_RETENTION_REQUIRED,
        DAILY_RETENTION_NOT_ALLOWED,
        WEEKLY_RETENTION_DAY_NOT_SCHEDULED,
        SCHEDULED_DAY_NOT_RETAINED,
        SELECTOR_DAY_NOT_SCHEDULED,
        DAYS_OF_MONTH_NEED_DAILY_SCHEDULE,
        INSTANT_RESTORE_OUT_OF_RANGE,
        RETAIN_UNTIL_IN_PAST,
        RETAIN_UNTIL_TOO_FAR,
        PROTECTION_STOPPED,
        PROTECTION_ALREADY_STOPPED,
        PROTECTION_NOT_STOPPED,
        ITEM_SOFT_DELETED,
        ITEM_NOT_SOFT_DELETED,
        INVALID_EXCLUDED_DISKS,
        DISK_EXCLUSION_NOT_SUPPORTED,
        INVALID_SCOPE,
        MISSING_PERMISSION,
        TOKEN_ROLE_NOT_HELD,
        INVALID_RESOURCE_GUARD_NAME,
        APPROVAL_VALIDITY_OUT_OF_RANGE,
        INVALID_APPROVERS,
        INVALID_REQUEST_REASON,
        INVALID_GUARD_REQUEST,
        APPROVAL_REQUIRED,
        SELF_APPROVAL,
        NOT_AN_APPROVER,
        GUARD_APPROVER,
        RESOURCE_GUARD_IN_USE,
        REQUEST_NOT_PENDING,
    ];
}
