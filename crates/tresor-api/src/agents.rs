//! Host agents and the server: registration, heartbeat, jobs, progress, completion.
//!
//! An agent connects out to the server: it registers once with a vault credentials
//! file's one-time secret, then sends heartbeats with its inventory, waits for jobs
//! (`POST /api/v1/agent/jobs/next`), reports progress and completes them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::inventory::{CheckResult, VmInfo, VmReport};
use crate::jobs::{JobErrorInfo, JobOperation, JobParams, JobStatus};

/// `POST /api/v1/agents/register`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// The one-time secret of a vault credentials file.
    pub secret: String,
    #[schema(example = "kvm2")]
    pub host: String,
    /// Ignored: the agent's location is the one its vault credentials were made for.
    /// (Older agents send theirs; an agent does not decide where it is.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The vault the agent expects (from its credentials file), checked when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The answer to a registration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    pub agent_id: String,
    /// The agent's credential from now on; shown once.
    pub credential: String,
    pub vault: String,
    /// The location the agent was registered in (its credentials').
    pub location: String,
}

/// `GET /api/v1/agent/ping`: the agent's credential works.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentPing {
    pub agent_id: String,
    pub host: String,
    /// The location the host is registered in (its VMs can be protected by vaults
    /// of this location only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// How many vaults are in that location; 0: none can protect the host's VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vaults_in_location: Option<u32>,
}

/// `POST /api/v1/agent/heartbeat`: the agent is alive, and what it knows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Every VM the agent knows, with what it knows of it.
    pub vms: Vec<ReportedVm>,
}

/// One VM of a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportedVm {
    /// The agent's name for the VM.
    pub vm: String,
    pub info: VmInfo,
    /// The VM's preflight findings, when the agent ran them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<Vec<CheckResult>>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatAnswer {
    #[schema(value_type = String, format = DateTime)]
    pub server_time: Timestamp,
}

/// `POST /api/v1/agent/jobs/next?wait=N`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NextQuery {
    /// Seconds to wait for a job (at most and by default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u64>,
}

/// A job as an agent receives it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub job_id: String,
    pub operation: JobOperation,
    pub vault_id: String,
    #[schema(required)]
    pub item_id: Option<String>,
    #[schema(required)]
    pub vm: Option<String>,
    /// The name the item's points carry in the repository (its history).
    #[schema(required)]
    pub point_name: Option<String>,
    /// The passphrase of the agent's repository in this vault.
    pub passphrase: String,
    /// The operation's parameters (a restore's request; a backup's retention).
    pub params: JobParams,
}

/// `POST /api/v1/agent/jobs/{job}/progress`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// The task that has begun (its predecessors are done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// The answer to a progress report: whether the job was asked to cancel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProgressAnswer {
    pub cancel: bool,
}

/// `POST /api/v1/agent/jobs/{job}/complete`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    /// `Completed`, `CompletedWithWarnings`, `Failed` or `Cancelled`.
    pub status: JobStatus,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobErrorInfo>,
    /// A backup's recovery point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_ms: Option<u64>,
    /// Anything else worth showing (a restore's output paths).
    #[serde(default)]
    pub result: Value,
}

/// The answer to a completion: the status the job ended with (the agent's, except
/// that an end that is neither a success nor a cancel is recorded as `Failed`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompletionAnswer {
    pub status: JobStatus,
}

/// A host agent as the API and the portal show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: String,
    pub host: String,
    pub location: String,
    #[schema(required)]
    pub version: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub registered: Timestamp,
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub last_heartbeat: Option<Timestamp>,
    pub online: bool,
    /// How many vaults are in the host's location; 0: no vault can protect its VMs
    /// (a location typed wrong, or a vault not made yet).
    #[serde(default)]
    pub vaults_in_location: u32,
    /// The VMs it reported, each with what it knows and its preflight checks.
    pub vms: Vec<AgentVm>,
}

/// A VM as its agent last reported it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentVm {
    pub vm: String,
    pub info: VmReport,
    #[schema(value_type = String, format = DateTime)]
    pub seen: Timestamp,
}
