//! `tresor user ...`: create, list and delete users, set passwords, turn TOTP on and
//! off. Passwords come from a file or a prompt, never from an argument.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};
use tresor_api::tokens::RoleAssignment;
use tresor_api::users::{ConfirmTotp, CreateUser, SetPassword, SetRoles};
use tresor_client::ApiClient;

use super::output::print;
use crate::cli::{AssignmentCommand, Output, RoleCommand, TotpCommand, UserCommand};

const USER_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "name"),
    ("ROLES", "roles"),
    ("TOTP", "totp"),
    ("CREATED", "created"),
    ("ID", "id"),
];

pub async fn user(api: &ApiClient, output: Output, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Create {
            name,
            role,
            scope,
            password_file,
        } => {
            let password = password(password_file.as_deref(), "Password for the new user: ")?;
            let req = CreateUser {
                name,
                password,
                roles: vec![RoleAssignment::new(role, scope)],
            };
            print(output, &api.create_user(&req).await?, USER_COLUMNS)
        }
        UserCommand::List => print(output, &api.users().await?, USER_COLUMNS),
        UserCommand::Delete { name } => {
            api.delete_user(&name).await?;
            eprintln!("user {name} deleted, with their tokens and portal sessions");
            Ok(())
        }
        UserCommand::Password {
            name,
            password_file,
        } => {
            let req = SetPassword {
                password: password(password_file.as_deref(), "New password: ")?,
                current_password: None,
            };
            api.set_password(&name, &req).await?;
            eprintln!("password of {name} set; their portal sessions ended");
            Ok(())
        }
        UserCommand::Totp(TotpCommand::Enable { name, code }) => {
            let setup = api.enable_totp(&name).await?;
            eprintln!("Add this to the authenticator app (or make a QR code of the URI):");
            println!("secret: {}", setup.secret);
            println!("uri:    {}", setup.uri);
            let code = match code {
                Some(c) => c,
                None => {
                    if !std::io::stdin().is_terminal() {
                        bail!("confirm it with --code (the six digits the app shows now)");
                    }
                    eprint!("The code the app shows now: ");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim().to_string()
                }
            };
            api.confirm_totp(&name, &ConfirmTotp { code }).await?;
            eprintln!("TOTP enabled for {name}: signing in now needs a code");
            Ok(())
        }
        UserCommand::Totp(TotpCommand::Disable { name }) => {
            api.disable_totp(&name).await?;
            eprintln!("TOTP disabled for {name}");
            Ok(())
        }
    }
}

/// A password: the first line of `file`, or asked for twice on a terminal.
fn password(file: Option<&Path>, prompt: &str) -> Result<String> {
    if let Some(f) = file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: give --password-file, or run on a terminal to be asked");
    }
    let first = rpassword::prompt_password(prompt)?;
    let again = rpassword::prompt_password("Repeat it: ")?;
    if again != first {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

const ASSIGNMENT_COLUMNS: &[(&str, &str)] = &[
    ("ASSIGNEE", "assignee"),
    ("ROLE", "role"),
    ("SCOPE", "scope"),
];

/// `tresor role assignment ...`: reads the user's assignments, changes them, and sets
/// the whole list (the server has one call for a user's roles).
pub async fn role(api: &ApiClient, output: Output, cmd: RoleCommand) -> Result<()> {
    let RoleCommand::Assignment(cmd) = cmd;
    let users = api.users().await?;
    let find = |name: &str| {
        users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(name))
            .with_context(|| format!("no user named {name} (tresor user list shows them)"))
    };
    match cmd {
        AssignmentCommand::Create {
            assignee,
            role,
            scope,
        } => {
            let user = find(&assignee)?;
            let wanted = RoleAssignment::new(role, scope);
            let mut roles = user.roles.clone();
            if !roles.contains(&wanted) {
                roles.push(wanted);
            }
            let user = api.set_user_roles(&user.name, &SetRoles { roles }).await?;
            print(output, &assignments(&[user]), ASSIGNMENT_COLUMNS)
        }
        AssignmentCommand::Delete {
            assignee,
            role,
            scope,
        } => {
            let user = find(&assignee)?;
            let gone = RoleAssignment::new(role, scope);
            if !user.roles.contains(&gone) {
                bail!("{} does not hold {role} at {}", user.name, gone.scope);
            }
            let roles = user.roles.iter().filter(|r| **r != gone).cloned().collect();
            let user = api.set_user_roles(&user.name, &SetRoles { roles }).await?;
            print(output, &assignments(&[user]), ASSIGNMENT_COLUMNS)
        }
        AssignmentCommand::List { assignee } => {
            let shown: Vec<_> = match &assignee {
                Some(name) => vec![find(name)?.clone()],
                None => users.clone(),
            };
            print(output, &assignments(&shown), ASSIGNMENT_COLUMNS)
        }
    }
}

/// One row per user and role assignment.
#[derive(serde::Serialize)]
struct AssignmentRow {
    assignee: String,
    role: String,
    scope: String,
}

fn assignments(users: &[tresor_api::users::User]) -> Vec<AssignmentRow> {
    users
        .iter()
        .flat_map(|u| {
            u.roles.iter().map(|r| AssignmentRow {
                assignee: u.name.clone(),
                role: r.role.to_string(),
                scope: r.scope.to_string(),
            })
        })
        .collect()
}
