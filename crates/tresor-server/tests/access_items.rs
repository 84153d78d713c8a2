//! Roles over what is inside a vault, with real items, jobs and recovery points: every
//! operation on items, points and jobs (and the installation's own: users, resource
//! guards) × every role, in its scope (a token at the vault) and out of it (another
//! vault). Only a 403 `MissingPermission` counts as refused; an allowed call may still
//! fail for another reason (a second backup while one is queued is 409).

mod common;

use serde_json::{json, Value};
use tresor_api::tokens::Role;
use tresor_client::{ApiClient, ClientError};

use common::world::{world, World};
use common::{client, token_with};

/// Whether the answer was a refusal for lack of permission.
fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>) -> bool {
    match &r {
        Err(ClientError::Api {
            status: 403, code, ..
        }) => {
            assert_eq!(code, "MissingPermission", "{r:?}");
            true
        }
        _ => false,
    }
}

/// A vault `vault` whose host protects `vm1` (two points) and reports `vm2`; and a
/// job of `vm1` the admin started and nobody runs.
struct Stage {
    vault: String,
    point: String,
    job: String,
}

async fn stage(w: &World, vault: &str) -> Stage {
    let id = w.create_vault(vault).await;
    let host = w
        .register_host(vault, &id, &format!("{vault}-host"), &["vm1", "vm2"])
        .await;
    w.protect(vault, &host_name(vault), "vm1").await;
    let (points, _) = w.two_backups(vault, &host).await;
    let job = w.backup_now(vault, "vm1").await;
    Stage {
        vault: vault.to_string(),
        point: points[0].0.clone(),
        job,
    }
}

fn host_name(vault: &str) -> String {
    format!("{vault}-host")
}

/// Every operation, in the order of `EXPECTED`'s columns (the destroying ones last).
async fn attempts(c: &ApiClient, s: &Stage) -> Vec<bool> {
    let v = format!("api/v1/vaults/{}", s.vault);
    let point = format!("{v}/items/vm1/recovery-points/{}", s.point);
    vec![
        refused(c.get_json::<Value>(&format!("{v}/items")).await),
        refused(
            c.get_json::<Value>(&format!("{v}/items/vm1/recovery-points"))
                .await,
        ),
        refused(
            c.post_json::<_, Value>(
                &format!("{v}/items/vm1/restore"),
                &json!({"mode": "RestoreDisks", "recoveryPoint": s.point, "targetPath": "/r"}),
            )
            .await,
        ),
        refused(
            c.post_json::<_, Value>(&format!("{v}/items/vm1/backup"), &json!({}))
                .await,
        ),
        refused(
            c.post_empty::<Value>(&format!("{v}/jobs/{}/cancel", s.job))
                .await,
        ),
        refused(
            c.post_json::<_, Value>(
                &format!("{v}/items"),
                &json!({"host": host_name(&s.vault), "vm": "vm2"}),
            )
            .await,
        ),
        refused(
            c.put_json::<_, Value>(
                &format!("{v}/items/vm1"),
                &json!({"policy": "DefaultPolicy"}),
            )
            .await,
        ),
        refused(c.get_json::<Value>("api/v1/users").await),
        refused(
            c.post_json::<_, Value>(
                "api/v1/resourceGuards",
                &json!({"name": "g", "approvers": ["nobody"]}),
            )
            .await,
        ),
        refused(
            c.post_json::<_, Value>(&format!("{v}/items/vm2/disable"), &json!({}))
                .await,
        ),
        refused(c.delete(&point).await),
        refused(c.post_empty::<Value>(&format!("{point}/undelete")).await),
        refused(
            c.post_json::<_, Value>(
                &format!("{v}/items/vm1/disable"),
                &json!({"deleteBackupData": true}),
            )
            .await,
        ),
        refused(
            c.post_empty::<Value>(&format!("{v}/items/vm1/undelete"))
                .await,
        ),
    ]
}

const R: bool = true;
const A: bool = false;

/// Refused (R) or allowed (A), per role at its vault's scope. Users and resource
/// guards are the installation's: refused at a vault's scope, even to its Owner.
#[rustfmt::skip]
const EXPECTED: [(Role, [bool; 14]); 5] = [
    //                     items, points, restore, backup now, cancel job,
    //                     enable, modify, users, guard, stop,
    //                     delete point, undelete point, delete data, undelete item
    (Role::Reader,          [A, A, R, R, R, R, R, R, R, R, R, R, R, R]),
    (Role::RestoreOperator, [A, A, A, R, R, R, R, R, R, R, R, R, R, R]),
    (Role::BackupOperator,  [A, A, A, A, A, A, R, R, R, R, R, A, R, A]),
    (Role::Contributor,     [A, A, A, A, A, A, A, R, R, A, A, A, A, A]),
    (Role::Owner,           [A, A, A, A, A, A, A, R, R, A, A, A, A, A]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_operation_by_every_role_in_and_out_of_its_scope() {
    let w = world().await;
    let outside = stage(&w, "outside").await;
    for (n, (role, expected)) in EXPECTED.iter().enumerate() {
        let inside = stage(&w, &format!("v{n}")).await;
        let scope = format!("/resourceGroups/rg/vaults/{}", inside.vault);
        let token = token_with(&w.admin, &format!("t{n}"), *role, &scope).await;
        let c = client(&w.server, Some(&token));

        // Out of its scope first (nothing there changes), then in it.
        let got = attempts(&c, &outside).await;
        assert!(
            got.iter().all(|r| *r),
            "{role:?} outside its vault: {got:?}"
        );
        let got = attempts(&c, &inside).await;
        assert_eq!(got, expected.to_vec(), "{role:?} at {scope}");
    }
    // Nothing outside was touched: both points are there, none deleted.
    let points: Value = w
        .admin
        .get_json("api/v1/vaults/outside/items/vm1/recovery-points")
        .await
        .unwrap();
    let points = points.as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert!(points.iter().all(|p| p["deleteAt"].is_null()), "{points:?}");
}
