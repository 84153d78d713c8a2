//! Roles through the HTTPS API: every token holds role assignments, and every call is
//! checked against them by the service (403 `MissingPermission` naming what is
//! missing). Operations × roles at the installation's scope, then scopes: a vault- or
//! resource-group-scoped role reaches its vaults and no others.

mod common;

use common::{client, token_with};

use tresor_api::tokens::Role;
use tresor_api::vaults::CreateVault;
use tresor_client::{ApiClient, ClientError};

fn vault(name: &str, group: &str) -> CreateVault {
    serde_json::from_value(serde_json::json!({
        "name": name, "resourceGroup": group, "location": "local",
        "storageRedundancy": "LocallyRedundant"
    }))
    .unwrap()
}

/// Whether the answer was a refusal for lack of permission.
fn refused<T: std::fmt::Debug>(r: &Result<T, ClientError>) -> bool {
    match r {
        Err(ClientError::Api { status, code, .. }) if *status == 403 => {
            assert_eq!(code, "MissingPermission", "{r:?}");
            true
        }
        _ => false,
    }
}

/// What one caller tries, each answered "refused for lack of permission" or not.
async fn attempts(
    c: &ApiClient,
    target: &str,
    policy: &tresor_api::policies::BackupPolicy,
    n: usize,
) -> Vec<bool> {
    vec![
        refused(&c.list_vaults().await),
        refused(&c.policies(target).await),
        refused(&c.jobs(target, &Default::default()).await),
        refused(&c.audit(&Default::default()).await),
        refused(&c.create_policy(target, policy).await),
        refused(&c.update_policy(target, policy).await),
        refused(&c.set_backup_properties(target, &Default::default()).await),
        refused(&c.vault_credentials(target, &Default::default()).await),
        refused(&c.verify(target, &Default::default()).await),
        refused(&c.replicate(target).await),
        refused(&c.create_vault(&vault(&format!("new{n}"), "rg1")).await),
        refused(&c.tokens().await),
        refused(&c.delete_policy(target, policy.name.as_str()).await),
        refused(&c.delete_vault(target).await),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_may_do_its_operations_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::quiet_server(dir.path()).await;
    let admin = client(&server, server.new_admin_token.as_deref());
    admin.create_vault(&vault("v1", "rg1")).await.unwrap();
    admin.create_vault(&vault("v2", "rg2")).await.unwrap();

    // (role, refused: R, or allowed: A) per operation, at the installation's scope.
    // Allowed calls may still fail for other reasons (replicating a LocallyRedundant
    // vault is 400): only a 403 counts as refused. The deletes come last and each
    // role works on a vault of its own.
    const R: bool = true;
    const A: bool = false;
    #[rustfmt::skip]
    let expected: [(Role, [bool; 14]); 5] = [
        //                     list vaults, policies, jobs, audit, create policy,
        //                     update policy, properties, credentials, verify, replicate,
        //                     create vault, tokens, delete policy, delete vault
        (Role::Reader,          [A, A, A, R, R, R, R, R, R, R, R, R, R, R]),
        (Role::RestoreOperator, [A, A, A, R, R, R, R, R, R, R, R, R, R, R]),
        (Role::BackupOperator,  [A, A, A, R, R, R, R, A, A, A, R, R, R, R]),
        (Role::Contributor,     [A, A, A, A, A, A, A, A, A, A, A, R, A, A]),
        (Role::Owner,           [A, A, A, A, A, A, A, A, A, A, A, A, A, A]),
    ];
    for (n, (role, refusals)) in expected.iter().enumerate() {
        let target = format!("d{n}");
        admin.create_vault(&vault(&target, "rg1")).await.unwrap();
        let mut policy = admin.default_policy_for_vm(&target).await.unwrap().policy;
        policy.name = tresor_domain::PolicyName::parse(&format!("Policy{n}")).unwrap();
        let token = token_with(&admin, &format!("t{n}"), *role, "/").await;
        let got = attempts(&client(&server, Some(&token)), &target, &policy, n).await;
        assert_eq!(got, refusals.to_vec(), "{role:?} at /");
    }

    // Scopes: a Contributor of resource group rg1 reaches v1 and not v2, and never
    // what needs the installation (creating vaults, tokens).
    let rg1 = client(
        &server,
        Some(&token_with(&admin, "rg1", Role::Contributor, "/resourceGroups/rg1").await),
    );
    assert!(!refused(&rg1.policies("v1").await));
    assert!(refused(&rg1.policies("v2").await));
    assert!(refused(&rg1.create_vault(&vault("v3", "rg1")).await));
    assert!(refused(&rg1.tokens().await));
    // A Reader of vault v1 reads v1's policies, and nothing of v2.
    let v1 = client(
        &server,
        Some(&token_with(&admin, "v1", Role::Reader, "/resourceGroups/rg1/vaults/v1").await),
    );
    assert!(!refused(&v1.policies("v1").await));
    assert!(refused(&v1.policies("v2").await));
    // Lists show what the scopes cover.
    let seen: Vec<String> = v1
        .list_vaults()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(seen, ["v1"]);
    assert!(!refused(&v1.vault("v1").await));
    assert!(refused(&v1.vault("v2").await));
    assert!(refused(
        &v1.vault_credentials("v1", &Default::default()).await
    ));
    // The refusal names the permission and the target.
    match v1.vault_credentials("v1", &Default::default()).await {
        Err(ClientError::Api { message, .. }) => {
            assert!(message.contains("Vaults.IssueCredentials"), "{message}");
            assert!(message.contains("v1"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    drop((admin, rg1, v1));
    server.shutdown().await;
}
