//! `tresor protectable-item`, `tresor protection` and `tresor item`: the VMs a
//! vault can protect, enabling, running and stopping their protection, and the
//! protected items.

use anyhow::{Context, Result};
use jiff::Timestamp;
use tresor_api::items::{BackupNow, Disable, EnableProtection, ModifyProtection};
use tresor_client::ApiClient;

use super::jobs::JOB_COLUMNS;
use super::output::{confirm, print, print_replication};
use crate::cli::{ItemCommand, Output, ProtectableCommand, ProtectionCommand};

const ITEM_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "vmName"),
    ("HOST", "host"),
    ("POLICY", "policy"),
    ("STATE", "protectionState"),
    ("LAST BACKUP", "lastBackupTime"),
    ("DELETE AT", "deleteAt"),
    ("ID", "id"),
];

/// One item's columns: the list's and the disks it leaves out.
const ONE_ITEM_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "vmName"),
    ("HOST", "host"),
    ("POLICY", "policy"),
    ("STATE", "protectionState"),
    ("LAST BACKUP", "lastBackupTime"),
    ("EXCLUDED DISKS", "excludedDisks"),
    ("ID", "id"),
];

pub async fn protectable(api: &ApiClient, output: Output, cmd: ProtectableCommand) -> Result<()> {
    let ProtectableCommand::List { vault } = cmd;
    print(
        output,
        &api.protectable_items(&vault.vault_name).await?,
        &[
            ("HOST", "host"),
            ("VM", "vm"),
            ("NAME", "name"),
            ("LOCATION", "location"),
            ("AGENT ONLINE", "agentOnline"),
        ],
    )
}

pub async fn item(api: &ApiClient, output: Output, cmd: ItemCommand) -> Result<()> {
    match cmd {
        ItemCommand::List { vault } => {
            print(output, &api.items(&vault.vault_name).await?, ITEM_COLUMNS)
        }
        ItemCommand::Show { vault, name } => {
            let item = api.item(&vault.vault_name, &name).await?;
            print(output, &item, ONE_ITEM_COLUMNS)?;
            if let (Output::Table, Some(r)) = (output, &item.replication) {
                print_replication(r);
            }
            Ok(())
        }
        ItemCommand::SetPolicy {
            vault,
            name,
            policy_name,
            exclude_disks,
        } => {
            let request = ModifyProtection {
                policy: Some(policy_name),
                excluded_disks: (!exclude_disks.is_empty()).then_some(exclude_disks),
            };
            modify(api, output, &vault.vault_name, &name, &request).await
        }
        ItemCommand::Update {
            vault,
            name,
            policy_name,
            exclude_disks,
            include_all_disks,
        } => {
            let request = ModifyProtection {
                policy: policy_name,
                excluded_disks: (include_all_disks || !exclude_disks.is_empty())
                    .then_some(exclude_disks),
            };
            if request.policy.is_none() && request.excluded_disks.is_none() {
                anyhow::bail!(
                    "nothing to change: give --policy-name, --exclude-disk or --include-all-disks"
                );
            }
            modify(api, output, &vault.vault_name, &name, &request).await
        }
    }
}

pub async fn protection(api: &ApiClient, output: Output, cmd: ProtectionCommand) -> Result<()> {
    match cmd {
        ProtectionCommand::EnableForVm {
            vault,
            vm,
            host,
            policy_name,
            exclude_disks,
        } => {
            let request = EnableProtection {
                host,
                vm,
                policy: Some(policy_name),
                excluded_disks: exclude_disks,
            };
            print(
                output,
                &api.enable_protection(&vault.vault_name, &request).await?,
                ONE_ITEM_COLUMNS,
            )
        }
        ProtectionCommand::BackupNow {
            vault,
            item,
            retain_until,
        } => {
            let request = BackupNow {
                retain_until: retain_until.map(|s| parse_time(&s)).transpose()?,
            };
            print(
                output,
                &api.backup_now(&vault.vault_name, &item, &request).await?,
                JOB_COLUMNS,
            )
        }
        ProtectionCommand::Disable {
            vault,
            item,
            delete_backup_data,
            yes,
        } => {
            if delete_backup_data {
                confirm(
                    yes,
                    &format!("stop protecting {item} and DELETE all its recovery points (kept, soft-deleted, for the vault's soft-delete period; undelete with tresor protection undelete)"),
                )?;
            }
            let request = Disable { delete_backup_data };
            print(
                output,
                &api.disable_protection(&vault.vault_name, &item, &request)
                    .await?,
                JOB_COLUMNS,
            )
        }
        ProtectionCommand::Undelete { vault, item } => print(
            output,
            &api.undelete_item(&vault.vault_name, &item).await?,
            ITEM_COLUMNS,
        ),
        ProtectionCommand::Resume {
            vault,
            item,
            policy_name,
        } => {
            let request = ModifyProtection {
                policy: Some(policy_name),
                excluded_disks: None,
            };
            modify(api, output, &vault.vault_name, &item, &request).await
        }
    }
}

/// Another policy for an item, resuming a stopped one, other disks left out: the
/// same call.
async fn modify(
    api: &ApiClient,
    output: Output,
    vault: &str,
    item: &str,
    request: &ModifyProtection,
) -> Result<()> {
    print(
        output,
        &api.modify_protection(vault, item, request).await?,
        ONE_ITEM_COLUMNS,
    )
}

/// An RFC 3339 time, or a date (taken as the end of that day, UTC).
fn parse_time(s: &str) -> Result<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let d: jiff::civil::Date = s.parse().with_context(|| {
        format!("{s:?} is neither a time (2027-01-31T12:00:00Z) nor a date (2027-01-31)")
    })?;
    Ok(d.at(23, 59, 59, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp())
}
