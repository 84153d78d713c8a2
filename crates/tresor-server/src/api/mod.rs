//! The REST API: one module per resource, the routes in one table.

pub mod agents;
pub mod audit;
pub mod guards;
pub mod items;
pub mod jobs;
pub mod policies;
pub mod storage;
pub mod tokens;
pub mod users;
pub mod vaults;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use tresor_api::config::Ping;
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError};
use tresor_web::HttpError;

/// The largest object an agent may upload. A pack is about 16 MiB (a little more
/// with its header and the last blob that did not fit) and an index file at most a
/// few MiB; a manifest is small. Four times a pack leaves room and still bounds what
/// one upload holds in memory (the body is read whole before it is stored).
pub const MAX_OBJECT_UPLOAD: usize = 64 << 20;

/// Every other body: JSON requests, forms, and everything a caller without a
/// credential can send (sign-in, registration). The largest real one is a few KiB.
pub const MAX_JSON: usize = 64 << 10;

/// An agent's heartbeat: its whole VM inventory, with preflight results. A host with
/// a few hundred VMs sends a few hundred KiB.
pub const MAX_INVENTORY: usize = 4 << 20;

/// The body limit of the route serving `path` (for the 413's message).
pub fn body_limit(path: &str) -> usize {
    if path.starts_with("/api/v1/agent/repos/") && path.contains("/objects/") {
        MAX_OBJECT_UPLOAD
    } else if path == "/api/v1/agent/heartbeat" {
        MAX_INVENTORY
    } else {
        MAX_JSON
    }
}

/// axum's own refusals (a body that is not JSON or not of the expected shape, a path
/// or query parameter that does not parse, a method a route does not serve) come as
/// plain text; this answers them in the API's error shape, like every other error,
/// with the same status and axum's explanation as the message. (413 is the guard's:
/// see `http_guard.rs`.)
async fn refusals_as_errors(r: Response) -> Response {
    let status = r.status();
    let json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || status == StatusCode::PAYLOAD_TOO_LARGE || json {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (code, recommendation) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "see /openapi.json for the methods of this path",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with Content-Type: application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            ErrorCode::InvalidRequestBody,
            "send the fields /openapi.json describes for this call, with their types",
        ),
        _ => (
            ErrorCode::InvalidRequest,
            "check the path, query and body against /openapi.json",
        ),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("invalid request")
            .to_string()
    } else {
        text
    };
    // The code's own status, except for axum's other 4xx (a path parameter that does
    // not parse is 400, a missing route 404...), which keep theirs.
    let mut out = HttpError(ServiceError::new(code, message, recommendation)).into_response();
    *out.status_mut() = status;
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

