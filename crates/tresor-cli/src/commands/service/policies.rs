//! `tresor policy ...`: the backup policies of a vault.

use std::path::Path;

use anyhow::{Context, Result};
use tresor_api::policies::BackupPolicy;
use tresor_client::ApiClient;

use super::output::print;
use crate::cli::{Output, PolicyCommand};

const POLICY_COLUMNS: &[(&str, &str)] = &[("NAME", "name"), ("ITEMS", "protectedItems")];

pub async fn policy(api: &ApiClient, output: Output, cmd: PolicyCommand) -> Result<()> {
    let policy = match cmd {
        PolicyCommand::List { vault } => {
            return print(
                output,
                &api.policies(&vault.vault_name).await?,
                POLICY_COLUMNS,
            )
        }
        PolicyCommand::Show { vault, name } => api.policy(&vault.vault_name, &name).await?,
        PolicyCommand::GetDefaultForVm { vault } => {
            api.default_policy_for_vm(&vault.vault_name).await?
        }
        PolicyCommand::Create { vault, policy } => {
            api.create_policy(&vault.vault_name, &read_policy(&policy)?)
                .await?
        }
        PolicyCommand::Set { vault, policy } => {
            api.update_policy(&vault.vault_name, &read_policy(&policy)?)
                .await?
        }
        PolicyCommand::Delete { vault, name } => {
            api.delete_policy(&vault.vault_name, &name).await?;
            eprintln!("policy {name} deleted");
            return Ok(());
        }
    };
    print(output, &policy, POLICY_COLUMNS)
}

/// A policy from a JSON file. The fields the server adds to a policy it shows (`id`,
/// `protectedItems`) are ignored, so the output of `policy show -o json` is accepted.
fn read_policy(path: &Path) -> Result<BackupPolicy> {
    serde_json::from_str(
        &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a policy in JSON", path.display()))
}
