//! Changing an item's protection after it started, over HTTP with real points: a
//! deleted recovery point is only soft-deleted (not restorable, undeletable, purged
//! when its period ends, holding the vault meanwhile); a stopped item resumes under a
//! policy; another policy re-dates the item's scheduled points, and an immutable
//! vault refuses one that would make them expire sooner.

mod common;

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use tresor_client::{ApiClient, ClientError};

use common::code;
use common::world::{restores_to, stored_points, world, World};

async fn points(admin: &ApiClient, vault: &str) -> Vec<Value> {
    let v: Value = admin
        .get_json(&format!("api/v1/vaults/{vault}/items/vm1/recovery-points"))
        .await
        .unwrap();
    v.as_array().unwrap().clone()
}

async fn restore(admin: &ApiClient, vault: &str, point: &str) -> Result<Value, ClientError> {
    admin
        .post_json(
            &format!("api/v1/vaults/{vault}/items/vm1/restore"),
            &json!({"mode": "RestoreDisks", "recoveryPoint": point, "targetPath": "/restore"}),
        )
        .await
}

async fn set_policy(admin: &ApiClient, vault: &str, policy: &str) -> Result<Value, ClientError> {
    admin
        .put_json(
            &format!("api/v1/vaults/{vault}/items/vm1"),
            &json!({ "policy": policy }),
        )
        .await
}

/// A copy of `DefaultPolicy` named `name` whose daily points are kept `days` days.
async fn policy_keeping(w: &World, vault: &str, name: &str, days: u32) {
    let mut p: Value = w
        .admin
        .get_json(&format!("api/v1/vaults/{vault}/policies/DefaultPolicy"))
        .await
        .unwrap();
    let body = p.as_object_mut().unwrap();
    body.remove("id");
    body.remove("protectedItems");
    p["name"] = json!(name);
    p["retention"]["daily"]["days"] = json!(days);
    let _: Value = w
        .admin
        .post_json(&format!("api/v1/vaults/{vault}/policies"), &p)
        .await
        .unwrap();
}

