//! The create and edit form's page, and its handlers: "+ Add" (also from the backup
//! wizard, which it returns to) and "Edit".

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Render};
use serde::Deserialize;
use tresor_api::policies::Policy;
use tresor_service::Service;

use crate::layout::{csrf_field, error_box, with_status, Field};
use crate::policies::form::{field_of, safe_return, FieldError, PolicyForm};
use crate::policies::pages::policy_subpage;
use crate::policies::summary::{day_name, week_name, MONTHS, WEEKDAYS, WEEKS};
use crate::session::Operator;
use crate::urls::url_encode;
use crate::vaults::vault_of;

/// Offered when the time zone database lists nothing.
const COMMON_ZONES: [&str; 40] = [
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Amsterdam",
    "Europe/Brussels",
    "Europe/Zurich",
    "Europe/Vienna",
    "Europe/Rome",
    "Europe/Madrid",
    "Europe/Stockholm",
    "Europe/Oslo",
    "Europe/Copenhagen",
    "Europe/Warsaw",
    "Europe/Prague",
    "Europe/Helsinki",
    "Europe/Athens",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Johannesburg",
    "Africa/Lagos",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Sydney",
    "Pacific/Auckland",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Toronto",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "Pacific/Honolulu",
];

/// The time zones offered: those the time zone database knows, UTC first.
fn time_zones() -> Vec<String> {
    let mut zones: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_string())
        .filter(|n| {
            n.contains('/')
                && !n.starts_with("posix/")
                && !n.starts_with("right/")
                && n.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        })
        .collect();
    if zones.is_empty() {
        zones = COMMON_ZONES.iter().map(|z| z.to_string()).collect();
    }
    zones.sort();
    zones.dedup();
    zones.retain(|z| z != "UTC");
    zones.insert(0, "UTC".to_string());
    zones
}

