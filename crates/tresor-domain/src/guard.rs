//! Resource guards: Azure Backup's multi-user authorization (MUA).
//!
//! A resource guard names approvers (users). A vault bound to a guard refuses its
//! critical operations ([`CriticalOperation`]) with `ApprovalRequired` unless the
//! caller holds an approved, unexpired, unused request for exactly that vault and
//! operation, approved by one of the guard's approvers who is not the requester. An
//! approval is used once. So one stolen credential, even an Owner's, cannot destroy
//! backups alone: a second person has to say yes.
//!
//! This module holds the vocabulary and the rules that need no catalogue: names,
//! bounds, a request's life ([`RequestStatus`]), and the refusals with their codes.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Permission;
use crate::error::{codes, RuleError};

/// An operation that, on a guarded vault, needs an approval (Azure's "critical
/// operations" of MUA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum CriticalOperation {
    /// A shorter soft-delete period.
    ShortenSoftDelete,
    /// A policy change (or an item's change of policy) that makes an existing
    /// recovery point of the vault expire sooner.
    ReduceRetention,
    /// Stopping protection with "delete backup data".
    DeleteBackupData,
    /// Deleting one recovery point.
    DeleteRecoveryPoint,
    /// Immutability from Enabled to Disabled.
    LowerImmutability,
    /// Unbinding the vault from its guard, or binding it to another.
    RemoveResourceGuard,
    /// Deleting the vault.
    DeleteVault,
    /// Changing a guard's approvers or validity, or deleting the guard (an operation
    /// on the guard itself, approved by one of its own approvers).
    ChangeResourceGuard,
}

impl CriticalOperation {
    pub const ALL: &'static [CriticalOperation] = &[
        CriticalOperation::ShortenSoftDelete,
        CriticalOperation::ReduceRetention,
        CriticalOperation::DeleteBackupData,
        CriticalOperation::DeleteRecoveryPoint,
        CriticalOperation::LowerImmutability,
        CriticalOperation::RemoveResourceGuard,
        CriticalOperation::DeleteVault,
        CriticalOperation::ChangeResourceGuard,
    ];

    /// Its name on the wire and in the catalogue.
    pub fn name(self) -> &'static str {
        match self {
            CriticalOperation::ShortenSoftDelete => "ShortenSoftDelete",
            CriticalOperation::ReduceRetention => "ReduceRetention",
            CriticalOperation::DeleteBackupData => "DeleteBackupData",
            CriticalOperation::DeleteRecoveryPoint => "DeleteRecoveryPoint",
            CriticalOperation::LowerImmutability => "LowerImmutability",
            CriticalOperation::RemoveResourceGuard => "RemoveResourceGuard",
            CriticalOperation::DeleteVault => "DeleteVault",
            CriticalOperation::ChangeResourceGuard => "ChangeResourceGuard",
        }
    }

    /// The operation called `name` (whatever the case of its letters).
    pub fn parse(name: &str) -> Option<CriticalOperation> {
        Self::ALL
            .iter()
            .copied()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    /// Whether it acts on a vault (all but [`CriticalOperation::ChangeResourceGuard`],
    /// which acts on the guard).
    pub fn on_vault(self) -> bool {
        self != CriticalOperation::ChangeResourceGuard
    }

    /// The permissions that perform it: holding any one of them (on the vault; at
    /// the installation for `ChangeResourceGuard`) lets a caller ask for approval.
    pub fn permissions(self) -> &'static [Permission] {
        match self {
            CriticalOperation::ShortenSoftDelete
            | CriticalOperation::LowerImmutability
            | CriticalOperation::RemoveResourceGuard => &[Permission::UpdateVault],
            CriticalOperation::ReduceRetention => {
                &[Permission::ManagePolicies, Permission::ModifyProtection]
            }
            CriticalOperation::DeleteBackupData => &[Permission::DeleteBackupData],
            CriticalOperation::DeleteRecoveryPoint => &[Permission::DeleteRecoveryPoint],
            CriticalOperation::DeleteVault => &[Permission::DeleteVault],
            CriticalOperation::ChangeResourceGuard => &[Permission::ManageResourceGuard],
        }
    }

    /// The refusal of this operation on `vault` (or on the guard itself) without an
    /// approval: names the operation and the guard, and says how to ask for one.
    pub fn approval_required(self, guard: &str, vault: Option<&str>) -> RuleError {
        let (on, ask) = match vault {
            Some(v) => (format!("on vault {v}"), format!(" --vault {v}")),
            None => (format!("on resource guard {guard}"), String::new()),
        };
        RuleError::new(
            codes::APPROVAL_REQUIRED,
            format!(
                "{} {on} is a critical operation: resource guard {guard} protects it, and you \
                 hold no approved, unused, unexpired request for it.",
                self.name()
            ),
            format!(
                "Ask for an approval (tresor resource-guard request create --guard {guard}{ask} \
                 --operation {} --reason \"...\"), have one of the guard's approvers approve it \
                 (tresor resource-guard request approve --guard {guard} --id ID), then retry \
                 within its validity. An approval is used once.",
                self.name()
            ),
        )
    }
}

