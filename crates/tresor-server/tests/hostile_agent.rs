//! A compromised host: the attacker holds the host agent's credential and its
//! repository's passphrase (handed out with every job), so it can seal anything. It
//! tries what the demonstrated attack did (an index that leaves out the real packs,
//! then a garbage collection) and its variants: blobs that shadow stored ones, points
//! that reference nothing, points reported twice, manifests never reported, ranges
//! outside objects. Every upload is refused with what is wrong, and after garbage
//! collection every recovery point still restores byte for byte.
//!
//! The host's side is real (`common::world`): the agent's own `RemoteBackend` over
//! HTTPS and the engine's backup and restore, on a disk image made here (no VM is
//! needed to attack the vault).

mod common;

use common::code;
use common::world::{repo_point, restores_to, stored_points, world, World};

use serde_json::Value;
use tresor_crypto::Sealer;
use tresor_engine::Repository;
use tresor_format::blob::{seal_blob, BlobKind};
use tresor_format::index::{IndexFile, IndexedPack};
use tresor_format::key_file::KeyFile;
use tresor_format::pack::{read_pack_entries, PackBuilder};
use tresor_format::ChunkId;
use tresor_storage::ObjectKind;

/// The keys an attacker derives from the passphrase and the key file it may read.
fn attacker_sealer(repo: &Repository, passphrase: &str) -> Sealer {
    tokio::task::block_in_place(|| {
        let b = repo.backend();
        let name = &b.list(ObjectKind::Key).unwrap()[0].name;
        KeyFile::decode(&b.get(ObjectKind::Key, name).unwrap())
            .unwrap()
            .wrapped()
            .unwrap()
            .unwrap_key(passphrase.as_bytes())
            .unwrap()
            .sealer()
    })
}

