//! One typed method per operation of the vault server's REST API, in the
//! order of the server's routes. Requests and answers are `tresor-api`'s
//! types; paths are built by [`path`](crate::path), which encodes every name.
//!
//! **Architecture invariant:** a method knows its route, its method and its
//! types, and nothing of what the server does with them.

use bytes::Bytes;
use tresor_api::agents::{
    Agent, AgentPing, Assignment, Completion, CompletionAnswer, Heartbeat, HeartbeatAnswer,
    NextQuery, Progress, ProgressAnswer, RegisterRequest, RegisterResponse,
};
use tresor_api::audit::{AuditEntry, AuditQuery, AuditVerification};
use tresor_api::config::Ping;
use tresor_api::guards::{
    CreateGuardRequest, CreateResourceGuard, GuardRequest, ResourceGuard, UpdateResourceGuard,
};
use tresor_api::items::{
    BackupNow, Disable, EnableProtection, ModifyProtection, ProtectableVm, ProtectedItem,
    RecoveryPoint, RegionQuery, RestoreRequest,
};
use tresor_api::jobs::{Job, JobQuery, JobStatus};
use tresor_api::policies::{BackupPolicy, Policy};
use tresor_api::storage::{ObjectEntry, RegisterWriter, Writer};
use tresor_api::tokens::{CreateToken, NewToken, Token};
use tresor_api::users::{ConfirmTotp, CreateUser, SetPassword, SetRoles, TotpSetup, User};
use tresor_api::vaults::{
    BackupProperties, CreateVault, CredentialsFile, CredentialsRequest, Vault, VerifyRequest,
};

use crate::path::{path, with_query};
use crate::{ApiClient, ClientError};

/// Which copy of a vault's data a read goes to: the vault's own location, or
/// the paired location that GeoRedundant vaults replicate to (cross-region
/// restore).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Region {
    #[default]
    Primary,
    Secondary,
}

impl Region {
    /// The secondary region when `use_secondary_region`, else the primary.
    pub fn of(use_secondary_region: bool) -> Region {
        if use_secondary_region {
            Region::Secondary
        } else {
            Region::Primary
        }
    }

    fn query(self) -> RegionQuery {
        RegionQuery {
            use_secondary_region: self == Region::Secondary,
        }
    }

    /// The folder of an agent's repository objects in this region.
    fn objects(self) -> &'static str {
        match self {
            Region::Primary => "objects",
            Region::Secondary => "secondary/objects",
        }
    }
}

type Result<T> = std::result::Result<T, ClientError>;

impl ApiClient {
    /// `GET /api/v1/ping`: that a Tresor server answers, and its version.
    pub async fn ping(&self) -> Result<Ping> {
        self.get_json(&path("api/v1/ping", &[])?).await
    }

    // ------------------------------------------------------------ tokens

    /// `POST /api/v1/tokens`: a new API token; its secret is in this answer only.
    pub async fn create_token(&self, request: &CreateToken) -> Result<NewToken> {
        self.post_json(&path("api/v1/tokens", &[])?, request).await
    }

    /// `GET /api/v1/tokens`.
    pub async fn tokens(&self) -> Result<Vec<Token>> {
        self.get_json(&path("api/v1/tokens", &[])?).await
    }

    /// `DELETE /api/v1/tokens/{id}`: revokes a token (and its portal sessions).
    pub async fn delete_token(&self, id: &str) -> Result<()> {
        self.delete(&path("api/v1/tokens/{}", &[id])?).await
    }

    // ------------------------------------------------------------ users

    /// `POST /api/v1/users`.
    pub async fn create_user(&self, request: &CreateUser) -> Result<User> {
        self.post_json(&path("api/v1/users", &[])?, request).await
    }

    /// `GET /api/v1/users`.
    pub async fn users(&self) -> Result<Vec<User>> {
        self.get_json(&path("api/v1/users", &[])?).await
    }

