//! Backup policies of a vault: the list, a policy's details, "+ Add" and edit forms,
//! and deleting one.
//!
//! The forms build the domain's [`BackupPolicy`] (the JSON the API's create and
//! update accept) and call those API handlers, so a policy obeys exactly the API's
//! rules: a broken rule comes back as the API's error, shown on top of the form and
//! next to the field it names. The form only shapes the request: the schedule's
//! weekdays count for a weekly schedule, the daily retention for a daily one, and a
//! tier that is not ticked is left out.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use jiff::civil::{Time, Weekday};
use maud::{html, Markup, Render};
use serde::Deserialize;
use tresor_domain::{
    BackupPolicy, DailyRetention, DaySelector, Frequency, MonthDay, MonthlyRetention, PolicyName,
    Retention, Schedule, WeekOfMonth, WeeklyRetention, YearlyRetention,
};

use super::layout::{
    csrf_field, empty, error_box, notice, time, url_encode, vault_page, vault_tabs, with_status,
    Done, Field,
};
use super::session::Operator;
use super::vaults::{error_page, vault_of};
use crate::api;
use crate::auth::Admin;
use crate::dto::PolicyDto;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
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

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];
const WEEKS: [WeekOfMonth; 5] = [
    WeekOfMonth::First,
    WeekOfMonth::Second,
    WeekOfMonth::Third,
    WeekOfMonth::Fourth,
    WeekOfMonth::Last,
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
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

fn day_name(d: Weekday) -> String {
    format!("{d:?}")
}

fn week_name(w: WeekOfMonth) -> String {
    format!("{w:?}")
}

fn month_name(m: i8) -> &'static str {
    usize::try_from(m - 1)
        .ok()
        .and_then(|i| MONTHS.get(i))
        .copied()
        .unwrap_or("?")
}

fn month_day_name(d: &MonthDay) -> String {
    match d {
        MonthDay::Day(n) => n.to_string(),
        MonthDay::Last => "Last".to_string(),
    }
}