/// The form, for a new policy (`editing` = None) or an existing one.
fn form_page(
    op: &Operator,
    vault: &str,
    editing: Option<&Policy>,
    f: &PolicyForm,
    error: Option<&FieldError>,
) -> Response {
    let err_for = |field: &str| -> Option<String> {
        let e = error?;
        (e.field == field).then(|| format!("{} {}", e.error.message, e.error.recommendation))
    };
    let invalid = |field: &str| err_for(field).map(|_| "true");
    let action = match editing {
        Some(p) => format!("/vaults/{vault}/policies/{}/edit", p.policy.name),
        None => format!("/vaults/{vault}/policies/new"),
    };
    let cancel = match (editing, safe_return(&f.ret)) {
        (Some(p), _) => format!("/vaults/{vault}/policies/{}", p.policy.name),
        (None, Some(r)) => r.to_string(),
        (None, None) => format!("/vaults/{vault}/policies"),
    };
    let title = match editing {
        Some(p) => format!("Edit {}", p.policy.name),
        None => "Create policy".to_string(),
    };
    let weekly = f.frequency == "Weekly";
    let mut zones = time_zones();
    if !f.time_zone.is_empty() && !zones.contains(&f.time_zone) {
        zones.insert(0, f.time_zone.clone());
    }
    let times: Vec<String> = (0..48)
        .map(|i| format!("{:02}:{:02}", i / 2, (i % 2) * 30))
        .collect();
    let error_p = |field: &str| {
        html! { p.error id={ (field) "-error" } aria-live="polite" { @if let Some(m) = err_for(field) { (m) } } }
    };
    let checks = |name: &str, values: &[String], chosen: &[String]| {
        html! {
            div.policy-checks {
                @for v in values {
                    label.policy-check for={ (name) "-" (v) } {
                        input type="checkbox" id={ (name) "-" (v) } name=(name) value=(v) checked[chosen.contains(v)];
                        " " (v)
                    }
                }
            }
        }
    };
    let day_names: Vec<String> = WEEKDAYS.iter().map(|d| day_name(*d)).collect();
    let week_names: Vec<String> = WEEKS.iter().map(|w| week_name(*w)).collect();
    let month_days: Vec<String> = (1..=28)
        .map(|d: u8| d.to_string())
        .chain(["Last".to_string()])
        .collect();
    let month_names: Vec<String> = MONTHS.iter().map(|m| m.to_string()).collect();
    let selector_fields = |tier: &str,
                           basis: &str,
                           days: &[String],
                           weeks: &[String],
                           wdays: &[String]| {
        let by_week = basis != "day";
        html! {
            fieldset.policy-basis id={ (tier) "_basis" } aria-describedby={ (tier) "_basis-error" } {
                legend { "Retention on" }
                label.policy-check for={ (tier) "_basis-week" } {
                    input type="radio" id={ (tier) "_basis-week" } name={ (tier) "_basis" } value="week" checked[by_week];
                    " Weekdays of the month (such as the first Sunday)"
                }
                label.policy-check for={ (tier) "_basis-day" } {
                    input type="radio" id={ (tier) "_basis-day" } name={ (tier) "_basis" } value="day" checked[!by_week];
                    " Days of the month (daily schedules only)"
                }
                (error_p(&format!("{tier}_basis")))
            }
            fieldset.policy-by-week id={ (tier) "_weeks" } aria-describedby={ (tier) "_weeks-error" } {
                legend { "Weeks of the month" }
                (checks(&format!("{tier}_weeks"), &week_names, weeks))
                (error_p(&format!("{tier}_weeks")))
            }
            fieldset.policy-by-week id={ (tier) "_weekdays" } aria-describedby={ (tier) "_weekdays-error" } {
                legend { "Weekdays" }
                (checks(&format!("{tier}_weekdays"), &day_names, wdays))
                (error_p(&format!("{tier}_weekdays")))
            }
            fieldset.policy-by-day id={ (tier) "_days" } aria-describedby={ (tier) "_days-hint " (tier) "_days-error" } {
                legend { "Days of the month" }
                (checks(&format!("{tier}_days"), &month_days, days))
                p.hint id={ (tier) "_days-hint" } { "1 to 28, or Last for the last day of every month." }
                (error_p(&format!("{tier}_days")))
            }
        }
    };
    let number_field = |id: &str, label: &str, value: &str, hint: &str| {
        Field::new(id, label, value, hint, err_for(id).as_deref())
            .number(None, None)
            .render()
    };
    let body = html! {
        h1 { (title) }
        p.muted { "Backup policy · vault " (vault) }
        @if let Some(e) = error { (error_box(&e.error)) }
        form.stack.card.policy-form #policy-form method="post" action=(action) novalidate {
            (csrf_field(op))
            @if editing.is_none() {
                input type="hidden" name="return" value=(f.ret);
            }
            @if editing.is_some() {
                div.field {
                    label for="name" { "Policy name" }
                    input #name type="text" value=(f.name) readonly aria-describedby="name-hint name-error";
                    p.hint #name-hint { "A policy cannot be renamed." }
                    (error_p("name"))
                }
            } @else {
                (Field::new("name", "Policy name", &f.name,
                    "3 to 150 characters: a letter first, then letters, digits, hyphens and underscores. Unique in the vault.",
                    err_for("name").as_deref()).required().validate("policy-name").no_autocomplete())
            }
            fieldset.policy-section {
                legend { "Backup schedule" }
                div.policy-grid {
                    fieldset #frequency {
                        legend { "Frequency" }
                        label.policy-check for="frequency-Daily" {
                            input #frequency-Daily type="radio" name="frequency" value="Daily" checked[!weekly];
                            " Daily"
                        }
                        label.policy-check for="frequency-Weekly" {
                            input #frequency-Weekly type="radio" name="frequency" value="Weekly" checked[weekly];
                            " Weekly"
                        }
                    }
                    div.field {
                        label for="time" { "Time" }
                        select #time name="time" aria-describedby="time-error" aria-invalid=[invalid("time")] {
                            @for t in &times { option value=(t) selected[*t == f.time] { (t) } }
                        }
                        (error_p("time"))
                    }
                    div.field {
                        label for="time_zone" { "Time zone" }
                        select #time_zone name="time_zone" aria-describedby="time_zone-hint time_zone-error" aria-invalid=[invalid("time_zone")] {
                            @for z in &zones { option value=(z) selected[*z == f.time_zone] { (z) } }
                        }
                        p.hint #time_zone-hint { "The backup runs at this wall-clock time, also across daylight-saving changes." }
                        (error_p("time_zone"))
                    }
                }
                fieldset.policy-only-weekly #schedule_days aria-describedby="schedule_days-error" {
                    legend { "On these days (weekly schedule)" }
                    (checks("schedule_days", &day_names, &f.schedule_days))
                    (error_p("schedule_days"))
                }
                (number_field("instant_restore_days", "Instant restore (days)", &f.instant_restore_days,
                    "How long snapshots stay for fast restores: 1 to 5 days for a daily schedule, 5 for a weekly one."))
            }
            fieldset.policy-section {
                legend { "Retention range" }
                div.policy-tier.policy-only-daily #daily {
                    h3 { "Daily backup point" }
                    (number_field("daily_days", "Keep for (days)", &f.daily_days, "7 to 9999 days. A daily schedule needs it; a weekly one keeps its points by the weekly rule."))
                }
                div.policy-tier #weekly {
                    label.policy-check.policy-enable for="weekly_enabled" {
                        input #weekly_enabled .policy-toggle type="checkbox" name="weekly_enabled" value="true"
                            checked[f.weekly_enabled] aria-describedby="weekly_enabled-error";
                        " Weekly backup point"
                    }
                    (error_p("weekly_enabled"))
                    div.policy-tier-body {
                        fieldset #weekly_days aria-describedby="weekly_days-hint weekly_days-error" {
                            legend { "On" }
                            (checks("weekly_days", &day_names, &f.weekly_days))
                            p.hint #weekly_days-hint { "For a weekly schedule: the days it backs up on." }
                            (error_p("weekly_days"))
                        }
                        (number_field("weekly_weeks", "Keep for (weeks)", &f.weekly_weeks, "1 to 5163 weeks."))
                    }
                }
                div.policy-tier #monthly {
                    label.policy-check.policy-enable for="monthly_enabled" {
                        input #monthly_enabled .policy-toggle type="checkbox" name="monthly_enabled" value="true" checked[f.monthly_enabled];
                        " Monthly backup point"
                    }
                    div.policy-tier-body {
                        (selector_fields("monthly", &f.monthly_basis, &f.monthly_days, &f.monthly_weeks, &f.monthly_weekdays))
                        (number_field("monthly_months", "Keep for (months)", &f.monthly_months, "1 to 1188 months."))
                    }
                }
                div.policy-tier #yearly {
                    label.policy-check.policy-enable for="yearly_enabled" {
                        input #yearly_enabled .policy-toggle type="checkbox" name="yearly_enabled" value="true" checked[f.yearly_enabled];
                        " Yearly backup point"
                    }
                    div.policy-tier-body {
                        fieldset #yearly_months aria-describedby="yearly_months-error" {
                            legend { "In" }
                            (checks("yearly_months", &month_names, &f.yearly_months))
                            (error_p("yearly_months"))
                        }
                        (selector_fields("yearly", &f.yearly_basis, &f.yearly_days, &f.yearly_weeks, &f.yearly_weekdays))
                        (number_field("yearly_years", "Keep for (years)", &f.yearly_years, "1 to 99 years."))
                    }
                }
            }
            div {
                button.primary #policy-submit type="submit" { @if editing.is_some() { "Save" } @else { "Create" } }
                " " a.button href=(cancel) { "Cancel" }
            }
        }
    };
    with_status(
        policy_subpage(op, vault, &title, body),
        error.map(|e| &e.error),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct NewQuery {
    #[serde(default, rename = "return")]
    ret: Option<String>,
}

pub(super) async fn new_form(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(vault): Path<String>,
    Query(q): Query<NewQuery>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    let mut f = PolicyForm::new_policy();
    f.ret = q
        .ret
        .as_deref()
        .and_then(safe_return)
        .unwrap_or_default()
        .to_string();
    form_page(&op, &v.name, None, &f, None)
}

pub(super) async fn create(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(vault): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let f = PolicyForm::from_pairs(pairs);
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let policy = match f.to_policy(&f.name) {
        Ok(p) => p,
        Err(e) => return form_page(&op, &vault, None, &f, Some(&e)),
    };
    match state
        .create_policy(&op.principal, vault.clone(), policy)
        .await
    {
        Ok(p) => {
            let done = format!("Backup policy {} created.", p.policy.name);
            let to = match safe_return(&f.ret) {
                Some(r) => format!(
                    "{r}{}policy={}&done={}",
                    if r.contains('?') { '&' } else { '?' },
                    url_encode(p.policy.name.as_str()),
                    url_encode(&done)
                ),
                None => format!(
                    "/vaults/{vault}/policies/{}?done={}",
                    p.policy.name,
                    url_encode(&done)
                ),
            };
            Redirect::to(&to).into_response()
        }
        Err(e) => {
            let field = field_of(&e, &f.name);
            form_page(&op, &vault, None, &f, Some(&FieldError::new(field, e)))
        }
    }
}

pub(super) async fn edit_form(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, name)): Path<(String, String)>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    let p = or_page!(&op, state.policy(&op.principal, v.name.clone(), name).await);
    form_page(
        &op,
        &v.name,
        Some(&p),
        &PolicyForm::from_policy(&p.policy),
        None,
    )
}

pub(super) async fn update(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, name)): Path<(String, String)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let mut f = PolicyForm::from_pairs(pairs);
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let existing = or_page!(
        &op,
        state
            .policy(&op.principal, vault.clone(), name.clone())
            .await
    );
    f.name = existing.policy.name.to_string();
    let policy = match f.to_policy(&f.name) {
        Ok(p) => p,
        Err(e) => return form_page(&op, &vault, Some(&existing), &f, Some(&e)),
    };
    match state
        .update_policy(&op.principal, vault.clone(), name, policy)
        .await
    {
        Ok(p) => {
            let done = if p.protected_items > 0 {
                format!(
                    "Backup policy {} saved. It applies to its {} protected items.",
                    p.policy.name, p.protected_items
                )
            } else {
                format!("Backup policy {} saved.", p.policy.name)
            };
            Redirect::to(&format!(
                "/vaults/{vault}/policies/{}?done={}",
                p.policy.name,
                url_encode(&done)
            ))
            .into_response()
        }
        Err(e) => {
            let field = field_of(&e, &f.name);
            form_page(
                &op,
                &vault,
                Some(&existing),
                &f,
                Some(&FieldError::new(field, e)),
            )
        }
    }
}
