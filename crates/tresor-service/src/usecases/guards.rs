//! Resource guards: Azure Backup's multi-user authorization (`tresor_domain::guard`).
//!
//! A guard names approvers (users). A vault bound to a guard (its backup properties'
//! `resourceGuard`) refuses its critical operations with `ApprovalRequired` unless
//! the caller holds an approved request of its own for exactly that vault and
//! operation; the operation uses the request up (single use, audited as
//! `resourceGuard.request.use`). The use cases that perform critical operations call
//! [`require_approvals`] after their own checks (roles, immutability, always-on: an
//! approval lifts none of them), right before they change anything.
//!
//! Creating a guard needs `ResourceGuards.Manage`; changing or deleting one also an
//! approval on the guard itself (`ChangeResourceGuard`). Approving or rejecting is for
//! a user listed as approver, never the requester. Approvers cannot be taken over by
//! those they guard against: [`protect_approver`] keeps everyone else from changing
//! their password, TOTP or roles, and anyone from deleting them.

use std::net::IpAddr;
use std::sync::Arc;

use tresor_api::guards::{
    CreateGuardRequest, CreateResourceGuard, GuardRequest, ResourceGuard, UpdateResourceGuard,
};
use tresor_api::ErrorCode;
use tresor_domain::access::Permission;
use tresor_domain::guard::{self, ApprovalValidity, CriticalOperation, GuardName, RequestStatus};
use tresor_metadata::{GuardDecision, GuardRequestRow, GuardRow, NewAudit, UserRow, VaultRow};

use crate::audit::Target;
use crate::auth::{new_id, Principal};
use crate::catalogue::{find_vault, vault_target};
use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;

/// The most requests a list shows (newest first).
pub(crate) const MAX_LIST: u32 = 500;

pub(crate) fn find_guard(s: &Service, name: &str) -> ServiceResult<GuardRow> {
    s.store
        .find_guard_by_name(name)?
        .ok_or_else(|| ServiceError::not_found(format!("resource guard {name}")))
}

/// The name of the user `id` (an approver's id that no longer reads as a user is
/// shown as such, not hidden).
fn user_name(users: &[UserRow], id: &str) -> String {
    users
        .iter()
        .find(|u| u.id == id)
        .map(|u| u.name.clone())
        .unwrap_or_else(|| format!("(no user {id})"))
}

fn guard_view(s: &Service, g: &GuardRow) -> ServiceResult<ResourceGuard> {
    let users = s.store.list_users()?;
    Ok(ResourceGuard {
        id: g.id.clone(),
        name: g.name.clone(),
        approvers: g.approvers.iter().map(|a| user_name(&users, a)).collect(),
        validity_minutes: g.validity_minutes,
        vaults: s.store.vaults_guarded_by(&g.id)?,
        created: g.created,
    })
}

fn request_view(s: &Service, g: &GuardRow, r: &GuardRequestRow) -> ServiceResult<GuardRequest> {
    let operation = CriticalOperation::parse(&r.operation).ok_or_else(|| {
        ServiceError::internal(format!("the catalogue holds operation {:?}", r.operation))
    })?;
    let status = RequestStatus::parse(&r.status)
        .ok_or_else(|| {
            ServiceError::internal(format!("the catalogue holds status {:?}", r.status))
        })?
        .at(r.expires, s.now());
    Ok(GuardRequest {
        id: r.id.clone(),
        guard: g.name.clone(),
        vault: r.vault.clone(),
        operation,
        reason: r.reason.clone(),
        requested_by: r.requester_name.clone(),
        requested_by_kind: r.requester_kind.clone(),
        created: r.created,
        status,
        decided_by: r.decided_by.clone(),
        decided_at: r.decided_at,
        expires: r.expires,
        used: r.used,
    })
}

/// The user ids of the approvers named (each an existing user, each once).
fn approver_ids(s: &Service, names: &[String]) -> ServiceResult<Vec<String>> {
    guard::check_approvers(names)?;
    let mut ids = Vec::with_capacity(names.len());
    for n in names {
        let user = s.store.find_user_by_name(n)?.ok_or_else(|| {
            ServiceError::new(
                ErrorCode::InvalidApprovers,
                format!("approver {n} is no user of this installation"),
                "create the user first (tresor user create), or name an existing one",
            )
        })?;
        ids.push(user.id);
    }
    Ok(ids)
}

pub(crate) fn is_approver(g: &GuardRow, who: &Principal) -> bool {
    who.user_id()
        .is_some_and(|u| g.approvers.iter().any(|a| a == u))
}

