//! The audit trail: every change made through a use case, and every refused attempt
//! at one, appended to the catalogue's hash-chained audit log (who, from where, what,
//! which object, the result), and the admin's use cases that read and check it.
//!
//! Recorded: vaults (create, update, delete, credentials issued, replicate, verify),
//! policies (create, update, delete), items (enable, disable, back up now, restore),
//! job cancels, tokens (create, delete), agent registrations, portal sign-ins and
//! failed sign-ins, and soft-deleted data the server purged (actor kind `server`).
//! Not recorded: reads, and what agents do within their jobs (that
//! is in the jobs themselves).

use std::net::IpAddr;
use std::sync::Arc;
use tresor_domain::access::Permission;

use tresor_api::audit::{AuditEntry, AuditQuery, AuditVerification};
use tresor_metadata::audit::ChainCheck;
use tresor_metadata::{AuditFilter, AuditRow, NewAudit};

use crate::auth::Principal;
use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;

/// The longest object and detail an entry keeps (longer ones are cut, with `…`): a
/// refused request may carry a name of any length.
const MAX_OBJECT: usize = 200;
const MAX_DETAIL: usize = 500;

/// The most entries one page of the log holds.
const MAX_PAGE: u32 = 1000;

/// Who an entry names.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    kind: &'static str,
    name: String,
    origin: String,
}

impl Actor {
    pub(crate) fn of(who: &Principal) -> Actor {
        Actor {
            kind: who.kind(),
            name: who.name().to_string(),
            origin: origin(who.origin()),
        }
    }

    /// A caller without a (valid) credential: a failed sign-in, a registration.
    pub(crate) fn anonymous(ip: IpAddr) -> Actor {
        Actor {
            kind: "anonymous",
            name: String::new(),
            origin: origin(ip),
        }
    }
}

/// An unspecified address (a request without connection info) is recorded as empty.
fn origin(ip: IpAddr) -> String {
    if ip.is_unspecified() {
        String::new()
    } else {
        ip.to_string()
    }
}

/// What an entry is about: the object, its vault, a word more.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub vault: String,
    pub object: String,
    pub detail: String,
}

impl Target {
    /// The vault itself.
    pub fn vault(name: &str) -> Target {
        Target {
            vault: name.to_string(),
            object: name.to_string(),
            detail: String::new(),
        }
    }

    /// An object of a vault (a policy, an item, a job).
    pub fn in_vault(vault: &str, object: &str) -> Target {
        Target {
            vault: vault.to_string(),
            object: object.to_string(),
            detail: String::new(),
        }
    }

