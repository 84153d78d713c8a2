//! The policy rules, one broken at a time, and the JSON of policies.

use jiff::civil::Weekday;
use jiff::civil::{time, Weekday::*};

use super::*;

fn weekly(days_of_week: Vec<Weekday>, weeks: u32) -> Option<WeeklyRetention> {
    Some(WeeklyRetention {
        days_of_week,
        weeks,
    })
}

fn monthly(selector: DaySelector, months: u32) -> Option<MonthlyRetention> {
    Some(MonthlyRetention { selector, months })
}

fn nth(weeks: Vec<WeekOfMonth>, days: Vec<Weekday>) -> DaySelector {
    DaySelector::WeekdaysOfWeeks { weeks, days }
}

fn on(days: Vec<MonthDay>) -> DaySelector {
    DaySelector::DaysOfMonth(days)
}

fn daily_policy() -> BackupPolicy {
    BackupPolicy::default_policy()
}

fn weekly_policy() -> BackupPolicy {
    BackupPolicy {
        name: PolicyName::parse("Weekly-Sat").unwrap(),
        schedule: Schedule::weekly(
            vec![Saturday, Wednesday],
            time(1, 30, 0, 0),
            "America/New_York",
        ),
        retention: Retention {
            weekly: weekly(vec![Wednesday, Saturday], 8),
            monthly: monthly(nth(vec![WeekOfMonth::Last], vec![Saturday]), 12),
            ..Retention::default()
        },
        instant_restore_days: 5,
    }
}

fn code(p: &BackupPolicy) -> &'static str {
    p.validate().expect_err("should be refused").code
}

#[test]
fn default_policy() {
    let p = BackupPolicy::default_policy();
    p.validate().unwrap();
    assert_eq!(p.name.as_str(), "DefaultPolicy");
    assert_eq!(p.schedule, Schedule::daily(time(22, 0, 0, 0), "UTC"));
    assert_eq!(p.retention.daily, Some(DailyRetention { days: 30 }));
    assert_eq!(p.instant_restore_days, 2);
    weekly_policy().validate().unwrap();
}

#[test]
fn schedule_time_and_zone() {
    for (h, m) in [(0, 0), (0, 30), (23, 30)] {
        let mut p = daily_policy();
        p.schedule.time = time(h, m, 0, 0);
        p.validate().unwrap();
    }
    for t in [time(22, 15, 0, 0), time(22, 0, 1, 0), time(22, 30, 0, 1)] {
        let mut p = daily_policy();
        p.schedule.time = t;
        assert_eq!(code(&p), "InvalidScheduleTime", "{t}");
    }
    for tz in ["Europe/Berlin", "America/New_York", "UTC"] {
        let mut p = daily_policy();
        p.schedule.time_zone = tz.into();
        p.validate().unwrap();
    }
    for tz in ["Mars/Olympus", "", "../../etc/passwd"] {
        let mut p = daily_policy();
        p.schedule.time_zone = tz.into();
        assert_eq!(code(&p), "InvalidTimeZone", "{tz}");
    }
}

#[test]
fn retention_ranges() {
    type Set = fn(&mut BackupPolicy, u32);
    let cases: [(Set, u32, u32); 4] = [
        (|p, n| p.retention.daily.as_mut().unwrap().days = n, 7, 9999),
        (
            |p, n| p.retention.weekly.as_mut().unwrap().weeks = n,
            1,
            5163,
        ),
        (
            |p, n| p.retention.monthly.as_mut().unwrap().months = n,
            1,
            1188,
        ),
        (|p, n| p.retention.yearly.as_mut().unwrap().years = n, 1, 99),
    ];
    for (set, min, max) in cases {
        let mut p = daily_policy();
        p.retention.weekly = weekly(vec![Sunday], 1);
        p.retention.monthly = monthly(on(vec![MonthDay::Last]), 1);
        p.retention.yearly = Some(YearlyRetention {
            months_of_year: vec![12],
            selector: on(vec![MonthDay::Day(28)]),
            years: 1,
        });
        for ok in [min, max] {
            set(&mut p, ok);
            p.validate().unwrap();
        }
        for bad in [min - 1, max + 1] {
            set(&mut p, bad);
            assert_eq!(code(&p), "RetentionOutOfRange", "{bad}");
        }
    }
}

