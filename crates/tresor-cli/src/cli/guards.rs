//! `tresor resource-guard ...`: resource guards and requests for approval
//! (`commands/service/guards.rs` runs them).

use clap::Subcommand;
use tresor_api::guards::CriticalOperation;

#[derive(Subcommand)]
pub enum GuardCommand {
    /// Create a guard: its approvers (users) must approve the critical operations of
    /// the vaults bound to it.
    Create {
        #[arg(long, short = 'n')]
        name: String,
        /// A user who approves (repeat for more; 1 to 20).
        #[arg(long = "approver", required = true)]
        approvers: Vec<String>,
        /// Minutes a request waits for a decision and an approval stays usable
        /// (5 to 10080; default 60).
        #[arg(long)]
        validity_minutes: Option<u32>,
    },
    /// List guards.
    List,
    /// Show a guard: approvers, validity, bound vaults.
    Show {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Change a guard's approvers or validity (needs your approved ChangeResourceGuard
    /// request).
    Update {
        #[arg(long, short = 'n')]
        name: String,
        /// The approvers, all of them (repeat).
        #[arg(long = "approver")]
        approvers: Vec<String>,
        #[arg(long)]
        validity_minutes: Option<u32>,
    },
    /// Delete a guard no vault is bound to (needs your approved ChangeResourceGuard
    /// request).
    Delete {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Requests for approval of critical operations.
    #[command(subcommand)]
    Request(RequestCommand),
}

#[derive(Subcommand)]
pub enum RequestCommand {
    /// Ask the guard's approvers to approve one critical operation on a vault (or,
    /// for ChangeResourceGuard, on the guard).
    Create {
        #[arg(long)]
        guard: String,
        /// The vault (left out for ChangeResourceGuard).
        #[arg(long)]
        vault: Option<String>,
        /// ShortenSoftDelete, ReduceRetention, DeleteBackupData, DeleteRecoveryPoint,
        /// LowerImmutability, RemoveResourceGuard, DeleteVault or ChangeResourceGuard.
        #[arg(long, value_parser = parse_operation)]
        operation: CriticalOperation,
        /// Why, for the approver (one line, up to 500 characters).
        #[arg(long)]
        reason: String,
    },
    /// A guard's requests, newest first.
    List {
        #[arg(long)]
        guard: String,
    },
    Show {
        #[arg(long)]
        guard: String,
        #[arg(long)]
        id: String,
    },
    /// Approve a request (an approver of the guard, not the requester).
    Approve {
        #[arg(long)]
        guard: String,
        #[arg(long)]
        id: String,
    },
    /// Reject a request.
    Reject {
        #[arg(long)]
        guard: String,
        #[arg(long)]
        id: String,
    },
}

fn parse_operation(s: &str) -> Result<CriticalOperation, String> {
    CriticalOperation::parse(s).ok_or_else(|| {
        let names: Vec<&str> = CriticalOperation::ALL.iter().map(|o| o.name()).collect();
        format!(
            "not a critical operation: {s} (one of {})",
            names.join(", ")
        )
    })
}