/// The vault's garbage collection jobs, newest first.
async fn gc_jobs(w: &World, vault: &str) -> Vec<Value> {
    let jobs: Value = w
        .admin
        .get_json(&format!(
            "api/v1/vaults/{vault}/jobs?operation=GarbageCollection"
        ))
        .await
        .unwrap();
    jobs.as_array()
        .unwrap()
        .iter()
        .filter(|j| j["operation"] == "GarbageCollection")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compromised_host_cannot_erase_its_backups() {
    let w = world().await;
    let admin = &w.admin;
    let host = w.protected_host("v1", "kvm1").await;
    let (points, a) = w.two_backups("v1", &host).await;
    let repo = host.repo(&a.passphrase);
    let sealer = attacker_sealer(&repo, &a.passphrase);
    let stored_packs: Vec<String> = tokio::task::block_in_place(|| {
        repo.backend()
            .list(ObjectKind::Pack)
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect()
    });
    let pack_bytes = |name: &str| {
        tokio::task::block_in_place(|| repo.backend().get(ObjectKind::Pack, name).unwrap())
    };

    // 1. The demonstrated attack: an index that lists the real packs without their
    //    blobs (so that garbage collection would find them empty), and one that moves
    //    every blob to a pack that does not exist.
    let mut omitting = IndexFile::default();
    let mut moving = IndexedPack {
        pack_id: [0xee; 32],
        entries: Vec::new(),
    };
    for p in &stored_packs {
        let entries = read_pack_entries(&sealer, &pack_bytes(p)).unwrap();
        let mut pack_id = [0u8; 32];
        hex::decode_to_slice(p, &mut pack_id).unwrap();
        omitting.packs.push(IndexedPack {
            pack_id,
            entries: entries[..entries.len() - 1].to_vec(),
        });
        moving.entries.extend(entries);
    }
    for forged in [
        omitting,
        IndexFile {
            packs: vec![moving],
        },
    ] {
        let (name, bytes) = forged.seal(&sealer);
        assert_eq!(
            code(host.put("index", &name, bytes).await),
            "ObjectRejected"
        );
    }

    // 2. Other bytes sealed under a stored chunk's id, in a pack named by its hash.
    let victim = stored_packs
        .iter()
        .flat_map(|p| read_pack_entries(&sealer, &pack_bytes(p)).unwrap())
        .find(|e| e.kind == BlobKind::Data)
        .unwrap();
    let mut compressor = zstd::bulk::Compressor::new(1).unwrap();
    let (mut scratch, mut blob) = (Vec::new(), Vec::new());
    let meta = seal_blob(
        &sealer,
        &mut compressor,
        &mut scratch,
        BlobKind::Data,
        &victim.id,
        &vec![0x66u8; 4096],
        &mut blob,
    );
    let mut shadow = PackBuilder::new();
    shadow.add(BlobKind::Data, victim.id, meta, &blob);
    let shadow = shadow.finish(&sealer);
    assert_eq!(
        code(host.put("data", &shadow.name, shadow.bytes).await),
        "ObjectRejected"
    );
    // Bytes that are no pack at all, and a pack under a name that is not its hash.
    assert_eq!(
        code(
            host.put("data", &"ab".repeat(32), b"not a pack".to_vec())
                .await
        ),
        "ObjectRejected"
    );
    assert_eq!(
        code(
            host.put("data", &"cd".repeat(32), pack_bytes(&stored_packs[0]))
                .await
        ),
        "ObjectRejected"
    );
    // The repository's own files and the GC state are not an agent's to write.
    for kind in ["gc", "keys", "config"] {
        assert_eq!(
            code(host.put(kind, "x", b"x".to_vec()).await),
            "Forbidden",
            "{kind}"
        );
    }

    // 3. A point whose tree is not stored: the manifest opens, so it is stored, but
    //    the backup it is reported for fails and the manifest goes.
    let job_id = w.backup_now("v1", "vm1").await;
    let a3 = host.next_job().await;
    assert_eq!(a3.job, job_id);
    let mut fake = repo_point(&repo, &points[1].0);
    fake.id = "f".repeat(32);
    fake.disks[0].root = ChunkId([9u8; 32]);
    host.put("points", &fake.id, fake.seal(&sealer))
        .await
        .unwrap();
    host.complete(&a3.job, &fake.id).await;
    let j = w.job("v1", &a3.job).await;
    assert_eq!(j["status"], "Failed", "{j}");
    assert_eq!(j["error"]["code"], "RecoveryPointRejected", "{j}");
    assert!(!stored_points(&repo).contains(&fake.id));

    // 4. The previous point reported again as a new one: refused, and it stays.
    let _ = w.backup_now("v1", "vm1").await;
    let a4 = host.next_job().await;
    host.complete(&a4.job, &points[1].0).await;
    let j = w.job("v1", &a4.job).await;
    assert_eq!(j["error"]["code"], "RecoveryPointRejected", "{j}");
    assert!(stored_points(&repo).contains(&points[1].0));

    // 5. A manifest that is never reported: not a point of the catalogue, it keeps
    //    nothing alive and garbage collection removes it.
    let mut orphan = repo_point(&repo, &points[0].0);
    orphan.id = "0".repeat(32);
    host.put("points", &orphan.id, orphan.seal(&sealer))
        .await
        .unwrap();
    assert!(stored_points(&repo).contains(&orphan.id));

    // 6. Ranges outside an object.
    let pack_path = format!(
        "api/v1/agent/repos/{}/objects/data/{}",
        host.vault_id, stored_packs[0]
    );
    let ranged = |range: &'static str| {
        let api = host.api.clone();
        let path = pack_path.clone();
        async move {
            api.send(reqwest::Method::GET, &path, |r| r.header("Range", range))
                .await
        }
    };
    assert_eq!(
        code(ranged("bytes=999999999-").await),
        "RangeNotSatisfiable"
    );
    assert_eq!(code(ranged("bytes=5-2").await), "InvalidRange");
    let clamped = ranged("bytes=0-99999999999").await.unwrap();
    assert_eq!(clamped.status(), 206);
    assert_eq!(
        clamped.bytes().await.unwrap().len(),
        pack_bytes(&stored_packs[0]).len()
    );

    // Garbage collection, as the server runs it every day.
    w.collect_garbage().await;
    let gc = gc_jobs(&w, "v1").await;
    assert_eq!(
        gc.first().map(|j| j["status"].clone()),
        Some("Completed".into()),
        "{gc:?}"
    );
    assert!(stored_points(&repo).contains(&points[0].0));
    assert!(!stored_points(&repo).contains(&orphan.id));
    let listed: Value = admin
        .get_json("api/v1/vaults/v1/items/vm1/recovery-points")
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    // Every recovery point restores, byte for byte, through the agent's own path.
    let out = tempfile::tempdir().unwrap();
    let repo = host.repo(&a.passphrase);
    for (id, data) in &points {
        restores_to(&repo, id, data, out.path());
    }
    drop((repo, host));
    w.finish().await;
}

