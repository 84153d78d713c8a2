//! Resource guards (multi-user authorization) over the real HTTPS listener: the
//! installation's Owner (the first-start token) binds vaults to a guard whose approver
//! is the user "sec". From then on each critical operation is refused with
//! `ApprovalRequired` until the Owner holds a request for exactly it that sec (signed
//! in with a password, through the portal's session) approved; the approval is used
//! once, expires by the server's clock, and can be rejected. Neither the requester nor
//! a non-approver decides; the guard cannot be deleted while bound, changing it needs
//! an approval too, and the Owner cannot take sec's account over. Each step is in the
//! audit log. No QEMU: the points are the world's (tests/common/world.rs).
//!
//! Then the edges: sec approves with a token of their own (and no one, an Owner
//! neither, makes a token for sec); an approval lifts no immutability and, refused
//! so, is not used up; it serves one vault and one operation; and it expires by the
//! server's clock from its decision, approved or not.

mod common;

use common::world::{world, World};
use common::{audit_log, client, code, entries, refusal, SignedIn};
use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tresor_api::tokens::{Role, RoleAssignment, Scope};
use tresor_api::users::{CreateUser, SetPassword, SetRoles};
use tresor_client::{ApiClient, ClientError};

const PASSWORD: &str = "correct horse battery staple";

/// `sec` approves request `id`.
async fn approve(sec: &SignedIn, id: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/resourceGuards/Guard/requests/{id}/approve");
    sec.call(Method::POST, &path, None).await
}

/// The user "sec": a Contributor at `/`, so that it may ask for approvals as well.
async fn create_sec(admin: &ApiClient) {
    admin
        .create_user(&CreateUser {
            name: "sec".into(),
            password: PASSWORD.into(),
            roles: vec![RoleAssignment::new(Role::Contributor, Scope::Installation)],
        })
        .await
        .unwrap();
}

/// The Owner asks for an approval of `operation` (on `vault`, if any): its id.
async fn ask(admin: &ApiClient, vault: Option<&str>, operation: &str) -> String {
    let r: Value = admin
        .post_json(
            "api/v1/resourceGuards/Guard/requests",
            &json!({"vault": vault, "operation": operation, "reason": "change ticket 42"}),
        )
        .await
        .unwrap();
    assert_eq!(r["status"], "Pending", "{r}");
    r["id"].as_str().unwrap().to_string()
}

async fn props(admin: &ApiClient, vault: &str, body: Value) -> Result<Value, ClientError> {
    admin
        .put_json(&format!("api/v1/vaults/{vault}/backup-properties"), &body)
        .await
}