/// Guards and their requests are read by whoever reads vaults somewhere, and by the
/// guard's approvers.
fn require_read(who: &Principal, g: &GuardRow) -> ServiceResult<()> {
    match who.require_somewhere(Permission::ReadVaults) {
        Err(_) if is_approver(g, who) => Ok(()),
        r => r,
    }
}

/// Who asks, as a request records it: the user (signed in, or through a token of
/// theirs), else the token.
fn requester(who: &Principal) -> Option<(&'static str, String)> {
    match (who.user_id(), who.token_id()) {
        (Some(u), _) => Some(("user", u.to_string())),
        (None, Some(t)) => Some(("token", t.to_string())),
        _ => None,
    }
}

pub(crate) fn is_requester(r: &GuardRequestRow, who: &Principal) -> bool {
    match r.requester_kind.as_str() {
        "user" => who.user_id() == Some(r.requester_id.as_str()),
        _ => who.token_id() == Some(r.requester_id.as_str()),
    }
}

/// The name of the guard the vault is bound to.
pub(crate) fn bound_guard_name(s: &Service, vault: &VaultRow) -> ServiceResult<Option<String>> {
    match s.store.vault_guard(&vault.id)? {
        Some(id) => Ok(Some(s.store.get_guard(&id)?.name)),
        None => Ok(None),
    }
}

/// What a vault's backup properties' `resourceGuard` asks for (`""`: no guard): the
/// guard id to bind (none: unbind), and whether that is a critical operation (the
/// vault is bound now, to another guard or to this one being removed). `None` when
/// it changes nothing.
pub(crate) fn rebinding(
    s: &Service,
    vault: &VaultRow,
    requested: &str,
) -> ServiceResult<Option<(Option<String>, bool)>> {
    let now = s.store.vault_guard(&vault.id)?;
    let next = match requested.trim() {
        "" => None,
        name => Some(find_guard(s, name)?.id),
    };
    if next == now {
        return Ok(None);
    }
    Ok(Some((next, now.is_some())))
}

/// On a vault bound to a guard, each of `ops` needs an approved, unexpired, unused
/// request of the caller's for this vault; all are then used up (each audited). On
/// an unguarded vault, or for no operation, nothing is needed.
pub(crate) fn require_approvals(
    s: &Service,
    who: &Principal,
    vault: &VaultRow,
    ops: &[CriticalOperation],
) -> ServiceResult<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let Some(guard_id) = s.store.vault_guard(&vault.id)? else {
        return Ok(());
    };
    let g = s.store.get_guard(&guard_id)?;
    use_approvals(s, who, &g, Some(vault), ops)
}

fn use_approvals(
    s: &Service,
    who: &Principal,
    g: &GuardRow,
    vault: Option<&VaultRow>,
    ops: &[CriticalOperation],
) -> ServiceResult<()> {
    let now = s.now();
    let refusal = |op: CriticalOperation| -> ServiceError {
        op.approval_required(&g.name, vault.map(|v| v.name.as_str()))
            .into()
    };
    let mut held = Vec::with_capacity(ops.len());
    for &op in ops {
        let found = s
            .store
            .usable_guard_requests(&g.id, vault.map(|v| v.id.as_str()), op.name(), now)?
            .into_iter()
            .find(|r| is_requester(r, who));
        held.push(found.ok_or_else(|| refusal(op))?);
    }
    for (r, &op) in held.iter().zip(ops) {
        // Used once, whoever races for it: the store marks it only if still approved.
        if !s.store.use_guard_request(&r.id, now)? {
            return Err(refusal(op));
        }
        record_use(s, who, g, vault, r)?;
    }
    Ok(())
}

/// Records that `who` used request `r`. Written here, within the operation's own
/// step, before it changes anything: an approval used but unrecorded stops the
/// operation (the entry goes to the server's log in full).
fn record_use(
    s: &Service,
    who: &Principal,
    g: &GuardRow,
    vault: Option<&VaultRow>,
    r: &GuardRequestRow,
) -> ServiceResult<()> {
    let ip: IpAddr = who.origin();
    let entry = NewAudit {
        time: s.now(),
        actor_kind: who.kind().to_string(),
        actor: who.name().to_string(),
        origin: if ip.is_unspecified() {
            String::new()
        } else {
            ip.to_string()
        },
        vault: vault.map(|v| v.name.clone()).unwrap_or_default(),
        action: "resourceGuard.request.use".to_string(),
        object: g.name.clone(),
        result: "Succeeded".to_string(),
        detail: format!(
            "request {} {} approved by {}",
            r.id,
            r.operation,
            r.decided_by.as_deref().unwrap_or("")
        ),
    };
    if let Err(e) = s.store.append_audit(&entry) {
        tracing::error!(error = %e, entry = ?entry, "AUDIT LOG WRITE FAILED: the approval was used, the operation not done");
        return Err(ServiceError::internal(e));
    }
    Ok(())
}

