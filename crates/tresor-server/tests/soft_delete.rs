//! Soft delete: deleting an item's backup data keeps the item and its points for the
//! vault's soft-delete period (listed, stored, kept from garbage collection and
//! retention, undeletable), and the purge removes them once the period ends by the
//! server's clock, as a job and in the audit log. Always-on soft delete cannot be
//! switched off, and a vault holding soft-deleted data cannot be deleted.
//!
//! The host's side is real (the agent's `RemoteBackend` and the engine's backup and
//! restore on a disk image made here); the server's clock is in the test's hand.

mod common;

use common::client;
use std::path::Path;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use rand::{RngCore, SeedableRng};
use serde_json::{json, Value};
use tresor_agent::remote::RemoteBackend;
use tresor_client::{ApiClient, ClientError};
use tresor_engine::backup::{self, BackupRequest, DiskSource};
use tresor_engine::blocksource::RawFile;
use tresor_engine::restore::{self, OutputFormat, RestoreRequest};
use tresor_engine::{Manifest, Repository};
use tresor_server::ServerConfig;
use tresor_service::Clock;

struct HandClock(Mutex<Timestamp>);

impl Clock for HandClock {
    fn now(&self) -> Timestamp {
        *self.0.lock()
    }
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const DISK: usize = 6 << 20;

fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> String {
    match r {
        Err(ClientError::Api { code, .. }) => code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

struct Host {
    api: Arc<ApiClient>,
    vault_id: String,
}

/// What a job hands the agent.
struct Assignment {
    job: String,
    passphrase: String,
    point_name: String,
}

impl Host {
    async fn next_job(&self) -> Assignment {
        let a: Value = self
            .api
            .post_json("api/v1/agent/jobs/next?wait=10", &json!({}))
            .await
            .unwrap();
        Assignment {
            job: a["jobId"].as_str().unwrap().into(),
            passphrase: a["passphrase"].as_str().unwrap().into(),
            point_name: a["pointName"].as_str().unwrap().into(),
        }
    }

    fn repo(&self, passphrase: &str) -> Repository {
        let backend = RemoteBackend::new(
            self.api.clone(),
            tokio::runtime::Handle::current(),
            &self.vault_id,
        );
        tokio::task::block_in_place(|| {
            Repository::open(Arc::new(backend), passphrase.as_bytes()).unwrap()
        })
    }

    async fn complete(&self, job: &str, point: &str) {
        let _: Value = self
            .api
            .post_json(
                &format!("api/v1/agent/jobs/{job}/complete"),
                &json!({"status": "Completed", "pointId": point}),
            )
            .await
            .unwrap();
    }
}

fn write_disk(path: &Path, seed: u64, changed: bool) -> Vec<u8> {
    let mut data = vec![0u8; DISK];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data[..DISK / 2]);
    if changed {
        data[..256 * 1024].fill(0x42);
    }
    std::fs::write(path, &data).unwrap();
    data
}

fn back_up(repo: &Repository, name: &str, image: &Path, parent: Option<Manifest>) -> Manifest {
    let source = Arc::new(RawFile::open(image).unwrap());
    let mut req = BackupRequest::new(
        name,
        vec![DiskSource {
            name: "vda".into(),
            source,
            dirty: None,
        }],
    );
    req.parent = parent;
    tokio::task::block_in_place(|| backup::run(repo, req)).unwrap()
}

fn restores_to(repo: &Repository, point_id: &str, expected: &[u8], out: &Path) {
    tokio::task::block_in_place(|| {
        let point = repo.load_point(point_id).unwrap();
        let file = out.join(point_id);
        restore::run(
            repo,
            RestoreRequest {
                point: &point,
                disk: "vda",
                output: &file,
                format: OutputFormat::Raw,
                overwrite: true,
                progress: None,
                workers: 2,
            },
        )
        .unwrap();
        assert!(
            std::fs::read(&file).unwrap() == expected,
            "point {point_id} restores byte for byte"
        );
    });
}

fn stored_points(repo: &Repository) -> Vec<String> {
    let mut ids = tokio::task::block_in_place(|| repo.point_ids().unwrap());
    ids.sort();
    ids
}

async fn start(dir: &Path, clock: Arc<HandClock>) -> tresor_server::RunningServer {
    let mut config = ServerConfig::new(dir.join("data"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.background = false;
    config.clock = clock;
    tresor_server::start(config).await.unwrap()
}

/// A vault `v1` in which host `kvm1` protects its VM `vm1`.
async fn protected_host(server: &tresor_server::RunningServer, admin: &ApiClient) -> Host {
    let v: Value = admin
        .post_json(
            "api/v1/vaults",
            &json!({"name": "v1", "resourceGroup": "rg", "location": "local"}),
        )
        .await
        .unwrap();
    let creds: Value = admin
        .post_json("api/v1/vaults/v1/credentials", &json!({}))
        .await
        .unwrap();
    let reg: Value = client(server, None)
        .post_json(
            "api/v1/agents/register",
            &json!({"secret": creds["secret"], "host": "kvm1", "location": "local"}),
        )
        .await
        .unwrap();
    let h = Host {
        api: Arc::new(client(server, reg["credential"].as_str())),
        vault_id: v["id"].as_str().unwrap().to_string(),
    };
    let _: Value = h
        .api
        .post_json(
            "api/v1/agent/heartbeat",
            &json!({"vms": [{"vm": "vm1", "info": {"name": "vm1", "state": "running", "guest_agent": {"state": "not-configured"}, "disks": [
                {"name": "vda", "format": "raw", "image": "/x", "virtual_size": DISK}]}}]}),
        )
        .await
        .unwrap();
    let _: Value = admin
        .post_json(
            "api/v1/vaults/v1/items",
            &json!({"host": "kvm1", "vm": "vm1"}),
        )
        .await
        .unwrap();
    h
}

/// Two backups of `vm1` as the agent makes them: the points with their disks' bytes,
/// and the repository (opened with the last job's passphrase).
async fn two_backups(
    admin: &ApiClient,
    host: &Host,
    dir: &Path,
) -> (Vec<(String, Vec<u8>)>, Repository) {
    let image = dir.join("vm1.raw");
    let mut points = Vec::new();
    let mut parent = None;
    let mut repo = None;
    for changed in [false, true] {
        let _: Value = admin
            .post_json("api/v1/vaults/v1/items/vm1/backup", &json!({}))
            .await
            .unwrap();
        let a = host.next_job().await;
        let data = write_disk(&image, 1, changed);
        let r = host.repo(&a.passphrase);
        let m = back_up(&r, &a.point_name, &image, parent.take());
        host.complete(&a.job, &m.id).await;
        points.push((m.id.clone(), data));
        parent = Some(m);
        repo = Some(r);
    }
    (points, repo.unwrap())
}

async fn item(admin: &ApiClient) -> Option<Value> {
    let items: Value = admin.get_json("api/v1/vaults/v1/items").await.unwrap();
    items.as_array().unwrap().first().cloned()
}

async fn point_ids(admin: &ApiClient, item: &str) -> Vec<String> {
    let points: Value = admin
        .get_json(&format!("api/v1/vaults/v1/items/{item}/recovery-points"))
        .await
        .unwrap();
    let mut ids: Vec<String> = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
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

async fn purge(server: &tresor_server::RunningServer) -> usize {
    let state = server.state.clone();
    tokio::task::spawn_blocking(move || tresor_service::soft_delete::purge_due(&state))
        .await
        .unwrap()
        .unwrap()
        .len()
}

async fn collect_garbage(server: &tresor_server::RunningServer) {
    let state = server.state.clone();
    tokio::task::spawn_blocking(move || tresor_service::garbage::collect_all(&state))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_data_is_kept_undeletable_and_purged_when_its_time_ends() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t("2026-01-10T12:00:00Z");
    let clock = Arc::new(HandClock(Mutex::new(t0)));
    let server = start(dir.path(), clock.clone()).await;
    let admin = client(&server, server.new_admin_token.as_deref());
    let host = protected_host(&server, &admin).await;
    let (points, repo) = two_backups(&admin, &host, dir.path()).await;
    let mut ids: Vec<String> = points.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();

    // Delete the data: the item is SoftDeleted until t0 + 14 days, its points stay.
    let job = disable_deleting(&admin).await;
    assert_eq!(job["status"], "Completed", "{job}");
    let i = item(&admin).await.expect("the soft-deleted item is listed");
    assert_eq!(i["protectionState"], "SoftDeleted");
    let purge_at = t0 + SignedDuration::from_hours(14 * 24);
    assert_eq!(i["deleteAt"], json!(purge_at.to_string()));
    let item_id = i["id"].as_str().unwrap().to_string();
    assert_eq!(point_ids(&admin, &item_id).await, ids);
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
    collect_garbage(&server).await;
    assert_eq!(stored_points(&repo), ids);
    for (id, data) in &points {
        restores_to(&repo, id, data, dir.path());
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
    assert_eq!(point_ids(&admin, &item_id).await, ids);
    assert_eq!(
        code(admin.undelete_item("v1", "vm1").await),
        "ItemNotSoftDeleted"
    );
    *clock.0.lock() = t0 + SignedDuration::from_hours(30 * 24);
    assert_eq!(purge(&server).await, 0);
    assert_eq!(stored_points(&repo), ids);

    // Deleted again (now t0 + 30 d): kept until t0 + 44 d, purged after.
    let deleted = *clock.0.lock();
    disable_deleting(&admin).await;
    *clock.0.lock() = deleted + SignedDuration::from_hours(14 * 24 - 1);
    assert_eq!(purge(&server).await, 0);
    collect_garbage(&server).await;
    assert_eq!(stored_points(&repo), ids);
    *clock.0.lock() = deleted + SignedDuration::from_hours(14 * 24);
    assert_eq!(purge(&server).await, 1);
    assert!(item(&admin).await.is_none(), "the purged item is gone");
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
    collect_garbage(&server).await;

    admin.delete_vault("v1").await.unwrap();
    drop((repo, host, admin));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_on_soft_delete_cannot_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(HandClock(Mutex::new(t("2026-01-10T12:00:00Z"))));
    let server = start(dir.path(), clock).await;
    let admin = client(&server, server.new_admin_token.as_deref());
    let v: Value = admin
        .post_json(
            "api/v1/vaults",
            &json!({"name": "v1", "resourceGroup": "rg", "location": "local"}),
        )
        .await
        .unwrap();
    assert_eq!(v["softDeleteDays"], 14);
    assert_eq!(v["softDeleteAlwaysOn"], false);
    let set = |body: Value| {
        let admin = &admin;
        async move {
            admin
                .put_json::<_, Value>("api/v1/vaults/v1/backup-properties", &body)
                .await
        }
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
    drop(admin);
    server.shutdown().await;
}

/// In an immutable vault, real points outlive every attempt to shorten their lives:
/// deleting the item's data and a policy change that would expire them sooner are
/// refused (`ImmutableVault`), and both points still restore byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_vault_refuses_to_shorten_its_points_lives() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(HandClock(Mutex::new(t("2026-01-10T12:00:00Z"))));
    let server = start(dir.path(), clock).await;
    let admin = client(&server, server.new_admin_token.as_deref());
    let host = protected_host(&server, &admin).await;
    // Two points made by "back up now": each kept 30 days from its backup.
    let (points, repo) = two_backups(&admin, &host, dir.path()).await;
    let v: Value = admin
        .put_json(
            "api/v1/vaults/v1/backup-properties",
            &json!({"immutability": "Locked"}),
        )
        .await
        .unwrap();
    assert_eq!(v["immutability"], "Locked");

    // Deleting the data (soft, then purged at the end of the period: sooner than the
    // points' own 30 days) is refused.
    let refused = admin
        .post_json::<_, Value>(
            "api/v1/vaults/v1/items/vm1/disable",
            &json!({"deleteBackupData": true}),
        )
        .await;
    assert_eq!(code(refused), "ImmutableVault");
    // So is lowering the vault's immutability.
    let lower = admin
        .put_json::<_, Value>(
            "api/v1/vaults/v1/backup-properties",
            &json!({"immutability": "Disabled"}),
        )
        .await;
    assert_eq!(code(lower), "ImmutabilityLocked");

    // Every point still restores.
    for (i, (id, data)) in points.iter().enumerate() {
        let out = dir.path().join(format!("restored{i}"));
        std::fs::create_dir_all(&out).unwrap();
        restores_to(&repo, id, data, &out);
    }
    drop(admin);
    server.shutdown().await;
}
