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
//! [proxy]                                         # else HTTPS_PROXY / NO_PROXY
//! host = "proxy.example"
//! port = 3128
//! [[vm]]
//! name = "web01"
//! qmp = "/run/qemu/web01.qmp"
//! guest_agent = "/run/qemu/web01.qga"
//! ```
//!
//! Jobs run one at a time: many items due at once queue on the host instead of
//! loading it. While a job runs, progress is reported every few seconds, which keeps
//! the job's lease; a cancel request is read from the answer. Stopping the agent
//! (SIGTERM, Ctrl-C) drains it: no new job is taken, the running one is cancelled
//! cleanly (no point is left behind that lies) and reported.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tresor_client::{ApiClient, ProxyConfig, ServerAddress, Transport};
use tresor_engine::progress::Progress;
use tresor_engine::restore::OutputFormat;
use tresor_engine::Repository;
use tresor_qemu::{QemuProvider, QemuVmConfig};
use tresor_vm::{CheckCode, VmProvider, VmRef};

use crate::remote::RemoteBackend;
use crate::restore::{restore_point, RestoreMode};
use crate::{backup_vm, VmBackupOptions};

/// How often the agent reports it lives, with its VMs.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How often a running job reports progress (well inside the server's lease).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Timeout of each API call's connection and of each wait for data.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

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

    pub fn host(&self) -> String {
        self.host.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into())
        })
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
    }
    let reg: Registered = api
        .post_json(
            "api/v1/agents/register",
            &json!({
                "secret": creds.secret,
                "host": config.host(),
                "location": config.location,
                "version": env!("CARGO_PKG_VERSION"),
            }),
        )
        .await?;
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
        std::fs::create_dir_all(dir).map_err(io)?;
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

/// Runs the agent until `stop` resolves: heartbeats and jobs.
pub async fn run(
    config: AgentConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let state = load_or_register(&config).await?;
    let api = Arc::new(client(&config, &state)?);
    let provider = Arc::new(config.provider());
    let heartbeat = tokio::spawn(heartbeats(api.clone(), provider.clone()));
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let jobs = tokio::spawn(job_loop(api.clone(), provider.clone(), draining.clone()));
    stop.await;
    tracing::info!("stopping: no new jobs; a running job is cancelled cleanly");
    draining.store(true, Ordering::SeqCst);
    heartbeat.abort();
    let _ = jobs.await;
    Ok(())
}

/// What the agent reports of its VMs: what each is, and its preflight checks (so that
/// the portal shows why a VM could not be backed up before a backup fails).
pub async fn inventory(provider: &dyn VmProvider) -> Vec<Value> {
    let mut vms = Vec::new();
    for vm in provider.list().await.unwrap_or_default() {
        match tokio::time::timeout(Duration::from_secs(20), provider.inspect(&vm)).await {
            Ok(Ok(info)) => {
                let preflight =
                    tokio::time::timeout(Duration::from_secs(20), provider.preflight(&vm))
                        .await
                        .ok();
                vms.push(json!({ "vm": vm.0, "info": info, "preflight": preflight }))
            }
            Ok(Err(e)) => tracing::warn!(vm = %vm, error = %e, "cannot inspect VM"),
            Err(_) => tracing::warn!(vm = %vm, "inspecting the VM timed out"),
        }
    }
    vms
}

