//! The portal in a real browser (headless Chromium): the seed's click path against a
//! real `tresor serve`, a real agent and a QEMU VM, asserting what each page shows.
//! Every step leaves a screenshot in `target/tmp/portal-screenshots/` for a person
//! to look at.

mod common;

use std::path::{Path, PathBuf};
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
    let server = serve_with_local_agent(&data, port, agent_toml);
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

    // Light by default here; dark when the browser prefers it.
    let light = b.js(
        "return getComputedStyle(document.body).backgroundColor",
        vec![],
    );
    let base = b.js("return location.origin", vec![]);
    let mut dark = Browser::start_with(
        base.as_str().unwrap(),
        shots_dir("sign-in-and-vault-names-dark"),
        &["--force-dark-mode"],
    );
    dark.goto("/login");
    dark.fill("#token", &p.token);
    dark.click_text("Sign in");
    dark.wait_text("h1", "Recovery Services vaults");
    let dark_bg = dark.js(
        "return getComputedStyle(document.body).backgroundColor",
        vec![],
    );
    assert_eq!(light, "rgb(246, 247, 249)");
    assert_eq!(dark_bg, "rgb(15, 20, 25)");
    dark.goto("/vaults/Vault-1");
    dark.wait_text("h1", "Vault-1");
    dark.shot("vault-overview-dark");
    drop(dark);

    // Signing out ends the session.
    b.click_text("Sign out");
    b.wait_text("h1", "Sign in to Tresor");
    b.goto("/vaults");
    b.wait_text("h1", "Sign in to Tresor");
}