    /// An object of no vault (a token, a session, an agent).
    pub fn object(object: &str) -> Target {
        Target {
            object: object.to_string(),
            ..Target::default()
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Target {
        self.detail = detail.into();
        self
    }

    /// Adds the job a use case started (`job ID` before the detail).
    pub fn with_job(mut self, result: &ServiceResult<tresor_api::jobs::Job>) -> Target {
        if let Ok(job) = result {
            self.detail = if self.detail.is_empty() {
                format!("job {}", job.id)
            } else {
                format!("job {} {}", job.id, self.detail)
            };
        }
        self
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `Succeeded`, or the error's code.
fn outcome<T>(result: &ServiceResult<T>) -> String {
    match result {
        Ok(_) => "Succeeded".to_string(),
        Err(e) => e.code.as_str().to_string(),
    }
}

fn entry_view(r: AuditRow) -> AuditEntry {
    AuditEntry {
        seq: r.seq,
        time: r.time,
        actor_kind: r.actor_kind,
        actor: r.actor,
        origin: r.origin,
        vault: r.vault,
        action: r.action,
        object: r.object,
        result: r.result,
        detail: r.detail,
        prev_hash: hex::encode(r.prev_hash),
        hash: hex::encode(r.hash),
    }
}

impl Service {
    /// Records that `who` did `action` on `target` with `result` (see
    /// [`Service::audited`] for what a failure to record does).
    pub async fn record<T>(
        &self,
        who: &Principal,
        action: &str,
        target: Target,
        result: &ServiceResult<T>,
    ) -> ServiceResult<u64> {
        self.record_as(Actor::of(who), action, target, outcome(result))
            .await
    }

    pub(crate) async fn record_as(
        &self,
        actor: Actor,
        action: &str,
        target: Target,
        result: String,
    ) -> ServiceResult<u64> {
        let entry = NewAudit {
            time: self.now(),
            actor_kind: actor.kind.to_string(),
            actor: cut(&actor.name, MAX_OBJECT),
            origin: actor.origin,
            vault: cut(&target.vault, MAX_OBJECT),
            action: action.to_string(),
            object: cut(&target.object, MAX_OBJECT),
            result,
            detail: cut(&target.detail, MAX_DETAIL),
        };
        let store = self.store.clone();
        let appended = {
            let entry = entry.clone();
            tokio::task::spawn_blocking(move || store.append_audit(&entry))
                .await
                .map_err(ServiceError::internal)
                .and_then(|r| r.map_err(ServiceError::internal))
        };
        if let Err(e) = &appended {
            // Loudly, and with the whole entry: the server's log then holds what the
            // audit log could not.
            tracing::error!(error = %e, entry = ?entry, "AUDIT LOG WRITE FAILED: this change is not in the audit log");
        }
        appended
    }

    /// Records a change the server made on its own (actor kind `server`), from a
    /// background step; a failure to record goes to the server's log in full.
    pub(crate) fn record_by_server(&self, vault: &str, action: &str, object: &str, detail: &str) {
        let entry = NewAudit {
            time: self.now(),
            actor_kind: "server".to_string(),
            actor: String::new(),
            origin: String::new(),
            vault: cut(vault, MAX_OBJECT),
            action: action.to_string(),
            object: cut(object, MAX_OBJECT),
            result: "Succeeded".to_string(),
            detail: cut(detail, MAX_DETAIL),
        };
        if let Err(e) = self.store.append_audit(&entry) {
            tracing::error!(error = %e, entry = ?entry, "AUDIT LOG WRITE FAILED: this change is not in the audit log");
        }
    }

    /// Records a use case's `result` and answers it.
    ///
    /// If the record cannot be written:
    /// - a change that was made is answered with an error (InternalError, saying the
    ///   change was made but not recorded). A change that nobody can account for is
    ///   worse than a caller told to look: a backup product must not lose the record
    ///   of a deletion silently. The entry itself goes to the server's log in full.
    /// - a refusal or failure (nothing changed) keeps its own answer: failing to
    ///   record an attempt must not hide why it was refused. It is logged the same.
    pub(crate) async fn audited<T>(
        &self,
        who: &Principal,
        action: &str,
        target: Target,
        result: ServiceResult<T>,
    ) -> ServiceResult<T> {
        let recorded = self.record(who, action, target, &result).await;
        self.answer_after_record(result, recorded)
    }

    /// As [`Service::audited`], for a caller without a principal.
    pub(crate) async fn audited_as<T>(
        &self,
        actor: Actor,
        action: &str,
        target: Target,
        result: ServiceResult<T>,
    ) -> ServiceResult<T> {
        let recorded = self
            .record_as(actor, action, target, outcome(&result))
            .await;
        self.answer_after_record(result, recorded)
    }

    fn answer_after_record<T>(
        &self,
        result: ServiceResult<T>,
        recorded: ServiceResult<u64>,
    ) -> ServiceResult<T> {
        match (result, recorded) {
            (Ok(_), Err(e)) => {
                let mut err = ServiceError::new(
                    tresor_api::ErrorCode::InternalError,
                    "the change was made, but it could not be written to the audit log",
                    "see the server's log (it holds the entry); check the metadata database's disk",
                );
                err.detail = e.detail;
                Err(err)
            }
            (result, _) => result,
        }
    }

    /// The audit log, in seq order: from `from` on, or the newest entries.
    pub async fn audit_log(
        self: &Arc<Self>,
        who: &Principal,
        q: AuditQuery,
    ) -> ServiceResult<Vec<AuditEntry>> {
        who.require_installation(Permission::ReadAudit)?;
        let filter = AuditFilter {
            from: q.from,
            vault: q.vault,
            limit: Some(q.limit.unwrap_or(100).clamp(1, MAX_PAGE)),
        };
        self.blocking(move |s| {
            Ok(s.store
                .list_audit(&filter)?
                .into_iter()
                .map(entry_view)
                .collect())
        })
        .await
    }

    /// Walks the whole audit log and says whether its chain holds, and if not, the
    /// first entry that does not fit.
    pub async fn verify_audit(
        self: &Arc<Self>,
        who: &Principal,
    ) -> ServiceResult<AuditVerification> {
        who.require_installation(Permission::ReadAudit)?;
        self.blocking(|s| {
            let mut check = ChainCheck::default();
            let mut from = 1;
            'pages: loop {
                let page = s.store.list_audit(&AuditFilter {
                    from: Some(from),
                    vault: None,
                    limit: Some(MAX_PAGE),
                })?;
                let Some(last) = page.last() else { break };
                from = last.seq + 1;
                for r in &page {
                    if !check.push(r) {
                        break 'pages;
                    }
                }
            }
            let v = check.finish();
            Ok(AuditVerification {
                intact: v.broken.is_none(),
                entries: v.entries,
                last_seq: v.last_good.map(|g| g.0),
                last_hash: v.last_good.map(|g| hex::encode(g.1)),
                broken_seq: v.broken.as_ref().map(|b| b.0),
                problem: v.broken.map(|(seq, why)| format!("entry {seq}: {why}")),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_are_cut_on_a_character() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "abc…");
        assert_eq!(cut("aéb", 2), "a…");
        assert_eq!(origin(IpAddr::from([0, 0, 0, 0])), "");
        assert_eq!(origin(IpAddr::from([192, 0, 2, 1])), "192.0.2.1");
    }
}