#[test]
fn sets() {
    let mut p = weekly_policy();
    p.schedule.frequency = Frequency::Weekly { days: vec![] };
    assert_eq!(code(&p), "EmptySelection");
    p.schedule.frequency = Frequency::Weekly {
        days: vec![Saturday, Saturday],
    };
    assert_eq!(code(&p), "DuplicateSelection");

    let mut p = weekly_policy();
    p.retention.weekly.as_mut().unwrap().days_of_week = vec![];
    assert_eq!(code(&p), "EmptySelection");
    let mut p = weekly_policy();
    p.retention.monthly = monthly(
        nth(vec![WeekOfMonth::First, WeekOfMonth::First], vec![Saturday]),
        3,
    );
    assert_eq!(code(&p), "DuplicateSelection");

    let mut p = daily_policy();
    p.retention.monthly = monthly(on(vec![]), 3);
    assert_eq!(code(&p), "EmptySelection");
    for (day, c) in [
        (0, "InvalidDayOfMonth"),
        (29, "InvalidDayOfMonth"),
        (28, ""),
    ] {
        p.retention.monthly = monthly(on(vec![MonthDay::Day(day)]), 3);
        assert_eq!(p.validate().err().map_or("", |e| e.code), c);
    }
    let yearly = |months| YearlyRetention {
        months_of_year: months,
        selector: on(vec![MonthDay::Day(1)]),
        years: 5,
    };
    for (months, c) in [
        (vec![], "EmptySelection"),
        (vec![1, 1], "DuplicateSelection"),
        (vec![13], "InvalidMonth"),
        (vec![0], "InvalidMonth"),
    ] {
        let mut p = daily_policy();
        p.retention.yearly = Some(yearly(months));
        assert_eq!(code(&p), c);
    }
}

#[test]
fn schedule_and_retention_agree() {
    let mut p = daily_policy();
    p.retention.daily = None;
    p.retention.weekly = weekly(vec![Sunday], 4);
    assert_eq!(code(&p), "DailyRetentionRequired");
    // A daily schedule may keep any weekday weekly.
    p.retention.daily = Some(DailyRetention { days: 7 });
    p.validate().unwrap();

    let mut p = weekly_policy();
    p.retention.weekly = None;
    assert_eq!(code(&p), "WeeklyRetentionRequired");
    let mut p = weekly_policy();
    p.retention.daily = Some(DailyRetention { days: 7 });
    assert_eq!(code(&p), "DailyRetentionNotAllowed");
    let mut p = weekly_policy();
    p.retention.weekly.as_mut().unwrap().days_of_week = vec![Saturday, Wednesday, Sunday];
    assert_eq!(code(&p), "WeeklyRetentionDayNotScheduled");
    let mut p = weekly_policy();
    p.retention.weekly.as_mut().unwrap().days_of_week = vec![Saturday];
    assert_eq!(code(&p), "ScheduledDayNotRetained");

    let mut p = weekly_policy();
    p.retention.monthly.as_mut().unwrap().selector = nth(vec![WeekOfMonth::First], vec![Monday]);
    assert_eq!(code(&p), "SelectorDayNotScheduled");
    let mut p = weekly_policy();
    p.retention.yearly = Some(YearlyRetention {
        months_of_year: vec![1],
        selector: on(vec![MonthDay::Day(1)]),
        years: 3,
    });
    assert_eq!(code(&p), "DaysOfMonthNeedDailySchedule");
    p.retention.yearly.as_mut().unwrap().selector = nth(vec![WeekOfMonth::First], vec![Friday]);
    assert_eq!(code(&p), "SelectorDayNotScheduled");
    p.retention.yearly.as_mut().unwrap().selector = nth(vec![WeekOfMonth::First], vec![Wednesday]);
    p.validate().unwrap();
}

