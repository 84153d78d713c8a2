//! The host agent (`tresor agent run`): registers with a vault's server, reports its
//! VMs, takes jobs and runs them. It only ever connects out, over HTTPS pinned to
//! the server's certificate, through a proxy when one is configured.
//!
//! ```toml
//! # agent.toml
//! credentials = "/etc/tresor/vault.credentials"  # from `tresor vault credentials`; used once
//! state_dir = "/var/lib/tresor-agent"            # the agent's own credential (0600)
//! host = "kvm1"                                   # default: the host name
//! location = "westeurope"
//! scratch_dir = "/var/tmp"
//! socket_dirs = ["/run/tresor/vms"]               # NAME.qmp (+ NAME.qga) sockets
//! restore_roots = ["/srv/restore"]                # where restores may write; default:
//!                                                 # STATE_DIR/restores
//! drain_timeout_secs = 600                        # on SIGTERM, how long a running job
//!                                                 # may still take before it is cancelled
//! [proxy]                                         # else HTTPS_PROXY / NO_PROXY
//! host = "proxy.example"
//! port = 3128
//! [[vm]]
//! name = "web01"
//! qmp = "/run/qemu/web01.qmp"
//! guest_agent = "/run/qemu/web01.qga"
//! ```
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tresor_client::{ApiClient, ProxyConfig, ServerAddress, Transport};
use tresor_engine::progress::Progress;
use tresor_engine::restore::OutputFormat;
use tresor_engine::Repository;
use tresor_qemu::{QemuProvider, QemuVmConfig};
use tresor_vm::{CheckCode, VmDisk, VmProvider, VmRef};

use crate::confine::{self, RestoreRoots};
use crate::remote::{RefusalSlot, RemoteBackend};
use crate::restore::{restore_point, RestoreError, RestoreMode};
use crate::{backup_vm, VmBackupOptions};

/// How often the agent reports it lives, with its VMs.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How often a running job reports progress (well inside the server's lease).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Timeout of each API call's connection and of each wait for data.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a running job may take to finish once the agent is asked to stop.
const DEFAULT_DRAIN: Duration = Duration::from_secs(600);
/// How long a job cancelled by the agent's stop may take to wind down (the engine
/// stops at its next chunk; a VM's view is torn down).
const CANCEL_GRACE: Duration = Duration::from_secs(60);
/// How long the agent keeps retrying to report a job's end while it stops.
const REPORT_GRACE: Duration = Duration::from_secs(30);
/// The job error code of work the agent's stop cut short.
const SHUTTING_DOWN: &str = "AgentShuttingDown";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// A vault credentials file, used for the first start only.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    pub state_dir: PathBuf,
    #[serde(default)]
    pub host: Option<String>,
    pub location: String,
    #[serde(default)]
    pub scratch_dir: Option<PathBuf>,
    #[serde(default)]
    pub socket_dirs: Vec<PathBuf>,
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    /// Folders restores may write into (new folders under them). Empty: one root,
    /// `STATE_DIR/restores`.
    #[serde(default)]
    pub restore_roots: Vec<PathBuf>,
    /// On SIGTERM, how long a running job may still take before it is cancelled.
    /// Default: 600 (ten minutes).
    #[serde(default)]
    pub drain_timeout_secs: Option<u64>,
    #[serde(default, rename = "vm")]
    pub vms: Vec<QemuVmConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent configuration {path}: {message}")]
    Config { path: String, message: String },
    #[error("{0}")]
    Client(#[from] tresor_client::ClientError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, AgentError> {
        let err = |message: String| AgentError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut config: AgentConfig = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        for vm in &mut config.vms {
            if vm.scratch_dir.is_none() {
                vm.scratch_dir = config.scratch_dir.clone();
            }
        }
        Ok(config)
    }

    /// How long a running job may still take once the agent is asked to stop.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout_secs
            .map_or(DEFAULT_DRAIN, Duration::from_secs)
    }

    pub fn host(&self) -> String {
        self.host.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into())
        })
    }

    /// Where restore jobs may write: the configured roots, or `STATE_DIR/restores`
    /// (created, 0700) when none is configured.
    pub fn restore_roots(&self) -> RestoreRoots {
        RestoreRoots::new(
            &self.restore_roots,
            Some(&self.state_dir.join(confine::DEFAULT_ROOT)),
        )
    }

    /// Creates the agent's folders it lacks, private (0700): the state folder (made
    /// private if it exists), and scratch folders that do not exist yet. An existing
    /// scratch folder keeps its mode: it may be shared (`/var/tmp`) or need QEMU's
    /// access when QEMU runs as another user.
    pub fn prepare_dirs(&self) -> Result<(), AgentError> {
        let io = |dir: &Path| {
            let what = format!("creating {}", dir.display());
            move |source| AgentError::Io { what, source }
        };
        confine::ensure_private_dir(&self.state_dir).map_err(io(&self.state_dir))?;
        let scratch = self
            .scratch_dir
            .iter()
            .chain(self.vms.iter().filter_map(|v| v.scratch_dir.as_ref()));
        for dir in scratch {
            if !dir.exists() {
                confine::create_private_dir_all(dir).map_err(io(dir))?;
            }
        }
        Ok(())
    }

    /// The provider of this host's VMs.
    pub fn provider(&self) -> QemuProvider {
        let mut p = QemuProvider::new(self.vms.clone());
        for d in &self.socket_dirs {
            p = p.with_socket_dir(d);
        }
        p
    }
}

