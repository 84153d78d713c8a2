//! Users, for those who manage access (`Access.Manage`): the list with each user's
//! role assignments and TOTP state, "+ Add" (name, initial password, a role at a
//! scope), a user's page to change their role assignments, and delete.
//!
//! The navigation links here only for those who may; the use cases refuse everyone
//! else anyway (403 `MissingPermission`), and the pages show that refusal.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use tresor_api::users::{CreateUser, SetRoles, User};
use tresor_api::ErrorCode;
use tresor_domain::access::{Role, RoleAssignment, Scope};
use tresor_service::{Service, ServiceError};

use crate::layout::{
    badge, csrf_field, empty, error_box, field_error, notice, page, time, with_status, Done, Field,
};
use crate::session::Operator;
use crate::urls::url_encode;
use crate::vaults::error_page;
use crate::CsrfForm;

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{name}", get(user_page))
        .route("/users/{name}/roles", post(set_roles))
        .route("/users/{name}/delete", post(delete))
}

/// The most role assignments one form adds or keeps: far more than anyone needs, and
/// a bound on what a hostile form makes the server parse.
const MAX_ASSIGNMENTS: usize = 64;

/// A role by its name as the API writes it (`BackupOperator`), or `InvalidRole`-like
/// refusal naming the five.
fn parse_role(text: &str) -> Result<Role, ServiceError> {
    Role::ALL
        .iter()
        .copied()
        .find(|r| r.to_string() == text.trim())
        .ok_or_else(|| {
            ServiceError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "{:?} is not a role",
                    text.chars().take(40).collect::<String>()
                ),
                "choose Owner, Contributor, BackupOperator, RestoreOperator or Reader",
            )
        })
}

/// A role at a scope, from the form's two fields.
fn assignment(role: &str, scope: &str) -> Result<RoleAssignment, ServiceError> {
    let scope = scope.trim();
    let scope = if scope.is_empty() { "/" } else { scope };
    Ok(RoleAssignment::new(parse_role(role)?, Scope::parse(scope)?))
}

/// A user's assignments, one per line: "Reader at /resourceGroups/rg1".
fn roles_list(roles: &[RoleAssignment]) -> Markup {
    html! {
        @if roles.is_empty() {
            span.muted { "No role: can sign in, sees nothing" }
        } @else {
            ul.plain.roles {
                @for a in roles { li { strong { (a.role) } " at " code { (a.scope) } } }
            }
        }
    }
}

/// The role choices of a `select`, `chosen` selected.
pub(crate) fn role_options(chosen: &str) -> Markup {
    html! {
        @for r in Role::ALL {
            @let name = r.to_string();
            option value=(name) selected[name == chosen] { (name) }
        }
    }
}

/// What "+ Add" was sent with, to show it again after a refusal.
#[derive(Debug, Default, serde::Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    scope: String,
}

async fn list(op: Operator, State(state): State<Arc<Service>>, Query(q): Query<Done>) -> Response {
    list_page(
        &op,
        &state,
        &NewUserForm::default(),
        None,
        q.done.as_deref(),
    )
    .await
}

