//! Every rule of the vault service, through its HTTPS API, with the code a user sees.
//! Agents here are simulated: they register, report inventories and call the
//! endpoints an agent calls.

mod common;

use common::world::{world_with, World};
use common::{client, code};

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use tresor_client::{ApiClient, ClientError};

/// A world whose clock starts at the real now (the rules' dates are checked against
/// it), then stands still until the test moves it.
async fn world() -> World {
    world_with(Timestamp::now(), |_| {}).await
}

impl World {
    async fn vault(&self, name: &str, location: &str) -> Value {
        self.admin
            .post_json(
                "api/v1/vaults",
                &json!({"name": name, "resourceGroup": "rg", "location": location}),
            )
            .await
            .unwrap()
    }

    /// Registers an agent with the vault's credentials; returns its client and id.
    async fn agent(&self, vault: &str, host: &str, location: &str) -> (ApiClient, String) {
        let creds: Value = self
            .admin
            .post_json(&format!("api/v1/vaults/{vault}/credentials"), &json!({}))
            .await
            .unwrap();
        let anon = client(&self.server, None);
        let reg: Value = anon
            .post_json(
                "api/v1/agents/register",
                &json!({"secret": creds["secret"], "host": host, "location": location}),
            )
            .await
            .unwrap();
        (
            client(&self.server, reg["credential"].as_str()),
            reg["agentId"].as_str().unwrap().to_string(),
        )
    }

