//! How long recovery points are kept.
//!
//! Azure's model: each scheduled recovery point is tagged by every rule of
//! its policy that its date matches, and kept until the latest expiry among
//! them. The date is the point's date in the schedule's time zone, and every
//! duration counts civil days, months and years in that time zone (a point
//! taken at 22:30 is kept until 22:30 on its last day, whatever the
//! daylight-saving changes in between).
//!
//! | rule | tags | kept |
//! | --- | --- | --- |
//! | daily | every scheduled point | `days` days |
//! | weekly | points on one of `days_of_week` | `weeks` weeks |
//! | monthly | points on a day the selector picks: a day of the month (`Last`: the last day, whatever its number), or the nth or last given weekday of the month | `months` months |
//! | yearly | points in one of `months_of_year` on a day the selector picks | `years` years |
//!
//! A point on the first Sunday of January under a policy with all four rules
//! is kept for the yearly rule's years. A month added to the 31st lands on
//! the month's last day (January 31 + 1 month = February 28).
//!
//! A point whose date matches no rule, which only a point taken off schedule
//! can be, is kept as the schedule's own rule says: the daily rule for a
//! daily schedule, the weekly one for a weekly schedule.
//!
//! Expiries are a pure function of the policy and the point's time, so when
//! a policy changes, callers recompute them for every point it governs.
//!
//! An on-demand backup ("back up now") is kept until a date given with it:
//! [`default_retain_until`] (30 days, as in Azure) unless the request says,
//! checked by [`validate_retain_until`]: not in the past, at most 99 years
//! ahead.
//!
//! [`expired`] picks the points whose expiry has come. An item whose
//! protection is stopped with its data kept is not subject to retention
//! (see [`crate::item::ProtectionState::applies_retention`]).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};

use crate::error::{codes, out_of_range, RuleError};
use crate::policy_types::{BackupPolicy, DaySelector, MonthDay, WeekOfMonth};

/// Days an on-demand point is kept when the request gives no date.
pub const DEFAULT_ON_DEMAND_RETENTION_DAYS: i64 = 30;
/// The furthest ahead an on-demand point's retention may reach.
pub const MAX_ON_DEMAND_RETENTION_YEARS: i64 = 99;

/// One of a policy's retention rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RetentionRule {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// A rule that keeps a point, and until when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionTag {
    pub rule: RetentionRule,
    pub until: Timestamp,
}

impl WeekOfMonth {
    /// Whether `date` lies in this week of its month.
    pub fn contains(self, date: Date) -> bool {
        let day = date.day();
        match self {
            WeekOfMonth::First => (1..=7).contains(&day),
            WeekOfMonth::Second => (8..=14).contains(&day),
            WeekOfMonth::Third => (15..=21).contains(&day),
            WeekOfMonth::Fourth => (22..=28).contains(&day),
            WeekOfMonth::Last => day + 7 > date.days_in_month(),
        }
    }
}

impl DaySelector {
    /// Whether the selector picks `date`.
    pub fn matches(&self, date: Date) -> bool {
        match self {
            DaySelector::DaysOfMonth(days) => days.iter().any(|d| match d {
                MonthDay::Day(n) => i8::try_from(*n) == Ok(date.day()),
                MonthDay::Last => date == date.last_of_month(),
            }),
            DaySelector::WeekdaysOfWeeks { weeks, days } => {
                days.contains(&date.weekday()) && weeks.iter().any(|w| w.contains(date))
            }
        }
    }
}

impl BackupPolicy {
    /// The rules that keep a scheduled point taken at `point_time`, each
    /// with its expiry, in the order daily, weekly, monthly, yearly.
    ///
    /// Fails with `InvalidTimeZone` if the schedule's time zone does not
    /// load, and with `TimeOutOfRange` if an expiry would fall outside the
    /// dates jiff represents.
    pub fn retention_tags(&self, point_time: Timestamp) -> Result<Vec<RetentionTag>, RuleError> {
        let tz = self.schedule.tz()?;
        let at = point_time.to_zoned(tz);
        let date = at.date();
        let r = &self.retention;
        let mut kept: Vec<(RetentionRule, Span)> = Vec::new();
        if let Some(d) = &r.daily {
            kept.push((RetentionRule::Daily, i64::from(d.days).days()));
        }
        let weekly = r
            .weekly
            .as_ref()
            .map(|w| (RetentionRule::Weekly, i64::from(w.weeks).weeks()));
        if r.weekly
            .as_ref()
            .is_some_and(|w| w.days_of_week.contains(&date.weekday()))
        {
            kept.extend(weekly);
        }
        if let Some(m) = r.monthly.as_ref().filter(|m| m.selector.matches(date)) {
            kept.push((RetentionRule::Monthly, i64::from(m.months).months()));
        }
        if let Some(y) = r
            .yearly
            .as_ref()
            .filter(|y| y.months_of_year.contains(&date.month()) && y.selector.matches(date))
        {
            kept.push((RetentionRule::Yearly, i64::from(y.years).years()));
        }
        if kept.is_empty() {
            kept.extend(weekly);
        }
        kept.into_iter()
            .map(|(rule, span)| {
                Ok(RetentionTag {
                    rule,
                    until: add(&at, span)?,
                })
            })
            .collect()
    }