/// What a registered agent keeps in its state folder (0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    pub server: String,
    pub fingerprint: String,
    pub agent_id: String,
    pub credential: String,
    pub vault: String,
}

/// A vault credentials file (see the server's `vault credentials`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsFile {
    server: String,
    fingerprint: String,
    secret: String,
    /// The vault the file was made for: the server refuses it for another.
    #[serde(default)]
    vault: Option<String>,
}

fn state_path(config: &AgentConfig) -> PathBuf {
    config.state_dir.join("agent.json")
}

/// Whether the agent has registered (its state file exists).
pub fn is_registered(config: &AgentConfig) -> bool {
    state_path(config).exists()
}

/// Keeps an agent's identity (mode 0600).
pub fn save_state(config: &AgentConfig, state: &AgentState) -> Result<(), AgentError> {
    write_private(
        &state_path(config),
        &serde_json::to_vec_pretty(state).expect("state serializes"),
    )
}

/// The agent's state, registering first if there is none.
pub async fn load_or_register(config: &AgentConfig) -> Result<AgentState, AgentError> {
    let path = state_path(config);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&text).map_err(|e| AgentError::Config {
            path: path.display().to_string(),
            message: e.to_string(),
        });
    }
    let creds_path = config.credentials.as_ref().ok_or_else(|| AgentError::Config {
        path: path.display().to_string(),
        message: "the agent is not registered yet and no credentials file is configured: download one with `tresor vault credentials` and set credentials = \"...\"".into(),
    })?;
    let creds: CredentialsFile =
        serde_json::from_str(&std::fs::read_to_string(creds_path).map_err(|source| {
            AgentError::Io {
                what: format!("reading {}", creds_path.display()),
                source,
            }
        })?)
        .map_err(|e| AgentError::Config {
            path: creds_path.display().to_string(),
            message: format!("not a vault credentials file: {e}"),
        })?;
    let addr = ServerAddress::parse(&creds.server, &creds.fingerprint)?;
    let api = ApiClient::new(
        Transport::new(&addr, config.proxy.as_ref(), CALL_TIMEOUT)?,
        None,
    );
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Registered {
        agent_id: String,
        credential: String,
        vault: String,
        #[serde(default)]
        location: Option<String>,
    }
    let reg: Registered = api
        .post_json(
            "api/v1/agents/register",
            &json!({
                "secret": creds.secret,
                "host": config.host(),
                "location": config.location,
                "vault": creds.vault,
                "version": env!("CARGO_PKG_VERSION"),
            }),
        )
        .await?;
    // The server places the host where its vault credentials say, whatever agent.toml
    // claims: say so, since VMs are offered only to vaults of that location.
    if let Some(given) = &reg.location {
        if !given.eq_ignore_ascii_case(&config.location) {
            tracing::warn!(
                registered = ?given,
                configured = ?config.location,
                "this host is registered in the location of its vault credentials, not the one agent.toml names; its VMs can be protected by vaults of that location"
            );
        }
    }
    let state = AgentState {
        server: creds.server,
        fingerprint: creds.fingerprint,
        agent_id: reg.agent_id,
        credential: reg.credential,
        vault: reg.vault,
    };
    save_state(config, &state)?;
    tracing::info!(agent = %state.agent_id, vault = %state.vault, "registered with the vault server");
    Ok(state)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let io = |source| AgentError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    if let Some(dir) = path.parent() {
        confine::ensure_private_dir(dir).map_err(io)?;
    }
    tresor_storage::write_file_atomic(path, bytes, 0o600).map_err(io)
}

