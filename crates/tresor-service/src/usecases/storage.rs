//! The agents' view of their repositories: objects and writer registrations.
//!
//! An agent reaches only its own repository in a vault (one per host), and only to
//! add and read: packs, index files and recovery point manifests can be created,
//! never replaced or deleted; the config, keys and garbage collection state are read
//! only. Deleting is the server's (retention, garbage collection).

use std::sync::Arc;

use tresor_api::storage::{ObjectEntry, RegisterWriter, Writer};
use tresor_api::ErrorCode;
use tresor_domain::JobOperation;
use tresor_engine::intake;
use tresor_storage::{Backend, ObjectKind};

use crate::auth::Principal;
use crate::error::{ServiceError, ServiceResult};
use crate::ranges::{parse_range, RangeError, RangeRead};
use crate::repos::Region;
use crate::state::{HeldWriter, Service};
use crate::views::JobBody;

/// What a read of an object gives.
#[derive(Debug)]
pub enum ObjectRead {
    /// The whole object (no range was asked for).
    Whole(Vec<u8>),
    /// The bytes `start..=end` of an object of `len` bytes.
    Part {
        start: u64,
        end: u64,
        len: u64,
        data: Vec<u8>,
    },
    /// The range asked for lies outside the object of `len` bytes.
    Unsatisfiable { len: u64, error: ServiceError },
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Created,
    /// The same bytes were there already (a retried upload).
    AlreadyThere,
}

/// The names kinds have in paths.
pub fn kind_of(name: &str) -> ServiceResult<ObjectKind> {
    ObjectKind::from_name(name).ok_or_else(|| {
        ServiceError::new(
            ErrorCode::InvalidObjectKind,
            format!("no object kind {name:?}"),
            "use config, keys, data, index, points or gc",
        )
    })
}

/// The agent's repository in `vault`; it must be one the server made for it.
fn backend(s: &Service, agent: &str, vault: &str) -> ServiceResult<Arc<dyn Backend>> {
    let v = s.store.get_vault(vault)?;
    if !s.repos.exists(&v, agent, Region::Primary) {
        s.repos.available_target(&v, Region::Primary)?;
        return Err(ServiceError::forbidden(
            "this agent has no repository in that vault (it gets one with its first job there)",
        ));
    }
    Ok(s.repos.backend(&v, agent, Region::Primary, false)?)
}

/// The secondary copy of the agent's repository, for a cross-region restore: read
/// only, and only while the agent runs a restore job from the secondary region.
fn secondary_backend(s: &Service, agent: &str, vault: &str) -> ServiceResult<Arc<dyn Backend>> {
    let v = s.store.get_vault(vault)?;
    let restoring = s.store.running_jobs_of_agent(agent)?.iter().any(|j| {
        j.vault_id == v.id
            && j.operation == JobOperation::Restore.as_str()
            && JobBody::of(j).params.use_secondary_region
    });
    if !restoring {
        return Err(ServiceError::forbidden(
            "the secondary region is read only for a cross-region restore job of this agent",
        ));
    }
    Ok(s.repos.backend(&v, agent, Region::Secondary, false)?)
}

/// The repository of the region a path names.
fn region_backend(
    s: &Service,
    agent: &str,
    vault: &str,
    region: Region,
) -> ServiceResult<Arc<dyn Backend>> {
    match region {
        Region::Primary => backend(s, agent, vault),
        Region::Secondary => secondary_backend(s, agent, vault),
    }
}