    /// When a scheduled point taken at `point_time` expires: the latest
    /// expiry among the rules that keep it, or `point_time` itself if none
    /// does (only under a policy that fails [`BackupPolicy::validate`]).
    /// Fails as [`BackupPolicy::retention_tags`] does.
    pub fn retain_until(&self, point_time: Timestamp) -> Result<Timestamp, RuleError> {
        Ok(self
            .retention_tags(point_time)?
            .iter()
            .map(|t| t.until)
            .max()
            .unwrap_or(point_time))
    }
}

fn add(at: &Zoned, span: Span) -> Result<Timestamp, RuleError> {
    Ok(at.checked_add(span).map_err(out_of_range)?.timestamp())
}

/// When an on-demand point is kept until if the request does not say:
/// 30 days from `now`.
pub fn default_retain_until(now: Timestamp) -> Timestamp {
    now + SignedDuration::from_hours(24 * DEFAULT_ON_DEMAND_RETENTION_DAYS)
}

/// Checks the date an on-demand point is to be kept until: after `now`, and
/// at most 99 years ahead.
pub fn validate_retain_until(now: Timestamp, until: Timestamp) -> Result<Timestamp, RuleError> {
    if until <= now {
        return Err(RuleError::new(
            codes::RETAIN_UNTIL_IN_PAST,
            format!("The retention date {until} is not in the future (now is {now})."),
            "Choose a date after today, up to 99 years ahead.",
        ));
    }
    let max = add(
        &now.to_zoned(TimeZone::UTC),
        MAX_ON_DEMAND_RETENTION_YEARS.years(),
    )?;
    if until > max {
        return Err(RuleError::new(
            codes::RETAIN_UNTIL_TOO_FAR,
            format!("The retention date {until} is more than 99 years ahead."),
            format!("Choose a date no later than {max}."),
        ));
    }
    Ok(until)
}

