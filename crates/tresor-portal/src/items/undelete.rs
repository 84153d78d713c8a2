//! "Undelete": a soft-deleted item comes back, protection stopped, with its recovery
//! points (for those with `Items.UndeleteBackupData`; the use case checks again).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use tresor_service::Service;

use crate::items::shared::{redirect_done, vault_and_item};
use crate::layout::csrf_field;
use crate::session::Operator;
use crate::urls::url_encode;
use crate::vaults::error_page;
use crate::CsrfForm;

/// The one-button form that undeletes the item at `url`.
pub(crate) fn undelete_form(op: &Operator, url: &str, name: &str) -> Markup {
    html! {
        form.inline.undelete method="post" action={ (url) "/undelete" }
            data-confirm={ "Undelete " (name) " and its recovery points?" } {
            (csrf_field(op))
            button.primary type="submit" aria-label={ "Undelete " (name) } { "Undelete" }
        }
    }
}

pub(super) async fn undelete(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    match state
        .undelete_item(&op.principal, v.name.clone(), i.id.clone())
        .await
    {
        Ok(back) => redirect_done(
            &format!("/vaults/{}/items", url_encode(&v.name)),
            &format!(
                "{} undeleted: protection stopped, its recovery points are back and can be restored.",
                back.vm_name
            ),
        ),
        Err(e) => error_page(&op, &e),
    }
}