fn expiry(p: &Value) -> Timestamp {
    p["expiry"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_point_is_soft_deleted_undeletable_and_purged_when_its_time_ends() {
    let w = world().await;
    let host = w.protected_host("v1", "h1").await;
    let (made, last) = w.two_backups("v1", &host).await;
    let (first, first_bytes) = &made[0];
    let (second, second_bytes) = &made[1];
    let admin = &w.admin;
    let path = format!("api/v1/vaults/v1/items/vm1/recovery-points/{first}");

    // Deleted: still listed, with the time it is purged; not restorable.
    admin.delete(&path).await.unwrap();
    let t0 = w.now();
    let purge_at = t0 + SignedDuration::from_hours(14 * 24);
    let listed = points(admin, "v1").await;
    let deleted = listed.iter().find(|p| p["id"] == json!(first)).unwrap();
    assert_eq!(
        deleted["deleteAt"],
        json!(purge_at.to_string()),
        "{deleted}"
    );
    assert_eq!(
        code(restore(admin, "v1", first).await),
        "RecoveryPointSoftDeleted"
    );
    assert_eq!(code(admin.delete(&path).await), "RecoveryPointSoftDeleted");
    // The vault holds soft-deleted data: it cannot be deleted.
    assert!(admin.delete_vault("v1").await.is_err());

    // Undeleted: restorable again; a second undelete is refused.
    let _: Value = admin.post_empty(&format!("{path}/undelete")).await.unwrap();
    assert_eq!(
        code(admin.post_empty::<Value>(&format!("{path}/undelete")).await),
        "RecoveryPointNotSoftDeleted"
    );
    let job = restore(admin, "v1", first).await.unwrap();
    assert_eq!(job["operation"], "Restore", "{job}");
    let _: Value = admin
        .post_empty(&format!(
            "api/v1/vaults/v1/jobs/{}/cancel",
            job["id"].as_str().unwrap()
        ))
        .await
        .unwrap();

    // Deleted again: nothing removes it before its period ends, the purge after.
    admin.delete(&path).await.unwrap();
    let deleted_at = w.now();
    w.clock
        .set(deleted_at + SignedDuration::from_hours(14 * 24 - 1));
    assert_eq!(w.purge().await, 0);
    assert_eq!(points(admin, "v1").await.len(), 2);
    w.clock
        .set(deleted_at + SignedDuration::from_hours(14 * 24 + 1));
    assert_eq!(w.purge().await, 1);
    let left: Vec<Value> = points(admin, "v1").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], json!(second));
    let repo = host.repo(&last.passphrase);
    assert_eq!(stored_points(&repo), vec![second.clone()]);
    restores_to(&repo, second, second_bytes, w.dir.path());
    assert!(first_bytes != second_bytes);

    // Recorded: the deletes, the undelete and the purge.
    let log: Value = admin.get_json("api/v1/audit?limit=100").await.unwrap();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in ["point.delete", "point.undelete", "point.purge"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_item_resumes_and_another_policy_redates_its_points() {
    let w = world().await;
    let host = w.protected_host("v1", "h1").await;
    let (made, _) = w.scheduled_backups(&host, false).await;
    let (point, _) = &made[0].1;
    let admin = &w.admin;
    let before = expiry(&points(admin, "v1").await[0]);

    // Stopped, keeping data: no backup now; resumed under a policy: backups again.
    let _: Value = admin
        .post_json(
            "api/v1/vaults/v1/items/vm1/disable",
            &json!({"deleteBackupData": false}),
        )
        .await
        .unwrap();
    let backup = || async {
        admin
            .post_json::<_, Value>("api/v1/vaults/v1/items/vm1/backup", &json!({}))
            .await
    };
    assert_eq!(code(backup().await), "ProtectionStopped");
    assert_eq!(
        code(set_policy(admin, "v1", "NoSuchPolicy").await),
        "NotFound"
    );
    let item = set_policy(admin, "v1", "DefaultPolicy").await.unwrap();
    assert_eq!(item["protectionState"], "Protected", "{item}");
    let job = backup().await.unwrap();
    let _: Value = admin
        .post_empty(&format!(
            "api/v1/vaults/v1/jobs/{}/cancel",
            job["id"].as_str().unwrap()
        ))
        .await
        .unwrap();

    // Another policy re-dates the scheduled point: longer, then shorter.
    policy_keeping(&w, "v1", "Year", 365).await;
    policy_keeping(&w, "v1", "Week", 7).await;
    let item = set_policy(admin, "v1", "Year").await.unwrap();
    assert_eq!(item["policy"], "Year", "{item}");
    let longer = expiry(&points(admin, "v1").await[0]);
    assert!(longer > before, "{longer} after {before}");

    // Immutable: a policy that would make the point expire sooner is refused, and
    // the point keeps its date; a longer one is taken.
    let _: Value = admin
        .put_json(
            "api/v1/vaults/v1/backup-properties",
            &json!({"immutability": "Enabled"}),
        )
        .await
        .unwrap();
    assert_eq!(
        code(set_policy(admin, "v1", "Week").await),
        "ImmutableVault"
    );
    assert_eq!(expiry(&points(admin, "v1").await[0]), longer);
    assert_eq!(
        code(
            admin
                .delete(&format!(
                    "api/v1/vaults/v1/items/vm1/recovery-points/{point}"
                ))
                .await
        ),
        "ImmutableVault"
    );

    // Not immutable any more: the shorter policy is taken and the point re-dated.
    let _: Value = admin
        .put_json(
            "api/v1/vaults/v1/backup-properties",
            &json!({"immutability": "Disabled"}),
        )
        .await
        .unwrap();
    set_policy(admin, "v1", "Week").await.unwrap();
    let shorter = expiry(&points(admin, "v1").await[0]);
    assert!(shorter < before, "{shorter} before {before}");
}
