//! The host agent (`tresor agent run`): registers with a vault's server, reports its
//! VMs, takes jobs and runs them. It only ever connects out, over HTTPS pinned to
//! the server's certificate, through a proxy when one is configured.
//!
//! Its configuration, agent.toml, is described key by key in docs/agent.md (with a
//! libvirt and a plain QEMU example) and checked whole by `config_check.rs`, which
//! lists every problem at once, each with its key.
//!
//! libvirt's domains (`tresor-libvirt`) are reported beside the `[[vm]]` VMs, named
//! by their UUID and marked `provider: libvirt`; see `inventory.rs`.
//!
//! The agent's own files are private: its state folder is 0700 and `agent.json`
//! (its credential) 0600; scratch and restore folders it creates are 0700.
//!
//! A server, or whoever holds an API token, can ask for restores, so the host sets
//! their bounds: disks and new VMs go only into new folders under `restore_roots`
//! (see `confine.rs`); replacing a VM's disks writes only over the images this host
//! knows the VM by (from QEMU or the configuration, remembered in
//! `STATE_DIR/known-disks.json`), never over a path the job or the point names.
//!
//! Jobs run one at a time: many items due at once queue on the host instead of
//! loading it. While a job runs, progress is reported every few seconds, which keeps
//! the job's lease; a cancel request is read from the answer.
//!
//! Stopping the agent (SIGTERM, Ctrl-C) cancels one [`CancellationToken`] that every
//! task of the agent is handed. Idle, the agent ends at once (the wait for a job is
//! dropped; a job the server assigned in that instant is ended as abandoned at the
//! agent's next start, or when its lease runs out). With a job running, no new job is
//! taken and the running one may finish within `drain_timeout_secs`; past that it is
//! cancelled through the engine (which commits a point whole or not at all) and
//! reported Failed with the code `AgentShuttingDown`. Its end is reported before the
//! agent exits, and every wait has a limit.
//!
//! The parts: `config.rs` (agent.toml, the agent's own folders and files),
//! `config_check.rs` (agent.toml checked whole),
//! `registration.rs` (its identity with the server), `inventory.rs` (heartbeats with
//! the host's VMs), `job_loop.rs` (taking, draining and reporting jobs), `assignment.rs`
//! (what a job is), `backup_job.rs` and `restore_job.rs` (running each operation).

mod assignment;
mod backup_job;
mod config;
mod config_check;
mod inventory;
mod job_loop;
mod registration;
mod restore_job;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use inventory::{heartbeats, LibvirtSource};
use job_loop::{take_jobs, REPORT_GRACE};

pub use config::{AgentConfig, AgentError, LibvirtConfig};
pub use config_check::ConfigProblem;
pub use inventory::inventory;
pub use registration::{
    client, is_registered, load_or_register, load_state, save_state, AgentState,
};
use registration::{Backoff, ServerLink};

/// How long a job cancelled by the agent's stop may take to wind down (the engine
/// stops at its next chunk; a VM's view is torn down).
const CANCEL_GRACE: Duration = Duration::from_secs(60);

/// Runs the agent until `stop` resolves: heartbeats and jobs. Then drains it (see
/// the module's documentation) and returns, within a bounded time.
pub async fn run(
    config: AgentConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let shutdown = CancellationToken::new();
    // Every wait of the stop is bounded; this bounds them all together.
    let limit = config.drain_timeout() + CANCEL_GRACE + REPORT_GRACE;
    // The agent runs in a task of its own: a job blocks its task while the engine
    // runs, and `stop` must be heard meanwhile.
    let mut agent = tokio::spawn(serve(config, shutdown.clone()));
    tokio::select! {
        ended = &mut agent => return joined(ended),
        () = stop => {}
    }
    tracing::info!("stopping: no new jobs; a running job may finish, else it is cancelled");
    shutdown.cancel();
    match tokio::time::timeout(limit, &mut agent).await {
        Ok(ended) => joined(ended),
        Err(_) => {
            tracing::error!(
                "the agent did not stop within {} s; leaving what still runs",
                limit.as_secs()
            );
            agent.abort();
            Ok(())
        }
    }
}

fn joined(ended: Result<Result<(), AgentError>, tokio::task::JoinError>) -> Result<(), AgentError> {
    match ended {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Ok(()),
    }
}

