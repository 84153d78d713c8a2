//! Restore jobs are the server's (or a token holder's) word, and the host protects
//! itself: a real server with its local agent and a real QEMU VM; restores aimed
//! outside the agent's restore roots, through a link, with `..` or with a hostile
//! new VM name fail with a stable code and write nothing; one inside works.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::service::*;
use serde_json::Value;

struct Site {
    cli: Cli,
    point: String,
}

impl Site {
    /// Starts a restore job; returns it once ended (or the CLI's refusal).
    fn restore(&self, args: &[&str]) -> Result<Value, String> {
        let mut a = vec![
            "restore",
            args[0],
            "-v",
            "vault",
            "-i",
            "app",
            "--rp-name",
            &self.point,
        ];
        a.extend(&args[1..]);
        a.extend(["-o", "json"]);
        let out = self.cli.run(&a);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let job: Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = job["id"].as_str().unwrap();
        let _ = self.cli.run(&["job", "wait", "-v", "vault", "-n", id]);
        Ok(self.cli.json(&["job", "show", "-v", "vault", "-n", id]))
    }

    /// A restore-disks job to `target` that must fail with `code`; returns its message.
    fn refused(&self, target: &Path, code: &str) -> String {
        let job = self
            .restore(&["restore-disks", "--target-path", target.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("the server refused {}: {e}", target.display()));
        assert_eq!(job["status"], "Failed", "{job}");
        assert_eq!(job["error"]["code"], code, "{job}");
        job["error"]["message"].as_str().unwrap().to_string()
    }
}

/// Every file and folder under `dir`, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            out.push(e.path().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn restores_outside_the_restore_roots_fail_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    let d = d.as_path();
    let outside_dir = tempfile::tempdir().unwrap();
    let outside = outside_dir.path().canonicalize().unwrap();
    let vm = start_vm(d, "app", 4 * MIB);
    qmp(&vm.test_qmp, async |q| {
        q.qemu_io("drive0", "write -P 0x42 0 1M").await.unwrap();
        q.qemu_io("drive0", "flush").await.unwrap();
    });
    // The agent's only restore root is `d/roots` (not the whole test folder).
    let roots = d.join("roots");
    std::fs::create_dir(&roots).unwrap();
    let agent_toml = agent_config(d, None, ("solo", "local"), ("app", &vm.agent_qmp), None);
    let text = std::fs::read_to_string(&agent_toml).unwrap().replace(
        &format!("restore_roots = [\"{}\"]", d.display()),
        &format!("restore_roots = [\"{}\"]", roots.display()),
    );
    assert!(text.contains("roots\"]"), "{text}");
    std::fs::write(&agent_toml, text).unwrap();
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
    cli.ok(&["vault", "create", "-n", "vault", "-g", "rg", "-l", "local"]);
    cli.wait_protectable("vault", "app");
    cli.ok(&[
        "protection",
        "enable-for-vm",
        "-v",
        "vault",
        "--vm",
        "app",
        "--host",
        "solo",
    ]);
    let job = cli.json(&["protection", "backup-now", "-v", "vault", "-i", "app"]);
    cli.ok(&[
        "job",
        "wait",
        "-v",
        "vault",
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    let points = cli.json(&["recoverypoint", "list", "-v", "vault", "-i", "app"]);
    let site = Site {
        cli,
        point: points[0]["id"].as_str().unwrap().to_string(),
    };
    std::os::unix::fs::symlink(&outside, roots.join("link")).unwrap();
    let before_outside = tree(&outside);
    let before_roots = tree(&roots);

    // Outside every root: the message names the path, the roots and what to change.
    let target = outside.join("stolen");
    let message = site.refused(&target, "RestorePathNotAllowed");
    assert!(message.contains(target.to_str().unwrap()), "{message}");
    assert!(message.contains(roots.to_str().unwrap()), "{message}");
    assert!(message.contains("restore_roots"), "{message}");
    // Through a link in the root that leads outside it.
    let message = site.refused(&roots.join("link/stolen"), "RestorePathNotAllowed");
    assert!(message.contains("resolves to"), "{message}");
    // Up and out with `..`.
    let up = "../".repeat(roots.components().count() - 1);
    let message = site.refused(
        &roots.join(format!(
            "{up}{}/stolen",
            outside.strip_prefix("/").unwrap().display()
        )),
        "RestorePathNotAllowed",
    );
    assert!(message.contains("'..'"), "{message}");
    // The root itself, and a system folder.
    site.refused(&roots, "RestorePathNotAllowed");
    site.refused(Path::new("/etc/tresor-stolen"), "RestorePathNotAllowed");
    assert!(!Path::new("/etc/tresor-stolen").exists());

    // A new VM with a name a shell would run: refused (by the server or the agent).
    let pwned = Path::new("/tmp/pwned");
    let existed = pwned.exists();
    match site.restore(&[
        "create-vm",
        "--target-path",
        roots.join("copy").to_str().unwrap(),
        "--new-name",
        "x'; touch /tmp/pwned; '",
    ]) {
        Ok(job) => {
            assert_eq!(job["status"], "Failed", "{job}");
            assert_eq!(job["error"]["code"], "InvalidVmName", "{job}");
        }
        Err(e) => assert!(e.to_lowercase().contains("name"), "{e}"),
    }
    assert_eq!(pwned.exists(), existed);

    // Nothing was written anywhere.
    assert_eq!(tree(&outside), before_outside);
    assert_eq!(tree(&roots), before_roots);

    // A new folder under the root works, nested, and is the agent's alone.
    let target = roots.join("a/b");
    let job = site
        .restore(&[
            "restore-disks",
            "--target-path",
            target.to_str().unwrap(),
            "--format",
            "raw",
        ])
        .unwrap();
    assert_eq!(job["status"], "Completed", "{job}");
    let disk = std::fs::read(target.join("drive0.raw")).unwrap();
    assert!(disk[..MIB as usize].iter().all(|b| *b == 0x42));
    use std::os::unix::fs::PermissionsExt;
    for folder in [roots.join("a"), target.clone()] {
        let mode = std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", folder.display());
    }

    // A new VM there: a checked name, a script that quotes what it passes on.
    let target = roots.join("copy");
    let job = site
        .restore(&[
            "create-vm",
            "--target-path",
            target.to_str().unwrap(),
            "--new-name",
            "app-copy.1",
        ])
        .unwrap();
    assert_eq!(job["status"], "Completed", "{job}");
    let script = std::fs::read_to_string(target.join("start-vm.sh")).unwrap();
    assert!(script.contains("'app-copy.1'"), "{script}");
    assert!(
        script.contains(&format!(
            "\n  'unix:{},server=on,wait=off'",
            target.join("qmp.sock").display()
        )),
        "{script}"
    );
    // The original's other socket is still named: the job says to check it.
    let warnings = job["warnings"].to_string();
    assert!(warnings.contains("app-test.qmp"), "{warnings}");
}
