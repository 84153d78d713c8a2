//! The REST API: one module per resource, the routes in one table.

pub mod agents;
pub mod items;
pub mod jobs;
pub mod policies;
pub mod storage;
pub mod tokens;
pub mod vaults;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::AppState;

/// Packs are at most a few tens of MiB; larger bodies are refused.
const MAX_OBJECT: usize = 256 << 20;

async fn ping() -> Json<Value> {
    Json(json!({ "service": "tresor", "version": env!("CARGO_PKG_VERSION") }))
}

pub fn router(state: Arc<AppState>) -> Router {
    let v = "/api/v1/vaults/{vault}";
    Router::new()
        .route("/api/v1/ping", get(ping))
        .route("/openapi.json", get(crate::openapi::document))
        .route("/api/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/api/v1/tokens/{id}", axum::routing::delete(tokens::delete))
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
        .route(&format!("{v}/items/{{item}}"), get(items::show))
        .route(
            &format!("{v}/items/{{item}}/backup"),
            post(items::backup_now),
        )
        .route(&format!("{v}/items/{{item}}/disable"), post(items::disable))
        .route(&format!("{v}/items/{{item}}/restore"), post(items::restore))
        .route(
            &format!("{v}/items/{{item}}/recovery-points"),
            get(items::points),
        )
        .route(
            &format!("{v}/items/{{item}}/recovery-points/{{point}}"),
            get(items::point),
        )
        .route(&format!("{v}/jobs"), get(jobs::list))
        .route(&format!("{v}/jobs/{{job}}"), get(jobs::show))
        .route(&format!("{v}/jobs/{{job}}/cancel"), post(jobs::cancel))
        .route("/api/v1/agents", get(agents::list))
        .route("/api/v1/agents/register", post(agents::register))
        .route("/api/v1/agent/ping", get(agents::ping))
        .route("/api/v1/agent/heartbeat", post(agents::heartbeat))
        .route("/api/v1/agent/jobs/next", post(agents::next_job))
        .route("/api/v1/agent/jobs/{job}/progress", post(agents::progress))
        .route("/api/v1/agent/jobs/{job}/complete", post(agents::complete))
        .route(
            "/api/v1/agent/repos/{vault}/objects/{kind}",
            get(storage::list),
        )
        .route(
            "/api/v1/agent/repos/{vault}/objects/{kind}/{name}",
            get(storage::get).put(storage::put),
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
        .layer(DefaultBodyLimit::max(MAX_OBJECT))
        .with_state(state)
}
