//! What host agents call: registration, heartbeats with their VM inventory, and the
//! job protocol (take the next job, report progress, report the end).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tresor_domain::access::Permission;

use jiff::Timestamp;
use serde_json::Value;
use tresor_api::agents::{
    Agent, AgentPing, AgentVm, Assignment, Completion, CompletionAnswer, Heartbeat,
    HeartbeatAnswer, NextQuery, Progress, ProgressAnswer, RegisterRequest, RegisterResponse,
};
use tresor_api::inventory::VmReport;
use tresor_api::ErrorCode;
use tresor_domain::{JobOperation, JobStatus};
use tresor_metadata::{AgentRow, VmRow};

use crate::audit::{Actor, Target};
use crate::auth::{hash_secret, new_id, new_secret, Principal};
use crate::catalogue::parse_state;
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::{self, BackupDone, LEASE};
use crate::state::Service;
use crate::views::{enum_name, parse_enum, JobBody};

/// Refusals of a vault credentials file: one code, and a message saying why.
fn bad_credentials(why: &str) -> ServiceError {
    ServiceError::new(
        ErrorCode::InvalidVaultCredentials,
        format!("the vault credentials file {why}"),
        "download new vault credentials (tresor vault credentials, or Host agents in the portal) and register again",
    )
}

/// Text from an agent may be shown in pages and written to the log: no control
/// characters (a line break would forge a log line), and within length bounds.
pub fn is_plain_text(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Longest name of a VM or a disk an agent may report.
pub const MAX_NAME: usize = 255;
/// Longest string anywhere in what an agent reports (paths, command lines, messages).
pub const MAX_TEXT: usize = 8192;
/// Most VMs one host may report.
pub const MAX_VMS: usize = 4096;
/// Disks and network interfaces a VM may report: far above what a hypervisor
/// attaches, far below what would make one report a burden.
pub const MAX_DISKS: usize = 256;
pub const MAX_NICS: usize = 64;

fn bad_report(field: &str, rule: &str) -> ServiceError {
    ServiceError::new(
        ErrorCode::InvalidAgentReport,
        format!("the agent's report has an invalid {field}: {rule}"),
        "rename what the report names (VMs, disks) without control characters, or update the agent",
    )
}

fn check_version(v: Option<&str>) -> ServiceResult<()> {
    match v {
        Some(v) if v.len() > 64 || !is_plain_text(v) => Err(bad_report(
            "version",
            "at most 64 characters, no control characters",
        )),
        _ => Ok(()),
    }
}

/// Checks a JSON value from an agent: every string (keys too) plain text and at most
/// [`MAX_TEXT`] bytes. `serde_json` already bounds the nesting depth.
fn check_json(field: &str, v: &Value) -> ServiceResult<()> {
    let text = |t: &str| {
        if t.len() > MAX_TEXT || !is_plain_text(t) {
            Err(bad_report(
                field,
                "its texts must be at most 8192 bytes, without control characters",
            ))
        } else {
            Ok(())
        }
    };
    match v {
        Value::String(t) => text(t),
        Value::Array(a) => a.iter().try_for_each(|x| check_json(field, x)),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            text(k)?;
            check_json(field, x)
        }),
        _ => Ok(()),
    }
}

fn as_json(v: &impl serde::Serialize) -> ServiceResult<Value> {
    serde_json::to_value(v).map_err(ServiceError::internal)
}