/// `Daily at 22:00 (UTC)`, `Weekly on Saturday at 01:30 (America/New_York)`.
pub fn schedule_summary(p: &BackupPolicy) -> String {
    let at = format!(
        "at {} ({})",
        p.schedule.time.strftime("%H:%M"),
        p.schedule.time_zone
    );
    match &p.schedule.frequency {
        Frequency::Daily => format!("Daily {at}"),
        Frequency::Weekly { days } => format!(
            "Weekly on {} {at}",
            days.iter()
                .map(|d| day_name(*d))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `day 1, 15 and the last day`, `First Sunday`.
fn selector_text(s: &DaySelector) -> String {
    match s {
        DaySelector::DaysOfMonth(days) => {
            let names: Vec<String> = days
                .iter()
                .map(|d| match d {
                    MonthDay::Day(n) => format!("day {n}"),
                    MonthDay::Last => "the last day".to_string(),
                })
                .collect();
            names.join(", ")
        }
        DaySelector::WeekdaysOfWeeks { weeks, days } => format!(
            "{} {}",
            weeks
                .iter()
                .map(|w| week_name(*w))
                .collect::<Vec<_>>()
                .join(", "),
            days.iter()
                .map(|d| day_name(*d))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn plural(n: u32, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// The retention tiers: (tier, which points, kept for).
pub fn retention_tiers(p: &BackupPolicy) -> Vec<(&'static str, String, String)> {
    let r = &p.retention;
    let mut out = Vec::new();
    if let Some(d) = &r.daily {
        out.push((
            "Daily",
            "Every daily point".to_string(),
            plural(d.days, "day"),
        ));
    }
    if let Some(w) = &r.weekly {
        out.push((
            "Weekly",
            w.days_of_week
                .iter()
                .map(|d| day_name(*d))
                .collect::<Vec<_>>()
                .join(", "),
            plural(w.weeks, "week"),
        ));
    }
    if let Some(m) = &r.monthly {
        out.push((
            "Monthly",
            selector_text(&m.selector),
            plural(m.months, "month"),
        ));
    }
    if let Some(y) = &r.yearly {
        let months: Vec<&str> = y.months_of_year.iter().map(|m| month_name(*m)).collect();
        out.push((
            "Yearly",
            format!("{} of {}", selector_text(&y.selector), months.join(", ")),
            plural(y.years, "year"),
        ));
    }
    out
}

/// `30 days · 12 weeks · 60 months · 10 years`.
pub fn retention_summary(p: &BackupPolicy) -> String {
    retention_tiers(p)
        .into_iter()
        .map(|(tier, _, kept)| format!("{tier} {kept}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A policy's schedule and retention, compact (for the backup wizard and details).
pub fn policy_props(p: &BackupPolicy) -> Markup {
    html! {
        dl.props.policy-props {
            dt { "Schedule" } dd { (schedule_summary(p)) }
            dt { "Instant restore" } dd { (plural(p.instant_restore_days, "day")) }
            @for (tier, which, kept) in retention_tiers(p) {
                dt { (tier) " retention" } dd { (which) ": " strong { (kept) } }
            }
        }
    }
}

/// A page under the vault's policy list (its details, create, edit): the trail
/// ends in "Backup policies".
fn policy_subpage(op: &Operator, vault: &str, title: &str, body: Markup) -> Response {
    let list = format!("/vaults/{vault}/policies");
    vault_page(title, op, vault, &[("Backup policies", &list)], body)
}

async fn list(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path(vault): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    let policies = match api::policies::list(Admin, State(state.clone()), Path(vault.clone())).await
    {
        Ok(Json(p)) => p,
        Err(e) => return error_page(&op, &e),
    };
    let body = html! {
        h1 { (v.name) }
        @if let Some(d) = &q.done { (notice(d)) }
        (vault_tabs(&v.name, "Backup policies"))
        div.toolbar {
            span.grow.muted { (policies.len()) @if policies.len() == 1 { " backup policy" } @else { " backup policies" } }
            a.button.primary #add-policy href={ "/vaults/" (v.name) "/policies/new" } { "+ Add" }
        }
        @if policies.is_empty() {
            (empty("No backup policy yet. A policy says when VMs are backed up and how long their points are kept.",
                Some(("+ Add a policy", &format!("/vaults/{}/policies/new", v.name)))))
        } @else {
            table #policies {
                caption.sr-only { "Backup policies of " (v.name) }
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Schedule" }
                    th scope="col" { "Retention" }
                    th scope="col" { "Instant restore" }
                    th scope="col" { "Protected items" }
                } }
                tbody {
                    @for p in &policies {
                        tr data-policy=(p.policy.name) {
                            td { a href={ "/vaults/" (v.name) "/policies/" (p.policy.name) } { (p.policy.name) } }
                            td { (schedule_summary(&p.policy)) }
                            td { (retention_summary(&p.policy)) }
                            td { (plural(p.policy.instant_restore_days, "day")) }
                            td { (p.protected_items) }
                        }
                    }
                }
            }
        }
    };
    vault_page("Backup policies", &op, &v.name, &[], body)
}

async fn policy_of(state: &Arc<AppState>, vault: &str, name: &str) -> Result<PolicyDto, ApiError> {
    api::policies::show(
        Admin,
        State(state.clone()),
        Path((vault.to_string(), name.to_string())),
    )
    .await
    .map(|j| j.0)
}

fn details_page(
    op: &Operator,
    state: &AppState,
    vault: &str,
    p: &PolicyDto,
    error: Option<&ApiError>,
    done: Option<&str>,
) -> Response {
    let pol = &p.policy;
    let next = pol
        .schedule
        .validate()
        .is_ok()
        .then(|| pol.schedule.next_after(state.now()).ok())
        .flatten();
    let base = format!("/vaults/{vault}/policies/{}", pol.name);
    let body = html! {
        h1 { (pol.name) }
        p.muted { "Backup policy · vault " (vault) }
        (vault_tabs(vault, "Backup policies"))
        @if let Some(e) = error { (error_box(e)) }
        @if let Some(d) = done { (notice(d)) }
        div.toolbar {
            span.grow {}
            a.button #edit-policy href={ (base) "/edit" } { "Edit" }
            form #delete-policy-form method="post" action={ (base) "/delete" }
                data-confirm={ "Delete backup policy " (pol.name) "? This cannot be undone." } {
                (csrf_field(op))
                button.danger type="submit" { "Delete policy" }
            }
        }
        div.cards {
            section.card.policy-card aria-labelledby="schedule-h" {
                h2 #schedule-h { "Backup schedule" }
                dl.props #policy-schedule {
                    dt { "Frequency" }
                    dd { @match &pol.schedule.frequency {
                        Frequency::Daily => "Daily",
                        Frequency::Weekly { days } => { "Weekly on " (days.iter().map(|d| day_name(*d)).collect::<Vec<_>>().join(", ")) }
                    } }
                    dt { "Time" } dd { (pol.schedule.time.strftime("%H:%M")) }
                    dt { "Time zone" } dd { (pol.schedule.time_zone) }
                    dt { "Next backup" } dd { (time(next)) }
                    dt { "Instant restore" } dd { "Snapshots kept " (plural(pol.instant_restore_days, "day")) }
                }
            }
            section.card.policy-card aria-labelledby="usage-h" {
                h2 #usage-h { "Protected items" }
                p.stat #policy-items { (p.protected_items) }
                p.muted { "VMs protected with this policy. A change applies to all of them, also to the expiry of their existing scheduled points." }
                a href={ "/vaults/" (vault) "/items" } { "Backup items" }
            }
        }
        section.card.policy-card aria-labelledby="retention-h" {
            h2 #retention-h { "Retention range" }
            table #policy-retention {
                caption.sr-only { "Retention tiers" }
                thead { tr { th scope="col" { "Tier" } th scope="col" { "Which points" } th scope="col" { "Kept for" } } }
                tbody {
                    @for (tier, which, kept) in retention_tiers(pol) {
                        tr data-tier=(tier) { td { (tier) } td { (which) } td { (kept) } }
                    }
                }
            }
        }
    };
    with_status(policy_subpage(op, vault, pol.name.as_str(), body), error)
}

async fn details(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path((vault, name)): Path<(String, String)>,
    Query(q): Query<Done>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    match policy_of(&state, &v.name, &name).await {
        Ok(p) => details_page(&op, &state, &v.name, &p, None, q.done.as_deref()),
        Err(e) => error_page(&op, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

async fn delete(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path((vault, name)): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    match api::policies::delete(
        Admin,
        State(state.clone()),
        Path((vault.clone(), name.clone())),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!(
            "/vaults/{vault}/policies?done={}",
            url_encode(&format!("Backup policy {name} deleted."))
        ))
        .into_response(),
        Err(e) => match policy_of(&state, &vault, &name).await {
            Ok(p) => details_page(&op, &state, &vault, &p, Some(&e), None),
            Err(_) => error_page(&op, &e),
        },
    }
}

// ---------------------------------------------------------------------------
// The create and edit form
// ---------------------------------------------------------------------------

/// What the form holds, as typed (shown again on an error).
#[derive(Debug, Clone, Default)]
struct PolicyForm {
    csrf: String,
    /// Where to go after creating (a local path), e.g. back into the backup wizard.
    ret: String,
    name: String,
    frequency: String,
    schedule_days: Vec<String>,
    time: String,
    time_zone: String,
    instant_restore_days: String,
    daily_days: String,
    weekly_enabled: bool,
    weekly_weeks: String,
    weekly_days: Vec<String>,
    monthly_enabled: bool,
    monthly_months: String,
    monthly_basis: String,
    monthly_days: Vec<String>,
    monthly_weeks: Vec<String>,
    monthly_weekdays: Vec<String>,
    yearly_enabled: bool,
    yearly_years: String,
    yearly_months: Vec<String>,
    yearly_basis: String,
    yearly_days: Vec<String>,
    yearly_weeks: Vec<String>,
    yearly_weekdays: Vec<String>,
}

fn selector_fields(s: &DaySelector) -> (String, Vec<String>, Vec<String>, Vec<String>) {
    match s {
        DaySelector::DaysOfMonth(days) => (
            "day".into(),
            days.iter().map(month_day_name).collect(),
            vec!["First".into()],
            vec!["Sunday".into()],
        ),
        DaySelector::WeekdaysOfWeeks { weeks, days } => (
            "week".into(),
            vec!["1".into()],
            weeks.iter().map(|w| week_name(*w)).collect(),
            days.iter().map(|d| day_name(*d)).collect(),
        ),
    }
}

impl PolicyForm {
    /// A new policy's starting values: Tresor's DefaultPolicy, with the other tiers
    /// prepared but not ticked.
    fn new_policy() -> PolicyForm {
        let mut f = PolicyForm::from_policy(&BackupPolicy::default_policy());
        f.name.clear();
        f
    }

    fn from_policy(p: &BackupPolicy) -> PolicyForm {
        let r = &p.retention;
        let mut f = PolicyForm {
            name: p.name.to_string(),
            time: p.schedule.time.strftime("%H:%M").to_string(),
            time_zone: p.schedule.time_zone.clone(),
            instant_restore_days: p.instant_restore_days.to_string(),
            daily_days: "30".into(),
            weekly_weeks: "12".into(),
            weekly_days: vec!["Sunday".into()],
            monthly_months: "60".into(),
            monthly_basis: "week".into(),
            monthly_days: vec!["1".into()],
            monthly_weeks: vec!["First".into()],
            monthly_weekdays: vec!["Sunday".into()],
            yearly_years: "10".into(),
            yearly_months: vec!["January".into()],
            yearly_basis: "week".into(),
            yearly_days: vec!["1".into()],
            yearly_weeks: vec!["First".into()],
            yearly_weekdays: vec!["Sunday".into()],
            ..PolicyForm::default()
        };
        match &p.schedule.frequency {
            Frequency::Daily => {
                f.frequency = "Daily".into();
                f.schedule_days = vec!["Sunday".into()];
            }
            Frequency::Weekly { days } => {
                f.frequency = "Weekly".into();
                f.schedule_days = days.iter().map(|d| day_name(*d)).collect();
            }
        }
        if let Some(d) = &r.daily {
            f.daily_days = d.days.to_string();
        }
        if let Some(w) = &r.weekly {
            f.weekly_enabled = true;
            f.weekly_weeks = w.weeks.to_string();
            f.weekly_days = w.days_of_week.iter().map(|d| day_name(*d)).collect();
        }
        if let Some(m) = &r.monthly {
            f.monthly_enabled = true;
            f.monthly_months = m.months.to_string();
            (
                f.monthly_basis,
                f.monthly_days,
                f.monthly_weeks,
                f.monthly_weekdays,
            ) = selector_fields(&m.selector);
        }
        if let Some(y) = &r.yearly {
            f.yearly_enabled = true;
            f.yearly_years = y.years.to_string();
            f.yearly_months = y
                .months_of_year
                .iter()
                .map(|m| month_name(*m).to_string())
                .collect();
            (
                f.yearly_basis,
                f.yearly_days,
                f.yearly_weeks,
                f.yearly_weekdays,
            ) = selector_fields(&y.selector);
        }
        f
    }

    /// The form's fields; repeated names (check boxes) collect into lists.
    fn from_pairs(pairs: Vec<(String, String)>) -> PolicyForm {
        let mut f = PolicyForm::default();
        for (k, v) in pairs {
            match k.as_str() {
                "csrf" => f.csrf = v,
                "return" => f.ret = v,
                "name" => f.name = v,
                "frequency" => f.frequency = v,
                "schedule_days" => f.schedule_days.push(v),
                "time" => f.time = v,
                "time_zone" => f.time_zone = v,
                "instant_restore_days" => f.instant_restore_days = v,
                "daily_days" => f.daily_days = v,
                "weekly_enabled" => f.weekly_enabled = true,
                "weekly_weeks" => f.weekly_weeks = v,
                "weekly_days" => f.weekly_days.push(v),
                "monthly_enabled" => f.monthly_enabled = true,
                "monthly_months" => f.monthly_months = v,
                "monthly_basis" => f.monthly_basis = v,
                "monthly_days" => f.monthly_days.push(v),
                "monthly_weeks" => f.monthly_weeks.push(v),
                "monthly_weekdays" => f.monthly_weekdays.push(v),
                "yearly_enabled" => f.yearly_enabled = true,
                "yearly_years" => f.yearly_years = v,
                "yearly_months" => f.yearly_months.push(v),
                "yearly_basis" => f.yearly_basis = v,
                "yearly_days" => f.yearly_days.push(v),
                "yearly_weeks" => f.yearly_weeks.push(v),
                "yearly_weekdays" => f.yearly_weekdays.push(v),
                _ => {}
            }
        }
        f
    }

    /// The policy the form describes, as the API takes it. Errors here are the
    /// form's own (a value that is not a number, a weekday the form does not know);
    /// every rule of a policy is the API's.
    fn to_policy(&self, name: &str) -> Result<BackupPolicy, FieldError> {
        let name = PolicyName::parse(name.trim()).map_err(|e| FieldError::new("name", e.into()))?;
        let time: Time = self.time.trim().parse().map_err(|_| {
            FieldError::new(
                "time",
                ApiError::bad_request(
                    "InvalidScheduleTime",
                    format!("The schedule time {:?} is not a time.", self.time),
                    "Choose a time from the list, such as 22:00.",
                ),
            )
        })?;
        let frequency = if self.frequency == "Weekly" {
            Frequency::Weekly {
                days: weekdays(&self.schedule_days, "schedule_days")?,
            }
        } else {
            Frequency::Daily
        };
        let daily = matches!(frequency, Frequency::Daily);
        let retention = Retention {
            daily: if daily {
                Some(DailyRetention {
                    days: number(&self.daily_days, "daily_days", "Daily retention")?,
                })
            } else {
                None
            },
            weekly: if self.weekly_enabled {
                Some(WeeklyRetention {
                    days_of_week: weekdays(&self.weekly_days, "weekly_days")?,
                    weeks: number(&self.weekly_weeks, "weekly_weeks", "Weekly retention")?,
                })
            } else {
                None
            },
            monthly: if self.monthly_enabled {
                Some(MonthlyRetention {
                    selector: selector(
                        "monthly",
                        &self.monthly_basis,
                        &self.monthly_days,
                        &self.monthly_weeks,
                        &self.monthly_weekdays,
                    )?,
                    months: number(&self.monthly_months, "monthly_months", "Monthly retention")?,
                })
            } else {
                None
            },
            yearly: if self.yearly_enabled {
                Some(YearlyRetention {
                    months_of_year: self
                        .yearly_months
                        .iter()
                        .map(|m| {
                            MONTHS
                                .iter()
                                .position(|n| n == m)
                                .map(|i| i as i8 + 1)
                                .ok_or_else(|| unknown("yearly_months", m))
                        })
                        .collect::<Result<_, _>>()?,
                    selector: selector(
                        "yearly",
                        &self.yearly_basis,
                        &self.yearly_days,
                        &self.yearly_weeks,
                        &self.yearly_weekdays,
                    )?,
                    years: number(&self.yearly_years, "yearly_years", "Yearly retention")?,
                })
            } else {
                None
            },
        };
        Ok(BackupPolicy {
            name,
            schedule: Schedule {
                frequency,
                time,
                time_zone: self.time_zone.trim().to_string(),
            },
            retention,
            instant_restore_days: number(
                &self.instant_restore_days,
                "instant_restore_days",
                "Instant restore",
            )?,
        })
    }
}

/// An error and the form field it concerns.
struct FieldError {
    field: &'static str,
    error: ApiError,
}

impl FieldError {
    fn new(field: &'static str, error: ApiError) -> FieldError {
        FieldError { field, error }
    }
}

fn unknown(field: &'static str, value: &str) -> FieldError {
    FieldError::new(
        field,
        ApiError::bad_request(
            "InvalidFormValue",
            format!("{value:?} is not one of the choices."),
            "Pick from the choices shown.",
        ),
    )
}

fn number(value: &str, field: &'static str, label: &str) -> Result<u32, FieldError> {
    value.trim().parse().map_err(|_| {
        FieldError::new(
            field,
            ApiError::bad_request(
                "InvalidNumber",
                format!("{label}: {:?} is not a whole number.", value.trim()),
                "Type a whole number, such as 30.",
            ),
        )
    })
}

fn weekdays(values: &[String], field: &'static str) -> Result<Vec<Weekday>, FieldError> {
    values
        .iter()
        .map(|v| {
            WEEKDAYS
                .into_iter()
                .find(|d| day_name(*d) == *v)
                .ok_or_else(|| unknown(field, v))
        })
        .collect()
}

fn selector(
    tier: &'static str,
    basis: &str,
    days: &[String],
    weeks: &[String],
    weekdays_: &[String],
) -> Result<DaySelector, FieldError> {
    let (days_f, weeks_f, weekdays_f) = if tier == "monthly" {
        ("monthly_days", "monthly_weeks", "monthly_weekdays")
    } else {
        ("yearly_days", "yearly_weeks", "yearly_weekdays")
    };
    if basis == "day" {
        let days = days
            .iter()
            .map(|d| {
                if d == "Last" {
                    Ok(MonthDay::Last)
                } else {
                    d.parse().map(MonthDay::Day).map_err(|_| unknown(days_f, d))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(DaySelector::DaysOfMonth(days))
    } else {
        let weeks = weeks
            .iter()
            .map(|w| {
                WEEKS
                    .into_iter()
                    .find(|x| week_name(*x) == *w)
                    .ok_or_else(|| unknown(weeks_f, w))
            })
            .collect::<Result<_, _>>()?;
        Ok(DaySelector::WeekdaysOfWeeks {
            weeks,
            days: weekdays(weekdays_, weekdays_f)?,
        })
    }
}

/// The form field an API error names, from its code (and, for codes several
/// fields share, the rule its message names).
fn field_of(e: &ApiError, policy: &str) -> &'static str {
    // The policy's own name could read like a rule ("Monthly-Keep"): leave it out.
    let m = e.message.replace(policy, "").to_ascii_lowercase();
    let tier =
        |daily: &'static str, weekly: &'static str, monthly: &'static str, yearly: &'static str| {
            if m.contains("monthly") {
                monthly
            } else if m.contains("yearly") {
                yearly
            } else if m.contains("weekly") {
                weekly
            } else {
                daily
            }
        };
    match e.code.as_str() {
        "InvalidPolicyName" | "PolicyAlreadyExists" | "PolicyNameMismatch" => "name",
        "InvalidScheduleTime" => "time",
        "InvalidTimeZone" => "time_zone",
        "InstantRestoreOutOfRange" => "instant_restore_days",
        "RetentionOutOfRange" => tier(
            "daily_days",
            "weekly_weeks",
            "monthly_months",
            "yearly_years",
        ),
        "EmptySelection" | "DuplicateSelection" => {
            if m.contains("scheduled days") {
                "schedule_days"
            } else if m.contains("yearly retention months") {
                "yearly_months"
            } else if m.contains("weeks of the month") {
                tier("", "", "monthly_weeks", "yearly_weeks")
            } else if m.contains("weekdays") {
                tier("", "", "monthly_weekdays", "yearly_weekdays")
            } else if m.contains("days of the month") {
                tier("", "", "monthly_days", "yearly_days")
            } else {
                tier("", "weekly_days", "", "")
            }
        }
        "InvalidDayOfMonth" => tier("", "", "monthly_days", "yearly_days"),
        "InvalidMonth" => "yearly_months",
        "DailyRetentionRequired" | "DailyRetentionNotAllowed" => "daily_days",
        "WeeklyRetentionRequired" => "weekly_enabled",
        "WeeklyRetentionDayNotScheduled" | "ScheduledDayNotRetained" => "weekly_days",
        "DaysOfMonthNeedDailySchedule" => tier("", "", "monthly_basis", "yearly_basis"),
        "SelectorDayNotScheduled" => tier("", "", "monthly_weekdays", "yearly_weekdays"),
        _ => "",
    }
}

/// Only paths of this portal are followed after saving (never `//other.site`).
fn safe_return(r: &str) -> Option<&str> {
    (r.starts_with('/') && !r.starts_with("//") && !r.contains('\\') && !r.contains(':'))
        .then_some(r)
}

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
    editing: Option<&PolicyDto>,
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

async fn new_form(
    op: Operator,
    State(state): State<Arc<AppState>>,
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

async fn create(
    op: Operator,
    State(state): State<Arc<AppState>>,
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
    match api::policies::create(
        Admin,
        State(state.clone()),
        Path(vault.clone()),
        Json(policy),
    )
    .await
    {
        Ok((_, Json(p))) => {
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

async fn edit_form(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path((vault, name)): Path<(String, String)>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    match policy_of(&state, &v.name, &name).await {
        Ok(p) => form_page(
            &op,
            &v.name,
            Some(&p),
            &PolicyForm::from_policy(&p.policy),
            None,
        ),
        Err(e) => error_page(&op, &e),
    }
}

async fn update(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Path((vault, name)): Path<(String, String)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let mut f = PolicyForm::from_pairs(pairs);
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let existing = match policy_of(&state, &vault, &name).await {
        Ok(p) => p,
        Err(e) => return error_page(&op, &e),
    };
    f.name = existing.policy.name.to_string();
    let policy = match f.to_policy(&f.name) {
        Ok(p) => p,
        Err(e) => return form_page(&op, &vault, Some(&existing), &f, Some(&e)),
    };
    match api::policies::update(
        Admin,
        State(state.clone()),
        Path((vault.clone(), name.clone())),
        Json(policy),
    )
    .await
    {
        Ok(Json(p)) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_round_trips_a_policy() {
        let json = r#"{
          "name": "DailyGFS",
          "schedule": { "frequency": "Daily", "time": "22:30:00", "timeZone": "Europe/Berlin" },
          "retention": {
            "daily": { "days": 30 },
            "weekly": { "daysOfWeek": ["Sunday"], "weeks": 12 },
            "monthly": { "selector": { "WeekdaysOfWeeks": { "weeks": ["First"], "days": ["Sunday"] } }, "months": 60 },
            "yearly": { "monthsOfYear": ["January"], "selector": { "DaysOfMonth": [1, "Last"] }, "years": 10 }
          },
          "instantRestoreDays": 2
        }"#;
        let p: BackupPolicy = serde_json::from_str(json).unwrap();
        let f = PolicyForm::from_policy(&p);
        assert_eq!(f.to_policy(&f.name).ok(), Some(p.clone()));
        let mut weekly = f.clone();
        weekly.frequency = "Weekly".into();
        weekly.schedule_days = vec!["Saturday".into()];
        let w = weekly.to_policy("Weekly-Sat").ok().unwrap();
        assert!(w.retention.daily.is_none());
        assert_eq!(w.schedule.days(), Some(&[Weekday::Saturday][..]));
        let mut bad = f.clone();
        bad.daily_days = "many".into();
        assert_eq!(bad.to_policy("X-1").err().unwrap().field, "daily_days");
        assert_eq!(
            PolicyForm::new_policy()
                .to_policy("Fresh")
                .ok()
                .map(|p| p.retention),
            Some(BackupPolicy::default_policy().retention)
        );
    }

    #[test]
    fn errors_land_next_to_their_field() {
        let mut p = BackupPolicy::default_policy();
        p.retention.daily = Some(DailyRetention { days: 3 });
        let e: ApiError = p.validate().unwrap_err().into();
        assert_eq!(field_of(&e, "Abc"), "daily_days");
        let mut f = PolicyForm::from_policy(&BackupPolicy::default_policy());
        f.monthly_enabled = true;
        f.monthly_basis = "day".into();
        f.monthly_days = vec![];
        let e: ApiError = f
            .to_policy("Abc")
            .ok()
            .unwrap()
            .validate()
            .unwrap_err()
            .into();
        assert_eq!(field_of(&e, "Abc"), "monthly_days");
        f.monthly_enabled = false;
        f.frequency = "Weekly".into();
        f.schedule_days = vec!["Monday".into()];
        let e: ApiError = f
            .to_policy("Abc")
            .ok()
            .unwrap()
            .validate()
            .unwrap_err()
            .into();
        assert_eq!(field_of(&e, "Abc"), "weekly_enabled");
    }

    #[test]
    fn only_local_returns() {
        assert_eq!(
            safe_return("/vaults/v/backup?step=vms"),
            Some("/vaults/v/backup?step=vms")
        );
        assert_eq!(safe_return("//evil"), None);
        assert_eq!(safe_return("https://evil"), None);
    }
}