/// An index that an older server accepted (written here straight into the storage):
/// it moves every data blob of the host's repository to a pack that does not exist.
/// Garbage collection of that vault stops without removing anything and says why in a
/// Failed job; the other vault is collected as usual; every point still restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_index_in_storage_fails_one_vaults_collection_and_no_other() {
    let w = world().await;
    let bad = w.protected_host("v1", "kvm1").await;
    let good = w.protected_host("v2", "kvm2").await;
    let (bad_points, bad_job) = w.two_backups("v1", &bad).await;
    let (good_points, good_job) = w.two_backups("v2", &good).await;

    let repo = bad.repo(&bad_job.passphrase);
    let sealer = attacker_sealer(&repo, &bad_job.passphrase);
    let folder = w
        .dir
        .path()
        .join("data/vaults")
        .join(&bad.vault_id)
        .join("hosts");
    let folder = std::fs::read_dir(&folder)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let local = tresor_engine::LocalDir::open(&folder).unwrap();
    let mut forged = IndexFile::default();
    let mut moved = IndexedPack {
        pack_id: [0xee; 32],
        entries: Vec::new(),
    };
    for p in tresor_storage::Backend::list(&local, ObjectKind::Pack).unwrap() {
        let bytes = tresor_storage::Backend::get(&local, ObjectKind::Pack, &p.name).unwrap();
        let (data, tree): (Vec<_>, Vec<_>) = read_pack_entries(&sealer, &bytes)
            .unwrap()
            .into_iter()
            .partition(|e| e.kind == BlobKind::Data);
        moved.entries.extend(data);
        let mut pack_id = [0u8; 32];
        hex::decode_to_slice(&p.name, &mut pack_id).unwrap();
        forged.packs.push(IndexedPack {
            pack_id,
            entries: tree,
        });
    }
    forged.packs.push(moved);
    for i in tresor_storage::Backend::list(&local, ObjectKind::Index).unwrap() {
        std::fs::rename(
            folder.join("index").join(&i.name),
            w.dir.path().join(&i.name),
        )
        .unwrap();
    }
    let (name, bytes) = forged.seal(&sealer);
    tresor_storage::Backend::put(&local, ObjectKind::Index, &name, &bytes).unwrap();
    let packs_before = tresor_storage::Backend::list(&local, ObjectKind::Pack)
        .unwrap()
        .len();
    // In the other vault, a manifest its host stored but never reported.
    let good_repo = good.repo(&good_job.passphrase);
    let mut orphan = repo_point(&good_repo, &good_points[0].0);
    orphan.id = "0".repeat(32);
    let good_sealer = attacker_sealer(&good_repo, &good_job.passphrase);
    good.put("points", &orphan.id, orphan.seal(&good_sealer))
        .await
        .unwrap();
    drop(good_repo);
    // The server's open handle still has the true index in memory; a restart reads
    // what is stored.
    let w = w.restart().await;

    w.collect_garbage().await;
    let failed = gc_jobs(&w, "v1").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["status"], "Failed");
    assert_eq!(failed[0]["error"]["code"], "GarbageCollectionStopped");
    assert!(
        failed[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no pack that stays holds"),
        "{failed:?}"
    );
    assert!(
        tresor_storage::Backend::list(&local, ObjectKind::Pack)
            .unwrap()
            .len()
            >= packs_before,
        "no pack removed"
    );
    // The other vault's collection ran: it removed the manifest nobody reported.
    let collected = gc_jobs(&w, "v2").await;
    assert_eq!(collected.len(), 1, "{collected:?}");
    assert_eq!(collected[0]["status"], "Completed");
    assert_eq!(collected[0]["result"]["orphanManifestsRemoved"], 1);

    // The operator puts the true index back; every point of both vaults restores.
    tresor_storage::Backend::delete(&local, ObjectKind::Index, &name).unwrap();
    for f in std::fs::read_dir(w.dir.path()).unwrap().flatten() {
        let n = f.file_name().to_string_lossy().into_owned();
        if n.len() == 64 {
            std::fs::rename(f.path(), folder.join("index").join(&n)).unwrap();
        }
    }
    let out = tempfile::tempdir().unwrap();
    for (host, job, points) in [
        (&bad, &bad_job, &bad_points),
        (&good, &good_job, &good_points),
    ] {
        let host = w.reconnect(host);
        let repo = host.repo(&job.passphrase);
        for (id, data) in points {
            restores_to(&repo, id, data, out.path());
        }
    }
    drop((repo, bad, good));
    w.finish().await;
}

/// The server stopped after it catalogued a point and before it ended the job: the
/// agent's retried report ends the job Completed with that point (not a refusal as
/// "reported before"), and the point is listed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_retried_after_the_server_stopped_completes_the_job() {
    let w = world().await;
    let host = w.protected_host("v1", "kvm1").await;
    let (points, last) = w.two_backups("v1", &host).await;
    // As if the server had died between cataloguing the point and ending the job.
    let mut row = w.server.state.store().get_job(&last.job).unwrap();
    row.status = "InProgress".into();
    row.ended = None;
    row.lease_until = Some(w.server.state.now() + jiff::SignedDuration::from_secs(120));
    w.server.state.store().update_job(&row).unwrap();
    host.complete(&last.job, &points[1].0).await;
    let j = w.job("v1", &last.job).await;
    assert_eq!(j["status"], "Completed", "{j}");
    assert_eq!(j["result"]["recoveryPoint"], points[1].0.as_str());
    let listed: Value = w
        .admin
        .get_json("api/v1/vaults/v1/items/vm1/recovery-points")
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    drop(host);
    w.finish().await;
}