/// What a heartbeat reports, checked before any of it is stored.
fn check_heartbeat(hb: &Heartbeat) -> ServiceResult<()> {
    check_version(hb.version.as_deref())?;
    if hb.vms.len() > MAX_VMS {
        return Err(bad_report("VM list", "at most 4096 VMs per host"));
    }
    for v in &hb.vms {
        if v.vm.is_empty() || v.vm.len() > MAX_NAME || !is_plain_text(&v.vm) {
            return Err(bad_report(
                &format!(
                    "VM name {:?}",
                    v.vm.chars().take(MAX_NAME).collect::<String>()
                ),
                "1 to 255 bytes, no control characters",
            ));
        }
        // Every text of the typed report, checked as the JSON it came as.
        check_json("VM description", &as_json(&v.info)?)?;
        if let Some(p) = &v.preflight {
            check_json("preflight result", &as_json(p)?)?;
        }
        if v.info.disks.len() > MAX_DISKS || v.info.nics.len() > MAX_NICS {
            return Err(bad_report(
                &format!("VM {}", v.vm),
                "at most 256 disks and 64 network interfaces per VM",
            ));
        }
        // Disk names are names too: bounded like VM names.
        if v.info.disks.iter().any(|d| d.name.len() > MAX_NAME) {
            return Err(bad_report("disk name", "at most 255 bytes"));
        }
    }
    Ok(())
}

/// Free text of a job report (warnings, error messages): control characters become
/// spaces and the length is bounded, rather than refusing the end of a job.
fn clean_text(t: &str) -> String {
    let mut out: String = t
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT)
        .collect();
    out.truncate(out.trim_end().len());
    out
}

/// The same for every string in a JSON value of a job report.
fn clean_json(v: &mut Value) {
    match v {
        Value::String(t) => *t = clean_text(t),
        Value::Array(a) => a.iter_mut().for_each(clean_json),
        Value::Object(o) => {
            let cleaned: serde_json::Map<String, Value> = std::mem::take(o)
                .into_iter()
                .map(|(k, mut x)| {
                    clean_json(&mut x);
                    (clean_text(&k), x)
                })
                .collect();
            *o = cleaned;
        }
        _ => {}
    }
}

/// The agent's job, if it is its own and still running.
fn own_running_job(
    s: &Service,
    agent: &AgentRow,
    id: &str,
) -> ServiceResult<tresor_metadata::JobRow> {
    let job = s.store.get_job(id)?;
    if job.agent_id.as_deref() != Some(agent.id.as_str()) {
        return Err(ServiceError::forbidden(format!(
            "job {id} is not this agent's"
        )));
    }
    if job.is_finished() {
        return Err(ServiceError::new(
            ErrorCode::JobAlreadyEnded,
            format!("job {id} ended as {} already", job.status),
            "stop working on it; its result is final",
        ));
    }
    Ok(job)
}

/// A VM of the inventory as its agent last reported it; `None` for a row that does
/// not read as a report (written by an older server).
pub fn vm_report(row: &VmRow) -> Option<VmReport> {
    serde_json::from_value(row.body.clone()).ok()
}

/// The host agents `who` may see: every one with `Vaults.Read` at `/`; otherwise
/// those registered with the credentials file of a vault it may read (an agent's
/// vault is where its host was meant to be backed up; others' hosts are not its
/// business). The server's own agent and agents registered before agents recorded
/// their vault belong to no vault: installation readers see them.
pub(crate) fn visible_agents(s: &Service, who: &Principal) -> ServiceResult<Vec<AgentRow>> {
    let agents = s.store.list_agents()?;
    if who.may(
        Permission::ReadVaults,
        &tresor_domain::access::Target::Installation,
    ) {
        return Ok(agents);
    }
    let readable: HashSet<String> = readable_vaults(s, who)?;
    Ok(agents
        .into_iter()
        .filter(|a| a.vault_id.as_ref().is_some_and(|v| readable.contains(v)))
        .collect())
}

/// The ids of the vaults `who` may read.
pub(crate) fn readable_vaults(s: &Service, who: &Principal) -> ServiceResult<HashSet<String>> {
    let mut out = HashSet::new();
    for v in s.store.list_vaults()? {
        if who.may(Permission::ReadVaults, &crate::catalogue::vault_target(&v)?) {
            out.insert(v.id);
        }
    }
    Ok(out)
}