/// Refuses a change of `user`'s password, TOTP or roles by anyone but the user, and
/// the user's deletion by anyone (a guard would lose an approver it may need), while
/// they approve for a resource guard: an attacker holding an Owner token must not
/// become, or silence, an approver.
pub(crate) fn protect_approver(
    s: &Service,
    who: &Principal,
    user: &UserRow,
    deleting: bool,
) -> ServiceResult<()> {
    if !deleting && who.user_id() == Some(user.id.as_str()) {
        return Ok(());
    }
    match s
        .store
        .list_guards()?
        .into_iter()
        .find(|g| g.approvers.contains(&user.id))
    {
        Some(g) => Err(guard::guard_approver(&user.name, &g.name).into()),
        None => Ok(()),
    }
}

impl Service {
    /// A new resource guard (`ResourceGuards.Manage` at the installation).
    pub async fn create_resource_guard(
        self: &Arc<Self>,
        who: &Principal,
        req: CreateResourceGuard,
    ) -> ServiceResult<ResourceGuard> {
        let target = Target::object(&req.name).detail(format!(
            "approvers {} validity {:?}",
            req.approvers.join(","),
            req.validity_minutes
        ));
        let caller = who.clone();
        let r = self
            .blocking(move |s| {
                caller.require_installation(Permission::ManageResourceGuard)?;
                let name = GuardName::parse(&req.name)?;
                let validity = ApprovalValidity::check(
                    req.validity_minutes
                        .unwrap_or(ApprovalValidity::DEFAULT_MINUTES),
                )?;
                let row = GuardRow {
                    id: new_id(),
                    name: name.to_string(),
                    approvers: approver_ids(s, &req.approvers)?,
                    validity_minutes: validity,
                    created: s.now(),
                };
                s.store.insert_guard(&row)?;
                guard_view(s, &row)
            })
            .await;
        self.audited(who, "resourceGuard.create", target, r).await
    }

    /// The guards the caller may read: all of them with `Vaults.Read` somewhere, else
    /// those it approves for.
    pub async fn resource_guards(
        self: &Arc<Self>,
        who: &Principal,
    ) -> ServiceResult<Vec<ResourceGuard>> {
        let caller = who.clone();
        self.blocking(move |s| {
            let all = s.store.list_guards()?;
            let readable: Vec<&GuardRow> = match caller.require_somewhere(Permission::ReadVaults) {
                Ok(()) => all.iter().collect(),
                Err(e) => {
                    let mine: Vec<&GuardRow> =
                        all.iter().filter(|g| is_approver(g, &caller)).collect();
                    if mine.is_empty() {
                        return Err(e);
                    }
                    mine
                }
            };
            readable.into_iter().map(|g| guard_view(s, g)).collect()
        })
        .await
    }

    pub async fn resource_guard(
        self: &Arc<Self>,
        who: &Principal,
        name: String,
    ) -> ServiceResult<ResourceGuard> {
        let caller = who.clone();
        self.blocking(move |s| {
            let g = find_guard(s, &name)?;
            require_read(&caller, &g)?;
            guard_view(s, &g)
        })
        .await
    }

    /// Changes a guard's approvers or validity: `ResourceGuards.Manage`, and an
    /// approval on the guard (`ChangeResourceGuard`) from one of its approvers now.
    pub async fn update_resource_guard(
        self: &Arc<Self>,
        who: &Principal,
        name: String,
        req: UpdateResourceGuard,
    ) -> ServiceResult<ResourceGuard> {
        let target = Target::object(&name).detail(serde_json::to_string(&req).unwrap_or_default());
        let caller = who.clone();
        let r = self
            .blocking(move |s| {
                caller.require_installation(Permission::ManageResourceGuard)?;
                let g = find_guard(s, &name)?;
                let mut next = g.clone();
                if let Some(names) = &req.approvers {
                    next.approvers = approver_ids(s, names)?;
                }
                if let Some(m) = req.validity_minutes {
                    next.validity_minutes = ApprovalValidity::check(m)?;
                }
                use_approvals(
                    s,
                    &caller,
                    &g,
                    None,
                    &[CriticalOperation::ChangeResourceGuard],
                )?;
                s.store.update_guard(&next)?;
                guard_view(s, &next)
            })
            .await;
        self.audited(who, "resourceGuard.update", target, r).await
    }