async fn list_page(
    op: &Operator,
    state: &Arc<Service>,
    f: &NewUserForm,
    error: Option<&ServiceError>,
    done: Option<&str>,
) -> Response {
    let users = or_page!(op, state.users(&op.principal).await);
    let role = if f.role.is_empty() { "Reader" } else { &f.role };
    let scope = if f.scope.is_empty() { "/" } else { &f.scope };
    let body = html! {
        h1 { "Users" }
        p.muted { "People who sign in to this portal with a name and a password (and a code from an authenticator app once they turn it on). Each holds roles at scopes." }
        @if let Some(d) = done { (notice(d)) }
        @if let Some(e) = error { (error_box(e)) }
        @if users.is_empty() {
            (empty("No user yet: only tokens sign in. Add the first one below.", None))
        } @else {
            table #users {
                caption.sr-only { "Users" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Roles" }
                    th scope="col" { "Authenticator code" } th scope="col" { "Created" }
                } }
                tbody {
                    @for u in &users {
                        tr data-user=(u.name) {
                            td { a href={ "/users/" (url_encode(&u.name)) } { (u.name) } }
                            td { (roles_list(&u.roles)) }
                            td { @if u.totp { (badge("Enabled")) } @else { span.muted { "Off" } } }
                            td { (time(Some(u.created))) }
                        }
                    }
                }
            }
        }
        section.card #add-user aria-labelledby="add-user-h" {
            h2 #add-user-h { "+ Add a user" }
            form.stack #new-user method="post" action="/users" novalidate {
                (csrf_field(op))
                (Field::new("name", "User name", &f.name,
                    "1 to 64 letters, digits and . _ - @ (a login name or an e-mail address).",
                    field_error(error, &[ErrorCode::InvalidUserName, ErrorCode::AlreadyExists]).as_deref()).required().no_autocomplete())
                div.field {
                    label for="password" { "Initial password" }
                    input #password type="password" name="password" autocomplete="new-password" required
                        aria-describedby="password-hint password-error";
                    p.hint #password-hint { "12 characters at least. Tell it to the person; they change it under My account." }
                    p.error #password-error aria-live="polite" { @if let Some(m) = field_error(error, &[ErrorCode::WeakPassword]) { (m) } }
                }
                div.field {
                    label for="role" { "Role" }
                    select #role name="role" { (role_options(role)) }
                    p.hint { "Reader reads; Restore Operator also restores; Backup Operator also backs up, protects and undeletes; Contributor does all but access; Owner everything." }
                }
                (Field::new("scope", "Scope", scope,
                    "Where the role applies: / (everything), /resourceGroups/GROUP, or /resourceGroups/GROUP/vaults/VAULT.",
                    field_error(error, &[ErrorCode::InvalidScope]).as_deref()).no_autocomplete())
                div { button.primary #create-user type="submit" { "Create user" } }
            }
        }
    };
    with_status(page("Users", Some(op), &[], body), error)
}

async fn create(
    op: Operator,
    State(state): State<Arc<Service>>,
    Form(f): Form<NewUserForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let roles = match assignment(&f.role, &f.scope) {
        Ok(a) => vec![a],
        Err(e) => return list_page(&op, &state, &f, Some(&e), None).await,
    };
    let req = CreateUser {
        name: f.name.trim().to_string(),
        password: f.password.clone(),
        roles,
    };
    match state.create_user(&op.principal, req).await {
        Ok(u) => Redirect::to(&format!(
            "/users?done={}",
            url_encode(&format!("User {} created.", u.name))
        ))
        .into_response(),
        Err(e) => {
            // The password is not shown again.
            let f = NewUserForm {
                password: String::new(),
                ..f
            };
            list_page(&op, &state, &f, Some(&e), None).await
        }
    }
}

/// The user `name` from the list (the use case that lists users is the one check).
async fn find_user(state: &Arc<Service>, op: &Operator, name: &str) -> Result<User, Response> {
    let users = state
        .users(&op.principal)
        .await
        .map_err(|e| error_page(op, &e))?;
    users
        .into_iter()
        .find(|u| u.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| error_page(op, &ServiceError::not_found(format!("user {name}"))))
}

async fn user_page(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let u = or_return!(find_user(&state, &op, &name).await);
    user_details(&op, &u, None, q.done.as_deref())
}

fn user_details(
    op: &Operator,
    u: &User,
    error: Option<&ServiceError>,
    done: Option<&str>,
) -> Response {
    let base = format!("/users/{}", url_encode(&u.name));
    let body = html! {
        h1 { (u.name) }
        p.muted { "User · created " (time(Some(u.created))) " · authenticator code "
            @if u.totp { (badge("Enabled")) } @else { "off" } }
        @if let Some(d) = done { (notice(d)) }
        @if let Some(e) = error { (error_box(e)) }
        section.card aria-labelledby="roles-h" {
            h2 #roles-h { "Role assignments" }
            p.muted { "A change ends the user's portal sessions: the new roles hold from their next sign-in." }
            form.stack #user-roles method="post" action={ (base) "/roles" } {
                (csrf_field(op))
                @if u.roles.is_empty() { p.muted { "No role yet." } }
                @for (n, a) in u.roles.iter().enumerate() {
                    label.choice for={ "keep-" (n) } {
                        input type="checkbox" id={ "keep-" (n) } name="keep" value={ (a.role) " " (a.scope) } checked;
                        span { strong { (a.role) } " at " code { (a.scope) } }
                    }
                }
                fieldset {
                    legend { "Add a role" }
                    div.field {
                        label for="role" { "Role" }
                        select #role name="role" {
                            option value="" { "(none)" }
                            (role_options(""))
                        }
                    }
                    (Field::new("scope", "Scope", "/",
                        "/ (everything), /resourceGroups/GROUP, or /resourceGroups/GROUP/vaults/VAULT.", None).no_autocomplete())
                }
                div { button.primary #save-roles type="submit" { "Save role assignments" } }
            }
        }
        section.card.danger-zone aria-labelledby="delete-user-h" {
            h2 #delete-user-h { "Delete user" }
            p.muted { "Deletes the user, their tokens and their portal sessions." }
            form #delete-user method="post" action={ (base) "/delete" }
                data-confirm={ "Delete user " (u.name) "?" } {
                (csrf_field(op))
                button.danger type="submit" { "Delete user" }
            }
        }
    };
    with_status(page(&u.name, Some(op), &[("Users", "/users")], body), error)
}

