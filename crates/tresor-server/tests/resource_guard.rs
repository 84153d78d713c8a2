//! Resource guards (multi-user authorization) over the real HTTPS listener: the
//! installation's Owner (the first-start token) binds vaults to a guard whose approver
//! is the user "sec". From then on each critical operation is refused with
//! `ApprovalRequired` until the Owner holds a request for exactly it that sec (signed
//! in with a password, through the portal's session) approved; the approval is used
//! once, expires by the server's clock, and can be rejected. Neither the requester nor
//! a non-approver decides; the guard cannot be deleted while bound, changing it needs
//! an approval too, and the Owner cannot take sec's account over. Each step is in the
//! audit log. No QEMU: the points are the world's (tests/common/world.rs).

mod common;

use common::portal::Portal;
use common::world::world;
use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tresor_api::tokens::{Role, RoleAssignment, Scope};
use tresor_api::users::{CreateUser, SetPassword, SetRoles};
use tresor_client::{ApiClient, ClientError};

const PASSWORD: &str = "correct horse battery staple";

fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> String {
    match r {
        Err(ClientError::Api { code, .. }) => code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The user "sec", signed in to the portal: API calls with the session and CSRF token.
struct Sec {
    portal: Portal,
    session: String,
    csrf: String,
}

impl Sec {
    async fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.portal
            .call(Method::POST, path, &self.session, Some(&self.csrf), body)
            .await
    }

    async fn approve(&self, id: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/resourceGuards/Guard/requests/{id}/approve"),
            None,
        )
        .await
    }
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

    // sec: a Contributor, so that it may ask for approvals as well.
    admin
        .create_user(&CreateUser {
            name: "sec".into(),
            password: PASSWORD.into(),
            roles: vec![RoleAssignment::new(Role::Contributor, Scope::Installation)],
        })
        .await
        .unwrap();

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
    let portal = Portal::of(&w.server);
    let session = portal.sign_in("sec", PASSWORD, None).await.unwrap();
    let csrf = portal.csrf(&session).await;
    let sec = Sec {
        portal,
        session,
        csrf,
    };
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
        .post(
            "/api/v1/resourceGuards/Guard/requests",
            Some(json!({"vault": "v2", "operation": "DeleteVault", "reason": "mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    let (status, body) = sec.approve(own["id"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("SelfApproval"))
    );

    // Rejected is rejected (before the item's data goes: its points are what a
    // policy change would shorten).
    let rr = ask(admin, Some("v1"), "ReduceRetention").await;
    let (status, rejected) = sec
        .post(
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
    assert_eq!(sec.approve(&rr).await.0, StatusCode::OK);
    assert_eq!(
        shorten_policy().await.unwrap()["retention"]["daily"]["days"],
        7
    );

    // sec approves the Owner's request: the data goes, once.
    let (status, approved) = sec.approve(&id).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(
        (approved["status"].as_str(), approved["decidedBy"].as_str()),
        (Some("Approved"), Some("sec"))
    );
    assert_eq!(sec.approve(&id).await.1["code"], "RequestNotPending");
    delete_data(admin).await.unwrap();
    let used: Value = admin
        .get_json(&format!("api/v1/resourceGuards/Guard/requests/{id}"))
        .await
        .unwrap();
    assert_eq!(used["status"], "Used");
    assert!(used["used"].is_string());

    // Each approval is for one operation, once: the next shortening is refused again.
    let id = ask(admin, Some("v1"), "ShortenSoftDelete").await;
    assert_eq!(sec.approve(&id).await.0, StatusCode::OK);
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
    assert_eq!(sec.approve(&id).await.0, StatusCode::OK);
    assert_eq!(
        code(props(admin, "v1", json!({"softDeleteDays": 14})).await),
        "ApprovalRequired"
    );

    // An approval expires after the guard's validity (5 minutes, by the server's
    // clock); so does a request nobody decided.
    let late = ask(admin, Some("v1"), "ShortenSoftDelete").await;
    let id = ask(admin, Some("v1"), "ShortenSoftDelete").await;
    assert_eq!(sec.approve(&id).await.0, StatusCode::OK);
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
    assert_eq!(sec.approve(&late).await.1["code"], "RequestNotPending");

    // Approvals never lift immutability: v2's is lowered with one, then v2 deleted
    // with another.
    let id = ask(admin, Some("v2"), "LowerImmutability").await;
    assert_eq!(sec.approve(&id).await.0, StatusCode::OK);
    assert_eq!(
        props(admin, "v2", json!({"immutability": "Disabled"}))
            .await
            .unwrap()["immutability"],
        "Disabled"
    );
    let id = ask(admin, Some("v2"), "DeleteVault").await;
    assert_eq!(sec.approve(&id).await.0, StatusCode::OK);
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
    assert_eq!(sec.approve(&id).await.0, StatusCode::OK);
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
    let log: Value = admin.get_json("api/v1/audit?limit=1000").await.unwrap();
    let count = |action: &str, result: &str| {
        log.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action && e["result"] == result)
            .count()
    };
    assert!(count("resourceGuard.request.create", "Succeeded") >= 10);
    assert!(count("resourceGuard.request.approve", "Succeeded") >= 8);
    assert_eq!(count("resourceGuard.request.approve", "SelfApproval"), 1);
    assert_eq!(count("resourceGuard.request.reject", "Succeeded"), 1);
    assert_eq!(count("resourceGuard.request.use", "Succeeded"), 6);
    assert!(log
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "resourceGuard.request.approve"
            && e["actor"] == "sec"
            && e["actorKind"] == "user"));
}