async fn heartbeats(api: Arc<ApiClient>, provider: Arc<QemuProvider>) {
    loop {
        let vms = inventory(provider.as_ref()).await;
        let body = json!({ "version": env!("CARGO_PKG_VERSION"), "vms": vms });
        if let Err(e) = api
            .post_json::<_, Value>("api/v1/agent/heartbeat", &body)
            .await
        {
            tracing::warn!(error = %e, "heartbeat failed");
        }
        tokio::time::sleep(HEARTBEAT).await;
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

async fn job_loop(
    api: Arc<ApiClient>,
    provider: Arc<QemuProvider>,
    draining: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut backoff = Duration::from_secs(1);
    while !draining.load(Ordering::SeqCst) {
        let next = api
            .send(reqwest::Method::POST, "api/v1/agent/jobs/next", |r| r)
            .await;
        let response = match next {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the server for jobs");
                tokio::time::sleep(backoff).await;
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
        run_job(&api, provider.clone(), job, draining.clone()).await;
    }
}

/// Runs one job and reports its end (retrying the report until the server takes it).
async fn run_job(
    api: &Arc<ApiClient>,
    provider: Arc<QemuProvider>,
    job: Assignment,
    draining: Arc<std::sync::atomic::AtomicBool>,
) {
    tracing::info!(job = %job.job_id, operation = %job.operation, "job started");
    let progress = Arc::new(Progress::default());
    let reporter = tokio::spawn(report_progress(
        api.clone(),
        job.job_id.clone(),
        progress.clone(),
        draining,
    ));
    let completion = match job.operation.as_str() {
        "Backup" => run_backup(api, provider, &job, progress.clone()).await,
        "Restore" => run_restore(api, &job, progress.clone()).await,
        other => failed(
            "UnsupportedOperation",
            format!("this agent does not run {other} jobs"),
            "update the agent",
        ),
    };
    reporter.abort();
    let path = format!("api/v1/agent/jobs/{}/complete", job.job_id);
    let mut delay = Duration::from_secs(1);
    for _ in 0..30 {
        match api.post_json::<_, Value>(&path, &completion).await {
            Ok(_) => break,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "cannot report the job's end yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                tracing::error!(error = %e, "the server refused the job's end");
                break;
            }
        }
    }
    tracing::info!(job = %job.job_id, status = %completion["status"], "job ended");
}

/// Reports progress every few seconds; sets the cancel flag when the server (or a
/// drain) asks for it.
async fn report_progress(
    api: Arc<ApiClient>,
    job_id: String,
    progress: Arc<Progress>,
    draining: Arc<std::sync::atomic::AtomicBool>,
) {
    let path = format!("api/v1/agent/jobs/{job_id}/progress");
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        if draining.load(Ordering::SeqCst) {
            progress.cancel.store(true, Ordering::SeqCst);
        }
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

fn open_repo(api: &Arc<ApiClient>, job: &Assignment) -> Result<Repository, String> {
    let handle = tokio::runtime::Handle::current();
    let from_secondary = job.params["useSecondaryRegion"].as_bool().unwrap_or(false);
    let backend = if from_secondary {
        RemoteBackend::secondary(api.clone(), handle, &job.vault_id)
    } else {
        RemoteBackend::new(api.clone(), handle, &job.vault_id)
    };
    tokio::task::block_in_place(|| Repository::open(Arc::new(backend), job.passphrase.as_bytes()))
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
    let repo = match open_repo(api, job) {
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
        Err(e) => failed(&job_code(e.code), e.message, recommendation(e.code)),
    }
}

async fn run_restore(api: &Arc<ApiClient>, job: &Assignment, progress: Arc<Progress>) -> Value {
    let p = &job.params;
    let point_id = p["recoveryPoint"].as_str().unwrap_or_default().to_string();
    let format = match p["format"].as_str() {
        Some("qcow2") => Some(OutputFormat::Qcow2),
        Some("raw") => Some(OutputFormat::Raw),
        _ => None,
    };
    let folder = p["targetPath"].as_str().map(PathBuf::from);
    let mode = match (p["mode"].as_str(), folder) {
        (Some("RestoreDisks"), Some(folder)) => RestoreMode::Disks { folder, format },
        (Some("CreateVm"), Some(folder)) => RestoreMode::NewVm {
            folder,
            name: p["newName"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}-restored", job.vm.clone().unwrap_or_default())),
            format,
        },
        (Some("ReplaceDisks"), _) => RestoreMode::ReplaceOriginal,
        _ => {
            return failed(
                "InvalidRestoreRequest",
                format!("cannot restore with {p}"),
                "give a mode and a target path",
            )
        }
    };
    let repo = match open_repo(api, job) {
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
        let manifest = repo.load_point(&point_id).map_err(|e| e.to_string())?;
        restore_point(&repo, &manifest, &mode, Some(&progress)).map_err(|e| e.to_string())
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
        Err(e) if progress.cancelled() => json!({ "status": "Cancelled", "warnings": [e] }),
        Err(e) => failed(
            "RestoreFailed",
            e,
            "check the target path and free space on the host, then restore again",
        ),
    }
}
