//! Soft delete: deleting an item's backup data keeps the item and its points for the
//! vault's soft-delete period (listed, stored, kept from garbage collection and
//! retention, undeletable), and the purge removes them once the period ends by the
//! server's clock, as a job and in the audit log. Always-on soft delete cannot be
//! switched off, and a vault holding soft-deleted data cannot be deleted.
//!
//! The host's side is real (`common::world`: the agent's `RemoteBackend` and the
//! engine's backup and restore on a disk image made here); the server's clock is in
//! the test's hand. (What an immutable vault adds is in destroy.rs.)

mod common;

use common::code;
use common::world::{restores_to, stored_points, world};

use jiff::SignedDuration;
use serde_json::{json, Value};
use tresor_client::{ApiClient, ClientError};

async fn item(admin: &ApiClient) -> Option<Value> {
    let items: Value = admin.get_json("api/v1/vaults/v1/items").await.unwrap();
    items.as_array().unwrap().first().cloned()
}

async fn disable_deleting(admin: &ApiClient) -> Value {
    admin
        .post_json(
            "api/v1/vaults/v1/items/vm1/disable",
            &json!({"deleteBackupData": true}),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_data_is_kept_undeletable_and_purged_when_its_time_ends() {
    let w = world().await;
    let admin = &w.admin;
    let host = w.protected_host("v1", "kvm1").await;
    let (points, last) = w.two_backups("v1", &host).await;
    let t0 = w.now();
    let repo = host.repo(&last.passphrase);
    let mut ids: Vec<String> = points.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();

    // Delete the data: the item is SoftDeleted until t0 + 14 days, its points stay.
    let job = disable_deleting(admin).await;
    assert_eq!(job["status"], "Completed", "{job}");
    let i = item(admin).await.expect("the soft-deleted item is listed");
    assert_eq!(i["protectionState"], "SoftDeleted");
    let purge_at = t0 + SignedDuration::from_hours(14 * 24);
    assert_eq!(i["deleteAt"], json!(purge_at.to_string()));
    let item_id = i["id"].as_str().unwrap().to_string();
    assert_eq!(w.point_ids("v1", &item_id).await, ids);
    let listed: Value = admin
        .get_json(&format!("api/v1/vaults/v1/items/{item_id}/recovery-points"))
        .await
        .unwrap();
    assert_eq!(listed[0]["deleteAt"], json!(purge_at.to_string()));

    // Nothing but the purge removes them: not a restore, not a backup, not GC.
    let r: Result<Value, _> = admin
        .post_json(
            "api/v1/vaults/v1/items/vm1/restore",
            &json!({"recoveryPoint": ids[0], "mode": "RestoreDisks", "targetPath": "/tmp/x"}),
        )
        .await;
    assert_eq!(code(r), "ItemSoftDeleted");
    let r: Result<Value, _> = admin
        .post_json("api/v1/vaults/v1/items/vm1/backup", &json!({}))
        .await;
    assert_eq!(code(r), "ItemSoftDeleted");
    w.collect_garbage().await;
    assert_eq!(stored_points(&repo), ids);
    for (id, data) in &points {
        restores_to(&repo, id, data, w.dir.path());
    }

    // The vault cannot go while it holds them.
    match admin.delete_vault("v1").await {
        Err(ClientError::Api { code, message, .. }) => {
            assert_eq!(code, "VaultNotEmpty");
            assert!(message.contains(&purge_at.to_string()), "{message}");
        }
        other => panic!("expected VaultNotEmpty, got {other:?}"),
    }

    // Undelete: back as ProtectionStopped with its points, nothing to purge.
    let back = admin.undelete_item("v1", "vm1").await.unwrap();
    assert_eq!(
        back.protection_state,
        tresor_api::items::ProtectionState::ProtectionStopped
    );
    assert_eq!(back.delete_at, None);
    assert_eq!(w.point_ids("v1", &item_id).await, ids);
    assert_eq!(
        code(admin.undelete_item("v1", "vm1").await),
        "ItemNotSoftDeleted"
    );
    w.clock.set(t0 + SignedDuration::from_hours(30 * 24));
    assert_eq!(w.purge().await, 0);
    assert_eq!(stored_points(&repo), ids);

    // Deleted again (now t0 + 30 d): kept until t0 + 44 d, purged after.
    let deleted = w.now();
    disable_deleting(admin).await;
    w.clock
        .set(deleted + SignedDuration::from_hours(14 * 24 - 1));
    assert_eq!(w.purge().await, 0);
    w.collect_garbage().await;
    assert_eq!(stored_points(&repo), ids);
    w.clock.set(deleted + SignedDuration::from_hours(14 * 24));
    assert_eq!(w.purge().await, 1);
    assert!(item(admin).await.is_none(), "the purged item is gone");
    assert!(stored_points(&repo).is_empty());
    let jobs: Value = admin
        .get_json("api/v1/vaults/v1/jobs?operation=DeleteBackupData")
        .await
        .unwrap();
    let purge_job = &jobs[0];
    assert_eq!(purge_job["status"], "Completed", "{jobs}");
    assert_eq!(purge_job["result"]["deletedRecoveryPoints"], 2);
    let audit: Value = admin.get_json("api/v1/audit?limit=1000").await.unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"item.purge"), "{actions:?}");
    assert!(actions.contains(&"item.undelete"), "{actions:?}");
    w.collect_garbage().await;

    admin.delete_vault("v1").await.unwrap();
    drop((repo, host));
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_on_soft_delete_cannot_be_switched_off() {
    let w = world().await;
    let admin = &w.admin;
    let v: Value = admin
        .post_json(
            "api/v1/vaults",
            &json!({"name": "v1", "resourceGroup": "rg", "location": "local"}),
        )
        .await
        .unwrap();
    assert_eq!(v["softDeleteDays"], 14);
    assert_eq!(v["softDeleteAlwaysOn"], false);
    let set = |body: Value| async move {
        admin
            .put_json::<_, Value>("api/v1/vaults/v1/backup-properties", &body)
            .await
    };
    for days in [13, 181] {
        assert_eq!(
            code(set(json!({"softDeleteDays": days})).await),
            "SoftDeleteDaysOutOfRange"
        );
    }
    let v = set(json!({"softDeleteDays": 30, "softDeleteAlwaysOn": true}))
        .await
        .unwrap();
    assert_eq!(v["softDeleteDays"], 30);
    assert_eq!(v["softDeleteAlwaysOn"], true);
    // Not even the installation's Owner can switch it off.
    assert_eq!(
        code(set(json!({"softDeleteAlwaysOn": false})).await),
        "SoftDeleteAlwaysOn"
    );
    let v: Value = admin.get_json("api/v1/vaults/v1").await.unwrap();
    assert_eq!(v["softDeleteAlwaysOn"], true);
    assert_eq!(v["softDeleteDays"], 30);
    w.finish().await;
}