async fn ping() -> Json<Ping> {
    Json(Ping {
        service: "tresor".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

pub fn router(state: Arc<Service>) -> Router {
    let v = "/api/v1/vaults/{vault}";
    Router::new()
        .route("/api/v1/ping", get(ping))
        .route("/openapi.json", get(crate::openapi::document))
        .route("/api/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/api/v1/tokens/{id}", axum::routing::delete(tokens::delete))
        .route("/api/v1/users", post(users::create).get(users::list))
        .route("/api/v1/users/{name}", axum::routing::delete(users::delete))
        .route("/api/v1/users/{name}/password", put(users::set_password))
        .route("/api/v1/users/{name}/roles", put(users::set_roles))
        .route(
            "/api/v1/users/{name}/totp",
            post(users::enable_totp).delete(users::disable_totp),
        )
        .route(
            "/api/v1/users/{name}/totp/confirm",
            post(users::confirm_totp),
        )
        .route(
            "/api/v1/resourceGuards",
            post(guards::create).get(guards::list),
        )
        .route(
            "/api/v1/resourceGuards/{guard}",
            get(guards::show).put(guards::update).delete(guards::delete),
        )
        .route(
            "/api/v1/resourceGuards/{guard}/requests",
            post(guards::create_request).get(guards::requests),
        )
        .route(
            "/api/v1/resourceGuards/{guard}/requests/{id}",
            get(guards::request),
        )
        .route(
            "/api/v1/resourceGuards/{guard}/requests/{id}/approve",
            post(guards::approve),
        )
        .route(
            "/api/v1/resourceGuards/{guard}/requests/{id}/reject",
            post(guards::reject),
        )
        .route("/api/v1/vaults", post(vaults::create).get(vaults::list))
        .route(v, get(vaults::show).delete(vaults::delete))
        .route(
            &format!("{v}/backup-properties"),
            put(vaults::set_backup_properties),
        )
        .route(&format!("{v}/credentials"), post(vaults::credentials))
        .route(&format!("{v}/replicate"), post(vaults::replicate))
        .route(&format!("{v}/verify"), post(vaults::verify))
        .route(
            &format!("{v}/policies"),
            get(policies::list).post(policies::create),
        )
        .route(
            &format!("{v}/policies/default-for-vm"),
            get(policies::default_for_vm),
        )
        .route(
            &format!("{v}/policies/{{policy}}"),
            get(policies::show)
                .put(policies::update)
                .delete(policies::delete),
        )
        .route(&format!("{v}/protectable-items"), get(items::protectable))
        .route(&format!("{v}/items"), get(items::list).post(items::enable))
        .route(
            &format!("{v}/items/{{item}}"),
            get(items::show).put(items::modify),
        )
        .route(
            &format!("{v}/items/{{item}}/backup"),
            post(items::backup_now),
        )
        .route(&format!("{v}/items/{{item}}/disable"), post(items::disable))
        .route(
            &format!("{v}/items/{{item}}/undelete"),
            post(items::undelete),
        )
        .route(&format!("{v}/items/{{item}}/restore"), post(items::restore))
        .route(
            &format!("{v}/items/{{item}}/recovery-points"),
            get(items::points),
        )
        .route(
            &format!("{v}/items/{{item}}/recovery-points/{{point}}"),
            get(items::point).delete(items::delete_point),
        )
        .route(
            &format!("{v}/items/{{item}}/recovery-points/{{point}}/undelete"),
            post(items::undelete_point),
        )
        .route(&format!("{v}/jobs"), get(jobs::list))
        .route(&format!("{v}/jobs/{{job}}"), get(jobs::show))
        .route(&format!("{v}/jobs/{{job}}/cancel"), post(jobs::cancel))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/audit/verify", get(audit::verify))
        .route("/api/v1/agents", get(agents::list))
        .route("/api/v1/agents/register", post(agents::register))
        .route("/api/v1/agent/ping", get(agents::ping))
        .route(
            "/api/v1/agent/heartbeat",
            post(agents::heartbeat).layer(DefaultBodyLimit::max(MAX_INVENTORY)),
        )
        .route("/api/v1/agent/jobs/next", post(agents::next_job))
        .route("/api/v1/agent/jobs/{job}/progress", post(agents::progress))
        .route("/api/v1/agent/jobs/{job}/complete", post(agents::complete))
        .route(
            "/api/v1/agent/repos/{vault}/objects/{kind}",
            get(storage::list),
        )
        .route(
            "/api/v1/agent/repos/{vault}/objects/{kind}/{name}",
            get(storage::get)
                .put(storage::put)
                .layer(DefaultBodyLimit::max(MAX_OBJECT_UPLOAD)),
        )
        .route(
            "/api/v1/agent/repos/{vault}/secondary/objects/{kind}",
            get(storage::list_secondary),
        )
        .route(
            "/api/v1/agent/repos/{vault}/secondary/objects/{kind}/{name}",
            get(storage::get_secondary),
        )
        .route(
            "/api/v1/agent/repos/{vault}/writers",
            post(storage::register_writer).get(storage::live_writers),
        )
        .route(
            "/api/v1/agent/repos/{vault}/writers/{id}",
            axum::routing::delete(storage::release_writer),
        )
        .layer(DefaultBodyLimit::max(MAX_JSON))
        .layer(axum::middleware::map_response(refusals_as_errors))
        .with_state(state)
}