    /// Deletes a guard no vault is bound to: `ResourceGuards.Manage` and an approval on
    /// the guard (`ChangeResourceGuard`).
    pub async fn delete_resource_guard(
        self: &Arc<Self>,
        who: &Principal,
        name: String,
    ) -> ServiceResult<()> {
        let target = Target::object(&name);
        let caller = who.clone();
        let r = self
            .blocking(move |s| {
                caller.require_installation(Permission::ManageResourceGuard)?;
                let g = find_guard(s, &name)?;
                let vaults = s.store.vaults_guarded_by(&g.id)?;
                if !vaults.is_empty() {
                    return Err(guard::guard_in_use(&g.name, &vaults).into());
                }
                use_approvals(
                    s,
                    &caller,
                    &g,
                    None,
                    &[CriticalOperation::ChangeResourceGuard],
                )?;
                s.store.delete_guard(&g.id)?;
                Ok(())
            })
            .await;
        self.audited(who, "resourceGuard.delete", target, r).await
    }

    /// Asks the guard's approvers to approve one critical operation on one of its
    /// vaults (or on the guard itself). Whoever may perform the operation may ask.
    pub async fn create_guard_request(
        self: &Arc<Self>,
        who: &Principal,
        guard_name: String,
        req: CreateGuardRequest,
    ) -> ServiceResult<GuardRequest> {
        let mut target = Target {
            vault: req.vault.clone().unwrap_or_default(),
            object: guard_name.clone(),
            detail: format!("{}: {}", req.operation, req.reason),
        };
        let caller = who.clone();
        let r = self
            .blocking(move |s| {
                let reason = guard::check_reason(&req.reason)?;
                let op = req.operation;
                let g = find_guard(s, &guard_name)?;
                let vault = match (op.on_vault(), &req.vault) {
                    (true, Some(name)) => {
                        let v = find_vault(s, name)?;
                        let t = vault_target(&v)?;
                        let mut allowed = Err(ServiceError::internal("no permission performs it"));
                        for p in op.permissions() {
                            allowed = caller.require(*p, &t);
                            if allowed.is_ok() {
                                break;
                            }
                        }
                        allowed?;
                        if s.store.vault_guard(&v.id)?.as_deref() != Some(g.id.as_str()) {
                            return Err(guard::request_mismatch(format!(
                                "vault {} is not protected by resource guard {}",
                                v.name, g.name
                            ))
                            .into());
                        }
                        Some(v)
                    }
                    (true, None) => {
                        return Err(guard::request_mismatch(format!(
                            "{op} acts on a vault: the request names none"
                        ))
                        .into())
                    }
                    (false, Some(_)) => {
                        return Err(guard::request_mismatch(format!(
                            "{op} acts on the resource guard itself: the request names a vault"
                        ))
                        .into())
                    }
                    (false, None) => {
                        caller.require_installation(Permission::ManageResourceGuard)?;
                        None
                    }
                };
                let Some((kind, id)) = requester(&caller) else {
                    return Err(ServiceError::forbidden(
                        "only a user or an API token can ask for an approval",
                    ));
                };
                let now = s.now();
                let row = GuardRequestRow {
                    id: new_id(),
                    guard_id: g.id.clone(),
                    vault_id: vault.as_ref().map(|v| v.id.clone()),
                    vault: vault.as_ref().map(|v| v.name.clone()),
                    operation: op.name().to_string(),
                    reason,
                    requester_kind: kind.to_string(),
                    requester_id: id,
                    requester_name: caller.name().to_string(),
                    created: now,
                    status: RequestStatus::Pending.name().to_string(),
                    decided_by: None,
                    decided_by_id: None,
                    decided_at: None,
                    expires: ApprovalValidity::after(now, g.validity_minutes),
                    used: None,
                };
                s.store.insert_guard_request(&row)?;
                request_view(s, &g, &row)
            })
            .await;
        if let Ok(q) = &r {
            target.detail = format!("request {} {}", q.id, target.detail);
        }
        self.audited(who, "resourceGuard.request.create", target, r)
            .await
    }

