//! The agents' view of their repositories: objects and writer registrations.
//!
//! An agent reaches only its own repository in a vault (one per host), and only to
//! add and read: packs, index files and recovery point manifests can be created,
//! never replaced or deleted; the config, keys and garbage collection state are read
//! only. Deleting is the server's (retention, garbage collection).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tresor_engine::intake;
use tresor_storage::{Backend, ObjectKind};

use crate::api::range::{parse_range, RangeError, RangeRead};
use crate::auth::Agent;
use crate::error::{ApiError, ApiResult};
use crate::repos::Region;
use crate::state::{AppState, HeldWriter};

/// The names kinds have in paths.
pub fn kind_of(name: &str) -> ApiResult<ObjectKind> {
    Ok(match name {
        "config" => ObjectKind::Config,
        "keys" => ObjectKind::Key,
        "data" => ObjectKind::Pack,
        "index" => ObjectKind::Index,
        "points" => ObjectKind::Point,
        "gc" => ObjectKind::Gc,
        other => {
            return Err(ApiError::bad_request(
                "InvalidObjectKind",
                format!("no object kind {other:?}"),
                "use config, keys, data, index, points or gc",
            ))
        }
    })
}

/// The agent's repository in `vault`; it must be one the server made for it.
fn backend(s: &AppState, agent: &str, vault: &str) -> ApiResult<Arc<dyn Backend>> {
    let v = s.store.get_vault(vault)?;
    if !s.repos.exists(&v, agent, Region::Primary) {
        s.repos.available_target(&v, Region::Primary)?;
        return Err(ApiError::forbidden(
            "this agent has no repository in that vault (it gets one with its first job there)",
        ));
    }
    Ok(s.repos.backend(&v, agent, Region::Primary, false)?)
}

/// The secondary copy of the agent's repository, for a cross-region restore: read
/// only, and only while the agent runs a restore job from the secondary region.
fn secondary_backend(s: &AppState, agent: &str, vault: &str) -> ApiResult<Arc<dyn Backend>> {
    let v = s.store.get_vault(vault)?;
    let restoring = s.store.running_jobs_of_agent(agent)?.iter().any(|j| {
        j.vault_id == v.id
            && j.operation == "Restore"
            && crate::dto::JobBody::of(j)
                .params
                .get("useSecondaryRegion")
                .and_then(Value::as_bool)
                .unwrap_or(false)
    });
    if !restoring {
        return Err(ApiError::forbidden(
            "the secondary region is read only for a cross-region restore job of this agent",
        ));
    }
    Ok(s.repos.backend(&v, agent, Region::Secondary, false)?)
}

/// The repository of the region a path names.
fn region_backend(
    s: &AppState,
    agent: &str,
    vault: &str,
    region: Region,
) -> ApiResult<Arc<dyn Backend>> {
    match region {
        Region::Primary => backend(s, agent, vault),
        Region::Secondary => secondary_backend(s, agent, vault),
    }
}

fn storage_error(e: tresor_storage::Error) -> ApiError {
    // A name the storage does not take is the caller's mistake, not the server's.
    if let tresor_storage::Error::BadName(_) = &e {
        return ApiError::bad_request(
            "InvalidObjectName",
            e.to_string(),
            "name objects with letters, digits, '-' and '_' only",
        );
    }
    if e.is_not_found() {
        return ApiError::not_found(e.to_string());
    }
    // A full storage target is the operator's to fix, not a retry's: 507 with its code.
    if let tresor_storage::Error::Io { source, .. } = &e {
        if matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ) {
            tracing::error!(error = %e, "storage target full");
            return ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "StorageFull",
                "the vault's storage target is full; nothing of this upload was stored",
                "free space on the storage target (delete recovery points and let garbage collection run, or grow the file system), then back up again",
            );
        }
    }
    ApiError::internal(e)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub name: String,
    pub size: u64,
}

pub async fn list(
    agent: Agent,
    state: State<Arc<AppState>>,
    Path((vault, kind)): Path<(String, String)>,
) -> ApiResult<Json<Vec<ObjectEntry>>> {
    list_in(agent, state, vault, kind, Region::Primary).await
}

pub async fn list_secondary(
    agent: Agent,
    state: State<Arc<AppState>>,
    Path((vault, kind)): Path<(String, String)>,
) -> ApiResult<Json<Vec<ObjectEntry>>> {
    list_in(agent, state, vault, kind, Region::Secondary).await
}

async fn list_in(
    Agent(agent): Agent,
    State(state): State<Arc<AppState>>,
    vault: String,
    kind: String,
    region: Region,
) -> ApiResult<Json<Vec<ObjectEntry>>> {
    let kind = kind_of(&kind)?;
    state
        .blocking(move |s| {
            let b = region_backend(s, &agent.id, &vault, region)?;
            let list = b.list(kind).map_err(storage_error)?;
            Ok(Json(
                list.into_iter()
                    .map(|o| ObjectEntry {
                        name: o.name,
                        size: o.size,
                    })
                    .collect(),
            ))
        })
        .await
}