/// Whether an agent was heard from recently enough to count as online.
pub fn online(agent: &AgentRow, now: Timestamp) -> bool {
    agent
        .last_seen
        .is_some_and(|t| now.as_second() - t.as_second() <= 120)
}

impl Service {
    /// Registers a host agent with a vault credentials file's one-time secret (no
    /// principal: the secret is the credential). Every attempt counts against the
    /// client's address, and is recorded in the audit log (`agent.register`, by an
    /// anonymous actor from that address).
    pub async fn register_agent(
        self: &Arc<Self>,
        ip: IpAddr,
        req: RegisterRequest,
    ) -> ServiceResult<RegisterResponse> {
        // An address over its limit is refused before anything else, and not recorded:
        // the limit is what keeps a flood of attempts out of the audit log.
        if let Err(wait) = self.limiters.register.take(ip, std::time::Instant::now()) {
            tracing::warn!(client = %ip, "agent registration refused: too many attempts");
            return Err(wait.error("registration attempts"));
        }
        let target = Target::in_vault(req.vault.as_deref().unwrap_or(""), req.host.trim());
        let r = self.register(req).await;
        let target = match &r {
            Ok(done) => Target::in_vault(&done.vault, &target.object).detail(format!(
                "agent {} location {}",
                done.agent_id, done.location
            )),
            Err(_) => target,
        };
        self.audited_as(Actor::anonymous(ip), "agent.register", target, r)
            .await
    }

    async fn register(self: &Arc<Self>, req: RegisterRequest) -> ServiceResult<RegisterResponse> {
        let host = req.host.trim().to_string();
        if host.is_empty() || host.len() > 253 || !is_plain_text(&host) {
            return Err(ServiceError::new(
                ErrorCode::InvalidHostName,
                "the agent must give its host name: 1 to 253 characters, no control characters",
                "set host in the agent's configuration",
            ));
        }
        check_version(req.version.as_deref())?;
        self
            .blocking(move |s| {
                let now = s.now();
                let hash = hash_secret(&req.secret);
                // Look first, to say why a file cannot be used; then take it atomically
                // (two agents racing with one file: one wins).
                let Some(found) = s.store.find_enrollment(&hash)? else {
                    return Err(bad_credentials("is unknown to this server"));
                };
                if found.used {
                    return Err(bad_credentials("was used already (each file registers one host)"));
                }
                if found.expires <= now {
                    return Err(bad_credentials(&format!("expired at {}", found.expires)));
                }
                let vault = s.store.get_vault(&found.vault_id)?;
                if let Some(expected) = &req.vault {
                    if !expected.eq_ignore_ascii_case(&vault.name) {
                        return Err(bad_credentials(&format!(
                            "belongs to another vault than {expected:?}"
                        )));
                    }
                }
                let enrollment = s
                    .store
                    .consume_enrollment(&hash, now)?
                    .ok_or_else(|| bad_credentials("was used already (each file registers one host)"))?;
                let location = enrollment.location.unwrap_or_else(|| vault.location.clone());
                if let Some(claimed) = &req.location {
                    if !claimed.eq_ignore_ascii_case(&location) {
                        tracing::warn!(host = ?host, claimed = ?claimed, location = ?location,
                            "agent claimed another location than its vault credentials'; it gets the credentials' location");
                    }
                }
                let credential = new_secret("tresor_agent");
                let agent = AgentRow {
                    id: new_id(),
                    host,
                    location: location.clone(),
                    credential_hash: hash_secret(&credential),
                    version: req.version,
                    registered: now,
                    last_seen: Some(now),
                    vault_id: Some(vault.id.clone()),
                };
                s.store.insert_agent(&agent)?;
                tracing::info!(agent = %agent.id, host = ?agent.host, vault = ?vault.name, location = ?location, "agent registered");
                Ok(RegisterResponse {
                    agent_id: agent.id,
                    credential,
                    vault: vault.name,
                    location,
                })
            })
            .await
    }