async fn delete_data(admin: &ApiClient) -> Result<Value, ClientError> {
    admin
        .post_json(
            "api/v1/vaults/v1/items/vm1/disable",
            &json!({"deleteBackupData": true}),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_operations_of_a_guarded_vault_need_an_approval_used_once() {
    let w = world().await;
    let admin = &w.admin;

    // v1 protects vm1, with a scheduled point kept 30 days; v2 is empty.
    let host = w.protected_host("v1", "kvm1").await;
    w.scheduled_backups(&host, false).await;
    w.create_vault("v2").await;

    create_sec(admin).await;

    // A guard's fields are checked.
    let guard = |body: Value| async move {
        admin
            .post_json::<_, Value>("api/v1/resourceGuards", &body)
            .await
    };
    assert_eq!(
        code(guard(json!({"name": "Guard", "approvers": []})).await),
        "InvalidApprovers"
    );
    assert_eq!(
        code(guard(json!({"name": "Guard", "approvers": ["nobody"]})).await),
        "InvalidApprovers"
    );
    assert_eq!(
        code(guard(json!({"name": "G-", "approvers": ["sec"], "validityMinutes": 4})).await),
        "ApprovalValidityOutOfRange"
    );
    assert_eq!(
        code(guard(json!({"name": "1G", "approvers": ["sec"]})).await),
        "InvalidResourceGuardName"
    );
    let g = guard(json!({"name": "Guard", "approvers": ["sec"], "validityMinutes": 5}))
        .await
        .unwrap();
    assert_eq!(g["approvers"], json!(["sec"]));
    assert_eq!(
        code(guard(json!({"name": "guard", "approvers": ["sec"]})).await),
        "AlreadyExists"
    );

    // Binding an unguarded vault needs only Vaults.Update; raising protection stays free.
    for v in ["v1", "v2"] {
        let v = props(admin, v, json!({"resourceGuard": "Guard"}))
            .await
            .unwrap();
        assert_eq!(v["resourceGuard"], "Guard");
    }
    props(admin, "v1", json!({"softDeleteDays": 30}))
        .await
        .unwrap();
    props(admin, "v2", json!({"immutability": "Enabled"}))
        .await
        .unwrap();
    let g: Value = admin.get_json("api/v1/resourceGuards/Guard").await.unwrap();
    assert_eq!(g["vaults"], json!(["v1", "v2"]));

    // Every critical operation is refused, naming itself and the guard.
    let mut shorter: Value = admin
        .get_json("api/v1/vaults/v1/policies/DefaultPolicy")
        .await
        .unwrap();
    shorter.as_object_mut().unwrap().remove("id");
    shorter.as_object_mut().unwrap().remove("protectedItems");
    shorter["retention"]["daily"]["days"] = json!(7);
    let shorten_policy = || async {
        admin
            .put_json::<_, Value>("api/v1/vaults/v1/policies/DefaultPolicy", &shorter)
            .await
    };
    let refused = [
        code(props(admin, "v1", json!({"softDeleteDays": 14})).await),
        code(props(admin, "v2", json!({"immutability": "Disabled"})).await),
        code(props(admin, "v1", json!({"resourceGuard": ""})).await),
        code(shorten_policy().await),
        code(delete_data(admin).await),
        code(admin.delete_vault("v2").await),
    ];
    assert!(
        refused.iter().all(|c| c == "ApprovalRequired"),
        "{refused:?}"
    );
    match admin.delete_vault("v2").await {
        Err(ClientError::Api {
            status,
            message,
            recommendation,
            ..
        }) => {
            assert_eq!(status, 403);
            assert!(
                message.contains("DeleteVault") && message.contains("Guard"),
                "{message}"
            );
            let recommendation = recommendation.unwrap_or_default();
            assert!(recommendation.contains("tresor resource-guard request create --guard Guard --vault v2 --operation DeleteVault"), "{recommendation}");
        }
        other => panic!("{other:?}"),
    }

    // A request names a vault the guard protects, and an operation the asker may do.
    assert_eq!(
        code(
            admin
                .post_json::<_, Value>(
                    "api/v1/resourceGuards/Guard/requests",
                    &json!({"operation": "DeleteVault", "reason": "x"})
                )
                .await
        ),
        "InvalidGuardRequest"
    );
    assert_eq!(
        code(
            admin
                .post_json::<_, Value>(
                    "api/v1/resourceGuards/Guard/requests",
                    &json!({"vault": "v1", "operation": "DeleteVault", "reason": ""})
                )
                .await
        ),
        "InvalidRequestReason"
    );

    // The Owner asks; it is no approver, so it cannot approve, not even its own.
    let sec = SignedIn::new(&w.server, "sec", PASSWORD, None).await;
    let id = ask(admin, Some("v1"), "DeleteBackupData").await;
    let own: Result<Value, _> = admin
        .post_json(
            &format!("api/v1/resourceGuards/Guard/requests/{id}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!(code(own), "NotAnApprover");
    // Nor does an approver approve a request of their own.
    let (status, own) = sec
        .call(
            Method::POST,
            "/api/v1/resourceGuards/Guard/requests",
            Some(json!({"vault": "v2", "operation": "DeleteVault", "reason": "mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    let (status, body) = approve(&sec, own["id"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("SelfApproval"))
    );

    // Rejected is rejected (before the item's data goes: its points are what a
    // policy change would shorten).
    let rr = ask(admin, Some("v1"), "ReduceRetention").await;
    let (status, rejected) = sec
        .call(
            Method::POST,
            &format!("/api/v1/resourceGuards/Guard/requests/{rr}/reject"),
            None,
        )
        .await;
    assert_eq!(
        (status, rejected["status"].as_str()),
        (StatusCode::OK, Some("Rejected"))
    );
    assert_eq!(code(shorten_policy().await), "ApprovalRequired");
    // Approved, the retention shortens.
    let rr = ask(admin, Some("v1"), "ReduceRetention").await;
    assert_eq!(approve(&sec, &rr).await.0, StatusCode::OK);
    assert_eq!(
        shorten_policy().await.unwrap()["retention"]["daily"]["days"],
        7
    );

    // sec approves the Owner's request: the data goes, once.
    let (status, approved) = approve(&sec, &id).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(
        (approved["status"].as_str(), approved["decidedBy"].as_str()),
        (Some("Approved"), Some("sec"))
    );
    assert_eq!(approve(&sec, &id).await.1["code"], "RequestNotPending");
    delete_data(admin).await.unwrap();
    let used: Value = admin
        .get_json(&format!("api/v1/resourceGuards/Guard/requests/{id}"))
        .await
        .unwrap();
    assert_eq!(used["status"], "Used");
    assert!(used["used"].is_string());

    // Each approval is for one operation, once: the next shortening is refused again.
    let id = ask(admin, Some("v1"), "ShortenSoftDelete").await;
    assert_eq!(approve(&sec, &id).await.0, StatusCode::OK);
    assert_eq!(
        props(admin, "v1", json!({"softDeleteDays": 20}))
            .await
            .unwrap()["softDeleteDays"],
        20
    );
    assert_eq!(
        code(props(admin, "v1", json!({"softDeleteDays": 14})).await),
        "ApprovalRequired"
    );
    // An approval for another operation or vault does not count.
    let id = ask(admin, Some("v1"), "RemoveResourceGuard").await;
    assert_eq!(approve(&sec, &id).await.0, StatusCode::OK);
    assert_eq!(
        code(props(admin, "v1", json!({"softDeleteDays": 14})).await),
        "ApprovalRequired"
    );

    // An approval expires after the guard's validity (5 minutes, by the server's
    // clock); so does a request nobody decided.
    let late = ask(admin, Some("v1"), "ShortenSoftDelete").await;
    let id = ask(admin, Some("v1"), "ShortenSoftDelete").await;
    assert_eq!(approve(&sec, &id).await.0, StatusCode::OK);
    w.clock.advance(SignedDuration::from_mins(6));
    assert_eq!(
        code(props(admin, "v1", json!({"softDeleteDays": 14})).await),
        "ApprovalRequired"
    );
    let expired: Value = admin
        .get_json(&format!("api/v1/resourceGuards/Guard/requests/{id}"))
        .await
        .unwrap();
    assert_eq!(expired["status"], "Expired");
    assert_eq!(approve(&sec, &late).await.1["code"], "RequestNotPending");

    // Approvals never lift immutability: v2's is lowered with one, then v2 deleted
    // with another.
    let id = ask(admin, Some("v2"), "LowerImmutability").await;
    assert_eq!(approve(&sec, &id).await.0, StatusCode::OK);
    assert_eq!(
        props(admin, "v2", json!({"immutability": "Disabled"}))
            .await
            .unwrap()["immutability"],
        "Disabled"
    );
    let id = ask(admin, Some("v2"), "DeleteVault").await;
    assert_eq!(approve(&sec, &id).await.0, StatusCode::OK);
    admin.delete_vault("v2").await.unwrap();

    // The guard: not deleted while v1 is bound; changed only with an approval.
    assert_eq!(
        code(admin.delete_resource_guard("Guard").await),
        "ResourceGuardInUse"
    );
    let change = json!({"validityMinutes": 60});
    let update = || async {
        admin
            .put_json::<_, Value>("api/v1/resourceGuards/Guard", &change)
            .await
    };
    assert_eq!(code(update().await), "ApprovalRequired");
    let id = ask(admin, None, "ChangeResourceGuard").await;
    assert_eq!(approve(&sec, &id).await.0, StatusCode::OK);
    assert_eq!(update().await.unwrap()["validityMinutes"], 60);

    // The Owner cannot take sec's account over, nor remove it.
    let pw = SetPassword {
        password: "another long password".into(),
        current_password: None,
    };
    assert_eq!(code(admin.set_password("sec", &pw).await), "GuardApprover");
    assert_eq!(code(admin.delete_user("sec").await), "GuardApprover");
    assert_eq!(code(admin.disable_totp("sec").await), "GuardApprover");
    let owner = SetRoles {
        roles: vec![RoleAssignment::new(Role::Reader, Scope::Installation)],
    };
    assert_eq!(
        code(admin.set_user_roles("sec", &owner).await),
        "GuardApprover"
    );

    // The log has who asked, who approved or rejected, and who used an approval.
    let log = audit_log(admin).await;
    let count = |action: &str, result: &str| entries(&log, action, result).len();
    assert!(count("resourceGuard.request.create", "Succeeded") >= 10);
    assert!(count("resourceGuard.request.approve", "Succeeded") >= 8);
    assert_eq!(count("resourceGuard.request.approve", "SelfApproval"), 1);
    assert_eq!(count("resourceGuard.request.reject", "Succeeded"), 1);
    assert_eq!(count("resourceGuard.request.use", "Succeeded"), 6);
    assert!(entries(&log, "resourceGuard.request.approve", "Succeeded")
        .iter()
        .any(|e| e.actor == "sec" && e.actor_kind == "user"));
}

/// The user "sec" approving for a guard "Guard" of `validity` minutes bound to each
/// of `vaults`; sec signed in.
async fn guarded(w: &World, validity: u32, vaults: &[&str]) -> SignedIn {
    create_sec(&w.admin).await;
    let _: Value = w
        .admin
        .post_json(
            "api/v1/resourceGuards",
            &json!({"name": "Guard", "approvers": ["sec"], "validityMinutes": validity}),
        )
        .await
        .unwrap();
    for v in vaults {
        props(&w.admin, v, json!({"resourceGuard": "Guard"}))
            .await
            .unwrap();
    }
    SignedIn::new(&w.server, "sec", PASSWORD, None).await
}

/// The status of request `id`, as the Owner reads it.
async fn status(admin: &ApiClient, id: &str) -> String {
    let r: Value = admin
        .get_json(&format!("api/v1/resourceGuards/Guard/requests/{id}"))
        .await
        .unwrap();
    r["status"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_approves_with_a_token_of_their_own_and_approvals_fit_exactly() {
    let w = world().await;
    let admin = &w.admin;
    w.create_vault("v1").await;
    w.create_vault("v2").await;
    for v in ["v1", "v2"] {
        props(admin, v, json!({"softDeleteDays": 30}))
            .await
            .unwrap();
    }
    let sec = guarded(&w, 10, &["v1", "v2"]).await;

    // sec, signed in with the password, makes a token of their own.
    let (status_code, made) = sec
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "sec-cli"})),
        )
        .await;
    assert_eq!(status_code, StatusCode::CREATED, "{made}");
    assert_eq!(made["owner"], "sec");
    let sec_cli = client(&w.server, made["token"].as_str());
    // No one makes one for sec: the Owner's token has no way to name another owner,
    // and what it makes belongs to no user, so it approves nothing.
    let theirs: Result<Value, _> = admin
        .post_json("api/v1/tokens", &json!({"name": "sec-too", "user": "sec"}))
        .await;
    assert_eq!(refusal(theirs).0, 422);
    let owners: Value = admin
        .post_json("api/v1/tokens", &json!({"name": "sec"}))
        .await
        .unwrap();
    assert!(owners.get("owner").is_none_or(Value::is_null), "{owners}");
    let impostor = client(&w.server, owners["token"].as_str());

    // The Owner asks; its own second token is no approver; sec's token is, as sec.
    let id = ask(admin, Some("v1"), "ShortenSoftDelete").await;
    let approve = |api: &ApiClient, id: &str| {
        let path = format!("api/v1/resourceGuards/Guard/requests/{id}/approve");
        let api = api.clone();
        async move { api.post_json::<_, Value>(&path, &json!({})).await }
    };
    assert_eq!(code(approve(&impostor, &id).await), "NotAnApprover");
    let approved = approve(&sec_cli, &id).await.unwrap();
    assert_eq!(
        (approved["status"].as_str(), approved["decidedBy"].as_str()),
        (Some("Approved"), Some("sec"))
    );
    // Through their token sec is still the requester of their own requests.
    let (_, own) = sec
        .call(
            Method::POST,
            "/api/v1/resourceGuards/Guard/requests",
            Some(json!({"vault": "v2", "operation": "DeleteVault", "reason": "mine"})),
        )
        .await;
    let own = own["id"].as_str().unwrap().to_string();
    assert_eq!(code(approve(&sec_cli, &own).await), "SelfApproval");

    // The approval is for v1's soft-delete period: not v2's, nor another operation on
    // v1; refused there, it stays for what it is for.
    assert_eq!(
        code(props(admin, "v2", json!({"softDeleteDays": 14})).await),
        "ApprovalRequired"
    );
    assert_eq!(
        code(props(admin, "v1", json!({"resourceGuard": ""})).await),
        "ApprovalRequired"
    );
    assert_eq!(code(admin.delete_vault("v1").await), "ApprovalRequired");
    assert_eq!(status(admin, &id).await, "Approved");
    // Nor does another requester use it: sec asks for nothing on v1 and has none.
    let (status_code, body) = sec
        .call(
            Method::PUT,
            "/api/v1/vaults/v1/backup-properties",
            Some(json!({"softDeleteDays": 14})),
        )
        .await;
    assert_eq!(
        (status_code, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("ApprovalRequired"))
    );
    assert_eq!(
        props(admin, "v1", json!({"softDeleteDays": 14}))
            .await
            .unwrap()["softDeleteDays"],
        14
    );
    assert_eq!(status(admin, &id).await, "Used");

    // An approval expires by the server's clock, counted from its decision: asked,
    // left pending 8 of the guard's 10 minutes, then approved, it serves for 10 more.
    let id = ask(admin, Some("v2"), "ShortenSoftDelete").await;
    w.clock.advance(SignedDuration::from_mins(8));
    let approved = approve(&sec_cli, &id).await.unwrap();
    let decided: jiff::Timestamp = approved["decidedAt"].as_str().unwrap().parse().unwrap();
    let expires: jiff::Timestamp = approved["expires"].as_str().unwrap().parse().unwrap();
    assert_eq!(decided, w.now());
    assert_eq!(expires, decided + SignedDuration::from_mins(10));
    w.clock
        .advance(SignedDuration::from_mins(10) - SignedDuration::from_secs(1));
    assert_eq!(status(admin, &id).await, "Approved");
    w.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(status(admin, &id).await, "Expired");
    assert_eq!(
        code(props(admin, "v2", json!({"softDeleteDays": 14})).await),
        "ApprovalRequired"
    );
    assert_eq!(
        props(admin, "v2", json!({})).await.unwrap()["softDeleteDays"],
        30
    );

    // The log names the token sec approved with.
    let log = audit_log(admin).await;
    assert!(entries(&log, "resourceGuard.request.approve", "Succeeded")
        .iter()
        .any(|e| e.actor == "sec (token sec-cli)"));
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_never_lifts_immutability_and_is_kept_when_refused() {
    let w = world().await;
    let admin = &w.admin;
    // v1 protects vm1 with a point kept 30 days, deleted data kept 30 days; it is
    // immutable (Enabled) and guarded.
    let host = w.protected_host("v1", "kvm1").await;
    w.scheduled_backups(&host, false).await;
    props(
        admin,
        "v1",
        json!({"softDeleteDays": 30, "immutability": "Enabled"}),
    )
    .await
    .unwrap();
    let sec = guarded(&w, 60, &["v1"]).await;
    let point = w.point_ids("v1", "vm1").await.remove(0);
    let point_path = format!("api/v1/vaults/v1/items/vm1/recovery-points/{point}");
    let delete_point = || admin.delete(&point_path);

    // Each destructive operation, approved, is still refused: immutability first.
    let mut kept = Vec::new();
    for operation in [
        "DeleteBackupData",
        "DeleteRecoveryPoint",
        "ShortenSoftDelete",
    ] {
        let id = ask(admin, Some("v1"), operation).await;
        assert_eq!(approve(&sec, &id).await.0, StatusCode::OK);
        kept.push(id);
    }
    assert_eq!(code(delete_data(admin).await), "ImmutableVault");
    assert_eq!(code(delete_point().await), "ImmutableVault");
    assert_eq!(
        code(props(admin, "v1", json!({"softDeleteDays": 14})).await),
        "ImmutableVault"
    );
    // The operations did not happen, so the approvals are not used up.
    for id in &kept {
        assert_eq!(status(admin, id).await, "Approved", "{id}");
    }
    assert_eq!(w.point_ids("v1", "vm1").await, std::slice::from_ref(&point));

    // Once immutability is lowered (with an approval of its own), the kept approvals
    // serve, each once.
    let lower = ask(admin, Some("v1"), "LowerImmutability").await;
    assert_eq!(approve(&sec, &lower).await.0, StatusCode::OK);
    props(admin, "v1", json!({"immutability": "Disabled"}))
        .await
        .unwrap();
    assert_eq!(
        props(admin, "v1", json!({"softDeleteDays": 14}))
            .await
            .unwrap()["softDeleteDays"],
        14
    );
    delete_point().await.unwrap();
    delete_data(admin).await.unwrap();
    for id in kept.iter().chain([&lower]) {
        assert_eq!(status(admin, id).await, "Used", "{id}");
    }
    let uses = entries(
        &audit_log(admin).await,
        "resourceGuard.request.use",
        "Succeeded",
    )
    .len();
    assert_eq!(uses, 4, "each approval used once, none at a refusal");
    w.finish().await;
}