    async fn report(&self, agent: &ApiClient, vms: &[(&str, &str)]) {
        let vms: Vec<Value> = vms
            .iter()
            .map(|(vm, format)| {
                json!({"vm": vm, "info": {"name": vm, "state": "running", "guest_agent": {"state": "not-configured"}, "disks": [{"name": "vda", "format": format, "image": "/x", "virtual_size": 1}]}})
            })
            .collect();
        let _: Value = agent
            .post_json("api/v1/agent/heartbeat", &json!({ "vms": vms }))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_authenticated_and_names_are_checked() {
    let w = world().await;
    let anon = client(&w.server, None);
    assert_eq!(
        code(anon.get_json::<Value>("api/v1/vaults").await),
        "Unauthorized"
    );
    let wrong = client(&w.server, Some("tresor_admin_0000"));
    assert_eq!(
        code(wrong.get_json::<Value>("api/v1/vaults").await),
        "Unauthorized"
    );
    // Documentation and the liveness check need no token.
    let doc: Value = anon.get_json("openapi.json").await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let _: Value = anon.get_json("api/v1/ping").await.unwrap();

    for (name, rg, loc, expected) in [
        ("a", "rg", "local", "InvalidVaultName"),
        (&"v".repeat(51), "rg", "local", "InvalidVaultName"),
        ("vault_1", "rg", "local", "InvalidVaultName"),
        ("9vault", "rg", "local", "InvalidVaultName"),
        ("vault-1", "rg.", "local", "InvalidResourceGroupName"),
        ("vault-1", "rg", "West Europe", "InvalidLocation"),
    ] {
        let r = w
            .admin
            .post_json::<_, Value>(
                "api/v1/vaults",
                &json!({"name": name, "resourceGroup": rg, "location": loc}),
            )
            .await;
        assert_eq!(code(r), expected, "{name} {rg} {loc}");
    }
    let v = w.vault("Vault-1", "local").await;
    assert_eq!(v["storageRedundancy"], "GeoRedundant");
    assert_eq!(
        code(w.admin.get_json::<Value>("api/v1/vaults/nope").await),
        "NotFound"
    );

    // API tokens work like the admin token until revoked.
    let t: Value = w
        .admin
        .post_json("api/v1/tokens", &json!({"name": "reports"}))
        .await
        .unwrap();
    let scripted = client(&w.server, t["token"].as_str());
    let _: Value = scripted.get_json("api/v1/vaults").await.unwrap();
    let listed: Value = w.admin.get_json("api/v1/tokens").await.unwrap();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.get("token").is_none() && t.get("hash").is_none()));
    w.admin
        .delete(&format!("api/v1/tokens/{}", t["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        code(scripted.get_json::<Value>("api/v1/vaults").await),
        "Unauthorized"
    );
    drop(scripted);

    // An agent's credential is not an admin's, and the other way round.
    let (agent, _) = w.agent("Vault-1", "kvm1", "local").await;
    assert_eq!(
        code(agent.get_json::<Value>("api/v1/vaults").await),
        "Unauthorized"
    );
    assert_eq!(
        code(w.admin.get_json::<Value>("api/v1/agent/ping").await),
        "Unauthorized"
    );
    drop((anon, wrong, agent));
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_credentials_are_single_use_and_expire() {
    let w = world().await;
    w.vault("v1", "local").await;
    let r = w
        .admin
        .post_json::<_, Value>("api/v1/vaults/v1/credentials", &json!({"validDays": 11}))
        .await;
    assert_eq!(code(r), "InvalidCredentialsValidity");
    let creds: Value = w
        .admin
        .post_json("api/v1/vaults/v1/credentials", &json!({"validDays": 1}))
        .await
        .unwrap();
    assert_eq!(creds["fingerprint"].as_str().unwrap(), w.server.fingerprint);
    let anon = client(&w.server, None);
    let register = json!({"secret": creds["secret"], "host": "kvm1", "location": "local"});
    let _: Value = anon
        .post_json("api/v1/agents/register", &register)
        .await
        .unwrap();
    let again = anon
        .post_json::<_, Value>("api/v1/agents/register", &register)
        .await;
    assert_eq!(code(again), "InvalidVaultCredentials");
    let late: Value = w
        .admin
        .post_json("api/v1/vaults/v1/credentials", &json!({"validDays": 1}))
        .await
        .unwrap();
    w.clock.advance(SignedDuration::from_hours(25));
    let expired = anon
        .post_json::<_, Value>(
            "api/v1/agents/register",
            &json!({"secret": late["secret"], "host": "kvm2", "location": "local"}),
        )
        .await;
    assert_eq!(code(expired), "InvalidVaultCredentials");
    drop(anon);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_follow_azures_rules() {
    let w = world().await;
    w.vault("v1", "local").await;
    let default: Value = w
        .admin
        .get_json("api/v1/vaults/v1/policies/default-for-vm")
        .await
        .unwrap();
    assert_eq!(default["name"], "DefaultPolicy");
    assert_eq!(default["retention"]["daily"]["days"], 30);

    let mut weekly = default.clone();
    weekly.as_object_mut().unwrap().remove("id");
    weekly.as_object_mut().unwrap().remove("protectedItems");
    weekly["name"] = json!("Weekly");
    weekly["schedule"]["frequency"] = json!({"Weekly": {"days": ["Sunday"]}});
    weekly["schedule"]["timeZone"] = json!("Europe/Berlin");
    // A weekly schedule needs weekly retention, and refuses daily retention.
    let r = w
        .admin
        .post_json::<_, Value>("api/v1/vaults/v1/policies", &weekly)
        .await;
    assert_eq!(code(r), "WeeklyRetentionRequired");
    weekly["retention"]["weekly"] = json!({"daysOfWeek": ["Sunday"], "weeks": 12});
    let r = w
        .admin
        .post_json::<_, Value>("api/v1/vaults/v1/policies", &weekly)
        .await;
    assert_eq!(code(r), "DailyRetentionNotAllowed");
    weekly["retention"] = json!({"weekly": {"daysOfWeek": ["Sunday"], "weeks": 12}});
    weekly["instantRestoreDays"] = json!(5);
    let created: Value = w
        .admin
        .post_json("api/v1/vaults/v1/policies", &weekly)
        .await
        .unwrap();
    assert_eq!(created["name"], "Weekly");
    let dup = w
        .admin
        .post_json::<_, Value>("api/v1/vaults/v1/policies", &weekly)
        .await;
    assert_eq!(code(dup), "PolicyAlreadyExists");
    // Out-of-range retention; a time off the half hour; an unknown time zone.
    let mut bad = weekly.clone();
    bad["retention"]["weekly"]["weeks"] = json!(6000);
    let r = w
        .admin
        .send(
            reqwest::Method::PUT,
            "api/v1/vaults/v1/policies/Weekly",
            |r| r.json(&bad),
        )
        .await;
    assert_eq!(code(r), "RetentionOutOfRange");
    let mut bad = weekly.clone();
    bad["schedule"]["time"] = json!("22:15:00");
    let r = w
        .admin
        .post_json::<_, Value>("api/v1/vaults/v1/policies", &json!(bad))
        .await;
    assert_eq!(code(r), "InvalidScheduleTime");
    let mut bad = weekly.clone();
    bad["name"] = json!("Other");
    bad["schedule"]["timeZone"] = json!("Mars/Olympus");
    let r = w
        .admin
        .post_json::<_, Value>("api/v1/vaults/v1/policies", &bad)
        .await;
    assert_eq!(code(r), "InvalidTimeZone");
    // An unused policy can be deleted.
    w.admin
        .delete("api/v1/vaults/v1/policies/Weekly")
        .await
        .unwrap();
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_validates_the_vm_and_backups_follow_the_rules() {
    let w = world().await;
    w.vault("eu", "westeurope").await;
    w.vault("eu2", "westeurope").await;
    w.vault("us", "eastus").await;
    let (a, _) = w.agent("eu", "kvm1", "westeurope").await;
    w.report(&a, &[("web", "qcow2"), ("old", "vmdk")]).await;

    // Only VMs of the vault's location are protectable.
    let us: Value = w
        .admin
        .get_json("api/v1/vaults/us/protectable-items")
        .await
        .unwrap();
    assert!(us.as_array().unwrap().is_empty());
    let eu: Value = w
        .admin
        .get_json("api/v1/vaults/eu/protectable-items")
        .await
        .unwrap();
    assert_eq!(eu.as_array().unwrap().len(), 2);

    let enable = |vault: &'static str, vm: &'static str| {
        let admin = &w.admin;
        async move {
            admin
                .post_json::<_, Value>(
                    &format!("api/v1/vaults/{vault}/items"),
                    &json!({"host": "kvm1", "vm": vm}),
                )
                .await
        }
    };
    assert_eq!(code(enable("us", "web").await), "LocationMismatch");
    assert_eq!(code(enable("eu", "nothing").await), "NotFound");
    assert_eq!(code(enable("eu", "old").await), "UnsupportedDiskFormat");
    let item = enable("eu", "web").await.unwrap();
    assert_eq!(item["protectionState"], "InitialBackupPending");
    assert_eq!(code(enable("eu2", "web").await), "AlreadyProtected");
    let p: Value = w
        .admin
        .get_json("api/v1/vaults/eu2/protectable-items")
        .await
        .unwrap();
    assert_eq!(
        p.as_array().unwrap().len(),
        1,
        "web is protected, only old remains"
    );

    // Back up now: not in the past; one at a time.
    let past = (w.now() - SignedDuration::from_hours(1)).to_string();
    let r = w
        .admin
        .post_json::<_, Value>(
            "api/v1/vaults/eu/items/web/backup",
            &json!({"retainUntil": past}),
        )
        .await;
    assert_eq!(code(r), "RetainUntilInPast");
    let job: Value = w
        .admin
        .post_json("api/v1/vaults/eu/items/web/backup", &json!({}))
        .await
        .unwrap();
    let r = w
        .admin
        .post_json::<_, Value>("api/v1/vaults/eu/items/web/backup", &json!({}))
        .await;
    assert_eq!(code(r), "BackupAlreadyInProgress");
    // Protection cannot stop under a running job; a job not yet taken can be cancelled.
    let r = w
        .admin
        .post_json::<_, Value>("api/v1/vaults/eu/items/web/disable", &json!({}))
        .await;
    assert_eq!(code(r), "JobInProgress");
    let cancelled: Value = w
        .admin
        .post_json(
            &format!(
                "api/v1/vaults/eu/jobs/{}/cancel",
                job["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "Cancelled");

    // Stopped, data kept: no backup now; deleting the data keeps it (soft-deleted)
    // for 14 days, and the VM is free once it is purged.
    let stop: Value = w
        .admin
        .post_json("api/v1/vaults/eu/items/web/disable", &json!({}))
        .await
        .unwrap();
    assert_eq!(stop["operation"], "DisableBackup");
    let r = w
        .admin
        .post_json::<_, Value>("api/v1/vaults/eu/items/web/backup", &json!({}))
        .await;
    assert_eq!(code(r), "ProtectionStopped");
    let del: Value = w
        .admin
        .post_json(
            "api/v1/vaults/eu/items/web/disable",
            &json!({"deleteBackupData": true}),
        )
        .await
        .unwrap();
    assert_eq!(del["operation"], "DeleteBackupData");
    assert_eq!(code(enable("eu2", "web").await), "AlreadyProtected");
    w.clock.advance(SignedDuration::from_hours(14 * 24));
    let state = w.server.state.clone();
    let purged = tokio::task::spawn_blocking(move || {
        tresor_service::soft_delete::purge_due(&state)
            .unwrap()
            .len()
    })
    .await
    .unwrap();
    assert_eq!(purged, 1);
    w.report(&a, &[("web", "qcow2"), ("old", "vmdk")]).await;
    assert_eq!(
        enable("eu2", "web").await.unwrap()["protectionState"],
        "InitialBackupPending"
    );

    // An agent that stopped reporting cannot take on a new VM.
    w.clock.advance(SignedDuration::from_mins(10));
    w.report(&a, &[("web", "qcow2"), ("new", "raw")]).await;
    w.clock.advance(SignedDuration::from_mins(5));
    assert_eq!(code(enable("eu", "new").await), "AgentOffline");

    // Jobs can be filtered.
    let jobs: Value = w
        .admin
        .get_json("api/v1/vaults/eu/jobs?operation=Backup")
        .await
        .unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    let jobs: Value = w
        .admin
        .get_json("api/v1/vaults/eu/jobs?status=Completed")
        .await
        .unwrap();
    assert!(jobs
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["status"] == "Completed"));
    // A vault with a protected item is not deleted.
    assert_eq!(
        code(w.admin.delete("api/v1/vaults/eu2").await),
        "VaultNotEmpty"
    );
    w.admin.delete("api/v1/vaults/us").await.unwrap();
    drop(a);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reaches_only_its_own_repository_and_never_destroys() {
    let w = world().await;
    w.vault("vv", "local").await;
    let (a, _) = w.agent("vv", "kvm1", "local").await;
    let (b, _) = w.agent("vv", "kvm2", "local").await;
    w.report(&a, &[("web", "qcow2")]).await;
    let _: Value = w
        .admin
        .post_json(
            "api/v1/vaults/vv/items",
            &json!({"host": "kvm1", "vm": "web"}),
        )
        .await
        .unwrap();
    let _: Value = w
        .admin
        .post_json("api/v1/vaults/vv/items/web/backup", &json!({}))
        .await
        .unwrap();
    // Agent A takes the job: its repository is made, and its passphrase handed over.
    let job: Value = a
        .post_json("api/v1/agent/jobs/next", &json!({}))
        .await
        .unwrap();
    assert_eq!(job["operation"], "Backup");
    let vault_id = job["vaultId"].as_str().unwrap();
    assert!(job["passphrase"]
        .as_str()
        .unwrap()
        .starts_with("tresor_repo_"));
    // B gets nothing of A's (no job, no repository).
    let none = b
        .send(
            reqwest::Method::POST,
            "api/v1/agent/jobs/next?wait=0",
            |r| r,
        )
        .await
        .unwrap();
    assert_eq!(none.status().as_u16(), 204);
    let objects = format!("api/v1/agent/repos/{vault_id}/objects");
    assert_eq!(
        code(b.get_json::<Value>(&format!("{objects}/keys")).await),
        "Forbidden"
    );
    assert_eq!(
        code(b.get_bytes(&format!("{objects}/config/config"), None).await),
        "Forbidden"
    );
    // A may read its config and add a pack; never replace it, delete it, or write the config.
    let config = a
        .get_bytes(&format!("{objects}/config/config"), None)
        .await
        .unwrap();
    assert!(!config.is_empty());
    // A pack as the agent makes it: one genuine blob, sealed with the repository's key.
    let key_name = a
        .get_json::<Value>(&format!("{objects}/keys"))
        .await
        .unwrap()[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let key = tresor_format::key_file::KeyFile::decode(
        &a.get_bytes(&format!("{objects}/keys/{key_name}"), None)
            .await
            .unwrap(),
    )
    .unwrap()
    .wrapped()
    .unwrap()
    .unwrap_key(job["passphrase"].as_str().unwrap().as_bytes())
    .unwrap();
    let plain = vec![1u8; 4096];
    let id = key.chunk_id_key().id_of(&plain);
    let mut compressor = zstd::bulk::Compressor::new(1).unwrap();
    let (mut scratch, mut sealed) = (Vec::new(), Vec::new());
    let meta = tresor_format::blob::seal_blob(
        &key.sealer(),
        &mut compressor,
        &mut scratch,
        tresor_format::blob::BlobKind::Data,
        &id,
        &plain,
        &mut sealed,
    );
    let mut builder = tresor_format::pack::PackBuilder::new();
    builder.add(tresor_format::blob::BlobKind::Data, id, meta, &sealed);
    let built = builder.finish(&key.sealer());
    let pack = format!("{objects}/data/{}", built.name);
    a.put_bytes(&pack, built.bytes.clone()).await.unwrap();
    a.put_bytes(&pack, built.bytes.clone()).await.unwrap();
    assert_eq!(
        code(a.put_bytes(&pack, vec![2u8; 100]).await),
        "ObjectExists"
    );
    // Bytes that are not a pack are refused before anything is stored.
    assert_eq!(
        code(
            a.put_bytes(
                &format!("{objects}/data/{}", "ab".repeat(32)),
                vec![1u8; 100]
            )
            .await
        ),
        "ObjectRejected"
    );
    assert_eq!(
        code(
            a.put_bytes(&format!("{objects}/config/config"), config.to_vec())
                .await
        ),
        "Forbidden"
    );
    let deleted = a.delete(&pack).await;
    assert!(matches!(
        deleted,
        Err(ClientError::Api { status: 405, .. }) | Err(ClientError::Api { .. })
    ));
    assert_eq!(
        a.get_bytes(&pack, Some((10, 5))).await.unwrap().as_ref(),
        &built.bytes[10..15]
    );
    // B cannot report progress on A's job.
    let r = b
        .post_json::<_, Value>(
            &format!(
                "api/v1/agent/jobs/{}/progress",
                job["jobId"].as_str().unwrap()
            ),
            &json!({"bytesDone": 0, "bytesTotal": 0}),
        )
        .await;
    assert_eq!(code(r), "Forbidden");
    drop((a, b));
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_follows_the_policy_and_policy_changes_apply_to_items() {
    let w = world().await;
    w.vault("ret", "local").await;
    let (a, _) = w.agent("ret", "kvm1", "local").await;
    w.report(&a, &[("web", "qcow2")]).await;
    let item: Value = w
        .admin
        .post_json(
            "api/v1/vaults/ret/items",
            &json!({"host": "kvm1", "vm": "web"}),
        )
        .await
        .unwrap();
    let item_id = item["id"].as_str().unwrap().to_string();
    let s = &w.server.state;
    let policy = tresor_domain::BackupPolicy::default_policy();
    // Two scheduled points (kept 30 days by DefaultPolicy) and one on-demand point.
    let now = w.now();
    let vault_id = s.store().find_vault_by_name("ret").unwrap().unwrap().id;
    for (id, age_days, on_demand) in [("old", 40, false), ("new", 1, false), ("kept", 40, true)] {
        let created = now - SignedDuration::from_hours(24 * age_days);
        s.store()
            .insert_point(&tresor_metadata::PointRow {
                id: id.into(),
                vault_id: vault_id.clone(),
                item_id: item_id.clone(),
                created,
                consistency: "CrashConsistent".into(),
                expires: Some(if on_demand {
                    now + SignedDuration::from_hours(24)
                } else {
                    policy.retain_until(created).unwrap()
                }),
                on_demand,
                size: 1,
                body: json!({}),
                replicated: None,
                primary_deleted: None,
                soft_deleted: None,
                soft_delete_until: None,
            })
            .unwrap();
    }
    let mut row = s.store().get_item(&item_id).unwrap();
    row.state = "Protected".into();
    s.store().update_item(&row).unwrap();

    // Changing the policy to keep daily points 60 days applies to the item's points.
    let mut longer: Value = w
        .admin
        .get_json("api/v1/vaults/ret/policies/DefaultPolicy")
        .await
        .unwrap();
    longer.as_object_mut().unwrap().remove("id");
    longer.as_object_mut().unwrap().remove("protectedItems");
    longer["retention"]["daily"]["days"] = json!(60);
    let _: Value = w
        .admin
        .send(
            reqwest::Method::PUT,
            "api/v1/vaults/ret/policies/DefaultPolicy",
            |r| r.json(&longer),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tresor_service::scheduler::retention(s).unwrap(), 0);
    // Back to 30 days: the 40-day-old scheduled point expires; the on-demand one keeps its own date.
    longer["retention"]["daily"]["days"] = json!(30);
    let _ = w
        .admin
        .send(
            reqwest::Method::PUT,
            "api/v1/vaults/ret/policies/DefaultPolicy",
            |r| r.json(&longer),
        )
        .await
        .unwrap();
    assert_eq!(tresor_service::scheduler::retention(s).unwrap(), 1);
    let left: Value = w
        .admin
        .get_json("api/v1/vaults/ret/items/web/recovery-points")
        .await
        .unwrap();
    let ids: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["new", "kept"]);
    // Two days on, the on-demand point's own date has passed too.
    w.clock.advance(SignedDuration::from_hours(48));
    assert_eq!(tresor_service::scheduler::retention(s).unwrap(), 1);
    drop(a);
    w.finish().await;
}