/// The agent's work until `shutdown`: registration, heartbeats, jobs.
async fn serve(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    config.prepare_dirs()?;
    let Some(state) = register(&config, &shutdown).await? else {
        return Ok(());
    };
    let provider = Arc::new(config.provider());
    let roots = config.restore_roots();
    tracing::info!(roots = ?roots.roots(), "restores may write under these folders");
    let config = Arc::new(config);
    let link = Arc::new(ServerLink::new(config.clone(), state)?);
    let heartbeat = tokio::spawn(heartbeats(
        link.clone(),
        provider.clone(),
        LibvirtSource::new(config.libvirt.clone()),
        config.state_dir.clone(),
        shutdown.clone(),
    ));
    take_jobs(link, config, provider, &shutdown).await;
    // An inventory under way is of no use any more.
    heartbeat.abort();
    Ok(())
}

/// The agent's state, registering first if there is none; a server that cannot be
/// reached for the registration is tried again (with [`Backoff`]) until `shutdown`
/// (`None`). A registration under way is not cut short (the server may have
/// registered the agent already); each of its calls has a timeout.
async fn register(
    config: &AgentConfig,
    shutdown: &CancellationToken,
) -> Result<Option<AgentState>, AgentError> {
    let mut backoff = Backoff::default();
    loop {
        match load_or_register(config).await {
            Ok(state) if !shutdown.is_cancelled() => return Ok(Some(state)),
            Ok(_) => return Ok(None),
            Err(AgentError::Client(e)) if e.is_transient() => {
                let wait = backoff.next();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot register with the server yet");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use tresor_vm::VmDisk;

    use super::inventory::{read_known_disks, remember_disks};
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_agents_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A state folder others could read is made private; missing scratch
        // folders are created private; an existing one keeps its mode.
        std::fs::create_dir(d.join("state")).unwrap();
        std::fs::set_permissions(d.join("state"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(d.join("shared")).unwrap();
        std::fs::set_permissions(d.join("shared"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        let text = format!(
            "state_dir = \"{0}/state\"\nlocation = \"l\"\nscratch_dir = \"{0}/scratch/a\"\n\
             [[vm]]\nname = \"v\"\nscratch_dir = \"{0}/scratch-v\"\n\
             [[vm]]\nname = \"w\"\nscratch_dir = \"{0}/shared\"\n",
            d.display()
        );
        std::fs::write(d.join("agent.toml"), text).unwrap();
        let config = AgentConfig::load(&d.join("agent.toml")).unwrap();
        config.prepare_dirs().unwrap();
        assert_eq!(mode(&d.join("state")), 0o700);
        assert_eq!(mode(&d.join("scratch/a")), 0o700);
        assert_eq!(mode(&d.join("scratch")), 0o700);
        assert_eq!(mode(&d.join("scratch-v")), 0o700);
        assert_eq!(mode(&d.join("shared")), 0o777);

        save_state(
            &config,
            &AgentState {
                server: "https://x".into(),
                fingerprint: "f".into(),
                agent_id: "a".into(),
                credential: "secret".into(),
                vault: "v".into(),
            },
        )
        .unwrap();
        assert_eq!(mode(&d.join("state/agent.json")), 0o600);
        remember_disks(
            &config.state_dir,
            BTreeMap::from([(
                "v".to_string(),
                vec![VmDisk {
                    name: "vda".into(),
                    node: None,
                    image: "/vms/v.qcow2".into(),
                    format: "qcow2".into(),
                    virtual_size: 1,
                    source: None,
                    bus: None,
                }],
            )]),
        );
        assert_eq!(mode(&d.join("state/known-disks.json")), 0o600);
        assert_eq!(
            read_known_disks(&config.state_dir)["v"][0].image,
            "/vms/v.qcow2"
        );

        // The default restore root is under the state folder, private.
        let roots = config.restore_roots();
        assert_eq!(
            roots.roots(),
            &[d.join("state/restores").canonicalize().unwrap()]
        );
        assert_eq!(mode(&d.join("state/restores")), 0o700);
    }

    /// A state folder inside another folder that does not exist yet is created
    /// private too (with its parents), as on a fresh host.
    #[test]
    fn a_fresh_state_folder_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentConfig {
            credentials: None,
            state_dir: dir.path().join("var/lib/tresor-agent"),
            host: None,
            location: "l".into(),
            scratch_dir: None,
            socket_dirs: vec![],
            proxy: None,
            restore_roots: vec![],
            drain_timeout_secs: None,
            vms: vec![],
            libvirt: Default::default(),
        };
        config.prepare_dirs().unwrap();
        assert_eq!(mode(&config.state_dir), 0o700);
    }
}
