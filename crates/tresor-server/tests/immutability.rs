//! Immutable vaults through the HTTPS API: Disabled → Enabled → Locked, Locked for
//! good, and no shorter soft-delete period while immutable. (With real recovery
//! points: destroy.rs, where no policy change, change of an item's policy or delete
//! shortens their lives, and a longer retention is accepted.)

mod common;

use common::{client, code};

use tresor_api::vaults::{BackupProperties, CreateVault, Immutability};

fn props(immutability: Option<Immutability>, days: Option<u32>) -> BackupProperties {
    BackupProperties {
        immutability,
        soft_delete_days: days,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutability_locks_for_good_and_keeps_soft_deleted_data_as_long() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::quiet_server(dir.path()).await;
    let admin = client(&server, server.new_admin_token.as_deref());
    let create: CreateVault = serde_json::from_value(serde_json::json!({
        "name": "kept", "resourceGroup": "rg", "location": "local",
        "storageRedundancy": "LocallyRedundant"
    }))
    .unwrap();
    let v = admin.create_vault(&create).await.unwrap();
    assert_eq!(v.immutability, Immutability::Disabled);

    // Enabled can still be disabled; the period can grow, and shrink while disabled.
    assert_eq!(
        admin
            .set_backup_properties("kept", &props(Some(Immutability::Enabled), None))
            .await
            .unwrap()
            .immutability,
        Immutability::Enabled
    );
    assert_eq!(
        admin
            .set_backup_properties("kept", &props(None, Some(30)))
            .await
            .unwrap()
            .soft_delete_days,
        30,
        "a longer period is always allowed"
    );
    assert_eq!(
        code(
            admin
                .set_backup_properties("kept", &props(None, Some(14)))
                .await
        ),
        "ImmutableVault"
    );
    admin
        .set_backup_properties("kept", &props(Some(Immutability::Disabled), None))
        .await
        .unwrap();
    admin
        .set_backup_properties("kept", &props(None, Some(20)))
        .await
        .unwrap();

    // Locked: for good, whoever asks.
    admin
        .set_backup_properties("kept", &props(Some(Immutability::Locked), None))
        .await
        .unwrap();
    for lower in [Immutability::Enabled, Immutability::Disabled] {
        assert_eq!(
            code(
                admin
                    .set_backup_properties("kept", &props(Some(lower), None))
                    .await
            ),
            "ImmutabilityLocked"
        );
    }
    assert_eq!(
        code(
            admin
                .set_backup_properties("kept", &props(None, Some(14)))
                .await
        ),
        "ImmutableVault"
    );
    let v = admin.vault("kept").await.unwrap();
    assert_eq!(
        (v.immutability, v.soft_delete_days),
        (Immutability::Locked, 20)
    );
    drop(admin);
    server.shutdown().await;
}