/// The API client of a registered agent.
pub fn client(config: &AgentConfig, state: &AgentState) -> Result<ApiClient, AgentError> {
    let addr = ServerAddress::parse(&state.server, &state.fingerprint)?;
    Ok(ApiClient::new(
        Transport::new(&addr, config.proxy.as_ref(), CALL_TIMEOUT)?,
        Some(state.credential.clone()),
    ))
}

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
    // Registration is not cut short (the server may have registered the agent
    // already); each of its calls has a timeout.
    let state = load_or_register(&config).await?;
    if shutdown.is_cancelled() {
        return Ok(());
    }
    let api = Arc::new(client(&config, &state)?);
    let provider = Arc::new(config.provider());
    let roots = config.restore_roots();
    tracing::info!(roots = ?roots.roots(), "restores may write under these folders");
    let config = Arc::new(config);
    let heartbeat = tokio::spawn(heartbeats(
        api.clone(),
        provider.clone(),
        config.state_dir.clone(),
        shutdown.clone(),
    ));
    job_loop(api, config, provider, &shutdown).await;
    // An inventory under way is of no use any more.
    heartbeat.abort();
    Ok(())
}

/// What the agent reports of its VMs: what each is, and its preflight checks (so that
/// the portal shows why a VM could not be backed up before a backup fails).
pub async fn inventory(provider: &dyn VmProvider) -> Vec<Value> {
    inventory_and_disks(provider).await.0
}

/// [`inventory`], and the disks of each VM that could be inspected.
async fn inventory_and_disks(
    provider: &dyn VmProvider,
) -> (Vec<Value>, BTreeMap<String, Vec<VmDisk>>) {
    let mut vms = Vec::new();
    let mut disks = BTreeMap::new();
    for vm in provider.list().await.unwrap_or_default() {
        match tokio::time::timeout(Duration::from_secs(20), provider.inspect(&vm)).await {
            Ok(Ok(info)) => {
                let preflight =
                    tokio::time::timeout(Duration::from_secs(20), provider.preflight(&vm))
                        .await
                        .ok();
                disks.insert(vm.0.clone(), info.disks.clone());
                vms.push(json!({ "vm": vm.0, "info": info, "preflight": preflight }))
            }
            Ok(Err(e)) => tracing::warn!(vm = %vm, error = %e, "cannot inspect VM"),
            Err(_) => tracing::warn!(vm = %vm, "inspecting the VM timed out"),
        }
    }
    (vms, disks)
}

fn known_disks_path(state_dir: &Path) -> PathBuf {
    state_dir.join("known-disks.json")
}

