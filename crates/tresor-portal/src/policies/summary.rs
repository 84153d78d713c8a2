//! A backup policy in words: the names of weekdays, weeks and months as the forms
//! and pages show them, the schedule and retention summaries, and the compact view
//! of a policy the backup wizard and the policy pages share.

use jiff::civil::Weekday;
use maud::{html, Markup};
use tresor_domain::{BackupPolicy, DaySelector, Frequency, MonthDay, WeekOfMonth};

pub const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];
pub const WEEKS: [WeekOfMonth; 5] = [
    WeekOfMonth::First,
    WeekOfMonth::Second,
    WeekOfMonth::Third,
    WeekOfMonth::Fourth,
    WeekOfMonth::Last,
];
/// Month names as the policy's JSON spells them.
pub use tresor_domain::MONTH_NAMES as MONTHS;

pub fn day_name(d: Weekday) -> String {
    format!("{d:?}")
}

pub fn week_name(w: WeekOfMonth) -> String {
    format!("{w:?}")
}

pub fn month_name(m: i8) -> &'static str {
    usize::try_from(m - 1)
        .ok()
        .and_then(|i| MONTHS.get(i))
        .copied()
        .unwrap_or("?")
}

pub fn month_day_name(d: &MonthDay) -> String {
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

pub fn plural(n: u32, unit: &str) -> String {
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