impl fmt::Display for CriticalOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of a resource guard: as a vault's, 2 to 50 characters, a letter first,
/// then ASCII letters, digits and hyphens; unique whatever the case of its letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GuardName(String);

impl GuardName {
    pub fn parse(s: &str) -> Result<GuardName, RuleError> {
        let ok = (2..=50).contains(&s.chars().count())
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if ok {
            Ok(GuardName(s.to_string()))
        } else {
            Err(RuleError::new(
                codes::INVALID_RESOURCE_GUARD_NAME,
                format!("The resource guard name {:?} is not valid.", cut(s, 60)),
                "Use 2 to 50 characters: a letter first, then letters, digits and hyphens.",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GuardName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long an approval may be used after it is given, and how long a request waits
/// for one: minutes, 5 to 10080 (a week), 60 by default.
pub struct ApprovalValidity;

impl ApprovalValidity {
    pub const MIN_MINUTES: u32 = 5;
    pub const MAX_MINUTES: u32 = 10080;
    pub const DEFAULT_MINUTES: u32 = 60;

    pub fn check(minutes: u32) -> Result<u32, RuleError> {
        if (Self::MIN_MINUTES..=Self::MAX_MINUTES).contains(&minutes) {
            Ok(minutes)
        } else {
            Err(RuleError::new(
                codes::APPROVAL_VALIDITY_OUT_OF_RANGE,
                format!(
                    "An approval is valid {} to {} minutes, not {minutes}.",
                    Self::MIN_MINUTES,
                    Self::MAX_MINUTES
                ),
                "Give --validity-minutes from 5 to 10080 (a week); 60 is the default.",
            ))
        }
    }

    /// `minutes` after `from`.
    pub fn after(from: Timestamp, minutes: u32) -> Timestamp {
        from.saturating_add(SignedDuration::from_mins(minutes as i64))
            .unwrap_or(from)
    }
}

/// The most approvers a guard names.
pub const MAX_APPROVERS: usize = 20;

/// A guard's approvers, as given (user names): at least one, at most
/// [`MAX_APPROVERS`], none twice (whatever the case of its letters).
pub fn check_approvers(names: &[String]) -> Result<(), RuleError> {
    let bad = |message: String| {
        RuleError::new(
            codes::INVALID_APPROVERS,
            message,
            "Name 1 to 20 existing users, each once (--approver NAME, repeated).",
        )
    };
    if names.is_empty() {
        return Err(bad(
            "A resource guard needs at least one approver: without one, nothing it protects could ever be approved.".into(),
        ));
    }
    if names.len() > MAX_APPROVERS {
        return Err(bad(format!(
            "A resource guard names at most {MAX_APPROVERS} approvers, not {}.",
            names.len()
        )));
    }
    for (i, n) in names.iter().enumerate() {
        if !(1..=64).contains(&n.chars().count()) {
            return Err(bad(format!(
                "Approver {:?} is no user name (1 to 64 characters).",
                cut(n, 64)
            )));
        }
        if names[..i].iter().any(|m| m.eq_ignore_ascii_case(n)) {
            return Err(bad(format!("Approver {:?} is named twice.", cut(n, 64))));
        }
    }
    Ok(())
}

/// The longest reason a request gives, in characters.
pub const MAX_REASON: usize = 500;

/// A request's reason, trimmed: 1 to 500 characters, no control characters (it is
/// shown to approvers and written to the audit log).
pub fn check_reason(reason: &str) -> Result<String, RuleError> {
    let r = reason.trim();
    let count = r.chars().count();
    if count == 0 || count > MAX_REASON || r.chars().any(char::is_control) {
        return Err(RuleError::new(
            codes::INVALID_REQUEST_REASON,
            format!(
                "A request's reason has 1 to {MAX_REASON} characters on one line (this one has {count}{}).",
                if r.chars().any(char::is_control) { ", with control characters" } else { "" }
            ),
            "Say in a sentence why the operation is needed, for the approver (--reason \"...\").",
        ));
    }
    Ok(r.to_string())
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum RequestStatus {
    /// Waiting for an approver (until it expires).
    Pending,
    /// Approved: the requester may do the operation once, until it expires.
    Approved,
    Rejected,
    /// The approved operation was done.
    Used,
    /// Pending or approved, and its time ran out.
    Expired,
}

impl RequestStatus {
    pub fn name(self) -> &'static str {
        match self {
            RequestStatus::Pending => "Pending",
            RequestStatus::Approved => "Approved",
            RequestStatus::Rejected => "Rejected",
            RequestStatus::Used => "Used",
            RequestStatus::Expired => "Expired",
        }
    }

    pub fn parse(name: &str) -> Option<RequestStatus> {
        [
            RequestStatus::Pending,
            RequestStatus::Approved,
            RequestStatus::Rejected,
            RequestStatus::Used,
            RequestStatus::Expired,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// The status at `now` of a request stored as `self` that expires at `expires`:
    /// pending and approved requests expire by the server's clock.
    pub fn at(self, expires: Timestamp, now: Timestamp) -> RequestStatus {
        match self {
            RequestStatus::Pending | RequestStatus::Approved if now >= expires => {
                RequestStatus::Expired
            }
            s => s,
        }
    }

    /// The refusal of deciding a request that is no longer pending.
    pub fn not_pending(self, id: &str) -> RuleError {
        RuleError::new(
            codes::REQUEST_NOT_PENDING,
            format!(
                "Request {id} is {}: only a pending request can be approved or rejected.",
                self.name()
            ),
            "Ask for a new approval (tresor resource-guard request create ...).",
        )
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The refusal of a decision by someone who is not an approver of `guard`.
pub fn not_an_approver(guard: &str) -> RuleError {
    RuleError::new(
        codes::NOT_AN_APPROVER,
        format!("Only an approver of resource guard {guard} can approve or reject its requests, signed in as themselves (or with a token of their own)."),
        "Ask one of the guard's approvers (tresor resource-guard show --name GUARD lists them).",
    )
}

/// The refusal of approving or rejecting one's own request.
pub fn self_approval(id: &str) -> RuleError {
    RuleError::new(
        codes::SELF_APPROVAL,
        format!("Request {id} is yours: no one approves or rejects their own request."),
        "Ask another of the guard's approvers.",
    )
}

/// The refusal of changing an approver's credentials or access by someone else.
pub fn guard_approver(user: &str, guard: &str) -> RuleError {
    RuleError::new(
        codes::GUARD_APPROVER,
        format!(
            "User {user} is an approver of resource guard {guard}: only {user} may change their password, TOTP or roles, and no one may delete them while they are one."
        ),
        format!(
            "Let {user} do it, signed in as themselves; to delete them, first take them off the guard's approvers (an approved ChangeResourceGuard request on {guard})."
        ),
    )
}

/// The refusal of deleting a guard that protects vaults.
pub fn guard_in_use(guard: &str, vaults: &[String]) -> RuleError {
    RuleError::new(
        codes::RESOURCE_GUARD_IN_USE,
        format!(
            "Resource guard {guard} protects {} vaults ({}): it cannot be deleted while it does.",
            vaults.len(),
            vaults.join(", ")
        ),
        "Unbind each vault first (tresor vault backup-properties set --resource-guard \"\", an approved RemoveResourceGuard), then delete the guard.",
    )
}

/// A request whose vault does not fit its operation or guard.
pub fn request_mismatch(message: String) -> RuleError {
    RuleError::new(
        codes::INVALID_GUARD_REQUEST,
        message,
        "Name the vault the guard protects for a vault's operation (--vault), and none for ChangeResourceGuard.",
    )
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip_by_name() {
        for op in CriticalOperation::ALL {
            assert_eq!(CriticalOperation::parse(op.name()), Some(*op));
            assert_eq!(
                serde_json::to_value(op).unwrap(),
                serde_json::json!(op.name())
            );
            assert!(!op.permissions().is_empty());
        }
        assert_eq!(
            CriticalOperation::parse("deletevault"),
            Some(CriticalOperation::DeleteVault)
        );
        assert_eq!(CriticalOperation::parse("Nope"), None);
        assert!(!CriticalOperation::ChangeResourceGuard.on_vault());
        let e = CriticalOperation::DeleteBackupData.approval_required("G", Some("v1"));
        assert_eq!(e.code, codes::APPROVAL_REQUIRED);
        assert!(e.message.contains("DeleteBackupData") && e.message.contains("G"));
        assert!(e
            .recommendation
            .contains("--guard G --vault v1 --operation DeleteBackupData"));
    }

    #[test]
    fn names_validity_approvers_and_reasons_are_bounded() {
        assert!(GuardName::parse("Guard-1").is_ok());
        for bad in ["", "g", "1abc", "a b", "a/b", &"x".repeat(51)] {
            assert_eq!(
                GuardName::parse(bad).unwrap_err().code,
                codes::INVALID_RESOURCE_GUARD_NAME
            );
        }
        for ok in [5, 60, 10080] {
            assert_eq!(ApprovalValidity::check(ok), Ok(ok));
        }
        for bad in [0, 4, 10081, u32::MAX] {
            assert_eq!(
                ApprovalValidity::check(bad).unwrap_err().code,
                codes::APPROVAL_VALIDITY_OUT_OF_RANGE
            );
        }
        assert!(check_approvers(&["sec".into()]).is_ok());
        assert!(check_approvers(&[]).is_err());
        assert!(check_approvers(&["a".into(), "A".into()]).is_err());
        assert!(check_approvers(&vec!["x".to_string(); 21]).is_err());
        assert!(check_approvers(&["".into()]).is_err());
        assert!(check_approvers(&["y".repeat(65)]).is_err());
        assert_eq!(check_reason("  restore test  ").unwrap(), "restore test");
        for bad in ["", "   ", "a\nb", &"r".repeat(501)] {
            assert_eq!(
                check_reason(bad).unwrap_err().code,
                codes::INVALID_REQUEST_REASON
            );
        }
    }

    #[test]
    fn pending_and_approved_requests_expire_by_the_clock() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let exp = ApprovalValidity::after(t, 5);
        assert_eq!(exp, "2026-01-01T00:05:00Z".parse::<Timestamp>().unwrap());
        let before = ApprovalValidity::after(t, 4);
        assert_eq!(
            RequestStatus::Pending.at(exp, before),
            RequestStatus::Pending
        );
        assert_eq!(
            RequestStatus::Approved.at(exp, before),
            RequestStatus::Approved
        );
        assert_eq!(RequestStatus::Pending.at(exp, exp), RequestStatus::Expired);
        assert_eq!(RequestStatus::Approved.at(exp, exp), RequestStatus::Expired);
        assert_eq!(RequestStatus::Used.at(exp, exp), RequestStatus::Used);
        assert_eq!(
            RequestStatus::Rejected.at(exp, exp),
            RequestStatus::Rejected
        );
        for s in ["Pending", "Approved", "Rejected", "Used", "Expired"] {
            assert_eq!(RequestStatus::parse(s).unwrap().name(), s);
        }
    }
}