/// The ids of the points whose expiry has come (`expiry <= now`), in the
/// order given.
pub fn expired<Id: Clone>(points: &[(Id, Timestamp)], now: Timestamp) -> Vec<Id> {
    points
        .iter()
        .filter(|(_, expiry)| *expiry <= now)
        .map(|(id, _)| id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use jiff::civil::{date, time, Weekday};

    use super::*;
    use crate::names::PolicyName;
    use crate::policy::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Daily at 22:30 Berlin, kept 30 days; Sundays 12 weeks; the first
    /// Sunday of the month 60 months; the first Sunday of February 10 years.
    fn gfs() -> BackupPolicy {
        let first_sunday = DaySelector::WeekdaysOfWeeks {
            weeks: vec![WeekOfMonth::First],
            days: vec![Weekday::Sunday],
        };
        let p = BackupPolicy {
            name: PolicyName::parse("gfs").unwrap(),
            schedule: Schedule::daily(time(22, 30, 0, 0), "Europe/Berlin"),
            retention: Retention {
                daily: Some(DailyRetention { days: 30 }),
                weekly: Some(WeeklyRetention {
                    days_of_week: vec![Weekday::Sunday],
                    weeks: 12,
                }),
                monthly: Some(MonthlyRetention {
                    selector: first_sunday.clone(),
                    months: 60,
                }),
                yearly: Some(YearlyRetention {
                    months_of_year: vec![2],
                    selector: first_sunday,
                    years: 10,
                }),
            },
            instant_restore_days: 2,
        };
        p.validate().unwrap();
        p
    }

    fn rules(p: &BackupPolicy, t: Timestamp) -> Vec<RetentionRule> {
        p.retention_tags(t)
            .unwrap()
            .iter()
            .map(|t| t.rule)
            .collect()
    }

    #[test]
    fn daily_counts_civil_days() {
        let p = gfs();
        // Friday 2026-03-20 22:30 CET; 30 days later is 22:30 CEST.
        let t = ts("2026-03-20T21:30:00Z");
        assert_eq!(rules(&p, t), [RetentionRule::Daily]);
        assert_eq!(p.retain_until(t).unwrap(), ts("2026-04-19T20:30:00Z"));
    }

    #[test]
    fn weekly_monthly_yearly() {
        let p = gfs();
        use RetentionRule::*;
        // Sunday 2026-03-15, the third Sunday: daily and weekly.
        let t = ts("2026-03-15T21:30:00Z");
        assert_eq!(rules(&p, t), [Daily, Weekly]);
        assert_eq!(p.retain_until(t).unwrap(), ts("2026-06-07T20:30:00Z")); // 84 days, CEST
                                                                            // Sunday 2026-03-01, the first Sunday: daily, weekly and monthly.
        let t = ts("2026-03-01T21:30:00Z");
        assert_eq!(rules(&p, t), [Daily, Weekly, Monthly]);
        assert_eq!(p.retain_until(t).unwrap(), ts("2031-03-01T21:30:00Z"));
        // Sunday 2026-02-01, first Sunday of February: all four, the yearly wins.
        let t = ts("2026-02-01T21:30:00Z");
        assert_eq!(rules(&p, t), [Daily, Weekly, Monthly, Yearly]);
        assert_eq!(p.retain_until(t).unwrap(), ts("2036-02-01T21:30:00Z"));
    }

    #[test]
    fn the_date_is_local() {
        // 2026-03-01T23:30Z is already Monday 2 March in Berlin: no Sunday rules.
        let mut p = gfs();
        p.schedule.time = time(0, 30, 0, 0);
        assert_eq!(
            rules(&p, ts("2026-03-01T23:30:00Z")),
            [RetentionRule::Daily]
        );
        // 2026-02-28T23:30Z is Sunday 1 March in Berlin.
        assert_eq!(rules(&p, ts("2026-02-28T23:30:00Z")).len(), 3);
    }

    #[test]
    fn last_day_of_month() {
        let sel = DaySelector::DaysOfMonth(vec![MonthDay::Day(1), MonthDay::Last]);
        assert!(sel.matches(date(2026, 2, 28)));
        assert!(!sel.matches(date(2028, 2, 28)));
        assert!(sel.matches(date(2028, 2, 29)));
        assert!(sel.matches(date(2026, 4, 30)));
        assert!(sel.matches(date(2026, 5, 1)));
        assert!(!sel.matches(date(2026, 5, 30)));
        let mut p = gfs();
        p.retention.monthly = Some(MonthlyRetention {
            selector: sel,
            months: 1,
        });
        p.retention.yearly = None;
        p.retention.weekly = None;
        p.validate().unwrap();
        // Saturday 2026-01-31 22:30 CET + 1 month = 2026-02-28 (clamped);
        // the daily rule's 30 days reach further.
        let t = ts("2026-01-31T21:30:00Z");
        let monthly = RetentionTag {
            rule: RetentionRule::Monthly,
            until: ts("2026-02-28T21:30:00Z"),
        };
        assert_eq!(p.retention_tags(t).unwrap()[1], monthly);
        assert_eq!(p.retain_until(t).unwrap(), ts("2026-03-02T21:30:00Z"));
        assert_eq!(
            rules(&p, ts("2028-02-28T21:30:00Z")),
            [RetentionRule::Daily]
        );
    }

    #[test]
    fn weeks_of_month() {
        // February 2026 starts on a Sunday; its Fridays are 6, 13, 20, 27.
        let sel = |w| DaySelector::WeekdaysOfWeeks {
            weeks: vec![w],
            days: vec![Weekday::Friday],
        };
        let fridays = |w| -> Vec<i8> {
            (6..=27)
                .step_by(7)
                .filter(|d| sel(w).matches(date(2026, 2, *d)))
                .collect()
        };
        assert_eq!(fridays(WeekOfMonth::First), [6]);
        assert_eq!(fridays(WeekOfMonth::Second), [13]);
        assert_eq!(fridays(WeekOfMonth::Third), [20]);
        assert_eq!(fridays(WeekOfMonth::Fourth), [27]);
        assert_eq!(fridays(WeekOfMonth::Last), [27]);
        // January 2026: Fridays 2, 9, 16, 23, 30; the fourth is not the last.
        assert!(sel(WeekOfMonth::Fourth).matches(date(2026, 1, 23)));
        assert!(!sel(WeekOfMonth::Last).matches(date(2026, 1, 23)));
        assert!(sel(WeekOfMonth::Last).matches(date(2026, 1, 30)));
        assert!(!sel(WeekOfMonth::Last).matches(date(2026, 1, 29)));
    }

    #[test]
    fn policy_change_recomputes() {
        let t = ts("2026-03-15T21:30:00Z");
        let mut p = gfs();
        let before = p.retain_until(t).unwrap();
        p.retention.weekly.as_mut().unwrap().weeks = 20;
        assert_eq!(p.retain_until(t).unwrap(), ts("2026-08-02T20:30:00Z"));
        p.retention.weekly = None;
        assert_eq!(p.retain_until(t).unwrap(), ts("2026-04-14T20:30:00Z"));
        p = gfs();
        assert_eq!(p.retain_until(t).unwrap(), before);
    }

    #[test]
    fn weekly_schedule_and_off_schedule_points() {
        let p = BackupPolicy {
            name: PolicyName::parse("weekly").unwrap(),
            schedule: Schedule::weekly(vec![Weekday::Saturday], time(23, 0, 0, 0), "UTC"),
            retention: Retention {
                weekly: Some(WeeklyRetention {
                    days_of_week: vec![Weekday::Saturday],
                    weeks: 4,
                }),
                ..Retention::default()
            },
            instant_restore_days: 5,
        };
        p.validate().unwrap();
        let sat = ts("2026-01-03T23:00:00Z");
        assert_eq!(p.retain_until(sat).unwrap(), ts("2026-01-31T23:00:00Z"));
        // A late run on Sunday still gets the weekly rule.
        let sun = ts("2026-01-04T00:30:00Z");
        assert_eq!(rules(&p, sun), [RetentionRule::Weekly]);
        assert_eq!(p.retain_until(sun).unwrap(), ts("2026-02-01T00:30:00Z"));
    }

    #[test]
    fn on_demand() {
        let now = ts("2026-05-01T10:00:00Z");
        assert_eq!(default_retain_until(now), ts("2026-05-31T10:00:00Z"));
        let until = ts("2027-01-01T00:00:00Z");
        assert_eq!(validate_retain_until(now, until), Ok(until));
        for past in [now, ts("2026-04-30T10:00:00Z")] {
            assert_eq!(
                validate_retain_until(now, past).unwrap_err().code,
                "RetainUntilInPast"
            );
        }
        let max = ts("2125-05-01T10:00:00Z");
        assert_eq!(validate_retain_until(now, max), Ok(max));
        let e = validate_retain_until(now, max + SignedDuration::from_secs(1)).unwrap_err();
        assert_eq!(e.code, "RetainUntilTooFar");
    }

    #[test]
    fn expired_points() {
        let now = ts("2026-05-01T10:00:00Z");
        let points = [
            ("a", ts("2026-04-01T00:00:00Z")),
            ("b", ts("2026-06-01T00:00:00Z")),
            ("c", now),
        ];
        assert_eq!(expired(&points, now), ["a", "c"]);
        assert!(expired::<&str>(&[], now).is_empty());
    }

    #[test]
    fn unknown_time_zone_is_an_error() {
        let mut p = gfs();
        p.schedule.time_zone = "Mars/Olympus".into();
        let t = ts("2026-04-12T20:30:00Z");
        assert_eq!(
            p.retention_tags(t).unwrap_err().code,
            codes::INVALID_TIME_ZONE
        );
        assert_eq!(
            p.retain_until(t).unwrap_err().code,
            codes::INVALID_TIME_ZONE
        );
    }

    #[test]
    fn expiry_beyond_jiffs_range_is_an_error() {
        let p = gfs();
        let e = p.retain_until(ts("9999-12-01T00:00:00Z")).unwrap_err();
        assert_eq!(e.code, codes::TIME_OUT_OF_RANGE);
        let e = validate_retain_until(
            Timestamp::MAX - SignedDuration::from_secs(1),
            Timestamp::MAX,
        )
        .unwrap_err();
        assert_eq!(e.code, codes::TIME_OUT_OF_RANGE);
    }
}