    /// An authenticated no-op: `tresor agent check` proves its credential with it.
    /// The agent's credential works; where it is registered and how many vaults are
    /// there (`tresor agent check` warns when none is).
    pub fn agent_ping(&self, who: &Principal) -> ServiceResult<AgentPing> {
        let agent = who.require_agent()?;
        let location = self.store.get_agent(&agent.id)?.location;
        let vaults = vaults_by_location(self)?;
        Ok(AgentPing {
            agent_id: agent.id.clone(),
            host: agent.host.clone(),
            vaults_in_location: Some(vaults_in(&vaults, &location)),
            location: Some(location),
        })
    }

    pub async fn heartbeat(
        self: &Arc<Self>,
        who: &Principal,
        hb: Heartbeat,
    ) -> ServiceResult<HeartbeatAnswer> {
        let agent = who.require_agent()?.clone();
        if let Err(e) = check_heartbeat(&hb) {
            tracing::warn!(agent = %agent.id, host = ?agent.host, error = ?e.message, "heartbeat refused");
            return Err(e);
        }
        self.blocking(move |s| {
            let now = s.now();
            s.store.touch_agent(&agent.id, now, hb.version.as_deref())?;
            let rows: Vec<VmRow> = hb
                .vms
                .into_iter()
                .map(|v| {
                    let report = VmReport {
                        info: v.info,
                        preflight: v.preflight,
                    };
                    Ok(VmRow {
                        agent_id: agent.id.clone(),
                        vm: v.vm,
                        body: as_json(&report)?,
                        seen: now,
                    })
                })
                .collect::<ServiceResult<_>>()?;
            s.store.replace_inventory(&agent.id, &rows)?;
            Ok(HeartbeatAnswer { server_time: now })
        })
        .await
    }