fn storage_error(e: tresor_storage::Error) -> ServiceError {
    // A name the storage does not take is the caller's mistake, not the server's.
    if let tresor_storage::Error::BadName(_) = &e {
        return ServiceError::new(
            ErrorCode::InvalidObjectName,
            e.to_string(),
            "name objects with letters, digits, '-' and '_' only",
        );
    }
    if e.is_not_found() {
        return ServiceError::not_found(e.to_string());
    }
    // A full storage target is the operator's to fix, not a retry's: 507 with its code.
    if let tresor_storage::Error::Io { source, .. } = &e {
        if matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ) {
            tracing::error!(error = %e, "storage target full");
            return ServiceError::new(
                ErrorCode::StorageFull,
                "the vault's storage target is full; nothing of this upload was stored",
                "free space on the storage target (delete recovery points and let garbage collection run, or grow the file system), then back up again",
            );
        }
    }
    ServiceError::internal(e)
}

/// An upload the checks refused is the uploader's fault (422, naming the object);
/// anything else is the server's.
pub fn intake_error(host: &str, e: tresor_engine::Error) -> ServiceError {
    match e {
        tresor_engine::Error::Rejected { .. } => {
            tracing::warn!(host = ?host, error = %e, "upload refused");
            ServiceError::new(
                ErrorCode::ObjectRejected,
                e.to_string(),
                "the agent sent an object that is not what it claims to be; nothing was stored. Check the host (a damaged or tampered agent) and back up again",
            )
        }
        tresor_engine::Error::Storage(s) => storage_error(s),
        e => ServiceError::internal(e),
    }
}

