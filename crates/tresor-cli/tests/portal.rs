//! The portal in a real browser (headless Chromium): the seed's click path against a
//! real `tresor serve`, a real agent and a QEMU VM, asserting what each page shows.
//! Every step leaves a screenshot in `target/tmp/portal-screenshots/` for a person
//! to look at.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::browser::Browser;
use common::service::*;

/// A server (with its own agent and a VM `app` on host `kvm1`) and a signed-in browser.
struct Portal {
    _server: Proc,
    cli: Cli,
    browser: Browser,
    token: String,
}

fn shots_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("portal-screenshots")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn start(d: &Path, agent_toml: &Path, test: &str) -> Portal {
    let data = d.join("server");
    let port = free_port();
    let server = Proc(
        tresor_bin()
            .args(["serve", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--with-local-agent", "--agent-config"])
            .arg(agent_toml)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the server", Duration::from_secs(30), || {
        data.join("cli.json").exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let cli_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("cli.json")).unwrap()).unwrap();
    let browser = Browser::start(&format!("https://127.0.0.1:{port}"), shots_dir(test));
    Portal {
        _server: server,
        cli: Cli {
            config: data.join("cli.json"),
        },
        browser,
        token: cli_json["token"].as_str().unwrap().to_string(),
    }
}

#[test]
fn signing_in_and_vault_names_follow_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vm = start_vm(d, "app", 16 * MIB);
    let agent_toml = agent_config(d, None, ("kvm1", "local"), ("app", &vm.agent_qmp), None);
    let mut p = start(d, &agent_toml, "sign-in-and-vault-names");
    let b = &mut p.browser;

    // Every page asks for a session first.
    b.goto("/vaults");
    b.wait_text("h1", "Sign in to Tresor");
    assert!(b.path().starts_with("/login"), "{}", b.path());
    b.fill("#token", "tresor_admin_wrong");
    b.click_text("Sign in");
    b.wait_text("[role=alert]", "not valid");
    b.shot("sign-in-refused");
    b.fill("#token", &p.token);
    b.click_text("Sign in");
    b.wait_text("h1", "Recovery Services vaults");
    assert_eq!(b.path(), "/vaults");
    // The session cookie is out of the page's reach (HttpOnly).
    assert_eq!(b.js("return document.cookie", vec![]), "");
    b.shot("no-vaults-yet");

    // "+ Add": the name is checked as it is typed, with the rule shown.
    b.click_text("+ Add");
    b.wait_text("h1", "Create Recovery Services vault");
    b.fill("#name", "1-vault");
    let msg = b.wait_text("#name-error", "2 to 50 characters");
    assert!(msg.contains("letter first"), "{msg}");
    assert_eq!(b.attr("#name", "aria-invalid").as_deref(), Some("true"));
    assert!(
        b.js(
            "return document.querySelector('form.stack button[type=submit]').disabled",
            vec![]
        ) == true
    );
    b.shot("vault-name-rejected-live");
    // The server applies the same rule when the form is sent anyway (no script).
    b.js(
        "document.querySelector('form.stack button[type=submit]').disabled = false; document.querySelector('form.stack').submit()",
        vec![],
    );
    b.wait_text("[role=alert]", "InvalidVaultName");
    b.shot("vault-name-rejected-by-server");

    b.fill("#name", "Vault-1");
    b.wait_text("#name-error", "");
    b.fill("#resource_group", "rg-backup");
    b.fill("#location", "local");
    b.click_text("Create");
    b.wait_text("[role=status]", "Vault Vault-1 created");
    b.wait_text("h1", "Vault-1");
    b.shot("vault-overview");

    // A second vault of the same name, whatever the case, is refused as you type.
    b.goto("/vaults/new");
    b.fill("#name", "vault-1");
    b.wait_text("#name-error", "already exists");

    // Backup configuration: GeoRedundant, changeable until the first backup.
    b.goto("/vaults/Vault-1/configuration");
    b.wait_text("main", "Storage replication type");
    assert!(!b.exists("#locked-reason"));
    b.shot("backup-configuration");
    let list = p.cli.json(&["vault", "list"]);
    assert_eq!(list[0]["name"], "Vault-1");

    // Signing out ends the session.
    b.click_text("Sign out");
    b.wait_text("h1", "Sign in to Tresor");
    b.goto("/vaults");
    b.wait_text("h1", "Sign in to Tresor");
}
