//! Nobody destroys the data of an immutable, guarded vault. In a vault with Locked
//! immutability, always-on soft delete and a resource guard (approver: the user sec),
//! holding real recovery points of two VMs (one of them soft-deleted already), a
//! Contributor of the installation, a Contributor of the vault and the host agent's
//! credential each try every way of destroying data through every API they reach:
//! deleting a point, stopping protection with its data, shorter retention (by changing
//! the policy, or moving an item to a shorter one), lower immutability, deleting the
//! vault, a shorter or switched-off soft delete, a purge, removing the guard; the
//! agent also calls the administrators' API, writes over and deletes stored objects,
//! and reports points that are not its job's. Each is refused with its code: the
//! immutability's where it forbids the operation outright, `ApprovalRequired` where
//! only the guard stands in the way. Then every point restores byte for byte, undelete
//! brings the soft-deleted VM back, and the audit log holds and verifies the
//! refusals.
//!
//! No QEMU: the host's side is `common::world` (the agent's own data path over HTTPS,
//! on disk images made here); the server's clock is in the test's hand.

mod common;

use common::world::{back_up, restores_to, stored_points, world, Assignment, Host, Point, World};
use common::{code, token_with};

use jiff::SignedDuration;
use serde_json::{json, Value};
use tresor_api::items::{Disable, EnableProtection, ProtectionState};
use tresor_api::tokens::{Role, RoleAssignment, Scope};
use tresor_api::users::CreateUser;
use tresor_api::vaults::{BackupProperties, Immutability};
use tresor_client::{ApiClient, Region};
use tresor_domain::{BackupPolicy, DailyRetention};

const VAULT: &str = "kept";

fn delete_data() -> Disable {
    Disable {
        delete_backup_data: true,
    }
}

fn immutability(to: Immutability) -> BackupProperties {
    BackupProperties {
        immutability: Some(to),
        ..Default::default()
    }
}

fn soft_delete_days(days: u32) -> BackupProperties {
    BackupProperties {
        soft_delete_days: Some(days),
        ..Default::default()
    }
}

/// `DefaultPolicy` keeping its daily points `days` days.
async fn default_policy_keeping(c: &ApiClient, days: u32) -> BackupPolicy {
    let mut p = c.policy(VAULT, "DefaultPolicy").await.unwrap().policy;
    p.retention.daily = Some(DailyRetention { days });
    p
}

/// The catalogue's points of `vm`: id and expiry, by id.
async fn listed(c: &ApiClient, vm: &str) -> Vec<(String, Option<jiff::Timestamp>)> {
    let mut points: Vec<_> = c
        .recovery_points(VAULT, vm, Region::Primary)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.expiry))
        .collect();
    points.sort();
    points
}

/// A vault `kept` (Locked, soft delete always on for 30 days) in which host `kvm1`
/// protects `vm1` and `vm2` under `DefaultPolicy`, with two days of scheduled
/// backups of each: the points by VM, and the last job's assignment (its passphrase
/// opens the host's repository). `vm2`'s data was deleted before the vault was
/// locked: it is soft-deleted.
struct Kept {
    host: Host,
    points: Vec<(String, Point)>,
    last: Assignment,
}

impl Kept {
    fn ids_of(&self, vm: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .points
            .iter()
            .filter(|(v, _)| v == vm)
            .map(|(_, (id, _))| id.clone())
            .collect();
        ids.sort();
        ids
    }
}

