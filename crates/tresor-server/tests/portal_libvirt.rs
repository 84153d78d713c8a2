//! The portal's forms for libvirt domains, over the real HTTPS listener (session
//! cookie and CSRF token; tests/common/world.rs: no QEMU, no libvirtd, no browser).
//!
//! Host kvm1 reports libvirt domain web01 (vda, vdb) and QEMU VM qvm (vda, vdb),
//! both protected in v1. Restore: web01's form offers a storage pool and "Start the
//! new VM", and posting them makes a Restore job whose parameters carry `targetPool`
//! and `start` (read as the agent takes it); a malformed pool is the service's
//! refusal beside the field; qvm's form offers neither. Disks to back up: Owner alice
//! leaves vdb out of web01 (the item lists it, its next backup job's parameters
//! carry it); unticking every disk is the service's InvalidExcludedDisks beside the
//! disks and changes nothing, as a forged CSRF token does; a Reader of v1 gets no
//! form and their post is refused (MissingPermission); qvm has no form and a post
//! for it is refused (DiskExclusionNotSupported).

mod common;

use common::portal::{shows, Portal, Session};
use common::world::{world, Host, World, DISK};
use common::{audit_log, entries};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tresor_api::agents::Assignment;
use tresor_api::items::BackupNow;
use tresor_api::tokens::{Role, RoleAssignment, Scope};
use tresor_api::users::CreateUser;

const PASSWORD: &str = "correct horse battery staple";
const WEB01: &str = "6f1c2a9e-1b2c-4d5e-8f90-0a1b2c3d4e5f";
/// The disks form as posted with both disks shown and ticked.
const BOTH_KEPT: &[(&str, &str)] = &[
    ("disk", "vda"),
    ("disk", "vdb"),
    ("back_up", "vda"),
    ("back_up", "vdb"),
];

fn disk(name: &str) -> Value {
    json!({"name": name, "format": "qcow2", "image": format!("/var/lib/libvirt/images/{name}.qcow2"),
        "virtual_size": DISK, "bus": "virtio",
        "source": {"kind": "file", "path": format!("/var/lib/libvirt/images/{name}.qcow2")}})
}

/// Vault v1 and host kvm1 reporting libvirt domain web01 and QEMU VM qvm, each with
/// disks vda and vdb, both protected: the host and the items' ids (web01's, qvm's).
async fn protected(w: &World) -> (Host, String, String) {
    let id = w.create_vault("v1").await;
    let host = w.register_host("v1", &id, "kvm1", &[]).await;
    let vms = json!({"vms": [
        {"vm": WEB01, "info": {"name": "web01", "uuid": WEB01, "state": "running", "provider": "libvirt",
            "guest_agent": {"state": "not-configured"}, "disks": [disk("vda"), disk("vdb")]}},
        {"vm": "qvm", "info": {"name": "qvm", "uuid": null, "state": "running",
            "guest_agent": {"state": "not-configured"}, "disks": [disk("vda"), disk("vdb")]}},
    ]});
    let _: Value = host
        .api
        .post_json("api/v1/agent/heartbeat", &vms)
        .await
        .unwrap();
    let web01 = w.protect("v1", "kvm1", "web01").await;
    let qvm = w.protect("v1", "kvm1", "qvm").await;
    (host, web01, qvm)
}

async fn user(w: &World, portal: &Portal, name: &str, role: Role, scope: Scope) -> Session {
    w.admin
        .create_user(&CreateUser {
            name: name.into(),
            password: PASSWORD.into(),
            roles: vec![RoleAssignment::new(role, scope)],
        })
        .await
        .unwrap();
    portal
        .sign_in_with(&[("user", name), ("password", PASSWORD), ("totp", "")])
        .await
        .unwrap_or_else(|| panic!("{name} signs in"))
}

