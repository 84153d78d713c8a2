//! A VM's own page in the portal, and VMs named by their names, over the real HTTPS
//! listener (session cookie and CSRF token; tests/common/world.rs: no QEMU, no
//! libvirtd, no browser).
//!
//! Host kvm1 reports a libvirt domain (web01: UUID, UEFI, NIC, a preflight warning)
//! and a QEMU VM (qvm). Owner alice opens web01's page from Host agents, sees its
//! facts and "Back up" with v1's policies, and backs it up; the page then shows its
//! vault, policy, last backup, recovery points, Back up now and Restore. A Reader of
//! v1 sees the same facts and points but no button, and posting "Back up" anyway is
//! refused (MissingPermission). Over the API, a domain's name works wherever a VM is
//! named (enable protection, item lookups, after a rename too), and a name two VMs
//! share is refused with AmbiguousVmName listing both. A VM protected by a vault the
//! signed-in user may not read shows only that it is protected, and a host joined
//! with another vault's credentials is not theirs to see.

mod common;

use common::portal::{shows, Portal, Session};
use common::world::{world, Host, World, DISK};
use common::{code, refusal};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tresor_api::tokens::{Role, RoleAssignment, Scope};
use tresor_api::users::CreateUser;

const PASSWORD: &str = "correct horse battery staple";
const WEB01: &str = "6f1c2a9e-1b2c-4d5e-8f90-0a1b2c3d4e5f";
const DUP_A: &str = "11111111-2222-4333-8444-555555555555";
const DUP_B: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

/// A libvirt domain as the agent's libvirt discovery reports it.
fn domain(uuid: &str, name: &str) -> Value {
    json!({"vm": uuid, "info": {
        "name": name, "uuid": uuid, "state": "running", "provider": "libvirt", "persistent": true,
        "guest_agent": {"state": "not-configured"},
        "firmware": {"kind": "uefi", "nvram": format!("/var/lib/libvirt/qemu/nvram/{name}_VARS.fd"), "secure_boot": false},
        "vcpus": 2, "memory_bytes": 2u64 << 30,
        "nics": [{"kind": "network", "mac": "52:54:00:12:34:56", "model": "virtio", "source": "default"}],
        "disks": [{"name": "vda", "format": "raw", "image": format!("/var/lib/libvirt/images/{name}.img"),
            "virtual_size": DISK, "bus": "virtio", "source": {"kind": "file", "path": format!("/var/lib/libvirt/images/{name}.img")}}]},
        "preflight": [
            {"subject": "libvirt", "severity": "ok", "code": null, "message": "the domain answers", "fix": null},
            {"subject": "guest agent", "severity": "warning", "code": "guest-agent-not-configured",
             "message": "no guest agent channel", "fix": "add a guest agent channel to the domain"}]})
}

/// A QEMU VM of the `[[vm]]` provider.
fn qemu_vm(name: &str) -> Value {
    json!({"vm": name, "info": {"name": name, "uuid": null, "state": "stopped",
        "guest_agent": {"state": "not-configured"},
        "disks": [{"name": "vda", "format": "qcow2", "image": "/srv/qvm.qcow2", "virtual_size": DISK}]}})
}

async fn heartbeat(host: &Host, vms: Vec<Value>) {
    let _: Value = host
        .api
        .post_json("api/v1/agent/heartbeat", &json!({ "vms": vms }))
        .await
        .unwrap();
}

