//! Selective disk backup over the real HTTPS listener (tests/common/world.rs: no
//! QEMU, no libvirtd): a libvirt domain with disks vda and vdb is protected without
//! vdb. Disks it did not report, every disk, malformed and repeated names are
//! refused with InvalidExcludedDisks naming what is wrong; a plain QEMU VM's disks
//! cannot be left out (DiskExclusionNotSupported). The item shows its excluded
//! disks (after a server restart too), its backup job hands them to the agent, and
//! modify protection changes them alone (the policy and state unchanged) or with a
//! policy; each change is in the audit log.

mod common;

use common::world::{world, Host, World, DISK};
use common::{audit_log, entries, refusal};
use serde_json::{json, Value};
use tresor_api::items::{BackupNow, EnableProtection, ModifyProtection};

const WEB01: &str = "6f1c2a9e-1b2c-4d5e-8f90-0a1b2c3d4e5f";

fn disk(name: &str) -> Value {
    json!({"name": name, "format": "qcow2", "image": format!("/var/lib/libvirt/images/{name}.qcow2"),
        "virtual_size": DISK, "bus": "virtio",
        "source": {"kind": "file", "path": format!("/var/lib/libvirt/images/{name}.qcow2")}})
}

/// Host kvm1 of vault v1 reporting libvirt domain web01 (vda, vdb) and QEMU VM qvm
/// (vda, vdb).
async fn host(w: &World) -> Host {
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
    host
}

fn enable(vm: &str, excluded: &[&str]) -> EnableProtection {
    EnableProtection {
        host: "kvm1".into(),
        vm: vm.into(),
        policy: None,
        excluded_disks: excluded.iter().map(|d| d.to_string()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libvirt_domain_is_protected_without_a_disk_and_bad_exclusions_are_refused() {
    let w = world().await;
    let host = host(&w).await;
    let api = &w.admin;

    let (status, code, message) = refusal(
        api.enable_protection("v1", &enable("web01", &["vdc"]))
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "InvalidExcludedDisks"));
    assert!(
        message.contains("vdc") && message.contains("vda, vdb"),
        "{message}"
    );
    let (_, code, message) = refusal(
        api.enable_protection("v1", &enable("web01", &["vda", "vdb"]))
            .await,
    );
    assert_eq!(code, "InvalidExcludedDisks");
    assert!(message.contains("no disk to back up"), "{message}");
    for bad in [&["vdb", "vdb"][..], &["../vdb"], &[""]] {
        let (_, code, _) = refusal(api.enable_protection("v1", &enable("web01", bad)).await);
        assert_eq!(code, "InvalidExcludedDisks", "{bad:?}");
    }
    let (_, code, message) = refusal(api.enable_protection("v1", &enable("qvm", &["vdb"])).await);
    assert_eq!(code, "DiskExclusionNotSupported", "{message}");
    assert!(
        api.items("v1").await.unwrap().is_empty(),
        "nothing refused was protected"
    );

    let item = api
        .enable_protection("v1", &enable("web01", &["vdb"]))
        .await
        .unwrap();
    assert_eq!(item.excluded_disks, ["vdb"]);
    // Its backups leave vdb out: the job's parameters say so to the agent.
    api.backup_now("v1", &item.id, &BackupNow::default())
        .await
        .unwrap();
    let job: Value = host
        .api
        .post_json("api/v1/agent/jobs/next?wait=10", &json!({}))
        .await
        .unwrap();
    assert_eq!(job["operation"], "Backup");
    assert_eq!(job["params"]["excludedDisks"], json!(["vdb"]));
    // The item's first backup follows no point: every disk is read whole.
    assert!(job["params"].get("parentPoint").is_none(), "{job}");

    // Changed alone: the policy stays; then every disk again; then with a policy.
    let modify = |policy: Option<&str>, disks: Option<&[&str]>| ModifyProtection {
        policy: policy.map(str::to_string),
        excluded_disks: disks.map(|d| d.iter().map(|s| s.to_string()).collect()),
    };
    let (_, code, _) = refusal(
        api.modify_protection("v1", "web01", &modify(None, Some(&["vda", "vdb"])))
            .await,
    );
    assert_eq!(code, "InvalidExcludedDisks");
    let (_, code, _) = refusal(
        api.modify_protection("v1", "web01", &modify(None, None))
            .await,
    );
    assert_eq!(code, "InvalidRequest");
    let changed = api
        .modify_protection("v1", "web01", &modify(None, Some(&[])))
        .await
        .unwrap();
    assert!(changed.excluded_disks.is_empty());
    assert_eq!(changed.policy.as_deref(), Some("DefaultPolicy"));
    assert_eq!(changed.protection_state, item.protection_state);
    let changed = api
        .modify_protection(
            "v1",
            "web01",
            &modify(Some("DefaultPolicy"), Some(&["vda"])),
        )
        .await
        .unwrap();
    assert_eq!(changed.excluded_disks, ["vda"]);
    let kept = api
        .modify_protection("v1", "web01", &modify(Some("DefaultPolicy"), None))
        .await
        .unwrap();
    assert_eq!(
        kept.excluded_disks,
        ["vda"],
        "a policy change alone keeps the disks"
    );

    let log = audit_log(api).await;
    assert_eq!(entries(&log, "item.enable", "Succeeded").len(), 1);
    assert!(entries(&log, "item.modify", "Succeeded")
        .iter()
        .any(|e| e.detail.contains("excluded disks [vda]")));

    // Kept in the catalogue.
    let w = w.restart().await;
    assert_eq!(
        w.admin.item("v1", "web01").await.unwrap().excluded_disks,
        ["vda"]
    );
    w.finish().await;
}