    /// Waits up to 20 s (or `?wait=N`) for a job for this agent; 204 when none came.
    pub async fn next_job(
        self: &Arc<Self>,
        who: &Principal,
        q: NextQuery,
    ) -> ServiceResult<Option<Assignment>> {
        let agent = who.require_agent()?.clone();
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(q.wait.unwrap_or(20).min(20));
        // One job at a time: a job this agent still holds was abandoned by a restart.
        let agent_id = agent.id.clone();
        self.blocking(move |s| crate::jobs::end_abandoned_jobs(s, &agent_id))
            .await?;
        loop {
            let notified = self.jobs_changed.notified();
            let agent_id = agent.id.clone();
            let claimed = self
                .blocking(move |s| {
                    let now = s.now();
                    s.store.touch_agent(&agent_id, now, None)?;
                    let Some(mut job) = s.store.claim_job(&agent_id, now, now + LEASE)? else {
                        return Ok(None);
                    };
                    let item = job
                        .item_id
                        .as_deref()
                        .map(|i| s.store.get_item(i))
                        .transpose()?;
                    let params = JobBody::of(&job).params;
                    let from_secondary = params.use_secondary_region;
                    let vault = s.store.get_vault(&job.vault_id)?;
                    // A cross-region restore must work with the primary gone: it needs the
                    // passphrase only, never a (new) primary repository.
                    let ready = if from_secondary {
                        Ok(())
                    } else {
                        s.repos.open_or_create(&vault, &agent_id).map(|_| ())
                    };
                    if let Err(e) = ready {
                        // The job cannot run: it fails with the storage's code, and the
                        // agent waits for the next one.
                        let rec = e.recommendation().to_string();
                        crate::jobs::finish(
                            s,
                            &mut job,
                            tresor_domain::JobStatus::Failed,
                            Some(tresor_domain::JobErrorInfo {
                                code: e.code.as_str().into(),
                                message: e.message,
                                recommendation: rec,
                            }),
                            Vec::new(),
                            Value::Null,
                        )?;
                        if job.operation == JobOperation::Backup.as_str() {
                            if let Some(item) = &item {
                                let mut item = item.clone();
                                item.state =
                                    enum_name(parse_state(&item.state).after_backup_failed());
                                s.store.update_item(&item)?;
                            }
                        }
                        return Ok(None);
                    }
                    let repo_pass = s
                        .repos
                        .passphrase(&job.vault_id, &agent_id)
                        .map_err(ServiceError::internal)?;
                    let operation = parse_enum(&job.operation).ok_or_else(|| {
                        ServiceError::internal(format!(
                            "job {} has operation {:?}",
                            job.id, job.operation
                        ))
                    })?;
                    Ok(Some(Assignment {
                        job_id: job.id.clone(),
                        operation,
                        vault_id: job.vault_id.clone(),
                        item_id: job.item_id.clone(),
                        vm: item.as_ref().map(|i| i.vm.clone()),
                        point_name: item.as_ref().map(|i| i.id.clone()),
                        passphrase: repo_pass,
                        params,
                    }))
                })
                .await?;
            if let Some(a) = claimed {
                tracing::info!(job = %a.job_id, agent = ?agent.host, "job taken");
                return Ok(Some(a));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    /// Renews the job's lease; answers whether the job was cancelled.
    pub async fn job_progress(
        self: &Arc<Self>,
        who: &Principal,
        id: String,
        mut p: Progress,
    ) -> ServiceResult<ProgressAnswer> {
        let agent = who.require_agent()?.clone();
        p.task = p.task.as_deref().map(clean_text);
        self.blocking(move |s| {
            let mut job = own_running_job(s, &agent, &id)?;
            let mut body = JobBody::of(&job);
            body.bytes_done = p.bytes_done;
            body.bytes_total = p.bytes_total;
            if let Some(task) = &p.task {
                for t in &mut body.tasks {
                    if &t.name == task {
                        break;
                    }
                    t.status = JobStatus::Completed;
                }
            }
            let cancel = body.cancel_requested;
            job.body = serde_json::to_value(&body).map_err(ServiceError::internal)?;
            job.lease_until = Some(s.now() + LEASE);
            s.store.update_job(&job)?;
            s.store.touch_agent(&agent.id, s.now(), None)?;
            Ok(ProgressAnswer { cancel })
        })
        .await
    }

    pub async fn complete_job(
        self: &Arc<Self>,
        who: &Principal,
        id: String,
        mut c: Completion,
    ) -> ServiceResult<CompletionAnswer> {
        let agent = who.require_agent()?.clone();
        // What the agent says of the job's end is shown in pages and may be logged.
        c.warnings = c
            .warnings
            .iter()
            .take(1000)
            .map(|w| clean_text(w))
            .collect();
        if let Some(e) = &mut c.error {
            e.code = clean_text(&e.code);
            e.message = clean_text(&e.message);
            e.recommendation = clean_text(&e.recommendation);
        }
        if let Some(p) = &mut c.point_id {
            *p = clean_text(p);
        }
        clean_json(&mut c.result);
        self.blocking(move |s| {
            let mut job = own_running_job(s, &agent, &id)?;
            let succeeded = matches!(
                c.status,
                JobStatus::Completed | JobStatus::CompletedWithWarnings
            );
            let operation: Option<JobOperation> = parse_enum(&job.operation);
            let backup = Some(JobOperation::Backup);
            match (operation, succeeded, &c.point_id) {
                (op, true, Some(point)) if op == backup => jobs::complete_backup(
                    s,
                    &mut job,
                    BackupDone {
                        point_id: point.clone(),
                        warnings: c.warnings,
                        frozen_ms: c.frozen_ms,
                    },
                )?,
                (op, true, None) if op == backup => {
                    return Err(ServiceError::new(
                        ErrorCode::RecoveryPointMissing,
                        "a backup cannot complete without its recovery point",
                        "report the point id",
                    ))
                }
                (op, ok, _) => {
                    let status = if !ok && c.status != JobStatus::Cancelled {
                        JobStatus::Failed
                    } else {
                        c.status
                    };
                    jobs::finish(s, &mut job, status, c.error, c.warnings, c.result)?;
                    if op == backup && status == JobStatus::Failed {
                        if let Some(item_id) = &job.item_id {
                            let mut item = s.store.get_item(item_id)?;
                            item.state = enum_name(parse_state(&item.state).after_backup_failed());
                            s.store.update_item(&item)?;
                        }
                    }
                }
            }
            Ok(CompletionAnswer {
                status: parse_enum(&job.status).ok_or_else(|| {
                    ServiceError::internal(format!("job {} has status {:?}", job.id, job.status))
                })?,
            })
        })
        .await
    }

    /// The registered host agents `who` may see ([`visible_agents`]), with their VMs.
    pub async fn agents(self: &Arc<Self>, who: &Principal) -> ServiceResult<Vec<Agent>> {
        who.require_somewhere(Permission::ReadVaults)?;
        let who = who.clone();
        self.blocking(move |s| {
            let now = s.now();
            let inventory = s.store.list_inventory()?;
            // Every vault counts, seen by `who` or not: a host whose location has a
            // vault is not misplaced.
            let vaults = vaults_by_location(s)?;
            let mut out: Vec<Agent> = visible_agents(s, &who)?
                .into_iter()
                .map(|a| Agent {
                    online: online(&a, now),
                    vaults_in_location: vaults_in(&vaults, &a.location),
                    vms: inventory
                        .iter()
                        .filter(|v| v.agent_id == a.id)
                        .filter_map(|v| {
                            Some(AgentVm {
                                vm: v.vm.clone(),
                                info: vm_report(v)?,
                                seen: v.seen,
                            })
                        })
                        .collect(),
                    id: a.id,
                    host: a.host,
                    location: a.location,
                    version: a.version,
                    registered: a.registered,
                    last_heartbeat: a.last_seen,
                })
                .collect();
            out.sort_by(|a, b| a.host.cmp(&b.host));
            Ok(out)
        })
        .await
    }
}

/// How many vaults each location holds (locations in lower case).
fn vaults_by_location(s: &Service) -> ServiceResult<std::collections::HashMap<String, u32>> {
    let mut out = std::collections::HashMap::new();
    for v in s.store.list_vaults()? {
        *out.entry(v.location.to_ascii_lowercase()).or_default() += 1;
    }
    Ok(out)
}

fn vaults_in(vaults: &std::collections::HashMap<String, u32>, location: &str) -> u32 {
    vaults
        .get(&location.to_ascii_lowercase())
        .copied()
        .unwrap_or(0)
}

/// The identity of an agent that runs in the server's own process
/// (`tresor serve --with-local-agent`).
#[derive(Debug, Clone)]
pub struct LocalAgent {
    pub server: String,
    pub fingerprint: String,
    pub agent_id: String,
    pub credential: String,
}

impl Service {
    /// Registers this host's own agent directly: no credentials file is needed, the
    /// caller is the server's process itself (nothing reachable over HTTP calls this).
    pub fn register_local_agent(&self, host: &str, location: &str) -> ServiceResult<LocalAgent> {
        let location = tresor_domain::Location::parse(location)?;
        let credential = new_secret("tresor_agent");
        let now = self.now();
        let agent = AgentRow {
            id: new_id(),
            host: host.to_string(),
            location: location.to_string(),
            credential_hash: hash_secret(&credential),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            registered: now,
            last_seen: Some(now),
            // The server's own host belongs to no vault: installation readers see it.
            vault_id: None,
        };
        self.store.insert_agent(&agent)?;
        Ok(LocalAgent {
            server: self.public_url.clone(),
            fingerprint: self.fingerprint.clone(),
            agent_id: agent.id,
            credential,
        })
    }
}