/// The seed's whole walk, clicked: register a host from the credentials the portal
/// hands out, protect its VM with "+ Backup", back it up now (watching the job move
/// on its own), look at the recovery point, restore it, see a failed job explain
/// itself, and find the configuration locked.
#[test]
fn the_seeds_click_path_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vm = start_vm(d, "app", 256 * MIB);
    let data = d.join("server");
    let _server = start_server(&data);
    let cli = Cli {
        config: data.join("cli.json"),
    };
    let conf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("cli.json")).unwrap()).unwrap();
    let url = conf["server"].as_str().unwrap().to_string();
    let token = conf["token"].as_str().unwrap().to_string();
    let mut b = Browser::start(&url, shots_dir("seed-click-path"));

    b.goto("/login");
    b.fill("#token", &token);
    b.click_text("Sign in");
    b.wait_text("h1", "Recovery Services vaults");
    for (name, rg) in [("Vault-1", "rg-backup"), ("Vault-2", "rg-other")] {
        b.goto("/vaults/new");
        b.fill("#name", name);
        b.fill("#resource_group", rg);
        b.fill("#location", "local");
        b.click_text("Create");
        b.wait_text("[role=status]", "created");
    }
    b.goto("/vaults");
    b.wait_text("table", "Vault-2");
    b.shot("vaults");

    // Host agents: the vault credentials for a new host come from the portal.
    b.click_text("Host agents");
    b.wait_text("h1", "Host agents");
    b.select("#vault", "Vault-1");
    b.fill("#valid_days", "2");
    b.shot("register-a-host");
    let creds = b.js(
        "const f = document.querySelector('#credentials-form');
         return fetch(f.action, {method: 'POST', body: new URLSearchParams(new FormData(f)), credentials: 'same-origin'})
           .then(r => r.text().then(t => [r.status, r.headers.get('content-disposition') || '', t]));",
        vec![],
    );
    assert_eq!(creds[0], 200, "{creds}");
    assert!(creds[1].as_str().unwrap().contains("attachment"), "{creds}");
    let creds_file = d.join("Vault-1.credentials");
    std::fs::write(&creds_file, creds[2].as_str().unwrap()).unwrap();
    // The agent talks to the server through a proxy that slows uploads, so that the
    // backup below runs long enough to be watched.
    let proxy = Proxy::start(12 << 20);
    let agent_toml = agent_config(
        d,
        Some(&creds_file),
        ("kvm1", "local"),
        ("app", &vm.agent_qmp),
        Some(proxy.port),
    );
    let _agent = start_agent(&agent_toml);
    cli.wait_protectable("Vault-1", "app");
    b.goto("/agents");
    b.wait_text("#agents", "kvm1");
    b.wait_text("#agents", "Online");
    let agents = b.page_text();
    assert!(
        agents.contains("app") && agents.contains("Preflight"),
        "{agents}"
    );
    b.shot("host-agent-online-with-preflight");

    // "+ Backup": goal, policy, VMs, enable.
    b.goto("/vaults/Vault-1");
    b.click_text("+ Backup");
    b.wait_text("main", "Where is your workload running?");
    b.shot("backup-goal");
    b.click("#goal-submit");
    b.wait_text("main", "Choose a backup policy");
    let policy = b.page_text();
    assert!(policy.contains("DefaultPolicy"), "{policy}");
    b.shot("backup-policy");
    b.click("#policy-submit");
    b.wait_text("main", "Virtual machines");
    b.click("input[name=vm][value$='app']");
    b.shot("backup-select-vms");
    b.click("#enable-backup");
    b.wait_text("#items", "app");
    b.wait_text("#items", "Initial backup pending");
    b.shot("backup-items-pending");

    // The same VM cannot be chosen in another vault: greyed, with the reason.
    b.goto("/vaults/Vault-2/backup");
    b.click("#goal-submit");
    b.click("#policy-submit");
    b.wait_text("main", "Vault-1");
    assert!(b.exists("tr.disabled input[name=vm][disabled]"));
    b.shot("vm-greyed-already-protected");

    // Back up now, keeping the point until a date picked in the calendar.
    random_write(&vm.test_qmp, d, 0, 96, 3);
    b.goto("/vaults/Vault-1/items");
    b.click("summary[aria-label='Actions for app']");
    b.click_text("Back up now");
    b.wait_text("h1", "Back up now");
    let retain = (jiff::Zoned::now().date() + jiff::ToSpan::days(45)).to_string();
    b.set_value("#retain_until", &retain);
    b.shot("back-up-now-calendar");
    b.click("#backup-now button[type=submit]");
    b.wait_text("#jobs", "Backup");
    b.js("window.__sameDocument = true", vec![]);
    // The running job's row changes by itself, without the page being loaded again.
    let row = "#jobs tr[data-job]";
    let mut seen = vec![b.text(row)];
    let started = std::time::Instant::now();
    while !seen.last().unwrap().contains("Completed") {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the backup did not end: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
        let now = b.text(row);
        if now != *seen.last().unwrap() {
            if seen.len() == 2 {
                b.shot("job-in-progress-live");
            }
            seen.push(now);
        }
    }
    assert_eq!(b.js("return window.__sameDocument === true", vec![]), true);
    assert!(
        seen.len() >= 3,
        "the job's row changed fewer than twice while it ran: {seen:?}"
    );
    assert!(seen.iter().any(|s| s.contains("In progress")), "{seen:?}");
    b.shot("job-completed-live");

    // A job's own page shows its result once it ends, without a hand on the reload.
    random_write(&vm.test_qmp, d, 100, 64, 4);
    b.goto("/vaults/Vault-1/items/app/backup");
    b.click("#backup-now button[type=submit]");
    b.wait_text("#jobs", "In progress");
    b.click("#jobs tr[data-job] a[href*='/jobs/']");
    b.wait_text("h1", "Backup of app");
    assert!(!b.exists("#job-result"));
    b.wait_text("#job-result", "Crash consistent");
    b.shot("job-details-after-it-ended");

    // The item's recovery point: consistency and the expiry picked.
    b.goto("/vaults/Vault-1/items/app");
    b.wait_text("#points", "Crash");
    let points = b.text("#points");
    assert!(points.contains(&retain), "{points}");
    b.shot("recovery-points");

    // Restore disks from it.
    let target = d.join("restored");
    b.click_text("Restore");
    b.wait_text("h1", "Restore");
    b.click("#mode-RestoreDisks");
    b.fill("#target_path", target.to_str().unwrap());
    b.shot("restore-disks");
    b.click("#restore button[type=submit]");
    b.wait_text("#jobs", "Restore");
    wait_for("the restore to end", Duration::from_secs(60), || {
        let row = b.text("#jobs tr[data-job]");
        row.contains("Completed") || row.contains("Failed")
    });
    if b.text("#jobs tr[data-job]").contains("Failed") {
        b.click("#jobs tr[data-job] a[href*='/jobs/']");
        panic!("the restore failed: {}", b.text("#job-error"));
    }
    assert!(std::fs::read_dir(&target).unwrap().next().is_some());

    // Replacing the disks of a running VM fails; the job says why and what to do.
    b.goto("/vaults/Vault-1/items/app");
    b.click_text("Restore");
    b.click("#mode-ReplaceDisks");
    b.click("#confirm_replace");
    b.click("#restore button[type=submit]");
    b.wait_text("#jobs tr[data-job]", "Failed");
    b.click("#jobs tr[data-job] a[href*='/jobs/']");
    b.wait_text("#job-error", "This job failed");
    let code = b.text("#job-error-code");
    assert!(code.contains("Error code:"), "{code}");
    let message = b.text("#job-error-message");
    assert!(message.contains("Stop the VM"), "{message}");
    let action = b.text("#job-error-recommendation");
    assert!(action.contains("Recommended action:"), "{action}");
    b.shot("failed-job-explains-itself");

    // Jobs filtered by status.
    b.goto("/vaults/Vault-1/jobs?status=Failed");
    let failed = b.text("#jobs");
    assert!(
        failed.contains("Restore") && !failed.contains("Completed"),
        "{failed}"
    );

    // Policies: the same rules as the API.
    b.goto("/vaults/Vault-1/policies");
    b.wait_text("#policies", "DefaultPolicy");
    b.click_text("DefaultPolicy");
    b.wait_text("main", "Retention");
    b.shot("default-policy");
    b.goto("/vaults/Vault-1/policies/new");
    b.fill("#name", "Nightly-30");
    b.fill("#daily_days", "3");
    b.click("#policy-submit");
    b.wait_text("[role=alert]", "RetentionOutOfRange");
    b.wait_text("#daily_days-error", "7 to 9999");
    b.shot("policy-rule-refused");
    b.fill("#daily_days", "30");
    b.click("#policy-submit");
    b.wait_text("main", "Nightly-30");

    // The overview counts it all, and the redundancy is now locked, with the reason.
    b.goto("/vaults/Vault-1");
    b.wait_text("main", "Protected");
    b.shot("vault-overview-after");
    b.goto("/vaults/Vault-1/configuration");
    b.wait_text("#locked-reason", "already holds backups");
    b.shot("configuration-locked");
}

