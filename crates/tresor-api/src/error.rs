//! The error answer of the API, and every code it can carry.
//!
//! Every error is `{"code", "message", "recommendation"}` with the code's HTTP
//! status; a 500 adds `requestId` (the server's log has the cause under it). Codes
//! are stable: scripts, the CLI and the portal match on them. The domain's rule codes
//! (`tresor_domain::codes`) are among them, answered with 400, but for
//! `MissingPermission`, `TokenRoleNotHeld` and the resource guards' refusals of the caller (403) and
//! their conflicts with a guard's state (409).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// An [`ErrorCode`]'s name. A `String` here so that a client understands an
    /// answer from a newer server with a code it does not know.
    #[schema(examples("NotFound"))]
    pub code: String,
    /// What is wrong, naming the offending value.
    pub message: String,
    /// What to do about it.
    pub recommendation: String,
    /// A 500's request id, to find its cause in the server's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

macro_rules! error_codes {
    ($($code:ident $status:literal $what:literal,)*) => {
        /// Every code an error answer can carry, with its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $(#[doc = $what] $code,)*
        }

        impl ErrorCode {
            /// Every code, for documents and tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code,)*];

            /// The code's name on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$code => stringify!($code),)* }
            }

            /// The HTTP status the code is answered with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$code => $status,)* }
            }

            /// What the code means, in a few words.
            pub fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$code => $what,)* }
            }
        }

        impl FromStr for ErrorCode {
            type Err = UnknownErrorCode;
            fn from_str(s: &str) -> Result<ErrorCode, UnknownErrorCode> {
                match s {
                    $(stringify!($code) => Ok(ErrorCode::$code),)*
                    _ => Err(UnknownErrorCode(s.to_string())),
                }
            }
        }
    };
}

