//! What the pages about backup items share: links, finding the vault and the item,
//! an item's recovery points, the page shell of one item's forms, and form errors.

use std::sync::Arc;

use axum::response::Response;
use maud::Markup;
use tresor_api::items::{ProtectedItem, RecoveryPoint, RegionQuery};
use tresor_api::vaults::Vault;
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError, ServiceResult};

use crate::layout::vault_page;
use crate::session::Operator;
use crate::urls::url_encode;
use crate::vaults::{error_page, vault_of};

/// The link to an item's page (by id: names need not be unique across hosts).
pub(super) fn item_url(vault: &str, item: &ProtectedItem) -> String {
    format!(
        "/vaults/{}/items/{}",
        url_encode(vault),
        url_encode(&item.id)
    )
}

/// The vault and the item (with its replication status), or the page for the first
/// error.
///
/// Every page about one item first needs its vault, then the item; this does both,
/// so a handler starts with one line.
pub(super) async fn vault_and_item(
    state: &Arc<Service>,
    op: &Operator,
    vault: &str,
    item: &str,
) -> Result<(Vault, ProtectedItem), Response> {
    let v = vault_of(state, op, vault).await?;
    let i = state
        .item(&op.principal, v.name.clone(), item.to_string())
        .await
        .map_err(|e| error_page(op, &e))?;
    Ok((v, i))
}

/// An item's recovery points in one region, newest first.
pub(super) async fn points_of(
    state: &Arc<Service>,
    op: &Operator,
    vault: &str,
    item: &str,
    secondary: bool,
) -> ServiceResult<Vec<RecoveryPoint>> {
    let region = RegionQuery {
        use_secondary_region: secondary,
    };
    state
        .recovery_points(&op.principal, vault.to_string(), item.to_string(), region)
        .await
}

/// A page about one item (back up now, restore, stop backup): its trail runs
/// through the vault's item list to the item.
pub(super) fn item_subpage(
    title: &str,
    op: &Operator,
    v: &Vault,
    i: &ProtectedItem,
    body: Markup,
) -> Response {
    let vurl = format!("/vaults/{}", url_encode(&v.name));
    let url = item_url(&v.name, i);
    vault_page(
        title,
        op,
        &v.name,
        &[
            ("Backup items", &format!("{vurl}/items")),
            (&i.vm_name, &url),
        ],
        body,
    )
}

/// The message of `error` if it has one of `codes` (shown next to a field).
pub(super) fn field_message(error: Option<&ServiceError>, codes: &[ErrorCode]) -> Option<String> {
    let e = error?;
    codes
        .contains(&e.code)
        .then(|| format!("{} {}", e.message, e.recommendation))
}

/// A form error of the portal itself (a confirmation not given, a date not parsed).
pub(super) fn form_error(code: ErrorCode, message: String, recommendation: &str) -> ServiceError {
    ServiceError::new(code, message, recommendation)
}

/// A redirect to `path` with a notice of what was done (shared by every page).
pub(super) use crate::layout::redirect_done;

/// The first characters of a long id, enough to tell points apart.
pub(super) fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
