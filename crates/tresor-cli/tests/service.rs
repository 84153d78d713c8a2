//! The seed's flow end to end: a real `tresor serve`, a real `tresor agent run` and a
//! real QEMU VM, driven through the CLI as an operator would. Plus the rules a user
//! meets on the way, with the errors they see.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::service::*;
use serde_json::Value;

#[test]
fn the_seeds_flow_through_the_cli_with_a_real_server_agent_and_vm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("server");
    let _server = start_server(&data);
    let cli = Cli {
        config: data.join("cli.json"),
    };
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(&cli.config).unwrap()).unwrap();
    assert!(cfg["server"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));

    // A VM on this host: QEMU with a qcow2 disk holding known data.
    let vm = start_vm(d, "web01", 16 * MIB);
    let (agent_qmp, test_qmp) = (vm.agent_qmp.clone(), vm.test_qmp.clone());
    qmp(&test_qmp, async |q| {
        q.qemu_io("drive0", "write -P 0x5e 1M 3M").await.unwrap();
        q.qemu_io("drive0", "flush").await.unwrap();
    });
    let mut expected = vec![0u8; 16 * MIB as usize];
    expected[MIB as usize..4 * MIB as usize].fill(0x5e);

    // Create the vault, choose its redundancy.
    let vault = cli.json(&[
        "vault",
        "create",
        "-n",
        "Vault-1",
        "-g",
        "rg1",
        "-l",
        "westeurope",
    ]);
    assert_eq!(vault["storageRedundancy"], "GeoRedundant");
    // GeoRedundant by default, copied to the embedded default's paired location.
    assert_eq!(vault["replication"]["status"], "UpToDate", "{vault}");
    assert_eq!(
        vault["replication"]["secondaryLocation"], "westeurope-paired",
        "{vault}"
    );
    let e = cli.fails(&[
        "vault",
        "create",
        "-n",
        "vault-1",
        "-g",
        "rg1",
        "-l",
        "westeurope",
    ]);
    assert!(e.contains("VaultAlreadyExists"), "{e}");
    let e = cli.fails(&[
        "vault",
        "create",
        "-n",
        "1vault",
        "-g",
        "rg1",
        "-l",
        "westeurope",
    ]);
    assert!(e.contains("InvalidVaultName"), "{e}");
    let v = cli.json(&[
        "vault",
        "backup-properties",
        "set",
        "-n",
        "Vault-1",
        "--backup-storage-redundancy",
        "LocallyRedundant",
    ]);
    assert_eq!(v["storageRedundancy"], "LocallyRedundant");
    let policy = cli.json(&["policy", "get-default-for-vm", "-v", "Vault-1"]);
    assert_eq!(policy["name"], "DefaultPolicy");

    // A host agent, registered with vault credentials.
    let creds = d.join("vault.credentials");
    cli.issue_credentials("Vault-1", &creds);
    let agent_toml = agent_config(
        d,
        Some(&creds),
        ("kvm1", "westeurope"),
        ("web01", &agent_qmp),
        None,
    );
    let check = tresor_bin()
        .args(["agent", "check", "--config"])
        .arg(&agent_toml)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let _agent = start_agent(&agent_toml);

    // Discover and select the VM; enable backup with DefaultPolicy.
    cli.wait_protectable("Vault-1", "web01");
    let item = cli.json(&[
        "protection",
        "enable-for-vm",
        "-v",
        "Vault-1",
        "--vm",
        "web01",
        "--host",
        "kvm1",
    ]);
    assert_eq!(item["protectionState"], "InitialBackupPending");
    assert_eq!(item["policy"], "DefaultPolicy");
    assert!(cli
        .json(&["recoverypoint", "list", "-v", "Vault-1", "-i", "web01"])
        .as_array()
        .unwrap()
        .is_empty());
    let e = cli.fails(&[
        "protection",
        "enable-for-vm",
        "-v",
        "Vault-1",
        "--vm",
        "web01",
        "--host",
        "kvm1",
    ]);
    assert!(e.contains("AlreadyProtected"), "{e}");
    assert!(cli
        .json(&["protectable-item", "list", "-v", "Vault-1"])
        .as_array()
        .unwrap()
        .is_empty());

    // Back up now, keeping the point for ten days.
    let e = cli.fails(&[
        "protection",
        "backup-now",
        "-v",
        "Vault-1",
        "-i",
        "web01",
        "--retain-until",
        "2020-01-01",
    ]);
    assert!(e.contains("RetainUntilInPast"), "{e}");
    let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(240))
        .strftime("%Y-%m-%d")
        .to_string();
    let job = cli.json(&[
        "protection",
        "backup-now",
        "-v",
        "Vault-1",
        "-i",
        "web01",
        "--retain-until",
        &until,
    ]);
    assert_eq!(job["operation"], "Backup");
    let job_id = job["id"].as_str().unwrap().to_string();
    let waited = cli.ok(&["job", "wait", "-v", "Vault-1", "-n", &job_id]);
    assert!(waited.contains("CompletedWithWarnings"), "{waited}");
    // No guest agent: crash-consistent, and the job says so.
    assert!(waited.contains("no guest agent"), "{waited}");
    let job = cli.json(&["job", "show", "-v", "Vault-1", "-n", &job_id]);
    assert!(job["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "CompletedWithWarnings" || t["status"] == "Completed"));

    // The recovery point.
    let points = cli.json(&["recoverypoint", "list", "-v", "Vault-1", "-i", "web01"]);
    let points = points.as_array().unwrap();
    assert_eq!(points.len(), 1);
    let point = &points[0];
    assert_eq!(point["consistency"], "CrashConsistent");
    assert_eq!(point["onDemand"], true);
    assert!(point["expiry"].as_str().unwrap().starts_with(&until));
    let rp = point["id"].as_str().unwrap().to_string();
    let item = cli.json(&["item", "show", "-v", "Vault-1", "-n", "web01"]);
    assert_eq!(item["protectionState"], "Protected");

    // Redundancy is locked now, and the policy in use cannot go.
    let e = cli.fails(&[
        "vault",
        "backup-properties",
        "set",
        "-n",
        "Vault-1",
        "--backup-storage-redundancy",
        "GeoRedundant",
    ]);
    assert!(e.contains("RedundancyLocked"), "{e}");
    let e = cli.fails(&["policy", "delete", "-v", "Vault-1", "-n", "DefaultPolicy"]);
    assert!(e.contains("PolicyInUse"), "{e}");
    let e = cli.fails(&["vault", "delete", "-n", "Vault-1", "--yes"]);
    assert!(e.contains("VaultNotEmpty"), "{e}");

    // Restore the disks and compare with the VM's disk.
    let out = d.join("restored");
    let job = cli.json(&[
        "restore",
        "restore-disks",
        "-v",
        "Vault-1",
        "-i",
        "web01",
        "--rp-name",
        &rp,
        "--target-path",
        out.to_str().unwrap(),
        "--format",
        "raw",
    ]);
    cli.ok(&[
        "job",
        "wait",
        "-v",
        "Vault-1",
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    let restored = std::fs::read(out.join("drive0.raw")).unwrap();
    assert!(
        restored == expected,
        "the restored disk differs from the VM's"
    );

    // The job list shows what happened.
    let jobs = cli.json(&["job", "list", "-v", "Vault-1"]);
    let ops: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["Restore", "Backup", "ConfigureBackup"]);
    let table = cli.ok(&["job", "list", "-v", "Vault-1"]);
    assert!(table.starts_with("NAME"), "{table}");
}

#[test]
fn an_agent_behind_a_proxy_survives_a_cut_network_and_a_killed_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("server");
    let port = free_port();
    let mut server = start_server_at(&data, port);
    let cli = Cli {
        config: data.join("cli.json"),
    };
    let vm = start_vm(d, "db", 96 * MIB);
    let (agent_qmp, test_qmp) = (vm.agent_qmp.clone(), vm.test_qmp.clone());
    let mut expected = vec![0u8; 96 * MIB as usize];
    let first = random_write(&test_qmp, d, 0, 40, 1);
    expected[..first.len()].copy_from_slice(&first);

    cli.ok(&["vault", "create", "-n", "v2", "-g", "rg", "-l", "local"]);
    let creds = d.join("creds.json");
    cli.issue_credentials("v2", &creds);
    // The agent reaches the server only through the proxy, at 10 MiB/s.
    let proxy = Proxy::start(10 * MIB);
    let agent_toml = agent_config(
        d,
        Some(&creds),
        ("db-host", "local"),
        ("db", &agent_qmp),
        Some(proxy.port),
    );
    let _agent = start_agent(&agent_toml);
    cli.wait_protectable("v2", "db");
    assert!(
        proxy.tunnels.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the agent went around the proxy"
    );
    cli.ok(&[
        "protection",
        "enable-for-vm",
        "-v",
        "v2",
        "--vm",
        "db",
        "--host",
        "db-host",
    ]);

    // The network is cut in the middle of the upload, for 3 s: the agent retries.
    let job_id = cli.backup_until_uploading("v2", "db", &proxy, 12 * MIB);
    proxy.cut(Duration::from_secs(3));
    let out = cli.ok(&["job", "wait", "-v", "v2", "-n", &job_id, "--timeout", "300"]);
    assert!(out.contains("Completed"), "{out}");

    // The server is killed in the middle of the next backup and comes back.
    let second = random_write(&test_qmp, d, 50 * MIB, 40, 2);
    expected[50 * MIB as usize..90 * MIB as usize].copy_from_slice(&second);
    let job_id = cli.backup_until_uploading("v2", "db", &proxy, 12 * MIB);
    let _ = server.0.kill();
    let _ = server.0.wait();
    std::thread::sleep(Duration::from_secs(1));
    server = start_server_at(&data, port);
    let out = cli.ok(&["job", "wait", "-v", "v2", "-n", &job_id, "--timeout", "300"]);
    assert!(out.contains("Completed"), "{out}");
    let _ = &server;

    // Both points are whole; the newest restores to what the VM holds.
    let points = cli.json(&["recoverypoint", "list", "-v", "v2", "-i", "db"]);
    assert_eq!(points.as_array().unwrap().len(), 2);
    let rp = points[0]["id"].as_str().unwrap().to_string();
    let target = d.join("restored");
    let job = cli.json(&[
        "restore",
        "restore-disks",
        "-v",
        "v2",
        "-i",
        "db",
        "--rp-name",
        &rp,
        "--target-path",
        target.to_str().unwrap(),
        "--format",
        "raw",
    ]);
    cli.ok(&[
        "job",
        "wait",
        "-v",
        "v2",
        "-n",
        job["id"].as_str().unwrap(),
        "--timeout",
        "300",
    ]);
    assert!(
        std::fs::read(target.join("drive0.raw")).unwrap() == expected,
        "the restored disk differs"
    );
}

#[test]
fn one_command_protects_a_single_host_and_a_point_becomes_a_new_vm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vm = start_vm(d, "app", 8 * MIB);
    let (image, agent_qmp, test_qmp) =
        (vm.image.clone(), vm.agent_qmp.clone(), vm.test_qmp.clone());
    qmp(&test_qmp, async |q| {
        q.qemu_io("drive0", "write -P 0x42 0 2M").await.unwrap();
        q.qemu_io("drive0", "flush").await.unwrap();
    });
    // Server and agent in one process: no credentials file, no state folder to give.
    let agent_toml = agent_config(d, None, ("solo", "local"), ("app", &agent_qmp), None);
    let data = d.join("server");
    let _server = Proc(
        tresor_bin()
            .args(["serve", "--data-dir"])
            .arg(&data)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--with-local-agent",
                "--agent-config",
            ])
            .arg(&agent_toml)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the server's cli.json", Duration::from_secs(30), || {
        data.join("cli.json").exists()
    });
    let cli = Cli {
        config: data.join("cli.json"),
    };
    cli.ok(&[
        "vault",
        "create",
        "-n",
        "solo-vault",
        "-g",
        "rg",
        "-l",
        "local",
    ]);
    cli.wait_protectable("solo-vault", "app");
    cli.ok(&[
        "protection",
        "enable-for-vm",
        "-v",
        "solo-vault",
        "--vm",
        "app",
        "--host",
        "solo",
    ]);
    let job = cli.json(&["protection", "backup-now", "-v", "solo-vault", "-i", "app"]);
    cli.ok(&[
        "job",
        "wait",
        "-v",
        "solo-vault",
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    let points = cli.json(&["recoverypoint", "list", "-v", "solo-vault", "-i", "app"]);
    let rp = points[0]["id"].as_str().unwrap().to_string();

    // The point as a new VM: its disk, its definition, and QEMU's command line for it.
    let target = d.join("app-copy");
    let job = cli.json(&[
        "restore",
        "create-vm",
        "-v",
        "solo-vault",
        "-i",
        "app",
        "--rp-name",
        &rp,
        "--target-path",
        target.to_str().unwrap(),
        "--new-name",
        "app-copy",
    ]);
    cli.ok(&[
        "job",
        "wait",
        "-v",
        "solo-vault",
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    let done = cli.json(&[
        "job",
        "show",
        "-v",
        "solo-vault",
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    assert_eq!(done["status"], "Completed", "{done}");
    let definition: Value =
        serde_json::from_slice(&std::fs::read(target.join("vm.json")).unwrap()).unwrap();
    assert_eq!(definition["name"], "app-copy");
    let script = std::fs::read_to_string(target.join("start-vm.sh")).unwrap();
    assert!(
        script.contains("app-copy")
            && script.contains(target.join("drive0.qcow2").to_str().unwrap()),
        "{script}"
    );
    let out = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(target.join("drive0.qcow2"))
        .arg(d.join("check.raw"))
        .status()
        .unwrap();
    assert!(out.success());
    let restored = std::fs::read(d.join("check.raw")).unwrap();
    assert!(restored[..2 * MIB as usize].iter().all(|b| *b == 0x42));
    assert!(restored[2 * MIB as usize..].iter().all(|b| *b == 0));

    // Replacing the original's disks: refused while the VM runs, done once it stopped.
    qmp(&test_qmp, async |q| {
        q.qemu_io("drive0", "write -P 0x43 4M 1M").await.unwrap();
        q.qemu_io("drive0", "flush").await.unwrap();
    });
    let replace = [
        "restore",
        "replace-disks",
        "-v",
        "solo-vault",
        "-i",
        "app",
        "--rp-name",
        &rp,
        "--yes",
    ];
    let job = cli.json(&replace);
    let out = cli.run(&[
        "job",
        "wait",
        "-v",
        "solo-vault",
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let failed = cli.json(&[
        "job",
        "show",
        "-v",
        "solo-vault",
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    assert_eq!(failed["status"], "Failed", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Stop the VM"),
        "{failed}"
    );
    qmp(&test_qmp, async |q| {
        let _ = q.execute("quit", None).await;
    });
    wait_for("QEMU to stop", Duration::from_secs(20), || {
        tresor_qemu::ensure_not_in_use(&image).is_ok()
    });
    let job = cli.json(&replace);
    cli.ok(&[
        "job",
        "wait",
        "-v",
        "solo-vault",
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    assert!(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&image)
        .arg(d.join("replaced.raw"))
        .status()
        .unwrap()
        .success());
    assert!(
        std::fs::read(d.join("replaced.raw")).unwrap() == restored,
        "the original is not as at the point"
    );
}
