//! Backup policies: when to back up a VM and how long to keep each point.
//!
//! The model is Azure's standard policy for VMs: at most one backup a day,
//! at a wall-clock time in a named time zone, and grandfather-father-son
//! retention with daily, weekly, monthly and yearly rules. The limits are
//! Azure's documented ones:
//!
//! | what | rule | code when broken |
//! | --- | --- | --- |
//! | schedule time | on the hour or half hour (`hh:00` or `hh:30`, no seconds) | `InvalidScheduleTime` |
//! | time zone | an IANA name the time zone database knows (`Europe/Berlin`, `UTC`) | `InvalidTimeZone` |
//! | daily retention | 7–9999 days | `RetentionOutOfRange` |
//! | weekly retention | 1–5163 weeks | `RetentionOutOfRange` |
//! | monthly retention | 1–1188 months | `RetentionOutOfRange` |
//! | yearly retention | 1–99 years | `RetentionOutOfRange` |
//! | days of month | 1–28, or `Last` | `InvalidDayOfMonth` |
//! | months of year | 1–12 | `InvalidMonth` |
//! | every set of days, weeks or months | not empty, no value twice | `EmptySelection`, `DuplicateSelection` |
//! | a daily schedule | needs daily retention | `DailyRetentionRequired` |
//! | a weekly schedule | needs weekly retention | `WeeklyRetentionRequired` |
//! | a weekly schedule | has no daily retention | `DailyRetentionNotAllowed` |
//! | a weekly schedule | weekly retention keeps exactly the scheduled days | `WeeklyRetentionDayNotScheduled`, `ScheduledDayNotRetained` |
//! | a weekly schedule | monthly and yearly rules pick weekdays, not days of month | `DaysOfMonthNeedDailySchedule` |
//! | weekday-based monthly and yearly rules | name only scheduled days | `SelectorDayNotScheduled` |
//! | instant restore | 1–5 days for a daily schedule, 5 for a weekly one | `InstantRestoreOutOfRange` |
//!
//! A weekly schedule's weekly retention must keep every scheduled day (as in
//! Azure, where the weekly rule of a weekly policy runs on the scheduled
//! days): otherwise some scheduled points would match no rule at all.
//!
//! When backups run is in [`crate::schedule`]; how long points are kept is
//! in [`crate::retention`].
//!
//! The types themselves are defined apart from these rules and re-exported
//! here, so that the schedule and retention computations can read them
//! without depending on validation.

use std::fmt::Debug;
use std::ops::RangeInclusive;

use jiff::civil::Time;

use crate::error::{codes, RuleError};
use crate::names::PolicyName;
pub use crate::policy_types::{
    BackupPolicy, DailyRetention, DaySelector, Frequency, MonthDay, MonthlyRetention, Retention,
    Schedule, WeekOfMonth, WeeklyRetention, YearlyRetention, DEFAULT_INSTANT_RESTORE_DAYS,
    MONTH_NAMES,
};

/// Daily retention limits, in days.
pub const DAILY_RETENTION_DAYS: RangeInclusive<u32> = 7..=9999;
/// Weekly retention limits, in weeks.
pub const WEEKLY_RETENTION_WEEKS: RangeInclusive<u32> = 1..=5163;
/// Monthly retention limits, in months.
pub const MONTHLY_RETENTION_MONTHS: RangeInclusive<u32> = 1..=1188;
/// Yearly retention limits, in years.
pub const YEARLY_RETENTION_YEARS: RangeInclusive<u32> = 1..=99;
/// Instant restore limits for a daily schedule, in days; a weekly schedule
/// keeps snapshots exactly [`WEEKLY_INSTANT_RESTORE_DAYS`].
pub const DAILY_INSTANT_RESTORE_DAYS: RangeInclusive<u32> = 1..=5;
pub const WEEKLY_INSTANT_RESTORE_DAYS: u32 = 5;

