//! `/api/v1/agent/repos/{vault}/...`: an agent's objects (primary, and the secondary
//! copy for cross-region restores) and its writer registrations.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tresor_api::storage::{ObjectEntry, RegisterWriter, Writer};
use tresor_api::ErrorCode;
use tresor_service::repos::Region;
use tresor_service::usecases::storage::{ObjectRead, Stored};
use tresor_service::{Service, ServiceError};
use tresor_web::{AgentCaller, HttpError, HttpResult};

type S = State<Arc<Service>>;

pub async fn list(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Path((vault, kind)): Path<(String, String)>,
) -> HttpResult<Json<Vec<ObjectEntry>>> {
    Ok(Json(
        s.list_objects(&who, Region::Primary, vault, kind).await?,
    ))
}

pub async fn list_secondary(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Path((vault, kind)): Path<(String, String)>,
) -> HttpResult<Json<Vec<ObjectEntry>>> {
    Ok(Json(
        s.list_objects(&who, Region::Secondary, vault, kind).await?,
    ))
}

/// The `Range` header, as text (a header that is not text is refused).
fn range(headers: &HeaderMap) -> HttpResult<Option<String>> {
    headers
        .get(header::RANGE)
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| {
            HttpError(ServiceError::new(
                ErrorCode::InvalidRange,
                "the Range header is not text",
                "send one byte range: Range: bytes=FIRST-LAST",
            ))
        })
}

/// 200 with the object, 206 with the part a `Range` asked for, 416 (with the
/// object's size in `Content-Range`) for a range outside it.
fn object_answer(read: ObjectRead) -> Response {
    match read {
        ObjectRead::Whole(data) => data.into_response(),
        ObjectRead::Part {
            start,
            end,
            len,
            data,
        } => (
            StatusCode::PARTIAL_CONTENT,
            [(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))],
            data,
        )
            .into_response(),
        ObjectRead::Unsatisfiable { len, error } => {
            let mut r = HttpError(error).into_response();
            if let Ok(v) = format!("bytes */{len}").parse() {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
    }
}

async fn read(
    s: &Arc<Service>,
    who: &tresor_web::Principal,
    region: Region,
    object: (String, String, String),
    headers: &HeaderMap,
) -> HttpResult<Response> {
    let range = range(headers)?;
    Ok(object_answer(
        s.get_object(who, region, object, range).await?,
    ))
}

pub async fn get(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Path(object): Path<(String, String, String)>,
    headers: HeaderMap,
) -> HttpResult<Response> {
    read(&s, &who, Region::Primary, object, &headers).await
}

/// The secondary copy, read only, for a cross-region restore.
pub async fn get_secondary(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Path(object): Path<(String, String, String)>,
    headers: HeaderMap,
) -> HttpResult<Response> {
    read(&s, &who, Region::Secondary, object, &headers).await
}

/// 201 when stored, 200 when the same bytes were there already.
pub async fn put(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Path((vault, kind, name)): Path<(String, String, String)>,
    data: Bytes,
) -> HttpResult<StatusCode> {
    Ok(
        match s
            .put_object(&who, vault, kind, name, Vec::from(data))
            .await?
        {
            Stored::Created => StatusCode::CREATED,
            Stored::AlreadyThere => StatusCode::OK,
        },
    )
}

pub async fn register_writer(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Path(vault): Path<String>,
    Json(req): Json<RegisterWriter>,
) -> HttpResult<Json<Writer>> {
    Ok(Json(s.register_writer(&who, vault, req).await?))
}

pub async fn live_writers(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Path(vault): Path<String>,
) -> HttpResult<Json<Vec<Writer>>> {
    Ok(Json(s.live_writers(&who, vault).await?))
}

pub async fn release_writer(
    AgentCaller(who): AgentCaller,
    State(s): S,
    Path((vault, id)): Path<(String, String)>,
) -> HttpResult<StatusCode> {
    s.release_writer(&who, vault, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
