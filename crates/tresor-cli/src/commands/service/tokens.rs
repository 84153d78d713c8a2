//! `tresor token ...`: create, list and delete API tokens of one's own. The server
//! decides whose a token is and what it may hold; this pairs roles with scopes and
//! prints.

use anyhow::{bail, Result};
use serde::Serialize;
use tresor_api::tokens::{CreateToken, Role, RoleAssignment, Scope, Token};
use tresor_client::ApiClient;

use super::output::print;
use crate::cli::{Output, TokenCommand};

const TOKEN_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "name"),
    ("OWNER", "owner"),
    ("ROLES", "roles"),
    ("CREATED", "created"),
    ("EXPIRES", "expires"),
    ("ID", "id"),
];

pub async fn token(api: &ApiClient, output: Output, cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            roles,
            scopes,
            expires_in_days,
        } => {
            let request = CreateToken {
                name,
                roles: pair(roles, scopes)?,
                expires_in_days,
            };
            let made = api.create_token(&request).await?;
            if output == Output::Json {
                return print(output, &made, &[]);
            }
            let listed = Token {
                id: made.id,
                name: made.name,
                owner: made.owner,
                created: made.created,
                expires: made.expires,
                roles: made.roles,
            };
            print(output, &row(&listed), TOKEN_COLUMNS)?;
            eprintln!("The token's secret, shown this once (keep it like a password):");
            println!("{}", made.token);
            Ok(())
        }
        TokenCommand::List => {
            let tokens = api.tokens().await?;
            match output {
                Output::Json => print(output, &tokens, &[]),
                _ => print(
                    output,
                    &tokens.iter().map(row).collect::<Vec<_>>(),
                    TOKEN_COLUMNS,
                ),
            }
        }
        TokenCommand::Delete { id } => {
            api.delete_token(&id).await?;
            eprintln!("token {id} revoked; its portal sessions ended");
            Ok(())
        }
    }
}

/// `--role` and `--scope` as role assignments: none (the server gives the caller's
/// own), pairs in order, one role at each scope, or each role at one scope (`/` when
/// no scope is given).
fn pair(roles: Vec<Role>, scopes: Vec<Scope>) -> Result<Option<Vec<RoleAssignment>>> {
    let assignments = match (roles.len(), scopes.len()) {
        (0, 0) => return Ok(None),
        (0, _) => bail!("--scope needs a --role: give the role the token holds there"),
        (_, 0) => roles
            .into_iter()
            .map(|r| RoleAssignment::new(r, Scope::Installation))
            .collect(),
        (r, s) if r == s => roles
            .into_iter()
            .zip(scopes)
            .map(|(r, s)| RoleAssignment::new(r, s))
            .collect(),
        (1, _) => scopes
            .into_iter()
            .map(|s| RoleAssignment::new(roles[0], s))
            .collect(),
        (_, 1) => roles
            .into_iter()
            .map(|r| RoleAssignment::new(r, scopes[0].clone()))
            .collect(),
        (r, s) => bail!(
            "{r} --role and {s} --scope do not pair up: give one --scope per --role, in order"
        ),
    };
    Ok(Some(assignments))
}

/// A token as a table row: its roles as `Role@scope`, comma-separated.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenRow {
    id: String,
    name: String,
    owner: String,
    roles: String,
    created: String,
    expires: String,
}

fn row(t: &Token) -> TokenRow {
    TokenRow {
        id: t.id.clone(),
        name: t.name.clone(),
        owner: t.owner.clone().unwrap_or_else(|| "(installation)".into()),
        roles: t
            .roles
            .iter()
            .map(|a| format!("{}@{}", a.role, a.scope))
            .collect::<Vec<_>>()
            .join(", "),
        created: t.created.to_string(),
        expires: t
            .expires
            .map(|e| e.to_string())
            .unwrap_or_else(|| "never".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> Scope {
        s.parse().unwrap()
    }

    #[test]
    fn roles_and_scopes_pair_up() {
        assert_eq!(pair(vec![], vec![]).unwrap(), None);
        assert!(pair(vec![], vec![scope("/")]).is_err());
        assert_eq!(
            pair(vec![Role::Reader], vec![]).unwrap().unwrap(),
            [RoleAssignment::new(Role::Reader, Scope::Installation)]
        );
        let g = scope("/resourceGroups/g");
        let v = scope("/resourceGroups/g/vaults/vault1");
        assert_eq!(
            pair(
                vec![Role::Reader, Role::BackupOperator],
                vec![g.clone(), v.clone()]
            )
            .unwrap()
            .unwrap(),
            [
                RoleAssignment::new(Role::Reader, g.clone()),
                RoleAssignment::new(Role::BackupOperator, v.clone())
            ]
        );
        assert_eq!(
            pair(vec![Role::Reader], vec![g.clone(), v.clone()])
                .unwrap()
                .unwrap()
                .len(),
            2
        );
        assert!(pair(
            vec![Role::Reader, Role::Owner, Role::Contributor],
            vec![g, v]
        )
        .is_err());
    }
}