/// A user's password in these tests (12 characters or more).
const PASSWORD: &str = "correct horse battery staple";

/// The TOTP code of `secret` at `unix_seconds`, as an authenticator app makes it.
fn totp_code(secret: &str, unix_seconds: u64) -> String {
    tresor_service::auth::totp::code(secret, unix_seconds).expect("a base32 secret")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs in through the user form; the page it leads to is left to the caller.
fn sign_in_user(b: &Browser, name: &str, code: Option<&str>) {
    b.goto("/login");
    b.fill("#user", name);
    b.fill("#password", PASSWORD);
    b.fill("#totp", code.unwrap_or(""));
    b.click("form:has(#user) button[type=submit]");
}

/// Posts a form the page does not offer (as a hand-made request would), with the
/// session's CSRF token, and shows the answer in the browser.
fn post_anyway(b: &Browser, action: &str, fields: &[(&str, &str)]) {
    let fields: Vec<serde_json::Value> = fields
        .iter()
        .map(|(k, v)| serde_json::json!([k, v]))
        .collect();
    b.js(
        "const f = document.createElement('form');
         f.method = 'post'; f.action = arguments[0];
         const add = (k, v) => { const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); };
         add('csrf', document.querySelector('meta[name=csrf-token]').content);
         for (const [k, v] of arguments[1]) add(k, v);
         document.body.appendChild(f); f.submit();",
        vec![serde_json::json!(action), serde_json::json!(fields)],
    );
}