error_codes! {
    AgentOffline 400 "The VM's host agent has not been seen for two minutes.",
    AlreadyExists 409 "A resource of that name exists.",
    AlreadyProtected 409 "The VM is protected already.",
    AmbiguousHost 409 "More than one agent has that host name.",
    AmbiguousVmName 409 "More than one VM of the host (or protected item of the vault) has that name; the message lists them: name one by its UUID.",
    ApprovalRequired 403 "A critical operation on a guarded vault needs an approved request of the caller's, used once.",
    ApprovalValidityOutOfRange 400 "An approval is valid 5 to 10080 minutes.",
    BackupAlreadyInProgress 409 "A backup of the item is running.",
    CatalogueError 500 "The catalogue failed while a server job ran.",
    ConfirmationMismatch 400 "A portal form's typed confirmation does not match.",
    ConfirmationRequired 400 "A portal form needs its confirmation box ticked.",
    CrossRegionRestoreCannotBeDisabled 400 "Cross-region restore, once enabled, stays enabled.",
    CrossRegionRestoreNeedsGeoRedundancy 400 "Cross-region restore needs a GeoRedundant vault.",
    CrossRegionRestoreNotEnabled 400 "The vault does not allow reading from the secondary region.",
    DailyRetentionNotAllowed 400 "A rule of the vault (tresor-domain) is broken.",
    DailyRetentionRequired 400 "A rule of the vault (tresor-domain) is broken.",
    DaysOfMonthNeedDailySchedule 400 "A rule of the vault (tresor-domain) is broken.",
    DiskExclusionNotSupported 400 "Only a libvirt domain's disks can be left out of its points.",
    DuplicateSelection 400 "A rule of the vault (tresor-domain) is broken.",
    EmptySelection 400 "A rule of the vault (tresor-domain) is broken.",
    Forbidden 403 "The credential may not do this.",
    GarbageCollectionStopped 409 "Garbage collection found something it must not remove and stopped.",
    GuardApprover 403 "Only the user themselves may change a resource guard approver's password, TOTP or roles; no one may delete them.",
    GeoRedundancyUnavailable 400 "The vault's location has no paired location.",
    ImmutabilityLocked 400 "A locked immutability cannot be lowered or disabled.",
    ImmutableVault 400 "The vault is immutable: the operation would shorten the life of recovery points.",
    InstantRestoreOutOfRange 400 "A rule of the vault (tresor-domain) is broken.",
    InternalError 500 "The server failed; its log has the cause under the request id.",
    InvalidAgentReport 400 "What the agent sent is malformed or out of bounds.",
    InvalidCredentialsValidity 400 "Vault credentials are valid 1 to 10 days.",
    InvalidDate 400 "A portal form's date does not parse.",
    InvalidDayOfMonth 400 "A rule of the vault (tresor-domain) is broken.",
    InvalidApprovers 400 "A resource guard names 1 to 20 existing users, each once.",
    InvalidExcludedDisks 400 "Disks to exclude are malformed, not the VM's, named twice, or every disk.",
    InvalidFormValue 400 "A portal form's field does not parse.",
    InvalidFormat 400 "The disk format is not qcow2 or raw.",
    InvalidGuardRequest 400 "The request's vault does not fit its operation or guard.",
    InvalidHostName 400 "The host name is empty, too long or has control characters.",
    InvalidLocation 400 "A rule of the vault (tresor-domain) is broken.",
    InvalidMonth 400 "A rule of the vault (tresor-domain) is broken.",
    InvalidNumber 400 "A portal form's number does not parse.",
    InvalidObjectKind 400 "The repository has no such object kind.",
    InvalidObjectName 400 "The object's name is not one the repository uses.",
    InvalidPolicyName 400 "A rule of the vault (tresor-domain) is broken.",
    InvalidRange 400 "The Range header does not parse.",
    InvalidRequestReason 400 "A request's reason has 1 to 500 characters on one line.",
    InvalidResourceGuardName 400 "A resource guard's name has 2 to 50 letters, digits and hyphens, a letter first.",
    InvalidRequest 400 "The path, query or body does not parse.",
    InvalidRequestBody 422 "The body does not have the fields and types of this call.",
    InvalidResourceGroupName 400 "A rule of the vault (tresor-domain) is broken.",
    InvalidRestoreMode 400 "The restore mode is not RestoreDisks, CreateVm or ReplaceDisks.",
    InvalidRestoreOption 400 "A restore option is malformed or not of its mode (newName, targetPool and start are CreateVm's; targetPath or targetPool, not both).",
    InvalidScheduleTime 400 "A rule of the vault (tresor-domain) is broken.",
    InvalidScope 400 "A role assignment's scope is not /, /resourceGroups/G or /resourceGroups/G/vaults/V.",
    InvalidSignIn 401 "The user name, password or TOTP code is wrong (which one is not said).",
    InvalidTimeZone 400 "A rule of the vault (tresor-domain) is broken.",
    InvalidTokenExpiry 400 "A token's expiresInDays is outside 1 to 3650.",
    InvalidTokenName 400 "A token's name is empty or too long.",
    InvalidTotpCode 400 "The TOTP code is not the current one of the secret being confirmed, or no secret waits for one.",
    InvalidUserName 400 "A user's name is empty, too long, or has characters other than letters, digits and . _ - @.",
    InvalidVaultCredentials 401 "The vault credentials file is unknown, used, expired or for another vault.",
    InvalidVaultName 400 "A rule of the vault (tresor-domain) is broken.",
    ItemNotSoftDeleted 400 "Only a soft-deleted item can be undeleted.",
    ItemSoftDeleted 400 "The item's backup data was deleted; undelete it first.",
    JobAlreadyEnded 409 "The job ended; its result is final.",
    JobInProgress 409 "A job of the item is running.",
    LocationMismatch 400 "The VM's host is in another location than the vault.",
    MethodNotAllowed 405 "The path does not serve this method.",
    MissingPermission 403 "No role assignment of the caller grants the permission at the target's scope.",
    NoDisks 400 "The VM has no disk to back up.",
    NoSecondaryRegion 503 "The vault's location has no paired location to read from.",
    NoVmSelected 400 "The portal's form selected no VM.",
    NotAnApprover 403 "Only an approver of the resource guard decides its requests.",
    NotFound 404 "The resource does not exist.",
    NotGeoRedundant 400 "The vault has no secondary region.",
    ObjectExists 409 "Objects are written once; one of that name exists.",
    ObjectRejected 422 "The uploaded object failed the server's checks.",
    PolicyAlreadyExists 409 "A policy of that name exists in the vault.",
    PolicyInUse 409 "Protected items use the policy.",
    PolicyNameMismatch 400 "The body names another policy than the path.",
    PrimaryStorageUnavailable 503 "The vault's storage target cannot be reached.",
    ProtectionAlreadyStopped 400 "A rule of the vault (tresor-domain) is broken.",
    ProtectionNotStopped 400 "A rule of the vault (tresor-domain) is broken.",
    ProtectionStopped 400 "A rule of the vault (tresor-domain) is broken.",
    RangeNotSatisfiable 416 "The range lies outside the object.",
    RecoveryPointMissing 400 "The reported recovery point is not stored.",
    RecoveryPointNotInSecondaryRegion 409 "The point has not reached the secondary region yet.",
    RecoveryPointRequired 400 "A portal form chose no recovery point.",
    RecoveryPointSoftDeleted 409 "The recovery point was deleted (it is soft-deleted); undelete it first.",
    RecoveryPointNotSoftDeleted 400 "Only a soft-deleted recovery point can be undeleted.",
    RedundancyLocked 400 "Storage redundancy cannot change once a backup is stored.",
    ReplicationFailed 503 "Copying a vault to its paired location failed; it is retried.",
    RepositoryError 503 "A repository cannot be opened or read.",
    RequestNotPending 409 "Only a pending request can be approved or rejected.",
    RequestTooLarge 413 "The body exceeds the route's limit.",
    ResourceGuardInUse 409 "A resource guard that protects vaults cannot be deleted.",
    RetainUntilInPast 400 "A rule of the vault (tresor-domain) is broken.",
    RetainUntilTooFar 400 "A rule of the vault (tresor-domain) is broken.",
    RetentionOutOfRange 400 "A rule of the vault (tresor-domain) is broken.",
    ScheduledDayNotRetained 400 "A rule of the vault (tresor-domain) is broken.",
    SecondaryStorageUnavailable 503 "The paired location's storage target cannot be reached.",
    SelectorDayNotScheduled 400 "A rule of the vault (tresor-domain) is broken.",
    SelfApproval 403 "No one approves or rejects their own request.",
    SoftDeleteAlwaysOn 400 "Always-on soft delete, once set, cannot be switched off.",
    SoftDeleteDaysOutOfRange 400 "Deleted backup data is kept 14 to 180 days.",
    StorageFull 507 "The vault's storage has no room.",
    TargetPathRequired 400 "The restore mode needs a target path.",
    TimeOutOfRange 400 "A time lies outside the range the vault can compute with.",
    TokenExpired 401 "The API token has expired; create a new one.",
    TokenRoleNotHeld 403 "A new token asked for a role assignment its maker does not hold.",
    TooManyAttempts 429 "Too many failed attempts from this address, or with a TOTP code for this user.",
    Unauthorized 401 "The call needs a valid credential.",
    UnsupportedDiskFormat 400 "A disk's format cannot be backed up.",
    UnsupportedMediaType 415 "The body is not JSON.",
    VaultAlreadyExists 409 "A vault of that name exists.",
    VaultNotEmpty 409 "The vault still holds items or recovery points.",
    WeakPassword 400 "A password is shorter than 12 characters (or longer than 1024 bytes).",
    WeeklyRetentionDayNotScheduled 400 "A rule of the vault (tresor-domain) is broken.",
    WeeklyRetentionRequired 400 "A rule of the vault (tresor-domain) is broken.",
}