/// Vault v1 and host kvm1 (registered with v1's credentials) reporting `vms`: the
/// host and its agent's id.
async fn host_with(w: &World, vms: Vec<Value>) -> (Host, String) {
    let id = w.create_vault("v1").await;
    let host = w.register_host("v1", &id, "kvm1", &[]).await;
    heartbeat(&host, vms).await;
    let agents: Value = w.admin.get_json("api/v1/agents").await.unwrap();
    let agent = agents[0]["id"].as_str().unwrap().to_string();
    (host, agent)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_is_backed_up_from_its_own_page_and_a_reader_sees_no_button() {
    let w = world().await;
    let (host, agent) = host_with(&w, vec![domain(WEB01, "web01"), qemu_vm("qvm")]).await;
    let portal = Portal::of(&w.server);
    let alice = user(&w, &portal, "alice", Role::Owner, Scope::Installation).await;
    let v1 = Scope::parse("/resourceGroups/rg/vaults/v1").unwrap();
    let reader = user(&w, &portal, "reader", Role::Reader, v1).await;
    let page_url = format!("/agents/{agent}/vms/{WEB01}");

    // Host agents links each VM to its page, under the name the VM reports.
    let (_, agents) = portal.get(&alice, "/agents").await;
    shows(
        "alice",
        "/agents",
        &agents,
        &[
            &format!(r#"href="{page_url}""#),
            &format!(r#"href="/agents/{agent}/vms/qvm""#),
            r#"<strong class="vm-name">web01</strong>"#,
        ],
        &[],
    );

    // The libvirt domain's facts, and "Back up" with v1's DefaultPolicy.
    let (status, page) = portal.get(&alice, &page_url).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    shows(
        "alice",
        "web01's page",
        &page,
        &[
            "<h1>web01</h1>",
            WEB01,
            r#"data-provider="libvirt""#,
            "libvirt domain",
            "UEFI",
            "web01_VARS.fd",
            "2.0 GiB",
            "52:54:00:12:34:56",
            r#"<tr data-disk="vda">"#,
            r#"data-code="guest-agent-not-configured""#,
            r#"data-state="NotProtected""#,
            r#"id="vm-backup-form""#,
            r#"<option value="v1/DefaultPolicy" selected>"#,
        ],
        &["vm-backup-now", "vm-restore"],
    );
    // Its name leads to the same page.
    let (status, by_name) = portal
        .get(&alice, &format!("/agents/{agent}/vms/web01"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(by_name.contains(WEB01), "{by_name}");
    // The QEMU VM's page.
    let (_, qvm) = portal
        .get(&alice, &format!("/agents/{agent}/vms/qvm"))
        .await;
    shows(
        "alice",
        "qvm's page",
        &qvm,
        &[r#"data-provider="qemu""#, "QEMU process", "qvm.qcow2"],
        &[WEB01],
    );

    // The reader sees the facts but no "Back up", and is refused when posting it.
    let (status, page) = portal.get(&reader, &page_url).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    shows(
        "reader",
        "web01's page",
        &page,
        &[
            WEB01,
            r#"data-state="NotProtected""#,
            "lets you enable backup",
        ],
        &["vm-backup-form", "v1/DefaultPolicy"],
    );
    let protect = format!("{page_url}/protect");
    let (status, html) = portal
        .post(&reader, &protect, &[("target", "v1/DefaultPolicy")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    assert!(html.contains("MissingPermission"), "{html}");

    // Nothing chosen is refused on the page; then alice backs web01 up.
    let (status, html) = portal.post(&alice, &protect, &[("target", "")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("InvalidFormValue"), "{html}");
    let (status, to) = portal
        .post(&alice, &protect, &[("target", "v1/DefaultPolicy")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    assert!(to.starts_with(&format!("{page_url}?done=")), "{to}");
    let items: Value = w.admin.get_json("api/v1/vaults/v1/items").await.unwrap();
    assert_eq!(items.as_array().unwrap().len(), 1, "{items}");
    assert_eq!(
        (items[0]["vm"].as_str(), items[0]["vmName"].as_str()),
        (Some(WEB01), Some("web01"))
    );
    let item = items[0]["id"].as_str().unwrap().to_string();
    let item_url = format!("/vaults/v1/items/{item}");
    let (_, page) = portal.get(&alice, &page_url).await;
    shows(
        "alice",
        "web01's page, protected",
        &page,
        &[
            r#"data-state="InitialBackupPending""#,
            "DefaultPolicy",
            &format!(r#"href="{item_url}/backup""#),
            "vm-no-points",
        ],
        &["vm-backup-form", "vm-restore"],
    );

    // A backup later (asked for by the domain's name), the page lists its point with
    // Restore for alice, and neither button for the reader.
    w.backup_now("v1", "web01").await;
    let (a, m, _) = w.run_backup(&host, false, None).await;
    assert_eq!(a.vm, WEB01, "the agent gets the domain's UUID");
    let (_, page) = portal.get(&alice, &page_url).await;
    shows(
        "alice",
        "web01's page, backed up",
        &page,
        &[
            r#"data-state="Protected""#,
            &format!(r#"<tr data-point="{}">"#, m.id),
            &format!(r#"href="{item_url}/restore?point={}""#, m.id),
            &format!(r#"href="{item_url}/restore""#),
            &format!(r#"href="{item_url}/backup""#),
        ],
        &["vm-no-points", "vm-backup-form"],
    );
    assert!(
        !page.contains(r#"id="vm-last-backup"><span class="muted">"#),
        "a last backup time: {page}"
    );
    let (_, page) = portal.get(&reader, &page_url).await;
    shows(
        "reader",
        "web01's page, backed up",
        &page,
        &[&format!(r#"<tr data-point="{}">"#, m.id), "DefaultPolicy"],
        &[
            "vm-backup-now",
            "vm-restore",
            "/restore?point=",
            "vm-backup-form",
        ],
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_is_named_by_its_name_unless_two_share_it() {
    let w = world().await;
    let (host, _) = host_with(
        &w,
        vec![
            domain(WEB01, "web01"),
            domain(DUP_A, "dup"),
            domain(DUP_B, "dup"),
            qemu_vm("qvm"),
        ],
    )
    .await;
    let admin = &w.admin;
    let enable = |vm: &str| {
        let body = json!({"host": "kvm1", "vm": vm});
        async move {
            admin
                .post_json::<_, Value>("api/v1/vaults/v1/items", &body)
                .await
        }
    };

    // By name: the domain's UUID is what is protected.
    let item = enable("web01").await.unwrap();
    assert_eq!(
        (item["vm"].as_str(), item["vmName"].as_str()),
        (Some(WEB01), Some("web01"))
    );
    // Two domains named dup: refused, naming both, and nothing is protected.
    let (status, c, message) = refusal(enable("dup").await);
    assert_eq!((status, c.as_str()), (409, "AmbiguousVmName"), "{message}");
    assert!(
        message.contains(DUP_A) && message.contains(DUP_B),
        "{message}"
    );
    // A name no VM of the host has, and a UUID in capitals, which names one.
    assert_eq!(code(enable("nothing").await), "NotFound");
    let a = enable(&DUP_A.to_uppercase()).await.unwrap();
    assert_eq!(a["vm"], DUP_A);
    enable(DUP_B).await.unwrap();

    // Items found by the domain's name, its UUID or the item's id; a name two
    // protected domains share is refused with both.
    for name in ["web01", WEB01, item["id"].as_str().unwrap()] {
        let found: Value = admin
            .get_json(&format!("api/v1/vaults/v1/items/{name}"))
            .await
            .unwrap();
        assert_eq!(found["id"], item["id"], "{name}");
    }
    let (status, c, message) = refusal(admin.get_json::<Value>("api/v1/vaults/v1/items/dup").await);
    assert_eq!((status, c.as_str()), (409, "AmbiguousVmName"), "{message}");
    assert!(
        message.contains(DUP_A) && message.contains(DUP_B),
        "{message}"
    );
    let job: Result<Value, _> = admin
        .post_json("api/v1/vaults/v1/items/dup/backup", &json!({}))
        .await;
    assert_eq!(code(job), "AmbiguousVmName");

    // Renamed in libvirt: its new name works at once, and the one it was protected
    // under still does.
    heartbeat(
        &host,
        vec![
            domain(WEB01, "web-renamed"),
            domain(DUP_A, "dup"),
            domain(DUP_B, "dup"),
        ],
    )
    .await;
    for name in ["web-renamed", "web01"] {
        let found: Value = admin
            .get_json(&format!("api/v1/vaults/v1/items/{name}"))
            .await
            .unwrap();
        assert_eq!(found["id"], item["id"], "{name}");
    }
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_protected_by_a_vault_one_may_not_read_shows_only_that_it_is() {
    let w = world().await;
    let (_, kvm1) = host_with(&w, vec![domain(WEB01, "web01")]).await;
    // kvm2 joined with v2's credentials; its vm9 is protected by v1.
    let v2 = w.create_vault("v2").await;
    w.register_host("v2", &v2, "kvm2", &["vm9"]).await;
    w.protect("v1", "kvm2", "vm9").await;
    let agents: Value = w.admin.get_json("api/v1/agents").await.unwrap();
    let kvm2 = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["host"] == "kvm2")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let portal = Portal::of(&w.server);
    let scope = Scope::parse("/resourceGroups/rg/vaults/v2").unwrap();
    let carol = user(&w, &portal, "carol", Role::BackupOperator, scope).await;

    let (status, page) = portal.get(&carol, &format!("/agents/{kvm2}/vms/vm9")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    shows(
        "carol",
        "vm9's page",
        &page,
        &[r#"data-state="hidden""#, "a vault you may not read"],
        &["/vaults/v1", "vm-backup-form", "vm-backup-now"],
    );
    // kvm1 joined with v1's credentials: not carol's to see.
    let (status, page) = portal
        .get(&carol, &format!("/agents/{kvm1}/vms/{WEB01}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    w.finish().await;
}