    /// A guard's requests, newest first (at most 500).
    pub async fn guard_requests(
        self: &Arc<Self>,
        who: &Principal,
        guard_name: String,
    ) -> ServiceResult<Vec<GuardRequest>> {
        let caller = who.clone();
        self.blocking(move |s| {
            let g = find_guard(s, &guard_name)?;
            require_read(&caller, &g)?;
            s.store
                .list_guard_requests(&g.id, MAX_LIST)?
                .iter()
                .map(|r| request_view(s, &g, r))
                .collect()
        })
        .await
    }

    pub async fn guard_request(
        self: &Arc<Self>,
        who: &Principal,
        guard_name: String,
        id: String,
    ) -> ServiceResult<GuardRequest> {
        let caller = who.clone();
        self.blocking(move |s| {
            let g = find_guard(s, &guard_name)?;
            require_read(&caller, &g)?;
            let r = find_request(s, &g, &id)?;
            request_view(s, &g, &r)
        })
        .await
    }

    /// Approves a pending request: only an approver of its guard, and not the one who
    /// asked. From now, the requester may do the operation once within the guard's
    /// validity.
    pub async fn approve_guard_request(
        self: &Arc<Self>,
        who: &Principal,
        guard_name: String,
        id: String,
    ) -> ServiceResult<GuardRequest> {
        self.decide(who, guard_name, id, RequestStatus::Approved)
            .await
    }

    /// Rejects a pending request (the same people as approving).
    pub async fn reject_guard_request(
        self: &Arc<Self>,
        who: &Principal,
        guard_name: String,
        id: String,
    ) -> ServiceResult<GuardRequest> {
        self.decide(who, guard_name, id, RequestStatus::Rejected)
            .await
    }

    async fn decide(
        self: &Arc<Self>,
        who: &Principal,
        guard_name: String,
        id: String,
        status: RequestStatus,
    ) -> ServiceResult<GuardRequest> {
        let action = match status {
            RequestStatus::Approved => "resourceGuard.request.approve",
            _ => "resourceGuard.request.reject",
        };
        let fallback = Target::object(&guard_name).detail(format!("request {id}"));
        let caller = who.clone();
        let r = self
            .blocking(move |s| {
                let g = find_guard(s, &guard_name)?;
                if !is_approver(&g, &caller) {
                    return Err(guard::not_an_approver(&g.name).into());
                }
                let r = find_request(s, &g, &id)?;
                if is_requester(&r, &caller) {
                    return Err(guard::self_approval(&r.id).into());
                }
                let now = s.now();
                let stored = RequestStatus::parse(&r.status).unwrap_or(RequestStatus::Rejected);
                let current = stored.at(r.expires, now);
                if current != RequestStatus::Pending {
                    return Err(current.not_pending(&r.id).into());
                }
                let approver = caller.user_id().unwrap_or_default().to_string();
                let decision = GuardDecision {
                    status: status.name().to_string(),
                    decided_by: user_name(&s.store.list_users()?, &approver),
                    decided_by_id: approver,
                    decided_at: now,
                    expires: match status {
                        RequestStatus::Approved => ApprovalValidity::after(now, g.validity_minutes),
                        _ => r.expires,
                    },
                };
                if !s.store.decide_guard_request(&r.id, &decision)? {
                    return Err(RequestStatus::Expired.not_pending(&r.id).into());
                }
                let decided = s.store.get_guard_request(&r.id)?;
                let target = Target {
                    vault: decided.vault.clone().unwrap_or_default(),
                    object: g.name.clone(),
                    detail: format!(
                        "request {} {} of {}",
                        decided.id, decided.operation, decided.requester_name
                    ),
                };
                Ok((request_view(s, &g, &decided)?, target))
            })
            .await;
        let (r, target) = match r {
            Ok((view, target)) => (Ok(view), target),
            Err(e) => (Err(e), fallback),
        };
        self.audited(who, action, target, r).await
    }
}

/// The request `id` of guard `g`, or NotFound (a request of another guard is not
/// found through this one).
fn find_request(s: &Service, g: &GuardRow, id: &str) -> ServiceResult<GuardRequestRow> {
    match s.store.get_guard_request(id) {
        Ok(r) if r.guard_id == g.id => Ok(r),
        Ok(_) | Err(tresor_metadata::StoreError::NotFound { .. }) => Err(ServiceError::not_found(
            format!("request {id} of resource guard {}", g.name),
        )),
        Err(e) => Err(e.into()),
    }
}