async fn kept(w: &World, vms: &[&str]) -> Kept {
    let admin = &w.admin;
    let id = w.create_vault(VAULT).await;
    let host = w.register_host(VAULT, &id, "kvm1", vms).await;
    for vm in vms {
        w.protect(VAULT, "kvm1", vm).await;
    }
    let (mut points, _) = w.scheduled_backups(&host, false).await;
    let (day2, last) = w.scheduled_backups(&host, true).await;
    points.extend(day2);
    assert_eq!(points.len(), 2 * vms.len());
    let v = admin
        .set_backup_properties(
            VAULT,
            &BackupProperties {
                soft_delete_days: Some(30),
                soft_delete_always_on: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(v.soft_delete_always_on);
    Kept { host, points, last }
}

/// Every way a Contributor has of destroying data, each refused with its code.
/// `spare` is what deleting the empty guarded vault `spare` answers it.
async fn contributor_tries_to_destroy(c: &ApiClient, kept: &Kept, spare: &str) {
    // One recovery point: not before it expires (nor one of soft-deleted data).
    for vm in ["vm1", "vm2"] {
        for id in kept.ids_of(vm) {
            let one = format!("api/v1/vaults/{VAULT}/items/{vm}/recovery-points/{id}");
            let refusal = if vm == "vm1" {
                "ImmutableVault"
            } else {
                "ItemSoftDeleted"
            };
            assert_eq!(code(c.delete(&one).await), refusal, "{one}");
        }
    }
    // Stopping protection with the data: the points have not expired.
    assert_eq!(
        code(c.disable_protection(VAULT, "vm1", &delete_data()).await),
        "ImmutableVault"
    );
    assert_eq!(
        code(c.disable_protection(VAULT, "vm2", &delete_data()).await),
        "ImmutableVault"
    );
    // Shorter retention: the policy itself, or the item moved to a shorter policy
    // (or protected again under it), or the policy deleted.
    assert_eq!(
        code(
            c.update_policy(VAULT, &default_policy_keeping(c, 7).await)
                .await
        ),
        "ImmutableVault"
    );
    let again = EnableProtection {
        host: "kvm1".into(),
        vm: "vm1".into(),
        policy: Some("Short".into()),
        excluded_disks: Vec::new(),
    };
    assert_eq!(
        code(c.enable_protection(VAULT, &again).await),
        "AlreadyProtected"
    );
    let item = format!("api/v1/vaults/{VAULT}/items/vm1");
    assert_eq!(
        code(
            c.put_json::<_, Value>(&item, &json!({"policy": "Short"}))
                .await
        ),
        "ImmutableVault"
    );
    assert_eq!(
        code(c.delete_policy(VAULT, "DefaultPolicy").await),
        "PolicyInUse"
    );
    // Lower immutability.
    for lower in [Immutability::Enabled, Immutability::Disabled] {
        assert_eq!(
            code(c.set_backup_properties(VAULT, &immutability(lower)).await),
            "ImmutabilityLocked"
        );
    }
    // The vault.
    assert_eq!(code(c.delete_vault(VAULT).await), "VaultNotEmpty");
    // Soft delete: a shorter period, or switched off.
    assert_eq!(
        code(c.set_backup_properties(VAULT, &soft_delete_days(14)).await),
        "ImmutableVault"
    );
    let off = BackupProperties {
        soft_delete_always_on: Some(false),
        ..Default::default()
    };
    assert_eq!(
        code(c.set_backup_properties(VAULT, &off).await),
        "SoftDeleteAlwaysOn"
    );
    // The resource guard: unbinding the vault, deleting or changing the guard, an
    // empty guarded vault deleted, a request for approval approved by its asker.
    let unbind = json!({"resourceGuard": ""});
    let properties = format!("api/v1/vaults/{VAULT}/backup-properties");
    assert_eq!(
        code(c.put_json::<_, Value>(&properties, &unbind).await),
        "ApprovalRequired"
    );
    let guard = "api/v1/resourceGuards/Guard";
    assert_eq!(code(c.delete(guard).await), "MissingPermission");
    let takeover = json!({"approvers": ["sec"], "validityMinutes": 10080});
    assert_eq!(
        code(c.put_json::<_, Value>(guard, &takeover).await),
        "MissingPermission"
    );
    assert_eq!(code(c.delete_vault("spare").await), spare);
    let asked: Value = c
        .post_json(
            &format!("{guard}/requests"),
            &json!({"vault": VAULT, "operation": "DeleteBackupData", "reason": "clean-up"}),
        )
        .await
        .unwrap();
    let approve = format!("{guard}/requests/{}/approve", asked["id"].as_str().unwrap());
    assert_eq!(
        code(c.send(reqwest::Method::POST, &approve, |r| r).await),
        "NotAnApprover"
    );
    // A purge of the soft-deleted data: no call serves one.
    let vm2 = format!("api/v1/vaults/{VAULT}/items/vm2");
    assert_eq!(code(c.delete(&vm2).await), "MethodNotAllowed");
    assert_eq!(
        code(c.delete(&format!("{vm2}/recovery-points")).await),
        "MethodNotAllowed"
    );
    assert_eq!(
        code(
            c.post_json::<_, Value>(&format!("{vm2}/purge"), &json!({}))
                .await
        ),
        "NotFound"
    );
}

/// What the host agent's credential tries beyond hostile_agent.rs (forged packs and
/// indexes, points reported twice, the repository's own files): the
/// administrators' calls, replacing or deleting stored objects, and reporting points
/// that are not its job's.
async fn agent_tries_to_destroy(w: &World, kept: &Kept, vm2_item: &str) {
    let host = &kept.host;
    let a = &host.api;
    assert_eq!(code(a.delete_vault(VAULT).await), "Unauthorized");
    assert_eq!(
        code(a.disable_protection(VAULT, "vm1", &delete_data()).await),
        "Unauthorized"
    );
    assert_eq!(
        code(
            a.update_policy(VAULT, &default_policy_keeping(&w.admin, 7).await)
                .await
        ),
        "Unauthorized"
    );
    for props in [immutability(Immutability::Disabled), soft_delete_days(14)] {
        assert_eq!(
            code(a.set_backup_properties(VAULT, &props).await),
            "Unauthorized"
        );
    }
    let unbind = json!({"resourceGuard": ""});
    let properties = format!("api/v1/vaults/{VAULT}/backup-properties");
    assert_eq!(
        code(a.put_json::<_, Value>(&properties, &unbind).await),
        "Unauthorized"
    );
    assert_eq!(
        code(a.delete("api/v1/resourceGuards/Guard").await),
        "Unauthorized"
    );

    // Stored objects are never replaced, and no call deletes one.
    let repo = host.repo(&kept.last.passphrase);
    for (kind, object_kind) in [
        ("data", tresor_storage::ObjectKind::Pack),
        ("index", tresor_storage::ObjectKind::Index),
        ("points", tresor_storage::ObjectKind::Point),
    ] {
        let stored = tokio::task::block_in_place(|| repo.backend().list(object_kind).unwrap());
        assert!(!stored.is_empty(), "{kind}");
        for o in stored {
            assert_eq!(
                code(host.put(kind, &o.name, b"other bytes".to_vec()).await),
                "ObjectExists",
                "{kind} {}",
                o.name
            );
            assert_eq!(
                code(a.delete(&host.object_path(kind, &o.name)).await),
                "MethodNotAllowed"
            );
        }
    }

    // A backup of vm1 reported with a point of vm2: a new one named after vm2's
    // item (which would make it vm2's), then vm2's existing point (which would move
    // it under vm1's retention). Both fail the job; vm2's points stay.
    let image = w.dir.path().join("forged.raw");
    common::world::write_disk(&image, 7, false);
    let vm2_points = kept.ids_of("vm2");
    for forged in [None, Some(vm2_points[1].clone())] {
        let job = w.backup_now(VAULT, "vm1").await;
        let a1 = host.next_job().await;
        assert_eq!((a1.job.as_str(), a1.vm.as_str()), (job.as_str(), "vm1"));
        let point = match forged {
            Some(existing) => existing,
            None => back_up(&repo, vm2_item, &image, None).id,
        };
        host.complete(&a1.job, &point).await;
        let j = w.job(VAULT, &a1.job).await;
        assert_eq!(j["status"], "Failed", "{j}");
        assert_eq!(j["error"]["code"], "RecoveryPointRejected", "{j}");
        // Its end is final: a second report changes nothing.
        let again = a
            .post_json::<_, Value>(
                &format!("api/v1/agent/jobs/{}/complete", a1.job),
                &json!({"status": "Completed", "pointId": vm2_points[0]}),
            )
            .await;
        assert_eq!(code(again), "JobAlreadyEnded");
    }
    assert!(stored_points(&repo)
        .iter()
        .all(|id| kept.points.iter().any(|(_, (p, _))| p == id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_destroys_the_data_of_an_immutable_guarded_vault() {
    let w = world().await;
    let admin = &w.admin;
    let kept = kept(&w, &["vm1", "vm2"]).await;
    // A policy with shorter retention, that items might be moved to.
    let mut short = default_policy_keeping(admin, 7).await;
    short.name = tresor_domain::PolicyName::parse("Short").unwrap();
    admin.create_policy(VAULT, &short).await.unwrap();
    // vm2's data deleted (before the lock): kept 30 days, soft-deleted.
    let job = admin
        .disable_protection(VAULT, "vm2", &delete_data())
        .await
        .unwrap();
    assert_eq!(job.status, tresor_api::jobs::JobStatus::Completed);
    let purge_at = w.now() + SignedDuration::from_hours(30 * 24);
    let vm2 = admin.item(VAULT, "vm2").await.unwrap();
    assert_eq!(vm2.protection_state, ProtectionState::SoftDeleted);
    assert_eq!(vm2.delete_at, Some(purge_at));
    admin
        .set_backup_properties(VAULT, &immutability(Immutability::Locked))
        .await
        .unwrap();
    // Guarded: resource guard "Guard", whose approver is the user sec, binds the
    // vault and an empty one, "spare".
    admin
        .create_user(&CreateUser {
            name: "sec".into(),
            password: "correct horse battery staple".into(),
            roles: vec![RoleAssignment::new(Role::Reader, Scope::Installation)],
        })
        .await
        .unwrap();
    let _: Value = admin
        .post_json(
            "api/v1/resourceGuards",
            &json!({"name": "Guard", "approvers": ["sec"]}),
        )
        .await
        .unwrap();
    w.create_vault("spare").await;
    for vault in [VAULT, "spare"] {
        let bound: Value = admin
            .put_json(
                &format!("api/v1/vaults/{vault}/backup-properties"),
                &json!({"resourceGuard": "Guard"}),
            )
            .await
            .unwrap();
        assert_eq!(bound["resourceGuard"], "Guard", "{bound}");
    }
    let before = (listed(admin, "vm1").await, listed(admin, "vm2").await);
    assert_eq!(before.0.len(), 2);
    assert_eq!(before.1.len(), 2);

    let everywhere = token_with(admin, "contributor", Role::Contributor, "/").await;
    let here = token_with(
        admin,
        "kept-contributor",
        Role::Contributor,
        &format!("/resourceGroups/rg/vaults/{VAULT}"),
    )
    .await;
    // The Contributor of the vault does not reach "spare" at all.
    for (token, spare) in [
        (&everywhere, "ApprovalRequired"),
        (&here, "MissingPermission"),
    ] {
        let c = common::client(&w.server, Some(token));
        contributor_tries_to_destroy(&c, &kept, spare).await;
    }
    agent_tries_to_destroy(&w, &kept, &vm2.id).await;

    // Nothing is lost: the catalogue lists every point with its expiry, vm2 is still
    // soft-deleted until the same date, and every point restores byte for byte
    // (after a garbage collection).
    assert_eq!(
        (listed(admin, "vm1").await, listed(admin, "vm2").await),
        before
    );
    let vm2_now = admin.item(VAULT, "vm2").await.unwrap();
    assert_eq!(
        (vm2_now.protection_state, vm2_now.delete_at),
        (ProtectionState::SoftDeleted, Some(purge_at))
    );
    w.collect_garbage().await;
    let repo = kept.host.repo(&kept.last.passphrase);
    let mut all: Vec<String> = kept.points.iter().map(|(_, (id, _))| id.clone()).collect();
    all.sort();
    assert_eq!(stored_points(&repo), all);
    let out = tempfile::tempdir().unwrap();
    for (_, (id, data)) in &kept.points {
        restores_to(&repo, id, data, out.path());
    }

    // Undelete: vm2 is back, protection stopped, with its points.
    let here = common::client(&w.server, Some(&here));
    let back = here.undelete_item(VAULT, "vm2").await.unwrap();
    assert_eq!(back.protection_state, ProtectionState::ProtectionStopped);
    assert_eq!(listed(admin, "vm2").await, before.1);

    // The audit log holds together and names each refused attempt of each
    // Contributor, with its code.
    let check = admin.verify_audit().await.unwrap();
    assert!(check.intact, "{check:?}");
    let entries = admin
        .audit(&tresor_api::audit::AuditQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    for actor in ["contributor", "kept-contributor"] {
        for (action, result) in [
            ("point.delete", "ImmutableVault"),
            ("item.disable", "ImmutableVault"),
            ("item.modify", "ImmutableVault"),
            ("policy.update", "ImmutableVault"),
            ("item.enable", "AlreadyProtected"),
            ("policy.delete", "PolicyInUse"),
            ("vault.update", "ImmutabilityLocked"),
            ("vault.delete", "VaultNotEmpty"),
            ("vault.update", "ImmutableVault"),
            ("vault.update", "SoftDeleteAlwaysOn"),
            ("vault.update", "ApprovalRequired"),
        ] {
            assert!(
                entries
                    .iter()
                    .any(|e| e.actor == actor && e.action == action && e.result == result),
                "{actor} {action} {result} in the audit log"
            );
        }
    }
    assert!(entries.iter().any(|e| e.actor == "contributor"
        && e.action == "vault.delete"
        && e.object == "spare"
        && e.result == "ApprovalRequired"));
    drop((repo, kept, here));
    w.finish().await;
}

/// With real scheduled points in a Locked vault, a policy change that would expire
/// any of them sooner is refused, and one that keeps them longer is accepted: each
/// point's expiry moves later by the difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_vaults_policy_may_keep_points_longer_and_never_shorter() {
    let w = world().await;
    let admin = &w.admin;
    let kept = kept(&w, &["vm1"]).await;
    admin
        .set_backup_properties(VAULT, &immutability(Immutability::Locked))
        .await
        .unwrap();
    let before = listed(admin, "vm1").await;
    assert_eq!(before.len(), 2);
    assert!(before.iter().all(|(_, e)| e.is_some()));

    assert_eq!(
        code(
            admin
                .update_policy(VAULT, &default_policy_keeping(admin, 29).await)
                .await
        ),
        "ImmutableVault"
    );
    assert_eq!(listed(admin, "vm1").await, before);

    admin
        .update_policy(VAULT, &default_policy_keeping(admin, 60).await)
        .await
        .unwrap();
    let longer = listed(admin, "vm1").await;
    for ((id, was), (same, now)) in before.iter().zip(&longer) {
        assert_eq!(id, same);
        assert_eq!(
            *now,
            was.map(|t| t + SignedDuration::from_hours(30 * 24)),
            "{id}"
        );
    }
    // Back to 45 days is shorter than the 60 they now have.
    assert_eq!(
        code(
            admin
                .update_policy(VAULT, &default_policy_keeping(admin, 45).await)
                .await
        ),
        "ImmutableVault"
    );
    assert_eq!(listed(admin, "vm1").await, longer);
    drop(kept);
    w.finish().await;
}
