//! Resource guards (Azure Backup's multi-user authorization): the list (name,
//! approvers, approval validity, vaults bound), "+ Create" for `ResourceGuards.Manage`
//! (name, approvers from the users, validity), and on a guard's page
//! (`guard_page.rs`) changing its approvers or validity and deleting it, which the
//! service lets through only with an approval (its `ApprovalRequired` shown as is).
//!
//! The header links here for those who read vaults somewhere or approve for a guard
//! (`Service::sees_resource_guards`); the use cases refuse everyone else anyway.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use tresor_api::guards::{CreateResourceGuard, UpdateResourceGuard};
use tresor_api::ErrorCode;
use tresor_domain::guard::ApprovalValidity;
use tresor_service::{Service, ServiceError};

use crate::guard_page::{
    approver_inputs, approvers_sent, guard_page, guard_url, validity_sent, Typed,
};
use crate::layout::{
    csrf_field, empty, error_box, field_error, form_value, notice, page, time, with_status, Done,
    Field,
};
use crate::permissions::Permission;
use crate::session::Operator;
use crate::urls::url_encode;
use crate::vaults::error_page;
use crate::CsrfForm;

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/guards", get(list).post(create))
        .route("/guards/{guard}", get(guard))
        .route("/guards/{guard}/update", post(update))
        .route("/guards/{guard}/delete", post(delete))
}

/// What "+ Create" was sent with, to show again after a refusal.
#[derive(Debug, Default)]
struct NewGuard {
    name: String,
    approvers: Vec<String>,
    validity: String,
}

async fn list(op: Operator, State(state): State<Arc<Service>>, Query(q): Query<Done>) -> Response {
    let typed = NewGuard {
        validity: ApprovalValidity::DEFAULT_MINUTES.to_string(),
        ..NewGuard::default()
    };
    list_page(&op, &state, &typed, None, q.done.as_deref()).await
}

async fn list_page(
    op: &Operator,
    state: &Arc<Service>,
    f: &NewGuard,
    error: Option<&ServiceError>,
    done: Option<&str>,
) -> Response {
    let guards = or_page!(op, state.resource_guards(&op.principal).await);
    let manage = op.can.allows(Permission::ManageResourceGuard);
    let users = if manage {
        state.users(&op.principal).await.ok()
    } else {
        None
    };
    let body = html! {
        h1 { "Resource guards" }
        p.muted { "A resource guard protects the critical operations of the vaults bound to it: deleting backup data or recovery points, shorter retention or soft delete, lower immutability, unbinding the guard, deleting the vault. Each needs an approval from one of the guard's approvers, used once." }
        @if let Some(d) = done { (notice(d)) }
        @if let Some(e) = error { (error_box(e)) }
        @if guards.is_empty() {
            (empty("No resource guard yet.", None))
        } @else {
            table #guards {
                caption.sr-only { "Resource guards" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Approvers" }
                    th scope="col" { "Approval validity" } th scope="col" { "Vaults" } th scope="col" { "Created" }
                } }
                tbody {
                    @for g in &guards {
                        tr data-guard=(g.name) {
                            td { a href=(guard_url(&g.name)) { (g.name) } }
                            td { (g.approvers.join(", ")) }
                            td { (g.validity_minutes) " minutes" }
                            td { @if g.vaults.is_empty() { span.muted { "None" } } @else { (g.vaults.join(", ")) } }
                            td { (time(Some(g.created))) }
                        }
                    }
                }
            }
        }
        @if manage {
            section.card #add-guard aria-labelledby="add-guard-h" {
                h2 #add-guard-h { "+ Create a resource guard" }
                form.stack #new-guard method="post" action="/guards" novalidate {
                    (csrf_field(op))
                    (Field::new("name", "Name", &f.name,
                        "2 to 50 characters: a letter first, then letters, digits and hyphens.",
                        field_error(error, &[ErrorCode::InvalidResourceGuardName, ErrorCode::AlreadyExists]).as_deref())
                        .required().no_autocomplete())
                    (approver_inputs(users.as_deref(), &f.approvers, field_error(error, &[ErrorCode::InvalidApprovers]).as_deref()))
                    (Field::new("validity_minutes", "Approval validity (minutes)", &f.validity,
                        "How long a request waits for a decision, and an approval stays usable: 5 to 10080 (a week).",
                        field_error(error, &[ErrorCode::ApprovalValidityOutOfRange]).as_deref()).number(Some("10080"), None))
                    div { button.primary #create-guard type="submit" { "Create" } }
                }
            }
        }
    };
    with_status(page("Resource guards", Some(op), &[], body), error)
}

async fn create(
    op: Operator,
    State(state): State<Arc<Service>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = op.csrf_rejection(form_value(&pairs, "csrf")) {
        return r;
    }
    let mut typed = NewGuard {
        name: form_value(&pairs, "name").trim().to_string(),
        approvers: Vec::new(),
        validity: form_value(&pairs, "validity_minutes").trim().to_string(),
    };
    let sent = approvers_sent(&pairs).and_then(|a| Ok((a, validity_sent(&typed.validity)?)));
    let result = match sent {
        Ok((approvers, validity_minutes)) => {
            typed.approvers = approvers.clone();
            let req = CreateResourceGuard {
                name: typed.name.clone(),
                approvers,
                validity_minutes,
            };
            state.create_resource_guard(&op.principal, req).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(g) => Redirect::to(&format!(
            "{}?done={}",
            guard_url(&g.name),
            url_encode(&format!(
                "Resource guard {} created. Bind vaults to it under their Backup configuration.",
                g.name
            ))
        ))
        .into_response(),
        Err(e) => list_page(&op, &state, &typed, Some(&e), None).await,
    }
}

async fn guard(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    guard_page(
        &op,
        &state,
        &name,
        None,
        q.done.as_deref(),
        &Typed::default(),
    )
    .await
}

async fn update(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(name): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = op.csrf_rejection(form_value(&pairs, "csrf")) {
        return r;
    }
    let sent = approvers_sent(&pairs)
        .and_then(|a| Ok((a, validity_sent(form_value(&pairs, "validity_minutes"))?)));
    let result = match sent {
        Ok((approvers, validity_minutes)) => {
            let req = UpdateResourceGuard {
                // The form always sends the approvers (those now checked): none is
                // refused by the service as such.
                approvers: Some(approvers),
                validity_minutes,
            };
            state
                .update_resource_guard(&op.principal, name.clone(), req)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(g) => Redirect::to(&format!(
            "{}?done={}",
            guard_url(&g.name),
            url_encode("Resource guard changed.")
        ))
        .into_response(),
        Err(e) => guard_page(&op, &state, &name, Some(&e), None, &Typed::default()).await,
    }
}

async fn delete(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(name): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    match state
        .delete_resource_guard(&op.principal, name.clone())
        .await
    {
        Ok(()) => Redirect::to(&format!(
            "/guards?done={}",
            url_encode(&format!("Resource guard {name} deleted."))
        ))
        .into_response(),
        Err(e) if e.code == ErrorCode::NotFound => error_page(&op, &e),
        Err(e) => guard_page(&op, &state, &name, Some(&e), None, &Typed::default()).await,
    }
}