impl Schedule {
    /// Checks the time, the time zone and the scheduled days.
    pub fn validate(&self) -> Result<(), RuleError> {
        let t = self.time;
        if !matches!(t.minute(), 0 | 30) || t.second() != 0 || t.subsec_nanosecond() != 0 {
            return Err(RuleError::new(
                codes::INVALID_SCHEDULE_TIME,
                format!("The schedule time {t} is not on the hour or half hour."),
                "Choose a time such as 22:00 or 22:30.",
            ));
        }
        self.tz()?;
        if let Some(days) = self.days() {
            check_set("scheduled days", days)?;
        }
        Ok(())
    }
}

impl BackupPolicy {
    /// Tresor's `DefaultPolicy`, like Azure's: a daily backup kept 30 days,
    /// with 2 days of instant restore. It runs at 22:00 UTC, after the
    /// working day in Europe and before it ends in the Americas.
    pub fn default_policy() -> Self {
        BackupPolicy {
            name: PolicyName::parse("DefaultPolicy").expect("a valid name"),
            schedule: Schedule::daily(Time::constant(22, 0, 0, 0), "UTC"),
            retention: Retention {
                daily: Some(DailyRetention { days: 30 }),
                ..Retention::default()
            },
            instant_restore_days: DEFAULT_INSTANT_RESTORE_DAYS,
        }
    }

    /// Checks every rule in the [module docs](self); the first broken one
    /// is returned.
    pub fn validate(&self) -> Result<(), RuleError> {
        self.schedule.validate()?;
        self.validate_retention()?;
        self.validate_consistency()?;
        let ok = match self.schedule.frequency {
            Frequency::Daily => DAILY_INSTANT_RESTORE_DAYS.contains(&self.instant_restore_days),
            Frequency::Weekly { .. } => self.instant_restore_days == WEEKLY_INSTANT_RESTORE_DAYS,
        };
        if !ok {
            return Err(RuleError::new(
                codes::INSTANT_RESTORE_OUT_OF_RANGE,
                format!(
                    "Instant restore of {} days is not allowed for this schedule.",
                    self.instant_restore_days
                ),
                "Use 1 to 5 days for a daily schedule, and 5 days for a weekly one.",
            ));
        }
        Ok(())
    }

    fn validate_retention(&self) -> Result<(), RuleError> {
        let r = &self.retention;
        if let Some(d) = &r.daily {
            check_range("Daily retention", d.days, DAILY_RETENTION_DAYS, "days")?;
        }
        if let Some(w) = &r.weekly {
            check_set("weekly retention days", &w.days_of_week)?;
            check_range("Weekly retention", w.weeks, WEEKLY_RETENTION_WEEKS, "weeks")?;
        }
        if let Some(m) = &r.monthly {
            check_selector("monthly retention", &m.selector)?;
            check_range(
                "Monthly retention",
                m.months,
                MONTHLY_RETENTION_MONTHS,
                "months",
            )?;
        }
        if let Some(y) = &r.yearly {
            check_set("yearly retention months", &y.months_of_year)?;
            if let Some(m) = y.months_of_year.iter().find(|m| !(1..=12).contains(*m)) {
                return Err(RuleError::new(
                    codes::INVALID_MONTH,
                    format!("The month {m} of yearly retention is not a month."),
                    "Use months 1 (January) to 12 (December).",
                ));
            }
            check_selector("yearly retention", &y.selector)?;
            check_range("Yearly retention", y.years, YEARLY_RETENTION_YEARS, "years")?;
        }
        Ok(())
    }

