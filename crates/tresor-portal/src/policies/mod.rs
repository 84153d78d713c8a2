//! Backup policies of a vault: the list, a policy's details, "+ Add" and edit forms,
//! and deleting one.
//!
//! The forms build the domain's `BackupPolicy` (the body the API's create and update
//! take) and call the service's create and update use cases, so a policy obeys
//! exactly the API's rules: a broken rule comes back as the service's error, shown on
//! top of the form and next to the field it names.
//!
//! - `pages.rs`: the list, a policy's details, delete.
//! - `summary.rs`: a policy in words (also the backup wizard's).
//! - `form.rs`: the form as typed, and the policy it describes.
//! - `edit.rs`: the form's page, create and update.

mod edit;
mod form;
mod pages;
pub mod summary;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tresor_service::Service;

use crate::policies::edit::{create, edit_form, new_form, update};
use crate::policies::pages::{delete, details, list};

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/vaults/{vault}/policies", get(list))
        .route("/vaults/{vault}/policies/new", get(new_form).post(create))
        .route("/vaults/{vault}/policies/{name}", get(details))
        .route(
            "/vaults/{vault}/policies/{name}/edit",
            get(edit_form).post(update),
        )
        .route("/vaults/{vault}/policies/{name}/delete", post(delete))
}
