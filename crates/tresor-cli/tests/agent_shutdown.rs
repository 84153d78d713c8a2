//! `tresor agent run` stops on SIGTERM: at once when idle; with a backup running, after
//! the backup finished within the drain time, or after cancelling it, reported Failed
//! with `AgentShuttingDown` and no recovery point. Real server, agent and QEMU.

mod common;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::service::*;
use serde_json::Value;

const VAULT: &str = "stop-vault";
const HOST: &str = "kvm1";

/// Writes the agent's configuration with `drain_timeout_secs = drain`.
fn config_with_drain(
    dir: &Path,
    creds: &Path,
    vm: (&str, &Path),
    proxy: Option<u16>,
    drain: u64,
) -> PathBuf {
    let path = agent_config(dir, Some(creds), (HOST, "local"), vm, proxy);
    // Top-level keys go before the tables.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("drain_timeout_secs = {drain}\n{text}")).unwrap();
    path
}

fn spawn_agent(config: &Path, log: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Proc(
        tresor_bin()
            .args(["agent", "run", "--config"])
            .arg(config)
            .env("TRESOR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    )
}

/// Sends SIGTERM to `agent` and waits for it to exit, at most `limit`.
fn terminate(agent: &mut Proc, limit: Duration, log: &Path) -> (ExitStatus, Duration) {
    let sent = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &agent.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            return (status, sent.elapsed());
        }
        assert!(
            sent.elapsed() < limit,
            "the agent did not exit within {limit:?} of SIGTERM; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server with a vault and its credentials file.
fn server(d: &Path) -> (Proc, Cli, PathBuf) {
    let data = d.join("server");
    let server = start_server(&data);
    let cli = Cli {
        config: data.join("cli.json"),
    };
    let creds = d.join("creds.json");
    cli.create_local_vault(VAULT, &creds);
    (server, cli, creds)
}

#[test]
fn an_idle_agent_stops_on_sigterm_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_server, _cli, creds) = server(d);
    // A VM whose QEMU is not there: the inventory reports nothing, quickly.
    let config = config_with_drain(d, &creds, ("vm1", &d.join("vm1.qmp")), None, 600);
    let log = d.join("agent.log");
    let mut agent = spawn_agent(&config, &log);
    wait_for("the agent to register", Duration::from_secs(30), || {
        d.join("agent-state/agent.json").exists()
    });
    // Heartbeating and waiting for a job (the server's wait lasts 20 s).
    std::thread::sleep(Duration::from_secs(2));
    let (status, took) = terminate(&mut agent, Duration::from_secs(5), &log);
    assert!(status.success(), "the agent exited with {status}");
    eprintln!("idle agent stopped {took:?} after SIGTERM");
}

/// Starts a backup of `vm` and waits until `bytes` went up through `proxy`.
fn backup_uploading(cli: &Cli, vm: &str, proxy: &Proxy, bytes: u64) -> String {
    cli.backup_until_uploading(VAULT, vm, proxy, bytes)
}

fn job(cli: &Cli, id: &str) -> Value {
    cli.json(&["job", "show", "-v", VAULT, "-n", id])
}

fn points(cli: &Cli, vm: &str) -> usize {
    cli.json(&["recoverypoint", "list", "-v", VAULT, "-i", vm])
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn sigterm_during_a_backup_drains_it_or_cancels_it_and_reports_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_server, cli, creds) = server(d);
    let vm = start_vm(d, "db", 64 * MIB);
    random_write(&vm.test_qmp, d, 0, 24, 1);
    // Uploads crawl at 4 MiB/s, so that SIGTERM lands inside the backup.
    let proxy = Proxy::start(4 * MIB);
    let log = d.join("agent.log");

    // Little drain time: the backup is cancelled, Failed with AgentShuttingDown.
    let config = config_with_drain(d, &creds, ("db", &vm.agent_qmp), Some(proxy.port), 1);
    let mut agent = spawn_agent(&config, &log);
    cli.wait_protectable(VAULT, "db");
    cli.ok(&[
        "protection",
        "enable-for-vm",
        "-v",
        VAULT,
        "--vm",
        "db",
        "--host",
        HOST,
    ]);
    let id = backup_uploading(&cli, "db", &proxy, 2 * MIB);
    let (status, took) = terminate(&mut agent, Duration::from_secs(60), &log);
    assert!(status.success(), "the agent exited with {status}");
    eprintln!("agent with a backup and 1 s to drain stopped {took:?} after SIGTERM");
    let cancelled = job(&cli, &id);
    eprintln!(
        "job with 1 s to drain: {} {}",
        cancelled["status"], cancelled["error"]
    );
    match cancelled["status"].as_str() {
        Some("Failed") => {
            assert_eq!(
                cancelled["error"]["code"], "AgentShuttingDown",
                "{cancelled}"
            );
            assert_eq!(points(&cli, "db"), 0, "a cancelled backup left a point");
        }
        // A machine fast enough finished the backup within the second.
        Some("Completed" | "CompletedWithWarnings") => {}
        _ => panic!("the job did not end with the agent: {cancelled}"),
    }
    let before = points(&cli, "db");

    // Time enough to drain: the backup finishes, then the agent exits.
    let config = config_with_drain(d, &creds, ("db", &vm.agent_qmp), Some(proxy.port), 300);
    let mut agent = spawn_agent(&config, &log);
    random_write(&vm.test_qmp, d, 32 * MIB, 8, 2);
    let id = backup_uploading(&cli, "db", &proxy, 2 * MIB);
    let (status, took) = terminate(&mut agent, Duration::from_secs(120), &log);
    assert!(status.success(), "the agent exited with {status}");
    eprintln!("agent with a backup and 300 s to drain stopped {took:?} after SIGTERM");
    let drained = job(&cli, &id);
    assert!(
        matches!(
            drained["status"].as_str(),
            Some("Completed" | "CompletedWithWarnings")
        ),
        "{drained}"
    );
    assert_eq!(points(&cli, "db"), before + 1);
}