/// The disks this host has seen each VM with (by the provider's name of the VM).
fn read_known_disks(state_dir: &Path) -> BTreeMap<String, Vec<VmDisk>> {
    std::fs::read(known_disks_path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Remembers the disks VMs were seen with, so that a stopped VM's disks can be
/// replaced (QEMU, which knew them, is gone then). VMs not seen now keep their entry.
fn remember_disks(state_dir: &Path, seen: BTreeMap<String, Vec<VmDisk>>) {
    let mut known = read_known_disks(state_dir);
    let before = known.clone();
    known.extend(seen);
    if known != before {
        let json = serde_json::to_vec_pretty(&known).expect("disks serialize");
        if let Err(e) = write_private(&known_disks_path(state_dir), &json) {
            tracing::warn!(error = %e, "cannot remember the VMs' disks");
        }
    }
}

/// The images this host knows `vm` by: what the provider says now, else what it
/// said last time (a stopped VM without configured images).
async fn host_known_disks(
    provider: &dyn VmProvider,
    state_dir: &Path,
    vm: &str,
) -> Option<Vec<VmDisk>> {
    let vm_ref = VmRef(vm.to_string());
    match tokio::time::timeout(Duration::from_secs(20), provider.inspect(&vm_ref)).await {
        Ok(Ok(info)) if !info.disks.is_empty() => {
            remember_disks(
                state_dir,
                BTreeMap::from([(vm.to_string(), info.disks.clone())]),
            );
            Some(info.disks)
        }
        _ => read_known_disks(state_dir).remove(vm),
    }
}

async fn heartbeats(
    api: Arc<ApiClient>,
    provider: Arc<QemuProvider>,
    state_dir: PathBuf,
    shutdown: CancellationToken,
) {
    loop {
        let (vms, disks) = inventory_and_disks(provider.as_ref()).await;
        remember_disks(&state_dir, disks);
        let body = json!({ "version": env!("CARGO_PKG_VERSION"), "vms": vms });
        if let Err(e) = api
            .post_json::<_, Value>("api/v1/agent/heartbeat", &body)
            .await
        {
            tracing::warn!(error = %e, "heartbeat failed");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Assignment {
    job_id: String,
    operation: String,
    vault_id: String,
    vm: Option<String>,
    point_name: Option<String>,
    passphrase: String,
    params: Value,
}

/// Takes jobs one at a time until `shutdown`.
async fn job_loop(
    api: Arc<ApiClient>,
    config: Arc<AgentConfig>,
    provider: Arc<QemuProvider>,
    shutdown: &CancellationToken,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = api.send(reqwest::Method::POST, "api/v1/agent/jobs/next", |r| r) => next,
        };
        let response = match next {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the server for jobs");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        if response.status().as_u16() == 204 {
            continue;
        }
        let job: Assignment = match response.json().await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable job assignment");
                continue;
            }
        };
        if shutdown.is_cancelled() {
            // Taken in the instant the agent was asked to stop: not started.
            let completion = failed(
                SHUTTING_DOWN,
                "the agent was stopping when it received the job; it did not start".into(),
                "run the job again once the agent runs",
            );
            report_end(&api, &job.job_id, &completion, shutdown).await;
            return;
        }
        run_job(&api, &config, provider.clone(), job, shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// Runs one job and reports its end. When the agent is asked to stop meanwhile, the
/// job has the drain time to finish; then it is cancelled, and ends Failed with
/// [`SHUTTING_DOWN`] unless it completed.
async fn run_job(
    api: &Arc<ApiClient>,
    config: &AgentConfig,
    provider: Arc<QemuProvider>,
    job: Assignment,
    shutdown: &CancellationToken,
) {
    tracing::info!(job = %job.job_id, operation = %job.operation, "job started");
    let progress = Arc::new(Progress::default());
    let reporter = tokio::spawn(report_progress(
        api.clone(),
        job.job_id.clone(),
        progress.clone(),
    ));
    let drain = tokio::spawn(cancel_when_drained(
        shutdown.clone(),
        config.drain_timeout(),
        progress.clone(),
    ));
    let completion = match job.operation.as_str() {
        "Backup" => run_backup(api, provider, &job, progress.clone()).await,
        "Restore" => run_restore(api, config, provider.as_ref(), &job, progress.clone()).await,
        other => failed(
            "UnsupportedOperation",
            format!("this agent does not run {other} jobs"),
            "update the agent",
        ),
    };
    reporter.abort();
    drain.abort();
    // The drain task ended on its own only when it cancelled the job.
    let cut_short = drain.await.is_ok();
    let completion = if cut_short {
        shut_down(completion)
    } else {
        completion
    };
    report_end(api, &job.job_id, &completion, shutdown).await;
    tracing::info!(job = %job.job_id, status = %completion["status"], "job ended");
}

/// Once `shutdown` is cancelled, waits `drain`, then cancels the job.
async fn cancel_when_drained(
    shutdown: CancellationToken,
    drain: Duration,
    progress: Arc<Progress>,
) {
    shutdown.cancelled().await;
    tracing::info!(
        "the agent is stopping: the running job has {} s to finish",
        drain.as_secs()
    );
    tokio::time::sleep(drain).await;
    tracing::warn!("the agent is stopping: cancelling the running job");
    progress.cancel.store(true, Ordering::SeqCst);
}

/// A job's end after the agent's stop cancelled it: Failed with [`SHUTTING_DOWN`]
/// where it ended cancelled. A point it committed, or a failure of its own, stands.
fn shut_down(completion: Value) -> Value {
    if completion["status"] != "Cancelled" {
        return completion;
    }
    let said: Vec<&str> = completion["warnings"]
        .as_array()
        .map(|w| w.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    failed(
        SHUTTING_DOWN,
        format!(
            "the agent was stopped, and cancelled the job before it ended ({})",
            said.join("; ")
        ),
        "run the job again; to let jobs finish when the agent stops, give it more time (drain_timeout_secs)",
    )
}

/// Reports a job's end, retrying while the server cannot take it: up to 30 times,
/// and for [`REPORT_GRACE`] at most once the agent is stopping.
async fn report_end(
    api: &ApiClient,
    job_id: &str,
    completion: &Value,
    shutdown: &CancellationToken,
) {
    let path = format!("api/v1/agent/jobs/{job_id}/complete");
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_secs(1);
    for _ in 0..30 {
        let call = api.post_json::<_, Value>(&path, completion);
        let result = if shutdown.is_cancelled() {
            match tokio::time::timeout_at(started + REPORT_GRACE, call).await {
                Ok(r) => r,
                Err(_) => break,
            }
        } else {
            call.await
        };
        match result {
            Ok(_) => return,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "cannot report the job's end yet; retrying");
                let wake = tokio::time::Instant::now() + delay;
                if shutdown.is_cancelled() && wake >= started + REPORT_GRACE {
                    break;
                }
                tokio::time::sleep_until(wake).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                tracing::error!(error = %e, "the server refused the job's end");
                return;
            }
        }
    }
    tracing::error!(job = %job_id, "could not report the job's end; the server ends it when its lease runs out");
}

/// Reports progress every few seconds; sets the cancel flag when the server asks for
/// it.
async fn report_progress(api: Arc<ApiClient>, job_id: String, progress: Arc<Progress>) {
    let path = format!("api/v1/agent/jobs/{job_id}/progress");
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let (done, total) = progress.snapshot();
        let task = if total > 0 {
            "Transfer data to vault"
        } else {
            "Take snapshot"
        };
        let body = json!({ "bytesDone": done, "bytesTotal": total, "task": task });
        match api.post_json::<_, Value>(&path, &body).await {
            Ok(answer) if answer["cancel"] == true => progress.cancel.store(true, Ordering::SeqCst),
            Ok(_) => {}
            Err(e) if e.status() == Some(409) => {
                // The server ended the job (its lease ran out): stop working on it.
                tracing::warn!(error = %e, "the server ended this job; stopping it");
                progress.cancel.store(true, Ordering::SeqCst);
            }
            Err(e) => tracing::warn!(error = %e, "progress report failed"),
        }
    }
}

fn failed(code: &str, message: String, recommendation: &str) -> Value {
    json!({
        "status": "Failed",
        "error": { "code": code, "message": message, "recommendation": recommendation },
    })
}

/// A provider's stable code as a job error code (PascalCase, like the API's).
fn job_code(code: CheckCode) -> String {
    code.as_str()
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// What to do about a failed backup, by the provider's code.
fn recommendation(code: CheckCode) -> &'static str {
    match code {
        CheckCode::QmpUnreachable => "check that the VM runs and that its QMP socket in the agent's configuration is right (tresor vm preflight)",
        CheckCode::ImageLocked => "the VM runs but the agent only knows its images: configure its QMP socket, or stop it",
        CheckCode::ScratchSpaceMissing => "create the scratch folder or free space there (scratch_dir in the agent's configuration)",
        CheckCode::BackupInProgress => "wait for the other backup of this VM to end",
        CheckCode::UnsupportedDiskFormat => "convert the disk to qcow2",
        CheckCode::VmNotFound => "the VM is no longer in the agent's configuration; add it back or stop its protection",
        _ => "run tresor vm preflight on the host for details, fix what it says, and back up again",
    }
}

/// The job's repository, and where its backend keeps the server's last error answer.
fn open_repo(api: &Arc<ApiClient>, job: &Assignment) -> Result<(Repository, RefusalSlot), String> {
    let handle = tokio::runtime::Handle::current();
    let from_secondary = job.params["useSecondaryRegion"].as_bool().unwrap_or(false);
    let backend = if from_secondary {
        RemoteBackend::secondary(api.clone(), handle, &job.vault_id)
    } else {
        RemoteBackend::new(api.clone(), handle, &job.vault_id)
    };
    let refusal = backend.refusal();
    tokio::task::block_in_place(|| Repository::open(Arc::new(backend), job.passphrase.as_bytes()))
        .map(|repo| (repo, refusal))
        .map_err(|e| e.to_string())
}

async fn run_backup(
    api: &Arc<ApiClient>,
    provider: Arc<QemuProvider>,
    job: &Assignment,
    progress: Arc<Progress>,
) -> Value {
    let Some(vm) = &job.vm else {
        return failed(
            "InvalidJob",
            "a backup job without a VM".into(),
            "report this to the server's operator",
        );
    };
    let (repo, refusal) = match open_repo(api, job) {
        Ok(r) => r,
        Err(e) => {
            return failed(
                "VaultUnreachable",
                format!("cannot open the vault's repository: {e}"),
                "check the agent's connection (tresor agent check)",
            )
        }
    };
    let outcome = backup_vm(
        &repo,
        provider.as_ref(),
        &VmRef(vm.clone()),
        VmBackupOptions {
            name: job.point_name.clone(),
            progress: Some(&progress),
            ..VmBackupOptions::default()
        },
    )
    .await;
    match outcome {
        Ok(o) => json!({
            "status": if o.warnings.is_empty() { "Completed" } else { "CompletedWithWarnings" },
            "warnings": o.warnings,
            "pointId": o.manifest.id,
            "frozenMs": o.frozen_for.map(|d| d.as_millis() as u64),
        }),
        Err(e) if progress.cancelled() => json!({
            "status": "Cancelled",
            "warnings": [format!("stopped: {e}")],
        }),
        // The server refused a call (its storage is full, it refused an upload): the
        // job ends with the server's code and advice, not a generic failure.
        Err(e) if e.code == CheckCode::BackupFailed => {
            match refusal.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(r) => failed(
                    &r.code,
                    e.message,
                    r.recommendation
                        .as_deref()
                        .unwrap_or(recommendation(e.code)),
                ),
                None => failed(&job_code(e.code), e.message, recommendation(e.code)),
            }
        }
        Err(e) => failed(&job_code(e.code), e.message, recommendation(e.code)),
    }
}

async fn run_restore(
    api: &Arc<ApiClient>,
    config: &AgentConfig,
    provider: &dyn VmProvider,
    job: &Assignment,
    progress: Arc<Progress>,
) -> Value {
    let refused = |e: RestoreError| failed(e.code(), e.to_string(), e.recommendation());
    let p = &job.params;
    let point_id = p["recoveryPoint"].as_str().unwrap_or_default().to_string();
    let format = match p["format"].as_str() {
        Some("qcow2") => Some(OutputFormat::Qcow2),
        Some("raw") => Some(OutputFormat::Raw),
        _ => None,
    };
    // Checked before anything is read or written; the folders are made later, once
    // the point is known to exist.
    let roots = config.restore_roots();
    let target = p["targetPath"].as_str().map(Path::new);
    let mode = match (p["mode"].as_str(), target) {
        (Some("RestoreDisks"), Some(target)) => match roots.resolve(target) {
            Ok(folder) => RestoreMode::Disks { folder, format },
            Err(e) => return refused(e.into()),
        },
        (Some("CreateVm"), Some(target)) => {
            let name = p["newName"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}-restored", job.vm.clone().unwrap_or_default()));
            if let Err(e) = tresor_qemu::validate_vm_name(&name) {
                return refused(e.into());
            }
            match roots.resolve(target) {
                Ok(folder) => RestoreMode::NewVm {
                    folder,
                    name,
                    format,
                },
                Err(e) => return refused(e.into()),
            }
        }
        // Where the disks go is the host's knowledge, not the job's (a target path
        // in the job is ignored) nor the point's.
        (Some("ReplaceDisks"), _) => {
            let Some(vm) = &job.vm else {
                return failed(
                    "InvalidJob",
                    "a replace-disks job without a VM".into(),
                    "report this to the server's operator",
                );
            };
            let known = host_known_disks(provider, &config.state_dir, vm)
                .await
                .unwrap_or_default();
            RestoreMode::ReplaceOriginal { known: Some(known) }
        }
        _ => {
            return failed(
                "InvalidRestoreRequest",
                format!("cannot restore with {p}"),
                "give a mode and a target path",
            )
        }
    };
    let (repo, _) = match open_repo(api, job) {
        Ok(r) => r,
        Err(e) => {
            return failed(
                "VaultUnreachable",
                format!("cannot open the vault's repository: {e}"),
                "check the agent's connection (tresor agent check)",
            )
        }
    };
    let result = tokio::task::block_in_place(|| {
        let manifest = repo.load_point(&point_id)?;
        let mode = match mode {
            RestoreMode::Disks { folder, format } => RestoreMode::Disks {
                folder: roots.create(&folder)?,
                format,
            },
            RestoreMode::NewVm {
                folder,
                name,
                format,
            } => RestoreMode::NewVm {
                folder: roots.create(&folder)?,
                name,
                format,
            },
            other => other,
        };
        restore_point(&repo, &manifest, &mode, Some(&progress))
    });
    match result {
        Ok(out) => json!({
            "status": "Completed",
            "warnings": out.notes,
            "result": {
                "disks": out.disks.iter().map(|d| json!({"name": d.name, "path": d.path, "format": d.format})).collect::<Vec<_>>(),
                "definition": out.definition,
                "startScript": out.start_script,
            },
        }),
        Err(e) if progress.cancelled() => {
            json!({ "status": "Cancelled", "warnings": [e.to_string()] })
        }
        Err(e) => refused(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

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

    /// A job the agent's stop cancelled fails with a code; one that completed, or
    /// failed of its own, keeps its end.
    #[test]
    fn a_job_cut_short_by_the_stop_fails_with_agent_shutting_down() {
        let cut = shut_down(json!({ "status": "Cancelled", "warnings": ["stopped: cancelled"] }));
        assert_eq!(cut["status"], "Failed");
        assert_eq!(cut["error"]["code"], SHUTTING_DOWN);
        assert!(cut["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped: cancelled"));
        let done = json!({ "status": "Completed", "pointId": "p" });
        assert_eq!(shut_down(done.clone()), done);
        let own = failed("VaultUnreachable", "no".into(), "check");
        assert_eq!(shut_down(own.clone()), own);
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
        };
        config.prepare_dirs().unwrap();
        assert_eq!(mode(&config.state_dir), 0o700);
    }
}
