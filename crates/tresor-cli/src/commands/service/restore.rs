//! `tresor recoverypoint` and `tresor restore`: an item's recovery points, and
//! restoring one (disks to a folder, a new VM, or over the original's disks).

use anyhow::Result;
use tresor_api::items::RestoreRequest;
use tresor_client::{ApiClient, Region};

use super::jobs::JOB_COLUMNS;
use super::output::{confirm, print};
use crate::cli::{FormatArg, Output, PointCommand, RestoreCommand, RestoreTarget};

const POINT_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "id"),
    ("TIME", "time"),
    ("CONSISTENCY", "consistency"),
    ("EXPIRY", "expiry"),
    ("ON DEMAND", "onDemand"),
    ("SIZE", "size"),
    ("IN SECONDARY", "replicated"),
    ("DELETED FROM PRIMARY", "deletedFromPrimary"),
];

pub async fn recovery_points(api: &ApiClient, output: Output, cmd: PointCommand) -> Result<()> {
    match cmd {
        PointCommand::List {
            vault,
            item,
            use_secondary_region,
        } => {
            let region = Region::of(use_secondary_region);
            let points = api
                .recovery_points(&vault.vault_name, &item, region)
                .await?;
            print(output, &points, POINT_COLUMNS)
        }
        PointCommand::Show {
            vault,
            item,
            name,
            use_secondary_region,
        } => {
            let region = Region::of(use_secondary_region);
            let point = api
                .recovery_point(&vault.vault_name, &item, &name, region)
                .await?;
            print(output, &point, POINT_COLUMNS)
        }
        PointCommand::Delete {
            vault,
            item,
            name,
            yes,
        } => {
            confirm(
                yes,
                &format!("delete recovery point {name} of {item} (kept, soft-deleted, for the vault's soft-delete period; undelete with tresor recoverypoint undelete)"),
            )?;
            api.delete_recovery_point(&vault.vault_name, &item, &name)
                .await?;
            println!("recovery point {name} deleted (soft-deleted)");
            Ok(())
        }
        PointCommand::Undelete { vault, item, name } => print(
            output,
            &api.undelete_recovery_point(&vault.vault_name, &item, &name)
                .await?,
            POINT_COLUMNS,
        ),
    }
}

pub async fn restore(api: &ApiClient, output: Output, cmd: RestoreCommand) -> Result<()> {
    let (target, request) = match cmd {
        RestoreCommand::RestoreDisks {
            target,
            target_path,
            format,
        } => {
            let format = format.map(|f| match f {
                FormatArg::Qcow2 => "qcow2".to_string(),
                FormatArg::Raw => "raw".to_string(),
            });
            let request = RestoreRequest {
                target_path: Some(target_path),
                format,
                ..request(&target, "RestoreDisks")
            };
            (target, request)
        }
        RestoreCommand::CreateVm {
            target,
            target_path,
            target_pool,
            new_name,
            start,
        } => {
            let request = RestoreRequest {
                target_path,
                target_pool,
                new_name,
                start,
                ..request(&target, "CreateVm")
            };
            (target, request)
        }
        RestoreCommand::ReplaceDisks { target, yes } => {
            confirm(
                yes,
                &format!(
                    "overwrite the disks of {} with recovery point {}",
                    target.item, target.rp_name
                ),
            )?;
            let request = request(&target, "ReplaceDisks");
            (target, request)
        }
    };
    let job = api
        .restore(&target.vault.vault_name, &target.item, &request)
        .await?;
    print(output, &job, JOB_COLUMNS)
}

/// A restore of `target`'s point in `mode`, with nothing else set.
fn request(target: &RestoreTarget, mode: &str) -> RestoreRequest {
    RestoreRequest {
        recovery_point: target.rp_name.clone(),
        mode: mode.to_string(),
        target_path: None,
        format: None,
        new_name: None,
        target_pool: None,
        start: false,
        use_secondary_region: target.use_secondary_region,
    }
}