/// The job the agent takes next.
async fn next_job(host: &Host) -> Assignment {
    host.api
        .post_json("api/v1/agent/jobs/next?wait=10", &json!({}))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libvirt_domain_is_restored_into_a_pool_and_started_from_the_portal() {
    let w = world().await;
    let (host, web01, qvm) = protected(&w).await;
    let mut points = Vec::new();
    for vm in ["web01", "qvm"] {
        w.backup_now("v1", vm).await;
        let (_, m, _) = w.run_backup(&host, false, None).await;
        points.push(m.id);
    }
    let portal = Portal::of(&w.server);
    let alice = user(&w, &portal, "alice", Role::Owner, Scope::Installation).await;
    let restore = format!("/vaults/v1/items/{web01}/restore");

    let (status, form) = portal.get(&alice, &restore).await;
    assert_eq!(status, StatusCode::OK, "{form}");
    shows(
        "alice",
        "web01's restore form",
        &form,
        &[
            r#"id="target_pool""#,
            "Storage pool",
            "instead of the target folder; empty: the target folder.",
            r#"<input id="start" type="checkbox" name="start" value="yes""#,
            "Start the new VM",
            &points[0],
        ],
        &[],
    );
    let (status, form) = portal
        .get(&alice, &format!("/vaults/v1/items/{qvm}/restore"))
        .await;
    assert_eq!(status, StatusCode::OK, "{form}");
    shows(
        "alice",
        "qvm's restore form",
        &form,
        &[r#"id="target_path""#, &points[1]],
        &["target_pool", r#"name="start""#, "Storage pool"],
    );

    // A pool's name the service refuses is shown beside the field; no job is made.
    let create = |pool: &'static str| {
        [
            ("point", points[0].clone()),
            ("mode", "CreateVm".to_string()),
            ("target_path", String::new()),
            ("target_pool", pool.to_string()),
            ("new_name", "web01-copy".to_string()),
            ("format", String::new()),
            ("start", "yes".to_string()),
        ]
    };
    let fields = create("../etc");
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, html) = portal.post(&alice, &restore, &fields).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    shows(
        "alice",
        "web01's refused restore",
        &html,
        &[
            "InvalidRestoreOption",
            r#"id="target_pool-error" aria-live="polite">targetPool is not a storage pool"#,
            r#"value="../etc""#,
        ],
        &[],
    );
    let jobs: Value = w.admin.get_json("api/v1/vaults/v1/jobs").await.unwrap();
    assert!(
        !jobs.to_string().contains("\"Restore\""),
        "a refused restore made a job: {jobs}"
    );

    // Into pool "default", started: the agent is told so.
    let fields = create("default");
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, to) = portal.post(&alice, &restore, &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    assert!(to.starts_with("/vaults/v1/jobs?done="), "{to}");
    let job = next_job(&host).await;
    assert_eq!(job.vm.as_deref(), Some(WEB01));
    let p = &job.params;
    assert_eq!(p.mode.as_deref(), Some("CreateVm"));
    assert_eq!(p.recovery_point.as_deref(), Some(points[0].as_str()));
    assert_eq!(p.target_pool.as_deref(), Some("default"));
    assert_eq!(p.target_path, None);
    assert_eq!(p.new_name.as_deref(), Some("web01-copy"));
    assert!(p.start);

    // Not ticked, into a folder: neither option.
    let fields = [
        ("point", points[0].as_str()),
        ("mode", "CreateVm"),
        ("target_path", "/srv/restore"),
        ("target_pool", ""),
        ("new_name", ""),
    ];
    let (status, to) = portal.post(&alice, &restore, &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let p = next_job(&host).await.params;
    assert_eq!(
        (p.target_path.as_deref(), p.target_pool.as_deref(), p.start),
        (Some("/srv/restore"), None, false)
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libvirt_domain_s_disks_to_back_up_are_chosen_in_the_portal() {
    let w = world().await;
    let (host, web01, qvm) = protected(&w).await;
    let portal = Portal::of(&w.server);
    let alice = user(&w, &portal, "alice", Role::Owner, Scope::Installation).await;
    let v1 = Scope::parse("/resourceGroups/rg/vaults/v1").unwrap();
    let reader = user(&w, &portal, "reader", Role::Reader, v1).await;
    let item = format!("/vaults/v1/items/{web01}");
    let disks = format!("{item}/disks");
    let admin = &w.admin;
    let excluded = move || async move { admin.item("v1", "web01").await.unwrap().excluded_disks };

    // The item's page links the form for alice only, and only for the domain.
    let (_, page) = portal.get(&alice, &item).await;
    shows(
        "alice",
        "web01's item",
        &page,
        &[&format!(r#"href="{disks}""#), "every disk is backed up"],
        &[],
    );
    let (_, page) = portal.get(&reader, &item).await;
    shows("reader", "web01's item", &page, &[WEB01], &["/disks\""]);
    let (_, page) = portal.get(&alice, &format!("/vaults/v1/items/{qvm}")).await;
    shows("alice", "qvm's item", &page, &["qvm"], &["/disks\""]);

    let (status, form) = portal.get(&alice, &disks).await;
    assert_eq!(status, StatusCode::OK, "{form}");
    shows(
        "alice",
        "web01's disks",
        &form,
        &[
            r#"id="disks-form""#,
            r#"name="csrf""#,
            r#"<input type="hidden" name="disk" value="vda">"#,
            r#"<input type="checkbox" name="back_up" value="vda" checked>"#,
            r#"<input type="checkbox" name="back_up" value="vdb" checked>"#,
            "Back up this disk",
        ],
        &[],
    );

    // vdb left out: the item lists it, and its next backup leaves it out.
    let (status, to) = portal
        .post(
            &alice,
            &disks,
            &[("disk", "vda"), ("disk", "vdb"), ("back_up", "vda")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    assert!(to.starts_with(&format!("{item}?done=")), "{to}");
    assert_eq!(excluded().await, ["vdb"]);
    let (_, page) = portal.get(&alice, &item).await;
    shows(
        "alice",
        "web01's item",
        &page,
        &["<code>vdb</code>"],
        &["every disk is backed up"],
    );
    let (_, form) = portal.get(&alice, &disks).await;
    shows(
        "alice",
        "web01's disks",
        &form,
        &[
            r#"<input type="checkbox" name="back_up" value="vda" checked>"#,
            r#"<input type="checkbox" name="back_up" value="vdb">"#,
        ],
        &[],
    );
    w.admin
        .backup_now("v1", &web01, &BackupNow::default())
        .await
        .unwrap();
    let job = next_job(&host).await;
    assert_eq!(job.params.excluded_disks, ["vdb"]);

    // Every disk unticked: the service's refusal beside the disks, nothing changed.
    let (status, html) = portal
        .post(&alice, &disks, &[("disk", "vda"), ("disk", "vdb")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    shows(
        "alice",
        "web01's refused disks",
        &html,
        &[
            "InvalidExcludedDisks",
            r#"id="disks-error" aria-live="polite">excluding vda, vdb leaves no disk to back up"#,
            r#"<input type="checkbox" name="back_up" value="vda" aria-invalid="true">"#,
        ],
        &[],
    );
    assert_eq!(excluded().await, ["vdb"]);

    // A forged CSRF token changes nothing.
    let forged = Session {
        cookie: alice.cookie.clone(),
        csrf: "forged".into(),
    };
    let (status, _) = portal.post(&forged, &disks, BOTH_KEPT).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(excluded().await, ["vdb"]);

    // The reader sees what is backed up, without a form, and is refused posting.
    let (status, form) = portal.get(&reader, &disks).await;
    assert_eq!(status, StatusCode::OK, "{form}");
    shows(
        "reader",
        "web01's disks",
        &form,
        &["disks-read-only", "<code>vda</code>"],
        &["disks-form", r#"name="back_up""#],
    );
    let (status, html) = portal.post(&reader, &disks, BOTH_KEPT).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    assert!(html.contains("MissingPermission"), "{html}");
    assert_eq!(excluded().await, ["vdb"]);

    // The QEMU VM: no form, and a post is the service's refusal.
    let qvm_disks = format!("/vaults/v1/items/{qvm}/disks");
    let (_, form) = portal.get(&alice, &qvm_disks).await;
    shows(
        "alice",
        "qvm's disks",
        &form,
        &["disks-not-libvirt"],
        &["disks-form"],
    );
    let (status, html) = portal
        .post(
            &alice,
            &qvm_disks,
            &[("disk", "vda"), ("disk", "vdb"), ("back_up", "vda")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("DiskExclusionNotSupported"), "{html}");
    assert!(w
        .admin
        .item("v1", &qvm)
        .await
        .unwrap()
        .excluded_disks
        .is_empty());

    // Every disk again.
    let (status, _) = portal.post(&alice, &disks, BOTH_KEPT).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(excluded().await.is_empty());

    let log = audit_log(&w.admin).await;
    let changes = entries(&log, "item.modify", "Succeeded");
    assert!(
        changes
            .iter()
            .any(|e| e.detail.contains("excluded disks [vdb]")),
        "{changes:?}"
    );
    assert!(!entries(&log, "item.modify", "MissingPermission").is_empty());
    w.finish().await;
}
