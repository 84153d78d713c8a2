//! The portal's pages per role, over the real HTTPS listener without QEMU: a Reader
//! and a Backup Operator (users signed in with name and password) see only the
//! buttons, forms and links of what they may do; a form posted anyway is refused by
//! the service (403, `MissingPermission` on the page); the admin token's Owner sees
//! everything, the Users page included; a user's "My account" turns TOTP on with a
//! code computed here, after which signing in needs it.

mod common;

use common::client;

use common::portal::{shows, Portal, Session};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tresor_api::tokens::{Role, RoleAssignment, Scope};
use tresor_api::users::CreateUser;

const PASSWORD: &str = "correct horse battery staple";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `name` signed in with `PASSWORD` (and `code`), or `None` when refused.
async fn user(portal: &Portal, name: &str, code: Option<&str>) -> Option<Session> {
    portal
        .sign_in_with(&[
            ("user", name),
            ("password", PASSWORD),
            ("totp", code.unwrap_or("")),
        ])
        .await
}

// Markup of what the pages offer.
const ADD_VAULT: &str = r#"href="/vaults/new""#;
const ADD_BACKUP: &str = r#"href="/vaults/v1/backup""#;
const DELETE_VAULT: &str = r#"action="/vaults/v1/delete""#;
const ADD_POLICY: &str = r#"href="/vaults/v1/policies/new""#;
const EDIT_POLICY: &str = "edit-policy";
const DELETE_POLICY: &str = "delete-policy-form";
const SAVE_CONFIGURATION: &str = r#"action="/vaults/v1/configuration""#;
const USERS_LINK: &str = r#"href="/users""#;
const AUDIT_LINK: &str = r#"href="/audit""#;
const AGENTS_LINK: &str = r#"href="/agents""#;
const ACCOUNT_LINK: &str = r#"href="/account""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_sees_what_it_may_do_and_is_refused_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::quiet_server(dir.path()).await;
    let token = server.new_admin_token.clone().unwrap();
    let admin = client(&server, Some(&token));
    let portal = Portal::of(&server);
    let _: Value = admin
        .post_json(
            "api/v1/vaults",
            &json!({"name": "v1", "resourceGroup": "rg1", "location": "local"}),
        )
        .await
        .unwrap();
    let vault_scope = Scope::parse("/resourceGroups/rg1/vaults/v1").unwrap();
    for (name, role, scope) in [
        ("reader", Role::Reader, vault_scope.clone()),
        ("operator", Role::BackupOperator, Scope::Installation),
    ] {
        admin
            .create_user(&CreateUser {
                name: name.into(),
                password: PASSWORD.into(),
                roles: vec![RoleAssignment::new(role, scope)],
            })
            .await
            .unwrap();
    }
    let owner = portal.sign_in_with(&[("token", &token)]).await.unwrap();
    let reader = user(&portal, "reader", None).await.unwrap();
    let operator = user(&portal, "operator", None).await.unwrap();

    // The Owner (the admin token) sees every link and button.
    let (_, vaults) = portal.get(&owner, "/vaults").await;
    shows(
        "owner",
        "/vaults",
        &vaults,
        &[ADD_VAULT, USERS_LINK, AUDIT_LINK, AGENTS_LINK],
        &[ACCOUNT_LINK],
    );
    let (_, overview) = portal.get(&owner, "/vaults/v1").await;
    shows(
        "owner",
        "/vaults/v1",
        &overview,
        &[ADD_BACKUP, DELETE_VAULT],
        &[],
    );
    let (_, policy) = portal
        .get(&owner, "/vaults/v1/policies/DefaultPolicy")
        .await;
    shows(
        "owner",
        "the policy",
        &policy,
        &[EDIT_POLICY, DELETE_POLICY],
        &[],
    );

    // The Reader (at the vault) reads the vault and nothing else.
    let (_, vaults) = portal.get(&reader, "/vaults").await;
    shows(
        "reader",
        "/vaults",
        &vaults,
        &[r#"href="/vaults/v1""#, ACCOUNT_LINK],
        &[ADD_VAULT, USERS_LINK, AUDIT_LINK, AGENTS_LINK],
    );
    let (_, overview) = portal.get(&reader, "/vaults/v1").await;
    shows(
        "reader",
        "/vaults/v1",
        &overview,
        &["Backup items"],
        &[ADD_BACKUP, DELETE_VAULT],
    );
    let (_, policies) = portal.get(&reader, "/vaults/v1/policies").await;
    shows(
        "reader",
        "the policies",
        &policies,
        &["DefaultPolicy"],
        &[ADD_POLICY],
    );
    let (_, policy) = portal
        .get(&reader, "/vaults/v1/policies/DefaultPolicy")
        .await;
    shows(
        "reader",
        "the policy",
        &policy,
        &["Retention range"],
        &[EDIT_POLICY, DELETE_POLICY],
    );
    let (_, config) = portal.get(&reader, "/vaults/v1/configuration").await;
    shows(
        "reader",
        "the configuration",
        &config,
        &["Storage replication type"],
        &[SAVE_CONFIGURATION],
    );

    // The Backup Operator (at /) sees + Backup and the host agents, but no policy
    // changes, no vault properties, no delete, no users, no audit log.
    let (_, vaults) = portal.get(&operator, "/vaults").await;
    shows(
        "operator",
        "/vaults",
        &vaults,
        &[AGENTS_LINK, ACCOUNT_LINK],
        &[ADD_VAULT, USERS_LINK, AUDIT_LINK],
    );
    let (_, overview) = portal.get(&operator, "/vaults/v1").await;
    shows(
        "operator",
        "/vaults/v1",
        &overview,
        &[ADD_BACKUP],
        &[DELETE_VAULT],
    );
    let (_, policy) = portal
        .get(&operator, "/vaults/v1/policies/DefaultPolicy")
        .await;
    shows(
        "operator",
        "the policy",
        &policy,
        &[],
        &[EDIT_POLICY, DELETE_POLICY],
    );
    let (_, config) = portal.get(&operator, "/vaults/v1/configuration").await;
    shows(
        "operator",
        "the configuration",
        &config,
        &[],
        &[SAVE_CONFIGURATION],
    );
    let (_, agents) = portal.get(&operator, "/agents").await;
    shows("operator", "/agents", &agents, &["credentials-form"], &[]);
    let (_, agents) = portal.get(&owner, "/agents").await;
    shows("owner", "/agents", &agents, &["credentials-form"], &[]);

    // Forms posted anyway: the service refuses, and the page says which permission.
    for (who, s, path, fields, permission) in [
        (
            "operator",
            &operator,
            "/vaults/v1/policies/DefaultPolicy/delete",
            vec![],
            "Policies.Manage",
        ),
        (
            "operator",
            &operator,
            "/vaults/v1/delete",
            vec![("confirm_name", "v1")],
            "Vaults.Delete",
        ),
        (
            "reader",
            &reader,
            "/vaults/v1/configuration",
            vec![("cross_region_restore", "true")],
            "Vaults.Update",
        ),
        (
            "reader",
            &reader,
            "/vaults/new",
            vec![
                ("name", "v2"),
                ("resource_group", "rg1"),
                ("location", "local"),
            ],
            "Vaults.Create",
        ),
        (
            "operator",
            &operator,
            "/users",
            vec![
                ("name", "mallory"),
                ("password", PASSWORD),
                ("role", "Owner"),
                ("scope", "/"),
            ],
            "Access.Manage",
        ),
    ] {
        let (status, html) = portal.post(s, path, &fields).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{who} posting {path}: {html}"
        );
        shows(who, path, &html, &["MissingPermission", permission], &[]);
    }
    let (status, html) = portal.get(&reader, "/users").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    shows("reader", "/users", &html, &["MissingPermission"], &[]);
    assert!(admin
        .users()
        .await
        .unwrap()
        .iter()
        .all(|u| u.name != "mallory"));
    let vaults: Value = admin.get_json("api/v1/vaults").await.unwrap();
    assert_eq!(vaults.as_array().unwrap().len(), 1, "{vaults}");

    // The Owner's Users page: both users with their roles; a role changed there
    // holds from the user's next sign-in (the old session ends).
    let (_, users) = portal.get(&owner, "/users").await;
    shows(
        "owner",
        "/users",
        &users,
        &[
            "reader",
            "operator",
            "BackupOperator",
            "/resourceGroups/rg1/vaults/v1",
            "new-user",
        ],
        &[],
    );
    let (status, to) = portal
        .post(
            &owner,
            "/users/reader/roles",
            &[
                ("keep", "Reader /resourceGroups/rg1/vaults/v1"),
                ("role", "Contributor"),
                ("scope", "/resourceGroups/rg1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let (status, _) = portal.get(&reader, "/vaults").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the reader's session outlived a change of roles"
    );
    let contributor = user(&portal, "reader", None).await.unwrap();
    let (_, overview) = portal.get(&contributor, "/vaults/v1").await;
    shows(
        "contributor",
        "/vaults/v1",
        &overview,
        &[ADD_BACKUP, DELETE_VAULT],
        &[],
    );
    let (status, html) = portal
        .post(
            &owner,
            "/users/reader/roles",
            &[("role", "Admin"), ("scope", "/")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    shows(
        "owner",
        "a bad role",
        &html,
        &["is not a role", "BackupOperator"],
        &[],
    );

    // My account: TOTP on, with the code computed here; then sign-in needs it.
    let (_, account) = portal.get(&operator, "/account").await;
    shows(
        "operator",
        "/account",
        &account,
        &["BackupOperator", "enable-totp", "change-password"],
        &[],
    );
    let (status, setup) = portal.post(&operator, "/account/totp", &[]).await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    let secret = {
        let at = setup.find(r#"id="totp-secret">"#).unwrap() + r#"id="totp-secret">"#.len();
        setup[at..at + setup[at..].find('<').unwrap()].to_string()
    };
    shows(
        "operator",
        "the TOTP setup",
        &setup,
        &["otpauth://totp/Tresor:operator?secret="],
        &[],
    );
    let now = tresor_service::auth::totp::code(&secret, unix_now()).unwrap();
    let wrong = format!("{:06}", (now.parse::<u32>().unwrap() + 500_000) % 1_000_000);
    let (status, again) = portal
        .post(
            &operator,
            "/account/totp/confirm",
            &[("code", &wrong), ("secret", &secret)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    shows(
        "operator",
        "a wrong first code",
        &again,
        &["InvalidTotpCode", &secret],
        &[],
    );
    let code = tresor_service::auth::totp::code(&secret, unix_now()).unwrap();
    let (status, to) = portal
        .post(&operator, "/account/totp/confirm", &[("code", &code)])
        .await;
    assert_eq!(
        (status, to.starts_with("/account?done=")),
        (StatusCode::SEE_OTHER, true),
        "{to}"
    );
    assert!(admin
        .users()
        .await
        .unwrap()
        .iter()
        .any(|u| u.name == "operator" && u.totp));
    assert!(
        user(&portal, "operator", None).await.is_none(),
        "signed in without a code"
    );
    assert!(
        user(&portal, "operator", Some(&wrong)).await.is_none(),
        "signed in with a wrong code"
    );
    // Each step's code is taken once (the confirmation took this step's): the next
    // step's code, within the accepted skew, signs in now.
    let code = tresor_service::auth::totp::code(&secret, unix_now() + 30).unwrap();
    let with_code = user(&portal, "operator", Some(&code))
        .await
        .expect("the code signs in");
    let (_, account) = portal.get(&with_code, "/account").await;
    shows(
        "operator",
        "/account",
        &account,
        &["disable-totp"],
        &["enable-totp"],
    );

    // A token's session has no account.
    let (status, html) = portal.get(&owner, "/account").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    shows("owner", "/account", &html, &["token"], &[]);

    // Every change made through these pages, and every refusal, is in the audit log.
    let audit: Value = admin.get_json("api/v1/audit?limit=100").await.unwrap();
    let entries: Vec<(&str, &str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default();
            (field("actor"), field("action"), field("result"))
        })
        .collect();
    for entry in [
        ("operator", "policy.delete", "MissingPermission"),
        ("operator", "vault.delete", "MissingPermission"),
        ("reader", "vault.update", "MissingPermission"),
        ("operator", "user.totp.enable", "Succeeded"),
        ("operator", "user.totp.confirm", "InvalidTotpCode"),
        ("operator", "user.totp.confirm", "Succeeded"),
    ] {
        assert!(
            entries.contains(&entry),
            "{entry:?} not audited: {entries:?}"
        );
    }
    assert!(entries
        .iter()
        .any(|(_, action, result)| *action == "user.roles" && *result == "Succeeded"));
}