    /// `DELETE /api/v1/users/{name}`: the user, their tokens and portal sessions.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        self.delete(&path("api/v1/users/{}", &[name])?).await
    }

    /// `PUT /api/v1/users/{name}/password`.
    pub async fn set_password(&self, name: &str, request: &SetPassword) -> Result<()> {
        self.put_json(&path("api/v1/users/{}/password", &[name])?, request)
            .await
    }

    /// `PUT /api/v1/users/{name}/roles`: replaces the user's role assignments.
    pub async fn set_user_roles(&self, name: &str, request: &SetRoles) -> Result<User> {
        self.put_json(&path("api/v1/users/{}/roles", &[name])?, request)
            .await
    }

    /// `POST /api/v1/users/{name}/totp`: a new TOTP secret, in effect once confirmed.
    pub async fn enable_totp(&self, name: &str) -> Result<TotpSetup> {
        self.post_empty(&path("api/v1/users/{}/totp", &[name])?)
            .await
    }

    /// `POST /api/v1/users/{name}/totp/confirm`.
    pub async fn confirm_totp(&self, name: &str, request: &ConfirmTotp) -> Result<()> {
        self.post_json(&path("api/v1/users/{}/totp/confirm", &[name])?, request)
            .await
    }

    /// `DELETE /api/v1/users/{name}/totp`.
    pub async fn disable_totp(&self, name: &str) -> Result<()> {
        self.delete(&path("api/v1/users/{}/totp", &[name])?).await
    }

    // --------------------------------------------------- resource guards

    /// `POST /api/v1/resourceGuards`.
    pub async fn create_resource_guard(
        &self,
        request: &CreateResourceGuard,
    ) -> Result<ResourceGuard> {
        self.post_json(&path("api/v1/resourceGuards", &[])?, request)
            .await
    }

    /// `GET /api/v1/resourceGuards`.
    pub async fn resource_guards(&self) -> Result<Vec<ResourceGuard>> {
        self.get_json(&path("api/v1/resourceGuards", &[])?).await
    }

    /// `GET /api/v1/resourceGuards/{guard}`.
    pub async fn resource_guard(&self, guard: &str) -> Result<ResourceGuard> {
        self.get_json(&path("api/v1/resourceGuards/{}", &[guard])?)
            .await
    }

    /// `PUT /api/v1/resourceGuards/{guard}`: needs an approved `ChangeResourceGuard`.
    pub async fn update_resource_guard(
        &self,
        guard: &str,
        request: &UpdateResourceGuard,
    ) -> Result<ResourceGuard> {
        self.put_json(&path("api/v1/resourceGuards/{}", &[guard])?, request)
            .await
    }

    /// `DELETE /api/v1/resourceGuards/{guard}`: needs an approved `ChangeResourceGuard`.
    pub async fn delete_resource_guard(&self, guard: &str) -> Result<()> {
        self.delete(&path("api/v1/resourceGuards/{}", &[guard])?)
            .await
    }

    /// `POST /api/v1/resourceGuards/{guard}/requests`: asks for an approval.
    pub async fn create_guard_request(
        &self,
        guard: &str,
        request: &CreateGuardRequest,
    ) -> Result<GuardRequest> {
        self.post_json(
            &path("api/v1/resourceGuards/{}/requests", &[guard])?,
            request,
        )
        .await
    }

    /// `GET /api/v1/resourceGuards/{guard}/requests`, newest first.
    pub async fn guard_requests(&self, guard: &str) -> Result<Vec<GuardRequest>> {
        self.get_json(&path("api/v1/resourceGuards/{}/requests", &[guard])?)
            .await
    }

    /// `GET /api/v1/resourceGuards/{guard}/requests/{id}`.
    pub async fn guard_request(&self, guard: &str, id: &str) -> Result<GuardRequest> {
        self.get_json(&path("api/v1/resourceGuards/{}/requests/{}", &[guard, id])?)
            .await
    }

    /// `POST /api/v1/resourceGuards/{guard}/requests/{id}/approve`.
    pub async fn approve_guard_request(&self, guard: &str, id: &str) -> Result<GuardRequest> {
        self.post_empty(&path(
            "api/v1/resourceGuards/{}/requests/{}/approve",
            &[guard, id],
        )?)
        .await
    }

    /// `POST /api/v1/resourceGuards/{guard}/requests/{id}/reject`.
    pub async fn reject_guard_request(&self, guard: &str, id: &str) -> Result<GuardRequest> {
        self.post_empty(&path(
            "api/v1/resourceGuards/{}/requests/{}/reject",
            &[guard, id],
        )?)
        .await
    }

    // ------------------------------------------------------------ vaults

    /// `POST /api/v1/vaults`: a new vault, with DefaultPolicy.
    pub async fn create_vault(&self, request: &CreateVault) -> Result<Vault> {
        self.post_json(&path("api/v1/vaults", &[])?, request).await
    }

    /// `GET /api/v1/vaults`.
    pub async fn list_vaults(&self) -> Result<Vec<Vault>> {
        self.get_json(&path("api/v1/vaults", &[])?).await
    }

    /// `GET /api/v1/vaults/{vault}`.
    pub async fn vault(&self, vault: &str) -> Result<Vault> {
        self.get_json(&path("api/v1/vaults/{}", &[vault])?).await
    }

    /// `DELETE /api/v1/vaults/{vault}`: deletes an empty vault.
    pub async fn delete_vault(&self, vault: &str) -> Result<()> {
        self.delete(&path("api/v1/vaults/{}", &[vault])?).await
    }

    /// `PUT /api/v1/vaults/{vault}/backup-properties`.
    pub async fn set_backup_properties(
        &self,
        vault: &str,
        properties: &BackupProperties,
    ) -> Result<Vault> {
        self.put_json(
            &path("api/v1/vaults/{}/backup-properties", &[vault])?,
            properties,
        )
        .await
    }

    /// `POST /api/v1/vaults/{vault}/credentials`: a vault credentials file for
    /// registering one host agent.
    pub async fn vault_credentials(
        &self,
        vault: &str,
        request: &CredentialsRequest,
    ) -> Result<CredentialsFile> {
        self.post_json(&path("api/v1/vaults/{}/credentials", &[vault])?, request)
            .await
    }

    /// `POST /api/v1/vaults/{vault}/replicate`: starts a replication now; the
    /// answer is its job.
    pub async fn replicate(&self, vault: &str) -> Result<Job> {
        self.post_empty(&path("api/v1/vaults/{}/replicate", &[vault])?)
            .await
    }

    /// `POST /api/v1/vaults/{vault}/verify`: starts a verify of one region's
    /// copy; the answer is its job.
    pub async fn verify(&self, vault: &str, request: &VerifyRequest) -> Result<Job> {
        self.post_json(&path("api/v1/vaults/{}/verify", &[vault])?, request)
            .await
    }

    // ---------------------------------------------------------- policies

    /// `GET /api/v1/vaults/{vault}/policies`.
    pub async fn policies(&self, vault: &str) -> Result<Vec<Policy>> {
        self.get_json(&path("api/v1/vaults/{}/policies", &[vault])?)
            .await
    }

    /// `POST /api/v1/vaults/{vault}/policies`.
    pub async fn create_policy(&self, vault: &str, policy: &BackupPolicy) -> Result<Policy> {
        self.post_json(&path("api/v1/vaults/{}/policies", &[vault])?, policy)
            .await
    }

    /// `GET /api/v1/vaults/{vault}/policies/default-for-vm`: the policy a VM
    /// gets when none is named.
    pub async fn default_policy_for_vm(&self, vault: &str) -> Result<Policy> {
        self.get_json(&path("api/v1/vaults/{}/policies/default-for-vm", &[vault])?)
            .await
    }

    /// `GET /api/v1/vaults/{vault}/policies/{policy}`.
    pub async fn policy(&self, vault: &str, policy: &str) -> Result<Policy> {
        self.get_json(&path("api/v1/vaults/{}/policies/{}", &[vault, policy])?)
            .await
    }

    /// `PUT /api/v1/vaults/{vault}/policies/{policy}`: changes the policy the
    /// body names (for every item that uses it).
    pub async fn update_policy(&self, vault: &str, policy: &BackupPolicy) -> Result<Policy> {
        let name = policy.name.as_str();
        self.put_json(
            &path("api/v1/vaults/{}/policies/{}", &[vault, name])?,
            policy,
        )
        .await
    }

    /// `DELETE /api/v1/vaults/{vault}/policies/{policy}`.
    pub async fn delete_policy(&self, vault: &str, policy: &str) -> Result<()> {
        self.delete(&path("api/v1/vaults/{}/policies/{}", &[vault, policy])?)
            .await
    }

    // ------------------------------------------------------------- items

    /// `GET /api/v1/vaults/{vault}/protectable-items`.
    pub async fn protectable_items(&self, vault: &str) -> Result<Vec<ProtectableVm>> {
        self.get_json(&path("api/v1/vaults/{}/protectable-items", &[vault])?)
            .await
    }

    /// `GET /api/v1/vaults/{vault}/items`.
    pub async fn items(&self, vault: &str) -> Result<Vec<ProtectedItem>> {
        self.get_json(&path("api/v1/vaults/{}/items", &[vault])?)
            .await
    }

    /// `POST /api/v1/vaults/{vault}/items`: enables protection of a VM.
    pub async fn enable_protection(
        &self,
        vault: &str,
        request: &EnableProtection,
    ) -> Result<ProtectedItem> {
        self.post_json(&path("api/v1/vaults/{}/items", &[vault])?, request)
            .await
    }

    /// `GET /api/v1/vaults/{vault}/items/{item}` (the item's id or VM name),
    /// with its replication.
    pub async fn item(&self, vault: &str, item: &str) -> Result<ProtectedItem> {
        self.get_json(&path("api/v1/vaults/{}/items/{}", &[vault, item])?)
            .await
    }

    /// `POST /api/v1/vaults/{vault}/items/{item}/backup`: back up now; the
    /// answer is the backup's job.
    pub async fn backup_now(&self, vault: &str, item: &str, request: &BackupNow) -> Result<Job> {
        self.post_json(
            &path("api/v1/vaults/{}/items/{}/backup", &[vault, item])?,
            request,
        )
        .await
    }

    /// `POST /api/v1/vaults/{vault}/items/{item}/disable`.
    pub async fn disable_protection(
        &self,
        vault: &str,
        item: &str,
        request: &Disable,
    ) -> Result<Job> {
        self.post_json(
            &path("api/v1/vaults/{}/items/{}/disable", &[vault, item])?,
            request,
        )
        .await
    }

    /// `POST /api/v1/vaults/{vault}/items/{item}/undelete`: a soft-deleted item
    /// back, protection stopped, with its recovery points.
    pub async fn undelete_item(&self, vault: &str, item: &str) -> Result<ProtectedItem> {
        self.post_empty(&path("api/v1/vaults/{}/items/{}/undelete", &[vault, item])?)
            .await
    }

    /// `PUT /api/v1/vaults/{vault}/items/{item}`: another policy, or resuming a
    /// stopped item's protection.
    pub async fn modify_protection(
        &self,
        vault: &str,
        item: &str,
        request: &ModifyProtection,
    ) -> Result<ProtectedItem> {
        self.put_json(&path("api/v1/vaults/{}/items/{}", &[vault, item])?, request)
            .await
    }

    /// `DELETE /api/v1/vaults/{vault}/items/{item}/recovery-points/{point}`: the
    /// point is soft-deleted.
    pub async fn delete_recovery_point(&self, vault: &str, item: &str, point: &str) -> Result<()> {
        self.delete(&path(
            "api/v1/vaults/{}/items/{}/recovery-points/{}",
            &[vault, item, point],
        )?)
        .await
    }

    /// `POST /api/v1/vaults/{vault}/items/{item}/recovery-points/{point}/undelete`.
    pub async fn undelete_recovery_point(
        &self,
        vault: &str,
        item: &str,
        point: &str,
    ) -> Result<RecoveryPoint> {
        self.post_empty(&path(
            "api/v1/vaults/{}/items/{}/recovery-points/{}/undelete",
            &[vault, item, point],
        )?)
        .await
    }

    /// `POST /api/v1/vaults/{vault}/items/{item}/restore`: the answer is the
    /// restore's job.
    pub async fn restore(&self, vault: &str, item: &str, request: &RestoreRequest) -> Result<Job> {
        self.post_json(
            &path("api/v1/vaults/{}/items/{}/restore", &[vault, item])?,
            request,
        )
        .await
    }

    /// `GET /api/v1/vaults/{vault}/items/{item}/recovery-points`, as `region`
    /// holds them.
    pub async fn recovery_points(
        &self,
        vault: &str,
        item: &str,
        region: Region,
    ) -> Result<Vec<RecoveryPoint>> {
        let p = path("api/v1/vaults/{}/items/{}/recovery-points", &[vault, item])?;
        self.get_json(&with_query(p, &region.query())?).await
    }

    /// `GET /api/v1/vaults/{vault}/items/{item}/recovery-points/{point}`.
    pub async fn recovery_point(
        &self,
        vault: &str,
        item: &str,
        point: &str,
        region: Region,
    ) -> Result<RecoveryPoint> {
        let p = path(
            "api/v1/vaults/{}/items/{}/recovery-points/{}",
            &[vault, item, point],
        )?;
        self.get_json(&with_query(p, &region.query())?).await
    }

    // -------------------------------------------------------------- audit

    /// `GET /api/v1/audit`: entries in seq order (from `query.from`, or the newest).
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.get_json(&with_query(path("api/v1/audit", &[])?, query)?)
            .await
    }

    /// `GET /api/v1/audit/verify`: whether the audit log's chain holds.
    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        self.get_json(&path("api/v1/audit/verify", &[])?).await
    }

    // -------------------------------------------------------------- jobs

    /// `GET /api/v1/vaults/{vault}/jobs`, filtered by `query`.
    pub async fn jobs(&self, vault: &str, query: &JobQuery) -> Result<Vec<Job>> {
        let p = path("api/v1/vaults/{}/jobs", &[vault])?;
        self.get_json(&with_query(p, query)?).await
    }

    /// `GET /api/v1/vaults/{vault}/jobs/{job}`.
    pub async fn job(&self, vault: &str, job: &str) -> Result<Job> {
        self.get_json(&path("api/v1/vaults/{}/jobs/{}", &[vault, job])?)
            .await
    }

    /// `POST /api/v1/vaults/{vault}/jobs/{job}/cancel`.
    pub async fn cancel_job(&self, vault: &str, job: &str) -> Result<Job> {
        self.post_empty(&path("api/v1/vaults/{}/jobs/{}/cancel", &[vault, job])?)
            .await
    }

    // ------------------------------------------------------------ agents

    /// `GET /api/v1/agents`: every registered host agent, with its VMs.
    pub async fn agents(&self) -> Result<Vec<Agent>> {
        self.get_json(&path("api/v1/agents", &[])?).await
    }

    /// `POST /api/v1/agents/register`: registers a host agent with a vault
    /// credentials file's secret; the answer holds the agent's credential.
    pub async fn register_agent(&self, request: &RegisterRequest) -> Result<RegisterResponse> {
        self.post_json(&path("api/v1/agents/register", &[])?, request)
            .await
    }

    // ---------------------------------------- the agent's side (its credential)

    /// `GET /api/v1/agent/ping`: that the agent's credential works.
    pub async fn agent_ping(&self) -> Result<AgentPing> {
        self.get_json(&path("api/v1/agent/ping", &[])?).await
    }

    /// `POST /api/v1/agent/heartbeat`: the agent is alive, and its VMs.
    pub async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<HeartbeatAnswer> {
        self.post_json(&path("api/v1/agent/heartbeat", &[])?, heartbeat)
            .await
    }

    /// `POST /api/v1/agent/jobs/next`: waits up to `wait` seconds (the server's
    /// limit and default: 20) for a job; `None` when none came.
    pub async fn next_job(&self, wait: Option<u64>) -> Result<Option<Assignment>> {
        let p = with_query(path("api/v1/agent/jobs/next", &[])?, &NextQuery { wait })?;
        self.post_empty(&p).await
    }

    /// `POST /api/v1/agent/jobs/{job}/progress`: the answer says whether the
    /// job was asked to cancel.
    pub async fn job_progress(&self, job: &str, progress: &Progress) -> Result<ProgressAnswer> {
        self.post_json(&path("api/v1/agent/jobs/{}/progress", &[job])?, progress)
            .await
    }

    /// `POST /api/v1/agent/jobs/{job}/complete`: the status the job ended with.
    pub async fn complete_job(&self, job: &str, completion: &Completion) -> Result<JobStatus> {
        let answer: CompletionAnswer = self
            .post_json(&path("api/v1/agent/jobs/{}/complete", &[job])?, completion)
            .await?;
        Ok(answer.status)
    }

    // ----------------------------------- the agent's repository in a vault

    /// `GET /api/v1/agent/repos/{vault}/[secondary/]objects/{kind}`: the
    /// objects of one kind (`config`, `keys`, `data`, `index`, `points`, `gc`).
    pub async fn objects(
        &self,
        vault: &str,
        region: Region,
        kind: &str,
    ) -> Result<Vec<ObjectEntry>> {
        self.get_json(&objects_path(vault, region, kind, None)?)
            .await
    }

    /// `GET /api/v1/agent/repos/{vault}/[secondary/]objects/{kind}/{name}`:
    /// the object, or with `range = Some((offset, length))` those bytes of it
    /// (fewer when the object ends first).
    pub async fn object(
        &self,
        vault: &str,
        region: Region,
        kind: &str,
        name: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Bytes> {
        self.get_bytes(&objects_path(vault, region, kind, Some(name))?, range)
            .await
    }

    /// `PUT /api/v1/agent/repos/{vault}/objects/{kind}/{name}`: stores an
    /// object (in the primary region; objects are written once).
    pub async fn put_object(
        &self,
        vault: &str,
        kind: &str,
        name: &str,
        bytes: impl Into<reqwest::Body>,
    ) -> Result<()> {
        self.put_bytes(
            &objects_path(vault, Region::Primary, kind, Some(name))?,
            bytes,
        )
        .await
    }

    /// `POST /api/v1/agent/repos/{vault}/writers`: registers a running backup,
    /// so that garbage collection keeps what it writes.
    pub async fn register_writer(&self, vault: &str, request: &RegisterWriter) -> Result<Writer> {
        self.post_json(&path("api/v1/agent/repos/{}/writers", &[vault])?, request)
            .await
    }

    /// `GET /api/v1/agent/repos/{vault}/writers`: the live registrations.
    pub async fn writers(&self, vault: &str) -> Result<Vec<Writer>> {
        self.get_json(&path("api/v1/agent/repos/{}/writers", &[vault])?)
            .await
    }

    /// `DELETE /api/v1/agent/repos/{vault}/writers/{id}`.
    pub async fn release_writer(&self, vault: &str, id: &str) -> Result<()> {
        self.delete(&path("api/v1/agent/repos/{}/writers/{}", &[vault, id])?)
            .await
    }
}

