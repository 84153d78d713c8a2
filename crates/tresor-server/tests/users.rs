//! Users over the real HTTPS listener: the admin token makes a Reader user; the user
//! signs in to the portal with name and password (and, once TOTP is enabled and
//! confirmed, a code computed here), and the session holds the Reader's rights and
//! no more, with the CSRF rules of a token's session.

mod common;

use common::portal::Portal;
use common::{audit_log, client, entries, refusal};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tresor_api::tokens::{Role, RoleAssignment, Scope};
use tresor_api::users::{ConfirmTotp, CreateUser, SetPassword};

const PASSWORD: &str = "correct horse battery staple";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_user_signs_in_with_password_and_totp_and_reads_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::quiet_server(dir.path()).await;
    let admin = client(&server, server.new_admin_token.as_deref());
    let portal = Portal::of(&server);
    let _: Value = admin
        .post_json(
            "api/v1/vaults",
            &json!({"name": "v1", "resourceGroup": "rg1", "location": "local"}),
        )
        .await
        .unwrap();

    // The admin token makes the first user; passwords have 12 characters or more.
    let reader = |password: &str| CreateUser {
        name: "Reader1".into(),
        password: password.into(),
        roles: vec![RoleAssignment::new(Role::Reader, Scope::Installation)],
    };
    let (status, code, _) = refusal(admin.create_user(&reader("short pass")).await);
    assert_eq!((status, code.as_str()), (400, "WeakPassword"));
    let user = admin.create_user(&reader(PASSWORD)).await.unwrap();
    assert!(!user.totp);
    let mut twin = reader(PASSWORD);
    twin.name = "READER1".into();
    assert_eq!(refusal(admin.create_user(&twin).await).0, 409);

    // Wrong password, unknown user: no session.
    assert!(portal
        .sign_in("reader1", "wrong password!!", None)
        .await
        .is_none());
    assert!(portal.sign_in("nobody", PASSWORD, None).await.is_none());

    // Name (whatever its case) and password: a session with the Reader's rights.
    let session = portal.sign_in("reader1", PASSWORD, None).await.unwrap();
    let (status, vaults) = portal
        .call(reqwest::Method::GET, "/api/v1/vaults", &session, None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(vaults[0]["name"], "v1");
    let new_vault = json!({"name": "v2", "resourceGroup": "rg1", "location": "local"});
    // Writes need the session's CSRF token, as for a token's session...
    let (status, body) = portal
        .call(
            reqwest::Method::POST,
            "/api/v1/vaults",
            &session,
            None,
            Some(new_vault.clone()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("Forbidden"))
    );
    // ...and with it, a Reader still may not create a vault, nor see users.
    let csrf = portal.csrf(&session).await;
    let (status, body) = portal
        .call(
            reqwest::Method::POST,
            "/api/v1/vaults",
            &session,
            Some(&csrf),
            Some(new_vault),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "MissingPermission", "{body}");
    let (status, body) = portal
        .call(reqwest::Method::GET, "/api/v1/users", &session, None, None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("MissingPermission"))
    );

    // The user turns TOTP on for themselves: a secret, confirmed by its first code.
    let (status, setup) = portal
        .call(
            reqwest::Method::POST,
            "/api/v1/users/reader1/totp",
            &session,
            Some(&csrf),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    let secret = setup["secret"].as_str().unwrap().to_string();
    assert!(setup["uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/Tresor:Reader1?secret="));
    // Not in effect before it is confirmed.
    assert!(portal.sign_in("reader1", PASSWORD, None).await.is_some());
    let wrong = ConfirmTotp {
        code: "000000".into(),
    };
    let now = tresor_service::auth::totp::code(&secret, unix_now()).unwrap();
    if wrong.code != now {
        let (status, code, _) = refusal(admin.confirm_totp("reader1", &wrong).await);
        assert_eq!((status, code.as_str()), (400, "InvalidTotpCode"));
    }
    let (status, _) = portal
        .call(
            reqwest::Method::POST,
            "/api/v1/users/reader1/totp/confirm",
            &session,
            Some(&csrf),
            Some(json!({"code": tresor_service::auth::totp::code(&secret, unix_now()).unwrap()})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(admin.users().await.unwrap()[0].totp);

    // Now the password alone is not enough; with the code it is.
    assert!(portal.sign_in("reader1", PASSWORD, None).await.is_none());
    assert!(
        portal
            .sign_in("reader1", PASSWORD, Some("123456"))
            .await
            .is_none()
            || tresor_service::auth::totp::verify(&secret, "123456", unix_now())
    );
    // The confirmation took the code of now: the next one (a phone's clock a step
    // ahead is accepted) signs in, once.
    let code_now =
        tresor_service::auth::totp::code(&secret, unix_now() + tresor_service::auth::totp::STEP)
            .unwrap();
    let still = portal
        .call(reqwest::Method::GET, "/api/v1/vaults", &session, None, None)
        .await;
    assert_eq!(still.0, StatusCode::OK, "sessions opened before TOTP stay");
    let with_totp = portal
        .sign_in("reader1", PASSWORD, Some(&code_now))
        .await
        .unwrap();
    assert!(
        portal
            .sign_in("reader1", PASSWORD, Some(&code_now))
            .await
            .is_none(),
        "a TOTP code is taken once"
    );
    let (status, _) = portal
        .call(
            reqwest::Method::GET,
            "/api/v1/vaults",
            &with_totp,
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Changing one's own password needs the current one, and ends one's sessions.
    let csrf2 = portal.csrf(&with_totp).await;
    let (status, body) = portal
        .call(
            reqwest::Method::PUT,
            "/api/v1/users/reader1/password",
            &with_totp,
            Some(&csrf2),
            Some(json!({"password": "another long passphrase"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = portal
        .call(
            reqwest::Method::PUT,
            "/api/v1/users/reader1/password",
            &with_totp,
            Some(&csrf2),
            Some(json!({"password": "another long passphrase", "currentPassword": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = portal
        .call(
            reqwest::Method::GET,
            "/api/v1/vaults",
            &with_totp,
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The admin may set it without the current one; and delete the user.
    admin
        .set_password(
            "reader1",
            &SetPassword {
                password: PASSWORD.into(),
                current_password: None,
            },
        )
        .await
        .unwrap();
    admin.disable_totp("reader1").await.unwrap();
    // Roles change: the user's sessions end, and the new roles hold from the next
    // sign-in on.
    let before = portal.sign_in("reader1", PASSWORD, None).await.unwrap();
    let contributor = vec![tresor_api::tokens::RoleAssignment::new(
        tresor_api::tokens::Role::Contributor,
        tresor_api::tokens::Scope::Installation,
    )];
    let changed = admin
        .set_user_roles(
            "reader1",
            &tresor_api::users::SetRoles {
                roles: contributor.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.roles, contributor);
    let (status, _) = portal
        .call(reqwest::Method::GET, "/api/v1/vaults", &before, None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let last = portal.sign_in("reader1", PASSWORD, None).await.unwrap();
    admin.delete_user("reader1").await.unwrap();
    let (status, _) = portal
        .call(reqwest::Method::GET, "/api/v1/vaults", &last, None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(portal.sign_in("reader1", PASSWORD, None).await.is_none());

    // The audit log has the sign-ins, refused ones without saying what was wrong.
    let log = audit_log(&admin).await;
    assert!(entries(&log, "signin", "Succeeded")
        .iter()
        .any(|e| e.actor_kind == "user" && e.actor == "Reader1"));
    let refused = entries(&log, "signin", "InvalidSignIn");
    assert!(refused.len() >= 4, "{refused:?}");
    for e in refused {
        assert_eq!(e.detail, "portal, password", "{e:?}");
    }
    server.shutdown().await;
}