#[test]
fn instant_restore() {
    let mut p = daily_policy();
    for (n, ok) in [(0, false), (1, true), (5, true), (6, false)] {
        p.instant_restore_days = n;
        assert_eq!(p.validate().is_ok(), ok, "{n}");
    }
    p.instant_restore_days = 6;
    assert_eq!(code(&p), "InstantRestoreOutOfRange");
    let mut p = weekly_policy();
    p.instant_restore_days = 2;
    assert_eq!(code(&p), "InstantRestoreOutOfRange");
}

#[test]
fn serde_round_trip() {
    let mut p = daily_policy();
    p.name = PolicyName::parse("Full-GFS").unwrap();
    p.schedule = Schedule::daily(time(2, 30, 0, 0), "Europe/Berlin");
    p.retention.weekly = weekly(vec![Sunday, Wednesday], 12);
    p.retention.monthly = monthly(on(vec![MonthDay::Day(1), MonthDay::Last]), 60);
    p.retention.yearly = Some(YearlyRetention {
        months_of_year: vec![1, 7],
        selector: nth(vec![WeekOfMonth::First, WeekOfMonth::Last], vec![Sunday]),
        years: 10,
    });
    p.validate().unwrap();
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "name": "Full-GFS",
            "schedule": { "frequency": "Daily", "time": "02:30:00", "timeZone": "Europe/Berlin" },
            "retention": {
                "daily": { "days": 30 },
                "weekly": { "daysOfWeek": ["Sunday", "Wednesday"], "weeks": 12 },
                "monthly": { "selector": { "DaysOfMonth": [1, "Last"] }, "months": 60 },
                "yearly": {
                    "monthsOfYear": ["January", "July"],
                    "selector": { "WeekdaysOfWeeks": { "weeks": ["First", "Last"], "days": ["Sunday"] } },
                    "years": 10
                }
            },
            "instantRestoreDays": 2
        })
    );
    assert_eq!(serde_json::from_value::<BackupPolicy>(json).unwrap(), p);

    let w = weekly_policy();
    let json = serde_json::to_value(&w).unwrap();
    assert_eq!(
        json["schedule"]["frequency"],
        serde_json::json!({ "Weekly": { "days": ["Saturday", "Wednesday"] } })
    );
    assert_eq!(serde_json::from_value::<BackupPolicy>(json).unwrap(), w);
}

#[test]
fn serde_refuses_bad_values() {
    let policy = |name: &str, days: &str, month: &str| {
        format!(
            r#"{{"name":"{name}","schedule":{{"frequency":{{"Weekly":{{"days":[{days}]}}}},"time":"22:00","timeZone":"UTC"}},
               "retention":{{"yearly":{{"monthsOfYear":[{month}],"selector":{{"DaysOfMonth":["Last"]}},"years":1}}}}}}"#
        )
    };
    let ok: BackupPolicy = serde_json::from_str(&policy("abc", "\"Friday\"", "\"May\"")).unwrap();
    assert_eq!(ok.instant_restore_days, DEFAULT_INSTANT_RESTORE_DAYS);
    assert_eq!(ok.schedule.time, time(22, 0, 0, 0));
    for bad in [
        policy("1bc", "\"Friday\"", "\"May\""),
        policy("abc", "\"Fri\"", "\"May\""),
        policy("abc", "\"Friday\"", "5"),
    ] {
        assert!(serde_json::from_str::<BackupPolicy>(&bad).is_err(), "{bad}");
    }
    assert!(serde_json::from_str::<MonthDay>("\"First\"").is_err());
    assert_eq!(
        serde_json::from_str::<MonthDay>("12").unwrap(),
        MonthDay::Day(12)
    );
}
