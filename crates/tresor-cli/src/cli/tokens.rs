//! `tresor token ...`: API tokens of one's own.

use clap::Subcommand;
use tresor_api::tokens::{Role, Scope};

use super::users::{parse_role, parse_scope};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token. A user's token is their own and holds no more than they
    /// do: by default their role assignments, or the --role/--scope pairs given (each
    /// covered by one of theirs). The secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// A role for the token: Owner, Contributor, BackupOperator, RestoreOperator
        /// or Reader. Repeat for several, each with its --scope.
        #[arg(long = "role", value_parser = parse_role)]
        roles: Vec<Role>,
        /// The scope of each --role, in the same order (default `/`; one scope for
        /// several roles, or one role at several scopes, also works).
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// Days until the token stops working: 1 to 3650 (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List tokens: one's own (all of them with Access.Manage), never their secrets.
    List,
    /// Revoke a token (one's own, or any with Access.Manage); its portal sessions end.
    Delete {
        #[arg(long)]
        id: String,
    },
}