/// One server and VM for both users: a Reader (at the vault) and a Backup Operator
/// (at `/`), made with the admin token, sign in and see what they may do and no
/// more; a form posted without the permission gets the service's 403 on the page; the
/// operator turns on TOTP under My account with a code computed here, and then signs
/// in with one (a wrong one is refused); soft-deleted data shows its purge time, and
/// the operator undeletes it.
#[test]
fn a_reader_and_a_backup_operator_see_what_they_may_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vm = start_vm(d, "app", 16 * MIB);
    let agent_toml = agent_config(d, None, ("kvm1", "local"), ("app", &vm.agent_qmp), None);
    let mut p = start(d, &agent_toml, "roles");
    let cli = &p.cli;

    // The admin token sets the stage: a vault, the VM protected and backed up once,
    // and the two users.
    cli.ok(&[
        "vault",
        "create",
        "-n",
        "Vault-1",
        "-g",
        "rg-backup",
        "-l",
        "local",
        "--storage-redundancy",
        "LocallyRedundant",
    ]);
    cli.wait_protectable("Vault-1", "app");
    let item = cli.json(&[
        "protection",
        "enable-for-vm",
        "-v",
        "Vault-1",
        "--vm",
        "app",
        "--host",
        "kvm1",
    ]);
    let item_id = item["id"].as_str().unwrap().to_string();
    let job = cli.json(&["protection", "backup-now", "-v", "Vault-1", "-i", "app"]);
    cli.ok(&[
        "job",
        "wait",
        "-v",
        "Vault-1",
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    let pw = d.join("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    for (name, role, scope) in [
        (
            "reader",
            "Reader",
            "/resourceGroups/rg-backup/vaults/Vault-1",
        ),
        ("operator", "BackupOperator", "/"),
    ] {
        cli.ok(&[
            "user",
            "create",
            "--name",
            name,
            "--role",
            role,
            "--scope",
            scope,
            "--password-file",
            pw.to_str().unwrap(),
        ]);
    }
    let item_url = format!("/vaults/Vault-1/items/{item_id}");

    // The Reader: items and points, and no button to change anything.
    let b = &mut p.browser;
    sign_in_user(b, "reader", None);
    b.wait_text("h1", "Recovery Services vaults");
    let nav = b.text("nav[aria-label=Main]");
    assert!(
        !nav.contains("Users") && !nav.contains("Audit") && !nav.contains("Host agents"),
        "{nav}"
    );
    assert!(!b.exists("a[href='/vaults/new']"));
    b.shot("reader-vaults");
    b.goto("/vaults/Vault-1/items");
    b.wait_text("#items", "app");
    assert!(
        !b.exists("summary[aria-label='Actions for app']"),
        "the reader has an item menu"
    );
    assert!(
        !b.exists("a[href='/vaults/Vault-1/backup']"),
        "the reader sees + Backup"
    );
    b.goto(&item_url);
    b.wait_text("#points", "Crash");
    let toolbar = b.text("main");
    for hidden in ["Back up now", "Restore", "Stop backup"] {
        assert!(
            !b.exists(&format!("a[href='{item_url}/{}']", hidden_path(hidden))),
            "the reader sees {hidden}"
        );
    }
    assert!(!toolbar.contains("Stop backup"), "{toolbar}");
    assert!(
        !b.exists("#points a[href*='/restore']"),
        "the reader may restore a point"
    );
    b.shot("reader-item-read-only");
    b.goto("/vaults/Vault-1");
    assert!(!b.exists("#delete-vault"));
    // A form the page does not offer, posted anyway: the service's 403, on the page.
    b.goto(&item_url);
    post_anyway(b, &format!("{item_url}/backup"), &[]);
    let refused = b.wait_text("[role=alert]", "MissingPermission");
    assert!(refused.contains("Items.BackupNow"), "{refused}");
    b.shot("reader-back-up-now-refused");
    b.click_text("Sign out");
    b.wait_text("h1", "Sign in to Tresor");

    // The Backup Operator: back up now and restore, but no delete, no policy edits,
    // no vault properties.
    sign_in_user(b, "operator", None);
    b.wait_text("h1", "Recovery Services vaults");
    let nav = b.text("nav[aria-label=Main]");
    assert!(
        nav.contains("Host agents") && !nav.contains("Users") && !nav.contains("Audit"),
        "{nav}"
    );
    b.goto("/vaults/Vault-1/items");
    b.click("summary[aria-label='Actions for app']");
    let menu = b.text(".item-menu .menu-body");
    assert!(
        menu.contains("Back up now") && menu.contains("Restore"),
        "{menu}"
    );
    assert!(!menu.contains("Stop backup"), "{menu}");
    b.shot("operator-item-menu");
    b.goto(&item_url);
    b.wait_text("#points", "Crash");
    assert!(b.exists(&format!("a[href='{item_url}/backup']")));
    assert!(b.exists("#points a[href*='/restore']"));
    assert!(!b.exists(&format!("a[href='{item_url}/stop']")));
    b.goto("/vaults/Vault-1");
    b.wait_text("h1", "Vault-1");
    assert!(b.exists("a[href='/vaults/Vault-1/backup']"));
    assert!(!b.exists("#delete-vault"));
    b.goto("/vaults/Vault-1/policies/DefaultPolicy");
    b.wait_text("main", "Retention");
    assert!(!b.exists("#edit-policy") && !b.exists("#delete-policy-form"));
    b.shot("operator-policy-read-only");
    post_anyway(b, "/vaults/Vault-1/policies/DefaultPolicy/delete", &[]);
    let refused = b.wait_text("[role=alert]", "MissingPermission");
    assert!(refused.contains("Policies.Manage"), "{refused}");
    b.goto("/vaults/Vault-1/configuration");
    b.wait_text("main", "Storage replication type");
    assert!(!b.exists("form[action='/vaults/Vault-1/configuration']"));

    // My account: TOTP on, confirmed with a code computed from the secret shown.
    b.click("a[href='/account']");
    b.wait_text("h1", "My account");
    b.wait_text("#my-roles", "BackupOperator");
    b.click("#enable-totp");
    let secret = b.text("#totp-secret");
    let uri = b.text("#totp-uri");
    assert!(
        uri.starts_with("otpauth://totp/Tresor:operator?secret=") && uri.contains(&secret),
        "{uri}"
    );
    b.shot("operator-totp-setup");
    b.fill("#code", &totp_code(&secret, unix_now()));
    b.click("#confirm-totp button[type=submit]");
    b.wait_text("[role=status]", "turned on");
    b.wait_text("#totp-state", "Enabled");
    b.click_text("Sign out");

    // Signing in now needs the code: without one, or a wrong one, it is refused.
    sign_in_user(b, "operator", None);
    b.wait_text("[role=alert]", "not valid");
    let right = totp_code(&secret, unix_now() + 30);
    let wrong = format!(
        "{:06}",
        (right.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    sign_in_user(b, "operator", Some(&wrong));
    b.wait_text("[role=alert]", "not valid");
    b.shot("operator-wrong-code-refused");
    // The next step's code (the confirmation took this step's; each is taken once).
    sign_in_user(b, "operator", Some(&right));
    b.wait_text("h1", "Recovery Services vaults");

    // Deleted data: soft-deleted, shown with its purge time, and undeleted.
    cli.ok(&[
        "protection",
        "disable",
        "-v",
        "Vault-1",
        "-i",
        "app",
        "--delete-backup-data",
        "-y",
    ]);
    b.goto("/vaults/Vault-1/items");
    let row = b.wait_text("#items tr[data-item]", "Soft deleted");
    assert!(row.contains("Purged"), "{row}");
    assert!(b.exists("form.undelete"));
    b.shot("operator-soft-deleted-item");
    // The form asks "Undelete app ...?" first; the test answers yes.
    b.js("window.confirm = () => true", vec![]);
    b.click_text("Undelete");
    b.wait_text("[role=status]", "undeleted");
    b.wait_text("#items tr[data-item]", "Protection stopped");
    b.shot("operator-undeleted");
    let back = cli.json(&["item", "show", "-v", "Vault-1", "-n", "app"]);
    assert_eq!(back["protectionState"], "ProtectionStopped", "{back}");

    // The Reader sees soft-deleted data too, without the Undelete button.
    cli.ok(&[
        "protection",
        "disable",
        "-v",
        "Vault-1",
        "-i",
        "app",
        "--delete-backup-data",
        "-y",
    ]);
    b.click_text("Sign out");
    sign_in_user(b, "reader", None);
    b.goto("/vaults/Vault-1/items");
    let row = b.wait_text("#items tr[data-item]", "Soft deleted");
    assert!(row.contains("Purged"), "{row}");
    assert!(!b.exists("form.undelete"));
    b.goto(&item_url);
    b.wait_text("#soft-deleted", "purged for good");
    assert!(!b.exists("form.undelete"));
    b.shot("reader-soft-deleted-item");
}

/// The path under an item's page of one of its actions.
fn hidden_path(action: &str) -> &'static str {
    match action {
        "Back up now" => "backup",
        "Restore" => "restore",
        _ => "stop",
    }
}