/// The assignments a roles form sends: each kept one (`keep` = "Role scope"), and the
/// one added (`role` with `scope`), if any.
pub(crate) fn assignments_sent(
    pairs: &[(String, String)],
) -> Result<Vec<RoleAssignment>, ServiceError> {
    let field = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut out: Vec<RoleAssignment> = Vec::new();
    for (_, kept) in pairs.iter().filter(|(k, _)| k == "keep") {
        let (role, scope) = kept.split_once(' ').unwrap_or((kept.as_str(), "/"));
        out.push(assignment(role, scope)?);
    }
    if !field("role").trim().is_empty() {
        out.push(assignment(field("role"), field("scope"))?);
    }
    if out.len() > MAX_ASSIGNMENTS {
        return Err(ServiceError::new(
            ErrorCode::InvalidRequest,
            format!(
                "{} role assignments were sent; at most {MAX_ASSIGNMENTS} are kept",
                out.len()
            ),
            "give the user a role at a wider scope instead of many narrow ones",
        ));
    }
    // The same role at the same scope twice is one assignment.
    let mut unique: Vec<RoleAssignment> = Vec::with_capacity(out.len());
    for a in out {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    Ok(unique)
}

async fn set_roles(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(name): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if let Some(r) = op.csrf_rejection(csrf) {
        return r;
    }
    let result = match assignments_sent(&pairs) {
        Ok(roles) => {
            state
                .set_user_roles(&op.principal, name.clone(), SetRoles { roles })
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(u) => Redirect::to(&format!(
            "/users/{}?done={}",
            url_encode(&u.name),
            url_encode("Role assignments saved. They hold from the user's next sign-in.")
        ))
        .into_response(),
        Err(e) => match find_user(&state, &op, &name).await {
            Ok(u) => user_details(&op, &u, Some(&e), None),
            Err(_) => error_page(&op, &e),
        },
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
    match state.delete_user(&op.principal, name.clone()).await {
        Ok(()) => Redirect::to(&format!(
            "/users?done={}",
            url_encode(&format!("User {name} deleted."))
        ))
        .into_response(),
        Err(e) => error_page(&op, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn role_forms_are_read_and_bounded() {
        let got = assignments_sent(&pairs(&[
            ("csrf", "x"),
            ("keep", "Reader /resourceGroups/rg1"),
            ("keep", "Reader /resourceGroups/RG1"),
            ("role", "BackupOperator"),
            ("scope", ""),
        ]))
        .unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[1],
            RoleAssignment::new(Role::BackupOperator, Scope::Installation)
        );
        let none = assignments_sent(&pairs(&[("role", ""), ("scope", "/")])).unwrap();
        assert!(none.is_empty());
        let bad_role = assignments_sent(&pairs(&[("role", "Admin")])).unwrap_err();
        assert_eq!(bad_role.code, ErrorCode::InvalidRequest);
        assert!(bad_role.recommendation.contains("BackupOperator"));
        let bad_scope =
            assignments_sent(&pairs(&[("role", "Reader"), ("scope", "/vaults/x")])).unwrap_err();
        assert_eq!(bad_scope.code, ErrorCode::InvalidScope);
        let many: Vec<(String, String)> = (0..=MAX_ASSIGNMENTS)
            .map(|n| ("keep".to_string(), format!("Reader /resourceGroups/rg{n}")))
            .collect();
        assert_eq!(
            assignments_sent(&many).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
}
