//! A restore's options over HTTP: a new libvirt domain's storage pool and start,
//! handed to the agent in the job's parameters as they were asked; options of
//! another mode, both a folder and a pool, and malformed names refused with
//! `InvalidRestoreOption` before any job is made, as are a pool and a start for a
//! VM its host reports as plain QEMU.

mod common;

use serde_json::{json, Value};
use tresor_api::agents::Assignment;

use common::code;
use common::world::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_domain_options_reach_the_agent_and_bad_ones_are_refused() {
    let w = world().await;
    let host = w.protected_host("v1", "h1").await;
    let (made, _) = w.two_backups("v1", &host).await;
    let point = made[0].0.clone();
    let url = "api/v1/vaults/v1/items/vm1/restore";

    // Refused, each naming what is wrong; no job is made.
    for (body, want) in [
        (
            json!({"mode": "RestoreDisks", "targetPool": "default"}),
            "InvalidRestoreOption",
        ),
        (
            json!({"mode": "CreateVm", "targetPool": "default", "targetPath": "/r/x"}),
            "InvalidRestoreOption",
        ),
        (
            json!({"mode": "CreateVm", "targetPool": "../etc"}),
            "InvalidRestoreOption",
        ),
        (
            json!({"mode": "CreateVm", "targetPool": "a".repeat(65)}),
            "InvalidRestoreOption",
        ),
        (
            json!({"mode": "RestoreDisks", "targetPath": "/r/x", "start": true}),
            "InvalidRestoreOption",
        ),
        (
            json!({"mode": "ReplaceDisks", "newName": "copy"}),
            "InvalidRestoreOption",
        ),
        (
            json!({"mode": "CreateVm", "targetPath": "/r/x", "newName": "x'; reboot; '"}),
            "InvalidRestoreOption",
        ),
        (
            json!({"mode": "CreateVm", "targetPath": "/r/x", "newName": ".."}),
            "InvalidRestoreOption",
        ),
        (
            json!({"mode": "CreateVm", "targetPath": "/r/\nx"}),
            "InvalidRestoreOption",
        ),
        (json!({"mode": "CreateVm"}), "TargetPathRequired"),
        (
            json!({"mode": "Clone", "targetPath": "/r/x"}),
            "InvalidRestoreMode",
        ),
    ] {
        let mut body = body;
        body["recoveryPoint"] = json!(point);
        assert_eq!(
            code(w.admin.post_json::<_, Value>(url, &body).await),
            want,
            "{body}"
        );
    }
    let jobs: Value = w.admin.get_json("api/v1/vaults/v1/jobs").await.unwrap();
    assert!(
        !jobs.to_string().contains("\"Restore\""),
        "a refused restore made a job: {jobs}"
    );

    // Its host reports vm1 as a plain QEMU VM: a pool and a start are libvirt's.
    let pooled = json!({"mode": "CreateVm", "recoveryPoint": point, "targetPool": "default",
                        "newName": "web-copy.1", "start": true, "format": "qcow2"});
    let refused = w.admin.post_json::<_, Value>(url, &pooled).await;
    assert_eq!(code(refused), "InvalidRestoreOption");

    // Reported as a libvirt domain, a new domain into a pool, started: the agent is
    // told so.
    let report = json!({"vms": [{"vm": "vm1", "info": {"name": "vm1", "uuid": null,
        "state": "running", "provider": "libvirt", "guest_agent": {"state": "not-configured"},
        "disks": []}}]});
    let _: Value = host
        .api
        .post_json("api/v1/agent/heartbeat", &report)
        .await
        .unwrap();
    let job: Value = w.admin.post_json(url, &pooled).await.unwrap();
    assert_eq!(job["operation"], "Restore", "{job}");
    let taken: Assignment = host
        .api
        .post_json("api/v1/agent/jobs/next?wait=10", &json!({}))
        .await
        .unwrap();
    let p = &taken.params;
    assert_eq!(p.mode.as_deref(), Some("CreateVm"));
    assert_eq!(p.target_pool.as_deref(), Some("default"));
    assert_eq!(p.target_path, None);
    assert_eq!(p.new_name.as_deref(), Some("web-copy.1"));
    assert!(p.start);
    assert_eq!(p.format.as_deref(), Some("qcow2"));
}
