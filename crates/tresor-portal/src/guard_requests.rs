//! A resource guard's requests for approval: asking for one (vault, critical
//! operation, reason) and deciding one (Approve, Reject). The guard's page
//! (`guard_page.rs`) shows the forms to those who may; the service decides again and
//! its refusals (`NotAnApprover`, `SelfApproval`, `RequestNotPending`,
//! `MissingPermission`...) are shown on the guard's page as they are.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;
use tresor_api::guards::{CreateGuardRequest, CriticalOperation};
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError};

use crate::guard_page::{guard_page, guard_url, Typed};
use crate::layout::redirect_done;
use crate::session::Operator;
use crate::CsrfForm;

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/guards/{guard}/requests", post(ask))
        .route("/guards/{guard}/requests/{id}/approve", post(approve))
        .route("/guards/{guard}/requests/{id}/reject", post(reject))
}

#[derive(Debug, Deserialize)]
pub struct AskForm {
    csrf: String,
    #[serde(default)]
    vault: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    reason: String,
}

/// The critical operation a form names, or a refusal naming the eight.
fn operation_sent(text: &str) -> Result<CriticalOperation, ServiceError> {
    CriticalOperation::parse(text.trim()).ok_or_else(|| {
        let names: Vec<&str> = CriticalOperation::ALL.iter().map(|o| o.name()).collect();
        ServiceError::new(
            ErrorCode::InvalidRequest,
            format!(
                "{:?} is no critical operation",
                text.chars().take(40).collect::<String>()
            ),
            format!("choose one of {}", names.join(", ")),
        )
    })
}

async fn ask(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(guard): Path<String>,
    Form(f): Form<AskForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let vault = f.vault.trim();
    let result = match operation_sent(&f.operation) {
        Ok(operation) => {
            let req = CreateGuardRequest {
                vault: (!vault.is_empty()).then(|| vault.to_string()),
                operation,
                reason: f.reason.clone(),
            };
            state
                .create_guard_request(&op.principal, guard.clone(), req)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => redirect_done(
            &guard_url(&r.guard),
            &format!(
                "Approval of {} asked for. One of the guard's approvers decides; then do the operation before {}.",
                r.operation,
                r.expires.strftime("%Y-%m-%d %H:%M UTC")
            ),
        ),
        Err(e) => {
            let typed = Typed {
                vault: f.vault,
                operation: f.operation,
                reason: f.reason,
            };
            guard_page(&op, &state, &guard, Some(&e), None, &typed).await
        }
    }
}

async fn approve(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((guard, id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    match state
        .approve_guard_request(&op.principal, guard.clone(), id)
        .await
    {
        Ok(r) => redirect_done(
            &guard_url(&r.guard),
            &format!(
                "Approved: {} may do {} once, before {}.",
                r.requested_by,
                r.operation,
                r.expires.strftime("%Y-%m-%d %H:%M UTC")
            ),
        ),
        Err(e) => guard_page(&op, &state, &guard, Some(&e), None, &Typed::default()).await,
    }
}

async fn reject(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((guard, id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    match state
        .reject_guard_request(&op.principal, guard.clone(), id)
        .await
    {
        Ok(r) => redirect_done(
            &guard_url(&r.guard),
            &format!("Rejected: {} of {}.", r.operation, r.requested_by),
        ),
        Err(e) => guard_page(&op, &state, &guard, Some(&e), None, &Typed::default()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_read_by_name() {
        assert_eq!(
            operation_sent(" deleteRecoveryPoint ").unwrap(),
            CriticalOperation::DeleteRecoveryPoint
        );
        let e = operation_sent("DropEverything").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.recommendation.contains("ChangeResourceGuard"));
    }
}
