//! `tresor user ...`: users who sign in to the portal with a password.

use std::path::PathBuf;

use clap::Subcommand;
use tresor_api::tokens::{Role, Scope};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user with a role at a scope. The password is asked for, or read from
    /// --password-file (never an argument: it would show in `ps` and shell history).
    Create {
        #[arg(long)]
        name: String,
        /// Owner, Contributor, BackupOperator, RestoreOperator or Reader.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// `/`, `/resourceGroups/G` or `/resourceGroups/G/vaults/V`.
        #[arg(long, default_value = "/", value_parser = parse_scope)]
        scope: Scope,
        /// A file holding the password (its first line).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List users.
    List,
    /// Delete a user, their tokens and portal sessions.
    Delete {
        #[arg(long)]
        name: String,
    },
    /// Set a user's password (asked for, or from --password-file).
    Password {
        #[arg(long)]
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// A user's second factor: a TOTP authenticator app.
    #[command(subcommand)]
    Totp(TotpCommand),
}

/// `tresor role assignment ...`: the roles users hold, at their scopes.
#[derive(Subcommand)]
pub enum RoleCommand {
    /// Role assignments of users.
    #[command(subcommand)]
    Assignment(AssignmentCommand),
}

#[derive(Subcommand)]
pub enum AssignmentCommand {
    /// Give a user a role at a scope (their portal sessions end; the role holds from
    /// their next sign-in).
    Create {
        /// The user's name.
        #[arg(long)]
        assignee: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long, default_value = "/", value_parser = parse_scope)]
        scope: Scope,
    },
    /// Take a role at a scope from a user.
    Delete {
        #[arg(long)]
        assignee: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long, default_value = "/", value_parser = parse_scope)]
        scope: Scope,
    },
    /// Every user's role assignments (or one user's, with --assignee).
    List {
        #[arg(long)]
        assignee: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TotpCommand {
    /// A new TOTP secret (and its otpauth:// URI) for the user's authenticator app;
    /// in effect once confirmed with its first code (`--code`, or asked for).
    Enable {
        #[arg(long)]
        name: String,
        /// Confirm right away with this code (otherwise it is asked for).
        #[arg(long)]
        code: Option<String>,
    },
    /// Turn a user's TOTP off: the password alone signs in.
    Disable {
        #[arg(long)]
        name: String,
    },
}

pub(crate) fn parse_role(s: &str) -> Result<Role, String> {
    Role::ALL
        .iter()
        .copied()
        .find(|r| r.to_string().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            let names: Vec<String> = Role::ALL.iter().map(Role::to_string).collect();
            format!("not a role: {s} (one of {})", names.join(", "))
        })
}

pub(crate) fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse::<Scope>().map_err(|e| e.to_string())
}
