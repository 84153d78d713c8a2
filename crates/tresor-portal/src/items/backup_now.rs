//! "Back up now": a recovery point outside the policy's schedule, kept until the day
//! the operator chooses.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use maud::html;
use serde::Deserialize;
use tresor_api::items::{BackupNow, ProtectedItem};
use tresor_api::vaults::Vault;
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError};

use crate::items::shared::{
    field_message, form_error, item_subpage, item_url, redirect_done, short_id, vault_and_item,
};
use crate::layout::{csrf_field, error_box, with_status, Field};
use crate::session::Operator;
use crate::urls::url_encode;

#[derive(Debug, Default, Deserialize)]
pub struct BackupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    retain_until: String,
}

/// The day chosen in the calendar is the last day the point is kept: it is kept
/// until the end of that day (UTC).
fn end_of_day(day: &str) -> Result<Option<Timestamp>, ServiceError> {
    let day = day.trim();
    if day.is_empty() {
        return Ok(None);
    }
    let bad = || {
        form_error(
            ErrorCode::InvalidDate,
            format!("{day} is not a date."),
            "Choose a day in the calendar, or type it as YYYY-MM-DD.",
        )
    };
    let d: Date = day.parse().map_err(|_| bad())?;
    d.at(23, 59, 59, 0)
        .to_zoned(TimeZone::UTC)
        .map(|z| Some(z.timestamp()))
        .map_err(|_| bad())
}

fn day_of(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC).date().to_string()
}

fn backup_page(
    op: &Operator,
    v: &Vault,
    i: &ProtectedItem,
    state: &Service,
    f: &BackupForm,
    error: Option<&ServiceError>,
) -> Response {
    let now = state.now();
    let default = day_of(tresor_domain::default_retain_until(now));
    let tomorrow = day_of(now + SignedDuration::from_hours(24));
    let value = if f.retain_until.is_empty() && error.is_none() {
        default.clone()
    } else {
        f.retain_until.clone()
    };
    let url = item_url(&v.name, i);
    // The domain's own rule, shown before the operator tries.
    let refused: Option<ServiceError> = i
        .protection_state
        .can_back_up_now()
        .err()
        .map(ServiceError::from);
    let date_error = field_message(
        error,
        &[
            ErrorCode::RetainUntilInPast,
            ErrorCode::RetainUntilTooFar,
            ErrorCode::InvalidDate,
        ],
    );
    let body = html! {
        h1 { "Back up now" }
        p.muted { (i.vm_name) " on host " (i.host) " · vault " (v.name) }
        @if let Some(e) = error { (error_box(e)) }
        @else if let Some(e) = &refused { (error_box(e)) }
        form.stack.card #backup-now method="post" action={ (url) "/backup" } novalidate {
            (csrf_field(op))
            p { "Takes a recovery point of " strong { (i.vm_name) } " now, outside the policy's schedule. It is kept until the day you choose, whatever the policy says." }
            (Field::new("retain_until", "Retain backup till", &value,
                html! { "The last day the recovery point is kept (until the end of that day, UTC). Default: 30 days from today (" (default) "); at most 99 years ahead." },
                date_error.as_deref()).date(&tomorrow).required())
            div { button.primary type="submit" { "OK" } " " a.button href=(url) { "Cancel" } }
        }
    };
    with_status(item_subpage("Back up now", op, v, i, body), error)
}

pub(super) async fn backup_form(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
) -> Response {
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    backup_page(&op, &v, &i, &state, &BackupForm::default(), None)
}

pub(super) async fn backup(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, item)): Path<(String, String)>,
    Form(f): Form<BackupForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let (v, i) = or_return!(vault_and_item(&state, &op, &vault, &item).await);
    let retain_until = match end_of_day(&f.retain_until) {
        Ok(t) => t,
        Err(e) => return backup_page(&op, &v, &i, &state, &f, Some(&e)),
    };
    let req = BackupNow { retain_until };
    match state
        .backup_now(&op.principal, v.name.clone(), i.id.clone(), req)
        .await
    {
        Ok(job) => {
            let until = retain_until
                .map(day_of)
                .unwrap_or_else(|| day_of(tresor_domain::default_retain_until(state.now())));
            redirect_done(
                &format!("/vaults/{}/jobs", url_encode(&v.name)),
                &format!(
                    "Backup of {} started (job {}). The recovery point is kept until the end of {until} (UTC).",
                    i.vm_name,
                    short_id(&job.id),
                ),
            )
        }
        Err(e) => backup_page(&op, &v, &i, &state, &f, Some(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_day_is_kept_to_its_end() {
        let t = end_of_day("2030-05-01").unwrap().unwrap();
        assert_eq!(t.to_string(), "2030-05-01T23:59:59Z");
        assert!(end_of_day("").unwrap().is_none());
        assert_eq!(
            end_of_day("01.05.2030").unwrap_err().code,
            ErrorCode::InvalidDate
        );
        assert_eq!(end_of_day("x").unwrap_err().status(), 400);
    }
}
