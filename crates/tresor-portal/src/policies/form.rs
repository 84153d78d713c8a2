//! The create and edit form of a policy, as typed: reading it from a policy and
//! from the posted fields, turning it into the domain's [`BackupPolicy`], and finding
//! the field an error concerns.
//!
//! The form only shapes the request: the schedule's weekdays count for a weekly
//! schedule, the daily retention for a daily one, and a tier that is not ticked is
//! left out. Every rule of a policy is the service's.

use jiff::civil::{Time, Weekday};
use tresor_api::ErrorCode;
use tresor_domain::{
    BackupPolicy, DailyRetention, DaySelector, Frequency, MonthDay, MonthlyRetention, PolicyName,
    Retention, Schedule, WeeklyRetention, YearlyRetention,
};
use tresor_service::ServiceError;

use crate::policies::summary::{
    day_name, month_day_name, month_name, week_name, MONTHS, WEEKDAYS, WEEKS,
};

/// What the form holds, as typed (shown again on an error).
#[derive(Debug, Clone, Default)]
pub(super) struct PolicyForm {
    pub(super) csrf: String,
    /// Where to go after creating (a local path), e.g. back into the backup wizard.
    pub(super) ret: String,
    pub(super) name: String,
    pub(super) frequency: String,
    pub(super) schedule_days: Vec<String>,
    pub(super) time: String,
    pub(super) time_zone: String,
    pub(super) instant_restore_days: String,
    pub(super) daily_days: String,
    pub(super) weekly_enabled: bool,
    pub(super) weekly_weeks: String,
    pub(super) weekly_days: Vec<String>,
    pub(super) monthly_enabled: bool,
    pub(super) monthly_months: String,
    pub(super) monthly_basis: String,
    pub(super) monthly_days: Vec<String>,
    pub(super) monthly_weeks: Vec<String>,
    pub(super) monthly_weekdays: Vec<String>,
    pub(super) yearly_enabled: bool,
    pub(super) yearly_years: String,
    pub(super) yearly_months: Vec<String>,
    pub(super) yearly_basis: String,
    pub(super) yearly_days: Vec<String>,
    pub(super) yearly_weeks: Vec<String>,
    pub(super) yearly_weekdays: Vec<String>,
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
    pub(super) fn new_policy() -> PolicyForm {
        let mut f = PolicyForm::from_policy(&BackupPolicy::default_policy());
        f.name.clear();
        f
    }

    pub(super) fn from_policy(p: &BackupPolicy) -> PolicyForm {
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
    pub(super) fn from_pairs(pairs: Vec<(String, String)>) -> PolicyForm {
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

    /// The policy the form describes, as the service takes it. Errors here are the
    /// form's own (a value that is not a number, a weekday the form does not know);
    /// every rule of a policy is the service's.
    pub(super) fn to_policy(&self, name: &str) -> Result<BackupPolicy, FieldError> {
        let name = PolicyName::parse(name.trim()).map_err(|e| FieldError::new("name", e.into()))?;
        let time: Time = self.time.trim().parse().map_err(|_| {
            FieldError::new(
                "time",
                ServiceError::new(
                    ErrorCode::InvalidScheduleTime,
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
pub(super) struct FieldError {
    pub(super) field: &'static str,
    pub(super) error: ServiceError,
}

impl FieldError {
    pub(super) fn new(field: &'static str, error: ServiceError) -> FieldError {
        FieldError { field, error }
    }
}

fn unknown(field: &'static str, value: &str) -> FieldError {
    FieldError::new(
        field,
        ServiceError::new(
            ErrorCode::InvalidFormValue,
            format!("{value:?} is not one of the choices."),
            "Pick from the choices shown.",
        ),
    )
}

fn number(value: &str, field: &'static str, label: &str) -> Result<u32, FieldError> {
    value.trim().parse().map_err(|_| {
        FieldError::new(
            field,
            ServiceError::new(
                ErrorCode::InvalidNumber,
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

/// The form field a service error names, from its code (and, for codes several
/// fields share, the rule its message names).
pub(super) fn field_of(e: &ServiceError, policy: &str) -> &'static str {
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
pub(super) fn safe_return(r: &str) -> Option<&str> {
    (r.starts_with('/') && !r.starts_with("//") && !r.contains('\\') && !r.contains(':'))
        .then_some(r)
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
        let e: ServiceError = p.validate().unwrap_err().into();
        assert_eq!(field_of(&e, "Abc"), "daily_days");
        let mut f = PolicyForm::from_policy(&BackupPolicy::default_policy());
        f.monthly_enabled = true;
        f.monthly_basis = "day".into();
        f.monthly_days = vec![];
        let e: ServiceError = f
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
        let e: ServiceError = f
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