/// Text from an agent as it may go into a registry file, a log or a page: at most
/// `max` characters, control characters (newlines among them) shown as `?`.
fn plain_text(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl Service {
    /// The agent's objects of one kind in `vault`, in one region (the secondary only
    /// for a cross-region restore of this agent).
    pub async fn list_objects(
        self: &Arc<Self>,
        who: &Principal,
        region: Region,
        vault: String,
        kind: String,
    ) -> ServiceResult<Vec<ObjectEntry>> {
        let agent = who.require_agent()?.clone();
        let kind = kind_of(&kind)?;
        self.blocking(move |s| {
            let b = region_backend(s, &agent.id, &vault, region)?;
            let list = b.list(kind).map_err(storage_error)?;
            Ok(list
                .into_iter()
                .map(|o| ObjectEntry {
                    name: o.name,
                    size: o.size,
                })
                .collect())
        })
        .await
    }

    /// Reads an object of the agent's repository in one region, whole or the byte
    /// range `range` (an HTTP `Range` value, `bytes=FIRST-LAST`) asks for.
    pub async fn get_object(
        self: &Arc<Self>,
        who: &Principal,
        region: Region,
        (vault, kind, name): (String, String, String),
        range: Option<String>,
    ) -> ServiceResult<ObjectRead> {
        let agent = who.require_agent()?.clone();
        let kind = kind_of(&kind)?;
        self.blocking(move |s| {
            let b = region_backend(s, &agent.id, &vault, region)?;
            let len = b.size(kind, &name).map_err(storage_error)?;
            Ok(match parse_range(range.as_deref(), len) {
                Ok(RangeRead::Whole) => {
                    ObjectRead::Whole(b.get(kind, &name).map_err(storage_error)?)
                }
                Ok(RangeRead::Part { start, end }) => {
                    // `end < len`, and objects are bounded by the upload limit.
                    let data = b
                        .get_range(kind, &name, start, (end - start + 1) as usize)
                        .map_err(storage_error)?;
                    ObjectRead::Part {
                        start,
                        end,
                        len,
                        data,
                    }
                }
                Err(e @ RangeError::Unsatisfiable { .. }) => ObjectRead::Unsatisfiable {
                    len,
                    error: ServiceError::new(
                        ErrorCode::RangeNotSatisfiable,
                        e.to_string(),
                        "ask for bytes inside the object (its size is in Content-Range)",
                    ),
                },
                Err(e) => {
                    return Err(ServiceError::new(
                        ErrorCode::InvalidRange,
                        e.to_string(),
                        "send one byte range: Range: bytes=FIRST-LAST",
                    ))
                }
            })
        })
        .await
    }

    /// Creates an object. Existing objects are never replaced: the same bytes again are
    /// accepted (a retried upload), other bytes refused. Nothing is stored before it passed
    /// the server's own checks (`tresor_engine::intake`): a pack must be exactly what its
    /// trailer says, an index file must agree with the stored packs it names, a manifest
    /// must open under its name.
    pub async fn put_object(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        kind: String,
        name: String,
        data: Vec<u8>,
    ) -> ServiceResult<Stored> {
        let agent = who.require_agent()?.clone();
        let kind = kind_of(&kind)?;
        if !matches!(
            kind,
            ObjectKind::Pack | ObjectKind::Index | ObjectKind::Point
        ) {
            return Err(ServiceError::forbidden(
                "agents add packs, index files and recovery points; the rest of a repository is the server's",
            ));
        }
        self.blocking(move |s| {
            let b = backend(s, &agent.id, &vault)?;
            match b.get(kind, &name) {
                Ok(existing) if existing == data => return Ok(Stored::AlreadyThere),
                Ok(_) => {
                    return Err(ServiceError::new(
                        ErrorCode::ObjectExists,
                        format!("{kind:?} object {name} exists with other contents"),
                        "objects are never replaced; this upload is refused",
                    ))
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(storage_error(e)),
            }
            let v = s.store.get_vault(&vault)?;
            let repo = s.repos.open_or_create(&v, &agent.id)?;
            let index_file = match kind {
                ObjectKind::Pack => intake::check_pack(&repo, &name, &data).map(|_| None),
                ObjectKind::Index => intake::check_index(&repo, &name, &data).map(Some),
                _ => intake::check_manifest(&repo, &name, &data).map(|_| None),
            }
            .map_err(|e| intake_error(&agent.host, e))?;
            b.put(kind, &name, &data).map_err(storage_error)?;
            // The server's view of the index stays current: the next pack's check
            // knows which of its blobs are second copies of stored ones.
            if let Some(file) = index_file {
                repo.add_index_file(&name, &file);
            }
            Ok(Stored::Created)
        })
        .await
    }

    /// Registers a running backup (garbage collection then keeps its blobs) for as long
    /// as the agent holds it, or until its last job ends.
    pub async fn register_writer(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
        req: RegisterWriter,
    ) -> ServiceResult<Writer> {
        let agent = who.require_agent()?.clone();
        self.blocking(move |s| {
            let b = backend(s, &agent.id, &vault)?;
            let guard = b
                .writers()
                .register(&format!(
                    "{} (agent on {})",
                    plain_text(&req.description, 200),
                    plain_text(&agent.host, 200)
                ))
                .map_err(storage_error)?;
            let id = guard.info.id.clone();
            s.writers.lock().insert(
                id.clone(),
                HeldWriter {
                    agent_id: agent.id.clone(),
                    guard,
                },
            );
            Ok(Writer {
                id,
                description: None,
            })
        })
        .await
    }

    pub async fn release_writer(
        self: &Arc<Self>,
        who: &Principal,
        _vault: String,
        id: String,
    ) -> ServiceResult<()> {
        let agent = who.require_agent()?.clone();
        let mut writers = self.writers.lock();
        match writers.get(&id) {
            Some(w) if w.agent_id == agent.id => {
                writers.remove(&id);
                Ok(())
            }
            Some(_) => Err(ServiceError::forbidden("not this agent's registration")),
            None => Ok(()),
        }
    }

    pub async fn live_writers(
        self: &Arc<Self>,
        who: &Principal,
        vault: String,
    ) -> ServiceResult<Vec<Writer>> {
        let agent = who.require_agent()?.clone();
        self.blocking(move |s| {
            let b = backend(s, &agent.id, &vault)?;
            let live = b.writers().live().map_err(storage_error)?;
            Ok(live
                .into_iter()
                .map(|w| Writer {
                    id: w.id,
                    description: Some(w.description),
                })
                .collect())
        })
        .await
    }
}
