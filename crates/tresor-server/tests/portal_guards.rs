//! The portal's pages for resource guards, changing protection and one's own API
//! tokens, over the real HTTPS listener with the session cookie and CSRF token, on a
//! world with real recovery points (tests/common/world.rs; no QEMU, no browser).
//!
//! An Owner (user alice) creates a guard whose approver is user sec and binds vault
//! v1 to it; deleting a point is then refused with `ApprovalRequired`; alice asks for
//! an approval on the guard's page, where sec (and not alice) sees Approve; sec
//! approves; the point is deleted (soft: its purge time shown) and undeleted. A
//! Reader sees none of the buttons and is refused when posting anyway. Besides:
//! change policy and resume backup, and alice's API tokens (made, used, revoked).

mod common;

use common::portal::{shows, Portal, Session};
use common::world::world;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tresor_api::tokens::{Role, RoleAssignment, Scope};
use tresor_api::users::CreateUser;

const PASSWORD: &str = "correct horse battery staple";

async fn user(portal: &Portal, name: &str) -> Session {
    portal
        .sign_in_with(&[("user", name), ("password", PASSWORD), ("totp", "")])
        .await
        .unwrap_or_else(|| panic!("{name} signs in"))
}

/// The id of the guard's newest request, from its page.
fn first_request(html: &str) -> String {
    let at = html.find(r#"data-request=""#).expect("a request is listed") + 14;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

/// The row of point `id` on an item's page.
fn point_row<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!(r#"id="point-{id}""#))
        .unwrap_or_else(|| panic!("point {id} is listed"));
    &html[at..at + html[at..].find("</tr>").unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_point_is_deleted_through_the_portal_only_with_sec_s_approval() {
    let w = world().await;
    let host = w.protected_host("v1", "kvm1").await;
    let (made, _) = w.two_backups("v1", &host).await;
    let point = made[0].0.clone();
    let admin = &w.admin;
    let items: Value = admin.get_json("api/v1/vaults/v1/items").await.unwrap();
    let item = items[0]["id"].as_str().unwrap().to_string();
    let item_url = format!("/vaults/v1/items/{item}");
    let delete_url = format!("{item_url}/points/{point}/delete");
    let undelete_url = format!("{item_url}/points/{point}/undelete");

    let vault_scope = Scope::parse("/resourceGroups/rg/vaults/v1").unwrap();
    for (name, roles) in [
        (
            "alice",
            vec![RoleAssignment::new(Role::Owner, Scope::Installation)],
        ),
        // sec approves and holds no role: the guard's page is theirs as approver.
        ("sec", vec![]),
        (
            "reader",
            vec![RoleAssignment::new(Role::Reader, vault_scope)],
        ),
    ] {
        admin
            .create_user(&CreateUser {
                name: name.into(),
                password: PASSWORD.into(),
                roles,
            })
            .await
            .unwrap();
    }
    let portal = Portal::of(&w.server);
    let alice = user(&portal, "alice").await;
    let reader = user(&portal, "reader").await;

    // Before any guard: alice sees Delete on each point and Change policy; the
    // confirmation names the vault's soft-delete period.
    let (_, page) = portal.get(&alice, &item_url).await;
    shows(
        "alice",
        "the item",
        &page,
        &[
            r#"href="/guards""#,
            &format!(r#"href="{delete_url}""#),
            &format!(r#"href="{item_url}/policy""#),
        ],
        &[&undelete_url],
    );
    let (status, confirm) = portal.get(&alice, &delete_url).await;
    assert_eq!(status, StatusCode::OK, "{confirm}");
    shows(
        "alice",
        "the delete confirmation",
        &confirm,
        &["soft-delete-period", "14 days", "Delete recovery point"],
        &[],
    );

    // alice creates Guard-1 (sec approves) and binds v1 to it.
    let (_, guards) = portal.get(&alice, "/guards").await;
    shows(
        "alice",
        "/guards",
        &guards,
        &["new-guard", r#"name="approver" value="sec""#],
        &[],
    );
    let (status, html) = portal
        .post(
            &alice,
            "/guards",
            &[("name", "Guard-1"), ("validity_minutes", "ten")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    shows(
        "alice",
        "a bad validity",
        &html,
        &["ApprovalValidityOutOfRange"],
        &[],
    );
    let (status, to) = portal
        .post(
            &alice,
            "/guards",
            &[
                ("name", "Guard-1"),
                ("approver", "sec"),
                ("validity_minutes", "60"),
            ],
        )
        .await;
    assert_eq!(
        (status, to.starts_with("/guards/Guard-1?done=")),
        (StatusCode::SEE_OTHER, true),
        "{to}"
    );
    let (status, to) = portal
        .post(
            &alice,
            "/vaults/v1/configuration",
            &[("resource_guard", "Guard-1")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let (_, config) = portal.get(&alice, "/vaults/v1/configuration").await;
    shows(
        "alice",
        "the configuration",
        &config,
        &[
            r#"href="/guards/Guard-1""#,
            "bind-guard",
            r#"<option value="Guard-1" selected>"#,
        ],
        &[],
    );
    let (_, guards) = portal.get(&alice, "/guards").await;
    shows(
        "alice",
        "/guards",
        &guards,
        &[r#"data-guard="Guard-1""#, "60 minutes", "v1"],
        &[],
    );

    // Now deleting the point, or unbinding the guard, needs an approval: refused
    // with the service's message, and nothing changes.
    let (status, html) = portal.post(&alice, &delete_url, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    shows(
        "alice",
        "a guarded delete",
        &html,
        &[
            "ApprovalRequired",
            "DeleteRecoveryPoint on vault v1 is a critical operation",
        ],
        &[],
    );
    let (status, html) = portal
        .post(
            &alice,
            "/vaults/v1/configuration",
            &[("resource_guard", "")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    shows(
        "alice",
        "unbinding",
        &html,
        &["ApprovalRequired", "RemoveResourceGuard"],
        &[],
    );
    let points: Value = admin
        .get_json("api/v1/vaults/v1/items/vm1/recovery-points")
        .await
        .unwrap();
    assert!(
        points
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["deleteAt"].is_null()),
        "{points}"
    );

    // alice asks for an approval on the guard's page; it is listed there, pending,
    // without Approve for her (she asked).
    let (_, guard) = portal.get(&alice, "/guards/Guard-1").await;
    shows(
        "alice",
        "the guard",
        &guard,
        &["ask-approval", "update-guard", "delete-guard"],
        &[],
    );
    let (status, to) = portal
        .post(
            &alice,
            "/guards/Guard-1/requests",
            &[
                ("vault", "v1"),
                ("operation", "DeleteRecoveryPoint"),
                ("reason", "a point with secrets, ticket 7"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let (_, guard) = portal.get(&alice, "/guards/Guard-1").await;
    let request = first_request(&guard);
    shows(
        "alice",
        "the guard",
        &guard,
        &[
            "a point with secrets, ticket 7",
            r#"data-status="Pending""#,
            "DeleteRecoveryPoint",
        ],
        &["/approve\"", "/reject\""],
    );
    // Posted anyway: the service's refusal, shown on the page.
    let (status, html) = portal
        .post(
            &alice,
            &format!("/guards/Guard-1/requests/{request}/approve"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    shows("alice", "approving", &html, &["NotAnApprover"], &[]);

    // sec, with no role, sees the guards' link and Approve; approves.
    let sec = user(&portal, "sec").await;
    let (_, vaults) = portal.get(&sec, "/vaults").await;
    shows("sec", "/vaults", &vaults, &[r#"href="/guards""#], &[]);
    let (_, guard) = portal.get(&sec, "/guards/Guard-1").await;
    let approve = format!("/guards/Guard-1/requests/{request}/approve");
    shows(
        "sec",
        "the guard",
        &guard,
        &[&approve, "a point with secrets, ticket 7", "alice"],
        &["ask-approval", "update-guard"],
    );
    let (status, to) = portal.post(&sec, &approve, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let (_, guard) = portal.get(&sec, "/guards/Guard-1").await;
    shows(
        "sec",
        "the guard",
        &guard,
        &[r#"data-status="Approved""#],
        &[&approve],
    );

    // The reader sees the guard (it reads vaults) but no button of it, and no
    // button of the item; posting anyway is refused.
    let (_, guard) = portal.get(&reader, "/guards/Guard-1").await;
    shows(
        "reader",
        "the guard",
        &guard,
        &["Guard-1", r#"data-status="Approved""#],
        &["/approve\"", "ask-approval", "update-guard", "delete-guard"],
    );
    let (_, page) = portal.get(&reader, &item_url).await;
    shows(
        "reader",
        "the item",
        &page,
        &[&format!(r#"id="point-{point}""#)],
        &[
            &delete_url,
            &undelete_url,
            "/policy\"",
            "/restore",
            "/stop\"",
        ],
    );
    let (_, config) = portal.get(&reader, "/vaults/v1/configuration").await;
    shows(
        "reader",
        "the configuration",
        &config,
        &[r#"href="/guards/Guard-1""#],
        &["bind-guard"],
    );
    let (status, html) = portal.post(&reader, &delete_url, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    shows(
        "reader",
        "deleting",
        &html,
        &["MissingPermission", "RecoveryPoints.Delete"],
        &[],
    );

    // With the approval alice deletes the point: soft, its purge time shown, and
    // Undelete offered; the approval is used.
    let (status, to) = portal.post(&alice, &delete_url, &[]).await;
    assert_eq!(
        (status, to.starts_with(&format!("{item_url}?done="))),
        (StatusCode::SEE_OTHER, true),
        "{to}"
    );
    let (_, page) = portal.get(&alice, &item_url).await;
    let row = point_row(&page, &point);
    shows(
        "alice",
        "the deleted point",
        row,
        &[
            r#"data-deleted="true""#,
            "Purged",
            "2026-01-24",
            &undelete_url,
        ],
        &[&delete_url, "/restore"],
    );
    let (_, guard) = portal.get(&alice, "/guards/Guard-1").await;
    shows(
        "alice",
        "the guard",
        &guard,
        &[r#"data-status="Used""#],
        &[],
    );
    let (_, page) = portal.get(&reader, &item_url).await;
    shows(
        "reader",
        "the deleted point",
        point_row(&page, &point),
        &["Purged"],
        &[&undelete_url],
    );

    // Undelete brings it back; a second delete needs a new approval.
    let (status, to) = portal.post(&alice, &undelete_url, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let (_, page) = portal.get(&alice, &item_url).await;
    let row = point_row(&page, &point);
    shows(
        "alice",
        "the undeleted point",
        row,
        &[&delete_url, "/restore"],
        &["data-deleted", "Purged"],
    );
    let (status, html) = portal.post(&alice, &delete_url, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    shows(
        "alice",
        "a second delete",
        &html,
        &["ApprovalRequired"],
        &[],
    );

    // A request sec rejects is shown so; changing the guard needs an approval too,
    // and a bound guard cannot be deleted. (A minute on, so that the new request is
    // the newest listed.)
    w.clock.advance(jiff::SignedDuration::from_mins(1));
    let (status, _) = portal
        .post(
            &alice,
            "/guards/Guard-1/requests",
            &[
                ("vault", "v1"),
                ("operation", "DeleteRecoveryPoint"),
                ("reason", "again"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, guard) = portal.get(&sec, "/guards/Guard-1").await;
    let second = first_request(&guard);
    assert_ne!(second, request);
    let (status, to) = portal
        .post(
            &sec,
            &format!("/guards/Guard-1/requests/{second}/reject"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let (_, guard) = portal.get(&alice, "/guards/Guard-1").await;
    shows(
        "alice",
        "the guard",
        &guard,
        &[r#"data-status="Rejected""#],
        &[],
    );
    let (status, html) = portal.post(&alice, &delete_url, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    let (status, html) = portal
        .post(
            &alice,
            "/guards/Guard-1/update",
            &[
                ("approver", "sec"),
                ("approver", "alice"),
                ("validity_minutes", "90"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    shows(
        "alice",
        "changing the guard",
        &html,
        &["ApprovalRequired", "ChangeResourceGuard"],
        &[],
    );
    let (status, html) = portal.post(&alice, "/guards/Guard-1/delete", &[]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    shows(
        "alice",
        "deleting the guard",
        &html,
        &["ResourceGuardInUse"],
        &[],
    );
    let guard: Value = admin
        .get_json("api/v1/resourceGuards/Guard-1")
        .await
        .unwrap();
    assert_eq!(guard["approvers"], json!(["sec"]), "{guard}");

    // Every step is in the audit log, by whom.
    let audit: Value = admin.get_json("api/v1/audit?limit=200").await.unwrap();
    let entries: Vec<(String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (f("actor"), f("action"), f("result"))
        })
        .collect();
    for (actor, action, result) in [
        ("alice", "resourceGuard.create", "Succeeded"),
        ("alice", "resourceGuard.request.create", "Succeeded"),
        ("alice", "resourceGuard.request.approve", "NotAnApprover"),
        ("sec", "resourceGuard.request.approve", "Succeeded"),
        ("sec", "resourceGuard.request.reject", "Succeeded"),
        ("alice", "resourceGuard.update", "ApprovalRequired"),
        ("alice", "point.delete", "ApprovalRequired"),
        ("reader", "point.delete", "MissingPermission"),
        ("alice", "point.delete", "Succeeded"),
        ("alice", "point.undelete", "Succeeded"),
    ] {
        let e = (actor.to_string(), action.to_string(), result.to_string());
        assert!(entries.contains(&e), "{e:?} not audited: {entries:?}");
    }
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_policy_resume_backup_and_own_api_tokens_through_the_portal() {
    let w = world().await;
    let host = w.protected_host("v1", "kvm1").await;
    w.two_backups("v1", &host).await;
    let admin = &w.admin;
    let items: Value = admin.get_json("api/v1/vaults/v1/items").await.unwrap();
    let item_url = format!("/vaults/v1/items/{}", items[0]["id"].as_str().unwrap());
    let mut p: Value = admin
        .get_json("api/v1/vaults/v1/policies/DefaultPolicy")
        .await
        .unwrap();
    let body = p.as_object_mut().unwrap();
    body.remove("id");
    body.remove("protectedItems");
    p["name"] = json!("Longer");
    p["retention"]["daily"]["days"] = json!(60);
    let _: Value = admin
        .post_json("api/v1/vaults/v1/policies", &p)
        .await
        .unwrap();
    admin
        .create_user(&CreateUser {
            name: "alice".into(),
            password: PASSWORD.into(),
            roles: vec![RoleAssignment::new(
                Role::Contributor,
                Scope::parse("/resourceGroups/rg").unwrap(),
            )],
        })
        .await
        .unwrap();
    let portal = Portal::of(&w.server);
    let alice = user(&portal, "alice").await;

    // Change policy: both policies offered; an unknown one is refused on the page.
    let (_, form) = portal.get(&alice, &format!("{item_url}/policy")).await;
    shows(
        "alice",
        "change policy",
        &form,
        &[
            "Change policy",
            r#"value="DefaultPolicy" checked"#,
            r#"value="Longer""#,
        ],
        &[],
    );
    let (status, html) = portal
        .post(&alice, &format!("{item_url}/policy"), &[("policy", "Nope")])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{html}");
    shows("alice", "an unknown policy", &html, &["NotFound"], &[]);
    let (status, to) = portal
        .post(
            &alice,
            &format!("{item_url}/policy"),
            &[("policy", "Longer")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let item: Value = admin.get_json("api/v1/vaults/v1/items/vm1").await.unwrap();
    assert_eq!(item["policy"], "Longer", "{item}");

    // Stopped (keeping data): "Resume backup" instead of "Stop backup"; resumed
    // under DefaultPolicy.
    let _: Value = admin
        .post_json(
            "api/v1/vaults/v1/items/vm1/disable",
            &json!({"deleteBackupData": false}),
        )
        .await
        .unwrap();
    let (_, page) = portal.get(&alice, &item_url).await;
    shows(
        "alice",
        "a stopped item",
        &page,
        &["Resume backup"],
        &["Stop backup", "Change policy"],
    );
    let (_, form) = portal.get(&alice, &format!("{item_url}/policy")).await;
    shows("alice", "resume", &form, &["Resume backup"], &[]);
    let (status, to) = portal
        .post(
            &alice,
            &format!("{item_url}/policy"),
            &[("policy", "DefaultPolicy")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let item: Value = admin.get_json("api/v1/vaults/v1/items/vm1").await.unwrap();
    assert_eq!(
        (item["policy"].as_str(), item["protectionState"].as_str()),
        (Some("DefaultPolicy"), Some("Protected")),
        "{item}"
    );

    // API tokens: none; one made with a role alice does not hold is refused; one
    // made with her own works, once shown; revoked, it stops.
    let (_, tokens) = portal.get(&alice, "/account/tokens").await;
    shows(
        "alice",
        "/account/tokens",
        &tokens,
        &[
            "You have no API token",
            r#"value="Contributor /resourceGroups/rg" checked"#,
        ],
        &[],
    );
    let (status, html) = portal
        .post(
            &alice,
            "/account/tokens",
            &[
                ("name", "too-strong"),
                ("expires_in_days", "30"),
                ("role", "Owner"),
                ("scope", "/"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    shows(
        "alice",
        "a stronger token",
        &html,
        &["TokenRoleNotHeld"],
        &[],
    );
    let (status, html) = portal
        .post(
            &alice,
            "/account/tokens",
            &[
                ("name", "ci"),
                ("expires_in_days", "30"),
                ("keep", "Contributor /resourceGroups/rg"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let at = html.find(r#"id="new-token-secret">"#).unwrap() + r#"id="new-token-secret">"#.len();
    let secret = html[at..at + html[at..].find('<').unwrap()].to_string();
    let with_token = common::client(&w.server, Some(&secret));
    let vaults: Value = with_token.get_json("api/v1/vaults").await.unwrap();
    assert_eq!(vaults.as_array().unwrap().len(), 1, "{vaults}");
    let (_, tokens) = portal.get(&alice, "/account/tokens").await;
    shows(
        "alice",
        "/account/tokens",
        &tokens,
        &["ci", "Contributor", "2026-02-09"],
        &[&secret, "too-strong"],
    );
    let id = {
        let at = tokens.find(r#"data-token=""#).unwrap() + 12;
        tokens[at..at + tokens[at..].find('"').unwrap()].to_string()
    };
    let (status, to) = portal
        .post(&alice, &format!("/account/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    assert_eq!(
        common::code(with_token.get_json::<Value>("api/v1/vaults").await),
        "Unauthorized"
    );
    let (_, tokens) = portal.get(&alice, "/account/tokens").await;
    shows(
        "alice",
        "/account/tokens",
        &tokens,
        &["You have no API token"],
        &[],
    );
    w.finish().await;
}
