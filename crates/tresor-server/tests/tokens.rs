//! API tokens of users over the real HTTPS listener: a user makes their own tokens
//! (their roles by default, never more than they hold), a token acts with what its
//! user still holds, expires by the server's clock, and lists and revokes as its
//! user's; TOTP codes are taken once; a vault's readers see that vault's host agents
//! and no others.

mod common;

use std::net::IpAddr;

use common::portal::Portal;
use common::world::world;
use common::{audit_log, client, code, entries, refusal, sign_in_from, SignedIn};

use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tresor_api::agents::RegisterRequest;
use tresor_api::tokens::{CreateToken, Role, RoleAssignment, Scope};
use tresor_api::users::{CreateUser, SetRoles};
use tresor_api::vaults::CredentialsRequest;
use tresor_client::ApiClient;
use tresor_service::auth::totp;

const PASSWORD: &str = "correct horse battery staple";

fn at(role: Role, scope: &str) -> RoleAssignment {
    RoleAssignment::new(role, scope.parse::<Scope>().unwrap())
}

async fn create_vault(admin: &ApiClient, name: &str, group: &str) {
    let _: Value = admin
        .post_json(
            "api/v1/vaults",
            &json!({"name": name, "resourceGroup": group, "location": "local"}),
        )
        .await
        .unwrap();
}

async fn create_user(admin: &ApiClient, name: &str, roles: Vec<RoleAssignment>) {
    admin
        .create_user(&CreateUser {
            name: name.into(),
            password: PASSWORD.into(),
            roles,
        })
        .await
        .unwrap();
}