/// In the API's description: the names of every code, and what each means with its status.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut description = String::from(
            "Every code an error answer can carry, with its HTTP status. A client should \
             expect codes it does not know (from a newer server).\n",
        );
        for c in ErrorCode::ALL {
            description.push_str(&format!("\n- `{c}` ({}): {}", c.status(), c.meaning()));
        }
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .description(Some(description))
            .into()
    }
}

impl ToSchema for ErrorCode {}

/// A name that is no [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownErrorCode(pub String);

impl fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is no error code of this API", self.0)
    }
}

impl std::error::Error for UnknownErrorCode {}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ErrorCode, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_rule_code_is_an_api_code_answered_with_400_or_403() {
        for code in tresor_domain::codes::ALL {
            let c: ErrorCode = code.parse().unwrap();
            use tresor_domain::codes as rule;
            // Refusals of who the caller is are 403; a guard's state, 409.
            const GUARD_403: &[&str] = &[
                rule::APPROVAL_REQUIRED,
                rule::SELF_APPROVAL,
                rule::NOT_AN_APPROVER,
                rule::GUARD_APPROVER,
            ];
            const GUARD_409: &[&str] = &[rule::RESOURCE_GUARD_IN_USE, rule::REQUEST_NOT_PENDING];
            let refusals = [rule::MISSING_PERMISSION, rule::TOKEN_ROLE_NOT_HELD];
            let status = if refusals.contains(code) || GUARD_403.contains(code) {
                403
            } else if GUARD_409.contains(code) {
                409
            } else {
                400
            };
            assert_eq!(c.status(), status, "{code}");
        }
    }

    #[test]
    fn names_round_trip_and_statuses_are_errors() {
        for c in ErrorCode::ALL {
            assert_eq!(c.as_str().parse::<ErrorCode>().unwrap(), *c);
            assert!((400..600).contains(&c.status()), "{c}");
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), *c);
        }
        assert!("NoSuchCode".parse::<ErrorCode>().is_err());
    }
}
