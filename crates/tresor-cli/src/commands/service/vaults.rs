//! `tresor vault ...`: create, list, show and delete vaults, their backup
//! properties (`backup-properties set`, or `update`), vault credentials for agents,
//! replication and verify.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use tresor_api::jobs::VerifyResult;
use tresor_api::vaults::{
    BackupProperties, CreateVault, CredentialsRequest, StorageRedundancy, Vault, VerifyRequest,
};
use tresor_client::ApiClient;

use super::jobs::{job_succeeded, print_job, wait_for_job};
use super::output::{confirm, print, print_replication};
use crate::cli::{BackupPropertiesArgs, BackupPropertiesCommand, Output, VaultCommand};

const VAULT_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "name"),
    ("RESOURCE GROUP", "resourceGroup"),
    ("LOCATION", "location"),
    ("REDUNDANCY", "storageRedundancy"),
    ("LOCKED", "redundancyLocked"),
];

pub async fn vault(api: &ApiClient, output: Output, cmd: VaultCommand) -> Result<()> {
    match cmd {
        VaultCommand::Create {
            name,
            resource_group,
            location,
            storage_redundancy,
        } => {
            let request = CreateVault {
                name,
                resource_group,
                location,
                storage_redundancy: storage_redundancy.map(Into::into),
            };
            print_vault(output, &api.create_vault(&request).await?)
        }
        VaultCommand::List => print(output, &api.list_vaults().await?, VAULT_COLUMNS),
        VaultCommand::Show { name } => print_vault(output, &api.vault(&name).await?),
        VaultCommand::Replicate { name } => {
            let job = api.replicate(&name).await?;
            print_job(output, &job)?;
            job_succeeded(&job)
        }
        VaultCommand::Verify {
            name,
            use_secondary_region,
        } => {
            let job = api
                .verify(
                    &name,
                    &VerifyRequest {
                        use_secondary_region,
                    },
                )
                .await?;
            let done = wait_for_job(api, &name, &job.id, 24 * 3600).await?;
            print_job(output, &done)?;
            if output == Output::Table {
                let damaged = VerifyResult::deserialize(&done.result)
                    .map(|r| r.damaged_points)
                    .unwrap_or_default();
                for p in damaged {
                    println!(
                        "  damaged recovery point {}: {}",
                        p.id,
                        serde_json::to_string(&p.problems)?
                    );
                }
            }
            job_succeeded(&done)
        }
        VaultCommand::Delete { name, yes } => {
            confirm(yes, &format!("delete vault {name}"))?;
            api.delete_vault(&name).await?;
            eprintln!("vault {name} deleted");
            Ok(())
        }
        VaultCommand::BackupProperties(BackupPropertiesCommand::Set(args))
        | VaultCommand::Update(args) => set_backup_properties(api, output, args).await,
        VaultCommand::Credentials {
            name,
            valid_days,
            location,
            output_file,
        } => {
            let request = CredentialsRequest {
                valid_days,
                location,
            };
            let credentials = api.vault_credentials(&name, &request).await?;
            let text = serde_json::to_string_pretty(&serde_json::to_value(&credentials)?)?;
            match output_file {
                Some(path) => {
                    tresor_storage::write_file_atomic(&path, text.as_bytes(), 0o600)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("vault credentials written to {} (valid until {}; one agent can register with them)", path.display(), credentials.expires);
                }
                None => println!("{text}"),
            }
            Ok(())
        }
    }
}

/// `vault backup-properties set` and `vault update`: one operation under two names.
async fn set_backup_properties(
    api: &ApiClient,
    output: Output,
    args: BackupPropertiesArgs,
) -> Result<()> {
    let BackupPropertiesArgs {
        name,
        backup_storage_redundancy,
        cross_region_restore_flag,
        soft_delete_days,
        soft_delete_always_on,
        immutability,
        resource_guard,
    } = args;
    if backup_storage_redundancy.is_none()
        && cross_region_restore_flag.is_none()
        && soft_delete_days.is_none()
        && !soft_delete_always_on
        && immutability.is_none()
        && resource_guard.is_none()
    {
        bail!("nothing to set: give --backup-storage-redundancy, --cross-region-restore-flag, --soft-delete-days, --soft-delete-always-on, --immutability and/or --resource-guard");
    }
    let properties = BackupProperties {
        storage_redundancy: backup_storage_redundancy.map(Into::into),
        cross_region_restore: cross_region_restore_flag,
        soft_delete_days,
        soft_delete_always_on: soft_delete_always_on.then_some(true),
        immutability,
        resource_guard,
    };
    print_vault(
        output,
        &api.set_backup_properties(&name, &properties).await?,
    )
}

/// A vault, with its replication in a few lines under the table.
fn print_vault(output: Output, v: &Vault) -> Result<()> {
    print(output, v, VAULT_COLUMNS)?;
    if output == Output::Table {
        print_replication(&v.replication);
        if v.storage_redundancy == StorageRedundancy::GeoRedundant {
            println!(
                "  cross-region restore: {}",
                if v.cross_region_restore {
                    "enabled"
                } else {
                    "disabled"
                }
            );
        }
        println!(
            "  soft delete: {} days{}",
            v.soft_delete_days,
            if v.soft_delete_always_on {
                ", always-on"
            } else {
                ""
            }
        );
    }
    Ok(())
}