fn roles(v: &Value) -> Vec<RoleAssignment> {
    serde_json::from_value(v["roles"].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_tokens_hold_no_more_than_the_user_and_expire() {
    let w = world().await;
    let (server, clock, admin) = (&w.server, &w.clock, &w.admin);
    create_vault(admin, "v1", "rg1").await;
    create_vault(admin, "v2", "rg2").await;
    let operator = vec![at(Role::BackupOperator, "/resourceGroups/rg1")];
    create_user(admin, "op", operator.clone()).await;
    create_user(admin, "other", vec![at(Role::Reader, "/")]).await;
    let op = SignedIn::new(server, "op", PASSWORD, None).await;

    // By default a token holds its user's own assignments, and belongs to them.
    let (status, made) = op
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "op-cli"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(roles(&made), operator);
    assert_eq!(made["owner"], "op");
    assert!(made.get("expires").is_none(), "{made}");
    let op_cli = client(server, made["token"].as_str());
    let op_cli_id = made["id"].as_str().unwrap().to_string();

    // Never more than the user holds: a stronger role, or a wider scope.
    for more in [
        json!([{"role": "Owner", "scope": "/resourceGroups/rg1"}]),
        json!([{"role": "BackupOperator", "scope": "/"}]),
        json!([{"role": "Reader", "scope": "/resourceGroups/rg2/vaults/v2"}]),
    ] {
        let (status, body) = op
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": "more", "roles": more})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "TokenRoleNotHeld", "{body}");
    }
    // A token for someone else cannot even be asked for.
    let (status, body) = op
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "theirs", "user": "other"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for days in [0, 3651] {
        let (status, body) = op
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": "lifetime", "expiresInDays": days})),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("InvalidTokenExpiry")),
            "{body}"
        );
    }
    // Less is fine: a Reader of one vault of the group, for a day.
    let (status, made) = op
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({
                "name": "v1-reader",
                "roles": [{"role": "Reader", "scope": "/resourceGroups/rg1/vaults/v1"}],
                "expiresInDays": 1,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let day_later = w.now() + SignedDuration::from_hours(24);
    assert_eq!(made["expires"], day_later.to_string());
    let v1_reader = client(server, made["token"].as_str());
    let v1_reader_id = made["id"].as_str().unwrap().to_string();

    // The token works for what the user may do, and for nothing else.
    let vaults: Vec<String> = op_cli
        .list_vaults()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(vaults, ["v1"]);
    let credentials = CredentialsRequest::default();
    op_cli.vault_credentials("v1", &credentials).await.unwrap();
    assert_eq!(
        code(op_cli.vault_credentials("v2", &credentials).await),
        "MissingPermission"
    );
    assert_eq!(code(op_cli.users().await), "MissingPermission");
    // Nor does it take over the person: TOTP changes need the password's session.
    assert_eq!(code(op_cli.enable_totp("op").await), "Forbidden");
    assert_eq!(code(op_cli.disable_totp("op").await), "Forbidden");
    assert_eq!(
        code(v1_reader.vault_credentials("v1", &credentials).await),
        "MissingPermission"
    );
    assert_eq!(v1_reader.vault("v1").await.unwrap().name, "v1");
    // A token made with a token holds no more than that token.
    let narrow = v1_reader
        .create_token(&CreateToken {
            name: "wider".into(),
            roles: Some(operator.clone()),
            expires_in_days: None,
        })
        .await;
    assert_eq!(code(narrow), "TokenRoleNotHeld");

    // Each lists their own tokens; Access.Manage lists all, with owners.
    let other = SignedIn::new(server, "other", PASSWORD, None).await;
    let (status, made) = other
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "other-cli"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let other_cli_id = made["id"].as_str().unwrap().to_string();
    let other_cli = client(server, made["token"].as_str());
    let mut mine: Vec<String> = op_cli
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            assert_eq!(t.owner.as_deref(), Some("op"));
            t.name
        })
        .collect();
    mine.sort();
    assert_eq!(mine, ["op-cli", "v1-reader"]);
    let all = admin.tokens().await.unwrap();
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.iter().any(|t| t.name == "admin" && t.owner.is_none()));
    assert!(all
        .iter()
        .any(|t| t.id == other_cli_id && t.owner.as_deref() == Some("other")));
    // One revokes one's own only.
    assert_eq!(
        code(op_cli.delete_token(&other_cli_id).await),
        "MissingPermission"
    );
    assert_eq!(
        code(op_cli.delete_token("no-such-token").await),
        "MissingPermission"
    );
    // The refusals changed nothing.
    other_cli.list_vaults().await.unwrap();

    // Taking a role from the user takes it from their tokens at once; giving it back
    // gives it back.
    let set_roles = |roles: Vec<RoleAssignment>| async move {
        admin
            .set_user_roles("op", &SetRoles { roles })
            .await
            .unwrap()
    };
    set_roles(vec![at(Role::Reader, "/resourceGroups/rg1")]).await;
    assert_eq!(
        code(op_cli.vault_credentials("v1", &credentials).await),
        "MissingPermission"
    );
    assert_eq!(code(op_cli.list_vaults().await), "MissingPermission");
    // What the user still holds stays: the Reader of v1.
    assert_eq!(v1_reader.vault("v1").await.unwrap().name, "v1");
    set_roles(operator.clone()).await;
    op_cli.vault_credentials("v1", &credentials).await.unwrap();

    // A day later the day's token is refused, naming itself; the other works on.
    clock.advance(SignedDuration::from_hours(24) - SignedDuration::from_secs(1));
    assert_eq!(v1_reader.vault("v1").await.unwrap().name, "v1");
    clock.advance(SignedDuration::from_secs(1));
    let (status, expired, message) = refusal(v1_reader.vault("v1").await);
    assert_eq!((status, expired.as_str()), (401, "TokenExpired"));
    assert!(message.contains("v1-reader"), "{message}");
    assert_eq!(op_cli.vault("v1").await.unwrap().name, "v1");
    op_cli.delete_token(&v1_reader_id).await.unwrap();
    assert_eq!(op_cli.tokens().await.unwrap().len(), 1);

    // The installation's admin token makes installation tokens, owned by no one.
    let installation = admin
        .create_token(&CreateToken {
            name: "reports".into(),
            roles: Some(vec![at(Role::Reader, "/")]),
            expires_in_days: Some(30),
        })
        .await
        .unwrap();
    assert_eq!(installation.owner, None);
    assert!(installation.expires.is_some());

    // A user's tokens go with the user.
    admin.delete_user("op").await.unwrap();
    assert_eq!(code(op_cli.list_vaults().await), "Unauthorized");
    assert!(admin
        .tokens()
        .await
        .unwrap()
        .iter()
        .all(|t| t.id != op_cli_id));

    // All of it is in the audit log, made by the users.
    let log = audit_log(admin).await;
    assert!(entries(&log, "token.create", "Succeeded")
        .iter()
        .any(|e| e.actor == "op" && e.detail.contains("owner op")));
    assert!(entries(&log, "token.create", "TokenRoleNotHeld")
        .iter()
        .any(|e| e.actor == "op"));
    assert!(entries(&log, "token.delete", "Succeeded")
        .iter()
        .any(|e| e.actor == "op (token op-cli)"));
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_code_is_taken_once_and_wrong_codes_run_out() {
    let w = world().await;
    let (server, clock, admin) = (&w.server, &w.clock, &w.admin);
    let portal = Portal::of(server);
    create_user(admin, "alice", vec![at(Role::Reader, "/")]).await;
    let alice = SignedIn::new(server, "alice", PASSWORD, None).await;
    let (status, setup) = alice
        .call(Method::POST, "/api/v1/users/alice/totp", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    let secret = setup["secret"].as_str().unwrap().to_string();
    let now = totp::code(&secret, clock.unix()).unwrap();
    let (status, body) = alice
        .call(
            Method::POST,
            "/api/v1/users/alice/totp/confirm",
            Some(json!({ "code": now })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // The confirmation took the code of now: it signs no one in, in its 30 seconds
    // or the next (where it is still accepted as one step late).
    assert!(portal
        .sign_in("alice", PASSWORD, Some(&now))
        .await
        .is_none());
    clock.advance(SignedDuration::from_secs(totp::STEP as i64));
    assert!(portal
        .sign_in("alice", PASSWORD, Some(&now))
        .await
        .is_none());
    // The next code signs in, once.
    let next = totp::code(&secret, clock.unix()).unwrap();
    assert!(portal
        .sign_in("alice", PASSWORD, Some(&next))
        .await
        .is_some());
    assert!(portal
        .sign_in("alice", PASSWORD, Some(&next))
        .await
        .is_none());
    // Nor does an older code come back once a later one was taken.
    let ahead = totp::code(&secret, clock.unix() + totp::STEP).unwrap();
    assert!(portal
        .sign_in("alice", PASSWORD, Some(&ahead))
        .await
        .is_some());
    assert!(portal
        .sign_in("alice", PASSWORD, Some(&next))
        .await
        .is_none());

    // Wrong codes, at confirming as at signing in, count against the address until
    // it gets no answer but TooManyAttempts.
    let (status, _) = alice
        .call(Method::POST, "/api/v1/users/alice/totp", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut codes = Vec::new();
    for _ in 0..12 {
        let (status, body) = alice
            .call(
                Method::POST,
                "/api/v1/users/alice/totp/confirm",
                Some(json!({"code": "12345x"})),
            )
            .await;
        codes.push((status, body["code"].as_str().unwrap_or("").to_string()));
    }
    assert!(
        codes.contains(&(StatusCode::BAD_REQUEST, "InvalidTotpCode".into())),
        "{codes:?}"
    );
    assert_eq!(
        codes.last().unwrap(),
        &(StatusCode::TOO_MANY_REQUESTS, "TooManyAttempts".into())
    );
    w.finish().await;
}

/// A user with TOTP turned on (and confirmed at the server's now): the secret.
async fn with_totp(w: &common::world::World, name: &str) -> String {
    create_user(&w.admin, name, vec![at(Role::Reader, "/")]).await;
    let user = SignedIn::new(&w.server, name, PASSWORD, None).await;
    let (status, setup) = user
        .call(Method::POST, &format!("/api/v1/users/{name}/totp"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    let secret = setup["secret"].as_str().unwrap().to_string();
    let first = totp::code(&secret, w.clock.unix()).unwrap();
    let (status, body) = user
        .call(
            Method::POST,
            &format!("/api/v1/users/{name}/totp/confirm"),
            Some(json!({ "code": first })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    secret
}

/// The local address 127.0.0.`n`.
fn local(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_totp_codes_run_out_per_user_from_any_address() {
    let w = world().await;
    let alice = with_totp(&w, "alice").await;
    let bob = with_totp(&w, "bob").await;
    // The confirmations took the codes of now: sign-ins use the next step's.
    w.clock
        .advance(SignedDuration::from_secs(totp::STEP as i64));
    let wrong = |secret: &str| {
        let right = totp::code(secret, w.clock.unix()).unwrap();
        if right == "000000" {
            "111111"
        } else {
            "000000"
        }
        .to_string()
    };

    // Five failed sign-ins with a code for alice, each from its own address (so no
    // address runs out), the password right or wrong: each the same InvalidSignIn.
    let password = |n: u8| {
        if n.is_multiple_of(2) {
            PASSWORD
        } else {
            "not alice's password"
        }
    };
    for n in 2..7 {
        let a = sign_in_from(
            &w.server,
            local(n),
            "alice",
            password(n),
            Some(&wrong(&alice)),
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{a:?}");
        assert!(a.session.is_none(), "{a:?}");
    }
    // From then on, for the rest of the 15 minutes, alice's sign-in with a code is
    // refused from any address, the right code with the right password too, and a
    // wrong password gets the very same answer.
    let code_now = totp::code(&alice, w.clock.unix()).unwrap();
    let right = sign_in_from(&w.server, local(7), "ALICE", PASSWORD, Some(&code_now)).await;
    let wrong_password = sign_in_from(
        &w.server,
        local(8),
        "alice",
        "not alice's password",
        Some(&code_now),
    )
    .await;
    for a in [&right, &wrong_password] {
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{a:?}");
        assert_eq!(a.code.as_deref(), Some("TooManyAttempts"), "{a:?}");
        assert!(a.session.is_none());
    }
    let wait = right.retry_after.unwrap();
    assert!((14 * 60..=15 * 60).contains(&wait), "{wait}");
    assert_eq!(wrong_password.retry_after, Some(wait));
    // The limit is alice's: bob, from one of the same addresses, signs in.
    let b = sign_in_from(
        &w.server,
        local(2),
        "bob",
        PASSWORD,
        Some(&totp::code(&bob, w.clock.unix()).unwrap()),
    )
    .await;
    assert!(b.session.is_some(), "{b:?}");

    // Just before the window ends alice is still refused; at its end she signs in.
    w.clock.advance(SignedDuration::from_secs(wait as i64 - 1));
    let code_now = totp::code(&alice, w.clock.unix()).unwrap();
    let a = sign_in_from(&w.server, local(9), "alice", PASSWORD, Some(&code_now)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{a:?}");
    w.clock
        .advance(SignedDuration::from_secs(totp::STEP as i64));
    let code_now = totp::code(&alice, w.clock.unix()).unwrap();
    let a = sign_in_from(&w.server, local(9), "alice", PASSWORD, Some(&code_now)).await;
    assert!(a.session.is_some(), "{a:?}");

    // The refusals are in the audit log, under the name tried, with the address.
    let log = audit_log(&w.admin).await;
    let refused = entries(&log, "signin", "TooManyAttempts");
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused
        .iter()
        .all(|e| e.object.eq_ignore_ascii_case("alice")));
    assert!(
        refused.iter().any(|e| e.origin == "127.0.0.8"),
        "{refused:?}"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vaults_readers_see_its_host_agents_and_no_others() {
    let w = world().await;
    let (server, admin) = (&w.server, &w.admin);
    create_vault(admin, "v1", "rg1").await;
    create_vault(admin, "v2", "rg2").await;
    // One host registers with each vault's credentials file.
    for (vault, host) in [("v1", "kvm-one"), ("v2", "kvm-two")] {
        let file = admin
            .vault_credentials(vault, &CredentialsRequest::default())
            .await
            .unwrap();
        client(server, None)
            .register_agent(&RegisterRequest {
                secret: file.secret,
                host: host.into(),
                location: None,
                vault: Some(vault.into()),
                version: None,
            })
            .await
            .unwrap();
    }
    let hosts = |api: ApiClient| async move {
        api.agents()
            .await
            .map(|a| a.into_iter().map(|a| a.host).collect::<Vec<_>>())
    };
    assert_eq!(hosts(admin.clone()).await.unwrap(), ["kvm-one", "kvm-two"]);
    for (role, scope, seen) in [
        (Role::Reader, "/", vec!["kvm-one", "kvm-two"]),
        (
            Role::Reader,
            "/resourceGroups/rg1/vaults/v1",
            vec!["kvm-one"],
        ),
        (Role::BackupOperator, "/resourceGroups/RG2", vec!["kvm-two"]),
        (Role::Reader, "/resourceGroups/rg3", vec![]),
    ] {
        let token = common::token_with(admin, "scoped", role, scope).await;
        assert_eq!(
            hosts(client(server, Some(&token))).await.unwrap(),
            seen,
            "{role} at {scope}"
        );
    }
    w.finish().await;
}
