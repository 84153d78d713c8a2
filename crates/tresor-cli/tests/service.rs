//! The seed's flow end to end: a real `tresor serve`, a real `tresor agent run` and a
//! real QEMU VM, driven through the CLI as an operator would. Plus the rules a user
//! meets on the way, with the errors they see.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tresor_qmp::Qmp;

const MIB: u64 = 1 << 20;

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tresor_bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tresor"));
    c.env_remove("TRESOR_SERVER")
        .env_remove("TRESOR_TOKEN")
        .env_remove("TRESOR_FINGERPRINT")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy");
    c
}

/// The operator's CLI, configured by the server's cli.json.
struct Cli {
    config: PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        tresor_bin()
            .env("TRESOR_CONFIG", &self.config)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tresor {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Runs a command that must fail; returns its error output.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "tresor {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn qmp<T>(socket: &Path, f: impl AsyncFnOnce(&Qmp) -> T) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let q = Qmp::connect(socket, Duration::from_secs(10)).await.unwrap();
            f(&q).await
        })
}

fn start_server(data: &Path) -> Proc {
    let child = tresor_bin()
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env("TRESOR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Proc(child);
    wait_for("the server's cli.json", Duration::from_secs(30), || {
        data.join("cli.json").exists()
    });
    p
}

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
    let image = d.join("web01.qcow2");
    assert!(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg((16 * MIB).to_string())
        .status()
        .unwrap()
        .success());
    let agent_qmp = d.join("web01.qmp");
    let test_qmp = d.join("test.qmp");
    let _vm = Proc(
        Command::new("qemu-system-x86_64")
            .args([
                "-machine",
                "none",
                "-accel",
                "tcg",
                "-nodefaults",
                "-display",
                "none",
                "-name",
                "web01",
            ])
            .arg("-drive")
            .arg(format!(
                "if=none,id=drive0,node-name=disk0,format=qcow2,file={}",
                image.display()
            ))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", agent_qmp.display()))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", test_qmp.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 is needed; run scripts/install-deps.sh"),
    );
    wait_for("QEMU's sockets", Duration::from_secs(20), || {
        agent_qmp.exists() && test_qmp.exists()
    });
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
    assert!(vault["replication"]
        .as_str()
        .unwrap()
        .starts_with("NotReplicating"));
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
    cli.ok(&[
        "vault",
        "credentials",
        "-n",
        "Vault-1",
        "--output-file",
        creds.to_str().unwrap(),
    ]);
    let agent_toml = d.join("agent.toml");
    std::fs::write(
        &agent_toml,
        format!(
            "credentials = \"{}\"\nstate_dir = \"{}\"\nhost = \"kvm1\"\nlocation = \"westeurope\"\nscratch_dir = \"{}\"\n[[vm]]\nname = \"web01\"\nqmp = \"{}\"\n",
            creds.display(),
            d.join("agent-state").display(),
            d.display(),
            agent_qmp.display()
        ),
    )
    .unwrap();
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
    let _agent = Proc(
        tresor_bin()
            .args(["agent", "run", "--config"])
            .arg(&agent_toml)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Discover and select the VM; enable backup with DefaultPolicy.
    wait_for("the agent's inventory", Duration::from_secs(30), || {
        cli.json(&["protectable-item", "list", "-v", "Vault-1"])
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v["vm"] == "web01"))
    });
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