/// The path of an agent's objects of `kind` in `region`, or of one of them.
fn objects_path(vault: &str, region: Region, kind: &str, name: Option<&str>) -> Result<String> {
    let base = path("api/v1/agent/repos/{}/", &[vault])? + region.objects();
    match name {
        Some(name) => Ok(base + &path("/{}/{}", &[kind, name])?),
        None => Ok(base + &path("/{}", &[kind])?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_name_the_region() {
        assert_eq!(
            objects_path("v1", Region::Primary, "data", Some("ab12")).unwrap(),
            "api/v1/agent/repos/v1/objects/data/ab12"
        );
        assert_eq!(
            objects_path("v1", Region::Secondary, "index", None).unwrap(),
            "api/v1/agent/repos/v1/secondary/objects/index"
        );
        assert_eq!(
            objects_path("v 1", Region::of(true), "keys", Some("k/1")).unwrap(),
            "api/v1/agent/repos/v%201/secondary/objects/keys/k%2F1"
        );
        assert!(objects_path("v1", Region::Primary, "..", None).is_err());
    }

    #[test]
    fn region_queries() {
        assert_eq!(
            with_query("p".into(), &Region::Secondary.query()).unwrap(),
            "p?useSecondaryRegion=true"
        );
        assert_eq!(
            with_query("p".into(), &NextQuery { wait: None }).unwrap(),
            "p"
        );
        assert_eq!(
            with_query("p".into(), &NextQuery { wait: Some(5) }).unwrap(),
            "p?wait=5"
        );
    }
}
