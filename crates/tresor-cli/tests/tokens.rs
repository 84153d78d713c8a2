//! `tresor token ...` and `tresor vault update` against a real `tresor serve` (no VM):
//! a token made with roles, a scope and an expiry, used, listed and revoked; a vault's
//! properties updated under the `az backup vault update` name.

mod common;

use common::service::*;
use serde_json::Value;

#[test]
fn tokens_and_vault_update_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let _server = start_server(&data);
    let cli = Cli {
        config: data.join("cli.json"),
    };
    cli.ok(&[
        "vault",
        "create",
        "-n",
        "Vault-1",
        "-g",
        "rg1",
        "-l",
        "westeurope",
    ]);
    cli.ok(&[
        "vault",
        "create",
        "-n",
        "Vault-2",
        "-g",
        "rg2",
        "-l",
        "westeurope",
    ]);

    // An installation token (the admin token is no user's), a Reader of rg1 for 30 days.
    let made = cli.json(&[
        "token",
        "create",
        "--name",
        "reports",
        "--role",
        "Reader",
        "--scope",
        "/resourceGroups/rg1",
        "--expires-in-days",
        "30",
    ]);
    assert_eq!(made["roles"][0]["role"], "Reader", "{made}");
    assert_eq!(made["roles"][0]["scope"], "/resourceGroups/rg1", "{made}");
    assert!(made["expires"].is_string(), "{made}");
    assert!(made.get("owner").is_none(), "{made}");
    let secret = made["token"].as_str().unwrap();
    let id = made["id"].as_str().unwrap();

    // It reads its group's vault and no other.
    let as_token = |args: &[&str]| {
        tresor_bin()
            .env("TRESOR_CONFIG", &cli.config)
            .env("TRESOR_TOKEN", secret)
            .args(args)
            .output()
            .unwrap()
    };
    let listed = as_token(&["vault", "list", "-o", "json"]);
    assert!(listed.status.success());
    let vaults: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(vaults.as_array().unwrap().len(), 1, "{vaults}");
    assert_eq!(vaults[0]["name"], "Vault-1");
    let refused = as_token(&["vault", "show", "-n", "Vault-2"]);
    assert!(!refused.status.success());

    // The table names owner, roles and expiry; the secret never shows again.
    let table = cli.ok(&["token", "list"]);
    let row = table.lines().find(|l| l.contains("reports")).unwrap();
    assert!(row.contains("(installation)"), "{row}");
    assert!(row.contains("Reader@/resourceGroups/rg1"), "{row}");
    assert!(!table.contains(secret));
    let e = cli.fails(&[
        "token",
        "create",
        "--name",
        "x",
        "--role",
        "Reader",
        "--role",
        "Owner",
        "--role",
        "Reader",
        "--scope",
        "/",
        "--scope",
        "/resourceGroups/rg1",
    ]);
    assert!(e.contains("do not pair up"), "{e}");
    let e = cli.fails(&[
        "token",
        "create",
        "--name",
        "x",
        "--role",
        "Reader",
        "--expires-in-days",
        "0",
    ]);
    assert!(e.contains("InvalidTokenExpiry"), "{e}");

    cli.ok(&["token", "delete", "--id", id]);
    assert!(!cli.ok(&["token", "list"]).contains("reports"));
    assert!(!as_token(&["vault", "list"]).status.success());

    // `vault update` is `vault backup-properties set` under Azure's name.
    let v = cli.json(&[
        "vault",
        "update",
        "--name",
        "Vault-1",
        "--soft-delete-days",
        "30",
        "--immutability",
        "Enabled",
    ]);
    assert_eq!(v["softDeleteDays"], 30, "{v}");
    assert_eq!(v["immutability"], "Enabled", "{v}");
    let v = cli.json(&[
        "vault",
        "backup-properties",
        "set",
        "--name",
        "Vault-1",
        "--immutability",
        "Disabled",
    ]);
    assert_eq!(v["immutability"], "Disabled", "{v}");
    let e = cli.fails(&["vault", "update", "--name", "Vault-1"]);
    assert!(e.contains("nothing to set"), "{e}");
}
