//! `/api/v1/audit`: the audit log and the check of its chain.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use tresor_api::audit::{AuditEntry, AuditQuery, AuditVerification};
use tresor_service::Service;
use tresor_web::{Admin, HttpResult};

type S = State<Arc<Service>>;

pub async fn list(
    Admin(who): Admin,
    State(s): S,
    Query(q): Query<AuditQuery>,
) -> HttpResult<Json<Vec<AuditEntry>>> {
    Ok(Json(s.audit_log(&who, q).await?))
}

pub async fn verify(Admin(who): Admin, State(s): S) -> HttpResult<Json<AuditVerification>> {
    Ok(Json(s.verify_audit(&who).await?))
}