    fn validate_consistency(&self) -> Result<(), RuleError> {
        let r = &self.retention;
        match self.schedule.days() {
            None => {
                if r.daily.is_none() {
                    return Err(RuleError::new(
                        codes::DAILY_RETENTION_REQUIRED,
                        format!(
                            "Policy {} backs up daily but has no daily retention.",
                            self.name
                        ),
                        "Add a daily retention rule (7 to 9999 days).",
                    ));
                }
            }
            Some(scheduled) => {
                let Some(weekly) = &r.weekly else {
                    return Err(RuleError::new(
                        codes::WEEKLY_RETENTION_REQUIRED,
                        format!(
                            "Policy {} backs up weekly but has no weekly retention.",
                            self.name
                        ),
                        "Add a weekly retention rule on the scheduled days.",
                    ));
                };
                if r.daily.is_some() {
                    return Err(RuleError::new(
                        codes::DAILY_RETENTION_NOT_ALLOWED,
                        format!(
                            "Policy {} backs up weekly but has daily retention.",
                            self.name
                        ),
                        "Remove the daily retention rule, or back up daily.",
                    ));
                }
                if let Some(d) = weekly.days_of_week.iter().find(|d| !scheduled.contains(d)) {
                    return Err(RuleError::new(
                        codes::WEEKLY_RETENTION_DAY_NOT_SCHEDULED,
                        format!("Weekly retention keeps {d:?}, but no backup runs on {d:?}."),
                        "Keep only the days the schedule backs up on.",
                    ));
                }
                if let Some(d) = scheduled.iter().find(|d| !weekly.days_of_week.contains(d)) {
                    return Err(RuleError::new(
                        codes::SCHEDULED_DAY_NOT_RETAINED,
                        format!("Backups run on {d:?}, but weekly retention does not keep them."),
                        "Keep every scheduled day in the weekly retention rule.",
                    ));
                }
            }
        }
        let selectors = [
            r.monthly.as_ref().map(|m| ("monthly", &m.selector)),
            r.yearly.as_ref().map(|y| ("yearly", &y.selector)),
        ];
        for (rule, selector) in selectors.into_iter().flatten() {
            match selector {
                DaySelector::DaysOfMonth(_) if self.schedule.days().is_some() => {
                    return Err(RuleError::new(
                        codes::DAYS_OF_MONTH_NEED_DAILY_SCHEDULE,
                        format!(
                            "The {rule} retention rule picks days of the month, but policy {} \
                             backs up weekly.",
                            self.name
                        ),
                        "Pick weekdays of the month (such as the first Sunday) on scheduled days.",
                    ));
                }
                DaySelector::WeekdaysOfWeeks { days, .. } => {
                    if let Some(d) = days.iter().find(|d| !self.schedule.runs_on(**d)) {
                        return Err(RuleError::new(
                            codes::SELECTOR_DAY_NOT_SCHEDULED,
                            format!("The {rule} retention rule keeps {d:?}, but no backup runs on {d:?}."),
                            "Pick only days the schedule backs up on.",
                        ));
                    }
                }
                DaySelector::DaysOfMonth(_) => {}
            }
        }
        Ok(())
    }
}

fn check_set<T: PartialEq + Debug>(what: &str, items: &[T]) -> Result<(), RuleError> {
    if items.is_empty() {
        return Err(RuleError::new(
            codes::EMPTY_SELECTION,
            format!("The {what} are empty."),
            "Choose at least one.",
        ));
    }
    for (i, item) in items.iter().enumerate() {
        if items[..i].contains(item) {
            return Err(RuleError::new(
                codes::DUPLICATE_SELECTION,
                format!("The {what} name {item:?} twice."),
                "Name each one once.",
            ));
        }
    }
    Ok(())
}

fn check_range(
    what: &str,
    n: u32,
    range: RangeInclusive<u32>,
    unit: &str,
) -> Result<(), RuleError> {
    if range.contains(&n) {
        return Ok(());
    }
    Err(RuleError::new(
        codes::RETENTION_OUT_OF_RANGE,
        format!("{what} of {n} {unit} is out of range."),
        format!("Keep points {} to {} {unit}.", range.start(), range.end()),
    ))
}

fn check_selector(rule: &str, selector: &DaySelector) -> Result<(), RuleError> {
    match selector {
        DaySelector::DaysOfMonth(days) => {
            check_set(&format!("{rule} days of the month"), days)?;
            if let Some(MonthDay::Day(d)) = days
                .iter()
                .find(|d| matches!(d, MonthDay::Day(n) if !(1..=28).contains(n)))
            {
                return Err(RuleError::new(
                    codes::INVALID_DAY_OF_MONTH,
                    format!("Day {d} of the month in {rule} is not allowed."),
                    "Use days 1 to 28, or Last for the last day of the month.",
                ));
            }
        }
        DaySelector::WeekdaysOfWeeks { weeks, days } => {
            check_set(&format!("{rule} weeks of the month"), weeks)?;
            check_set(&format!("{rule} weekdays"), days)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
