//! `tresor resource-guard ...`: resource guards (multi-user authorization), after
//! `az dataprotection resource-guard`: create, list, show, update, delete, and the
//! requests for approval of critical operations (`request create|list|show|approve|
//! reject`). A vault is bound with `tresor vault backup-properties set
//! --resource-guard G`.

use anyhow::Result;
use tresor_api::guards::{CreateGuardRequest, CreateResourceGuard, UpdateResourceGuard};
use tresor_client::ApiClient;

use super::output::{confirm, print};
use crate::cli::{GuardCommand, Output, RequestCommand};

const GUARD_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "name"),
    ("APPROVERS", "approvers"),
    ("VALIDITY (MIN)", "validityMinutes"),
    ("VAULTS", "vaults"),
    ("CREATED", "created"),
];

const REQUEST_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("OPERATION", "operation"),
    ("VAULT", "vault"),
    ("STATUS", "status"),
    ("REQUESTED BY", "requestedBy"),
    ("DECIDED BY", "decidedBy"),
    ("EXPIRES", "expires"),
    ("REASON", "reason"),
];

pub async fn resource_guard(api: &ApiClient, output: Output, cmd: GuardCommand) -> Result<()> {
    match cmd {
        GuardCommand::Create {
            name,
            approvers,
            validity_minutes,
        } => {
            let req = CreateResourceGuard {
                name,
                approvers,
                validity_minutes,
            };
            print(
                output,
                &api.create_resource_guard(&req).await?,
                GUARD_COLUMNS,
            )
        }
        GuardCommand::List => print(output, &api.resource_guards().await?, GUARD_COLUMNS),
        GuardCommand::Show { name } => {
            print(output, &api.resource_guard(&name).await?, GUARD_COLUMNS)
        }
        GuardCommand::Update {
            name,
            approvers,
            validity_minutes,
        } => {
            if approvers.is_empty() && validity_minutes.is_none() {
                anyhow::bail!(
                    "nothing to change: give --approver (repeated) and/or --validity-minutes"
                );
            }
            let req = UpdateResourceGuard {
                approvers: (!approvers.is_empty()).then_some(approvers),
                validity_minutes,
            };
            print(
                output,
                &api.update_resource_guard(&name, &req).await?,
                GUARD_COLUMNS,
            )
        }
        GuardCommand::Delete { name, yes } => {
            confirm(yes, &format!("delete resource guard {name}"))?;
            api.delete_resource_guard(&name).await?;
            eprintln!("resource guard {name} deleted");
            Ok(())
        }
        GuardCommand::Request(RequestCommand::Create {
            guard,
            vault,
            operation,
            reason,
        }) => {
            let req = CreateGuardRequest {
                vault,
                operation,
                reason,
            };
            let r = api.create_guard_request(&guard, &req).await?;
            eprintln!(
                "request {} waits for an approver of {guard} until {} (tresor resource-guard request approve --guard {guard} --id {})",
                r.id, r.expires, r.id
            );
            print(output, &r, REQUEST_COLUMNS)
        }
        GuardCommand::Request(RequestCommand::List { guard }) => {
            print(output, &api.guard_requests(&guard).await?, REQUEST_COLUMNS)
        }
        GuardCommand::Request(RequestCommand::Show { guard, id }) => print(
            output,
            &api.guard_request(&guard, &id).await?,
            REQUEST_COLUMNS,
        ),
        GuardCommand::Request(RequestCommand::Approve { guard, id }) => print(
            output,
            &api.approve_guard_request(&guard, &id).await?,
            REQUEST_COLUMNS,
        ),
        GuardCommand::Request(RequestCommand::Reject { guard, id }) => print(
            output,
            &api.reject_guard_request(&guard, &id).await?,
            REQUEST_COLUMNS,
        ),
    }
}
