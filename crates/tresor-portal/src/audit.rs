//! The audit log: the newest entries (or from a seq on), who did what to which
//! object, from where, with its result; and whether the log's hash chain holds.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::html;
use tresor_api::audit::AuditQuery;
use tresor_service::Service;

use crate::layout::{badge, empty, page, time};
use crate::session::Operator;

pub fn routes() -> Router<Arc<Service>> {
    Router::new().route("/audit", get(list))
}

async fn list(
    op: Operator,
    State(state): State<Arc<Service>>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let q = AuditQuery {
        limit: Some(q.limit.unwrap_or(100)),
        ..q
    };
    let entries = or_page!(&op, state.audit_log(&op.principal, q).await);
    let check = or_page!(&op, state.verify_audit(&op.principal).await);
    let first = entries.first().map(|e| e.seq);
    let body = html! {
        h1 { "Audit log" }
        @if check.intact {
            p { (badge("Succeeded")) " The chain holds: " (check.entries) " entries, the last "
                (check.last_seq.unwrap_or(0)) " with hash " code { (check.last_hash.clone().unwrap_or_default()) } "." }
        } @else {
            div.alert.bad role="alert" {
                p { strong { "The audit log was changed: " (check.problem.clone().unwrap_or_default()) } }
                p { "Entries after it cannot be trusted; compare with a copy of the log or the server's log." }
            }
        }
        @if entries.is_empty() {
            (empty("No changes recorded yet.", None))
        } @else {
            table #audit {
                caption.sr-only { "Audit log" }
                thead { tr {
                    th scope="col" { "Seq" }
                    th scope="col" { "Time" }
                    th scope="col" { "Actor" }
                    th scope="col" { "From" }
                    th scope="col" { "Action" }
                    th scope="col" { "Vault" }
                    th scope="col" { "Object" }
                    th scope="col" { "Result" }
                    th scope="col" { "Detail" }
                } }
                tbody {
                    @for e in entries.iter().rev() {
                        tr data-seq=(e.seq) {
                            td { (e.seq) }
                            td { (time(Some(e.time))) }
                            td { (e.actor) " (" (e.actor_kind) ")" }
                            td { (e.origin) }
                            td { code { (e.action) } }
                            td { (e.vault) }
                            td { (e.object) }
                            td { (badge(&e.result)) }
                            td { (e.detail) }
                        }
                    }
                }
            }
            @if let Some(first) = first.filter(|s| *s > 1) {
                p { a href=(format!("/audit?from={}&limit=100", first.saturating_sub(100).max(1))) { "Older entries" } }
            }
        }
    };
    page("Audit log", Some(&op), &[], body)
}