/// Reads an object, or the byte range a `Range: bytes=A-B` header asks for.
pub async fn get(
    agent: Agent,
    state: State<Arc<AppState>>,
    Path((vault, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    get_in(agent, state, (vault, kind, name), headers, Region::Primary).await
}

/// Reads from the secondary copy (cross-region restore).
pub async fn get_secondary(
    agent: Agent,
    state: State<Arc<AppState>>,
    Path((vault, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    get_in(
        agent,
        state,
        (vault, kind, name),
        headers,
        Region::Secondary,
    )
    .await
}

async fn get_in(
    Agent(agent): Agent,
    State(state): State<Arc<AppState>>,
    (vault, kind, name): (String, String, String),
    headers: HeaderMap,
    region: Region,
) -> ApiResult<Response> {
    let kind = kind_of(&kind)?;
    let range = headers
        .get(header::RANGE)
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| {
            ApiError::bad_request(
                "InvalidRange",
                "the Range header is not text",
                "send one byte range: Range: bytes=FIRST-LAST",
            )
        })?;
    state
        .blocking(move |s| {
            let b = region_backend(s, &agent.id, &vault, region)?;
            let len = b.size(kind, &name).map_err(storage_error)?;
            Ok(match parse_range(range.as_deref(), len) {
                Ok(RangeRead::Whole) => b.get(kind, &name).map_err(storage_error)?.into_response(),
                Ok(RangeRead::Part { start, end }) => {
                    // `end < len`, and objects are bounded by the upload limit.
                    let data = b
                        .get_range(kind, &name, start, (end - start + 1) as usize)
                        .map_err(storage_error)?;
                    (
                        StatusCode::PARTIAL_CONTENT,
                        [(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))],
                        data,
                    )
                        .into_response()
                }
                Err(e @ RangeError::Unsatisfiable { .. }) => {
                    let mut r = ApiError::new(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "RangeNotSatisfiable",
                        e.to_string(),
                        "ask for bytes inside the object (its size is in Content-Range)",
                    )
                    .into_response();
                    if let Ok(v) = format!("bytes */{len}").parse() {
                        r.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                    r
                }
                Err(e) => {
                    return Err(ApiError::bad_request(
                        "InvalidRange",
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
pub async fn put(
    Agent(agent): Agent,
    State(state): State<Arc<AppState>>,
    Path((vault, kind, name)): Path<(String, String, String)>,
    data: Bytes,
) -> ApiResult<StatusCode> {
    let kind = kind_of(&kind)?;
    if !matches!(
        kind,
        ObjectKind::Pack | ObjectKind::Index | ObjectKind::Point
    ) {
        return Err(ApiError::forbidden(
            "agents add packs, index files and recovery points; the rest of a repository is the server's",
        ));
    }
    state
        .blocking(move |s| {
            let b = backend(s, &agent.id, &vault)?;
            match b.get(kind, &name) {
                Ok(existing) if existing == data.as_ref() => return Ok(StatusCode::OK),
                Ok(_) => {
                    return Err(ApiError::conflict(
                        "ObjectExists",
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
            Ok(StatusCode::CREATED)
        })
        .await
}

/// An upload the checks refused is the uploader's fault (422, naming the object);
/// anything else is the server's.
pub fn intake_error(host: &str, e: tresor_engine::Error) -> ApiError {
    match e {
        tresor_engine::Error::Rejected { .. } => {
            tracing::warn!(host = ?host, error = %e, "upload refused");
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ObjectRejected",
                e.to_string(),
                "the agent sent an object that is not what it claims to be; nothing was stored. Check the host (a damaged or tampered agent) and back up again",
            )
        }
        tresor_engine::Error::Storage(s) => storage_error(s),
        e => ApiError::internal(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct RegisterWriter {
    pub description: String,
}

/// Registers a running backup (garbage collection then keeps its blobs) for as long
/// as the agent holds it, or until its last job ends.
pub async fn register_writer(
    Agent(agent): Agent,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    Json(req): Json<RegisterWriter>,
) -> ApiResult<Json<Value>> {
    state
        .blocking(move |s| {
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
            Ok(Json(json!({ "id": id })))
        })
        .await
}

/// Text from an agent as it may go into a registry file, a log or a page: at most
/// `max` characters, control characters (newlines among them) shown as `?`.
fn plain_text(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub async fn release_writer(
    Agent(agent): Agent,
    State(state): State<Arc<AppState>>,
    Path((_vault, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut writers = state.writers.lock();
    match writers.get(&id) {
        Some(w) if w.agent_id == agent.id => {
            writers.remove(&id);
            Ok(StatusCode::NO_CONTENT)
        }
        Some(_) => Err(ApiError::forbidden("not this agent's registration")),
        None => Ok(StatusCode::NO_CONTENT),
    }
}

pub async fn live_writers(
    Agent(agent): Agent,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    state
        .blocking(move |s| {
            let b = backend(s, &agent.id, &vault)?;
            let live = b.writers().live().map_err(storage_error)?;
            Ok(Json(
                live.into_iter()
                    .map(|w| json!({"id": w.id, "description": w.description}))
                    .collect(),
            ))
        })
        .await
}
