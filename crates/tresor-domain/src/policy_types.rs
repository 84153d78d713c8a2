//! The data of a backup policy, its schedule and its retention rules, and
//! how they read and write as JSON (weekdays and months by name, as Azure
//! spells them).
//!
//! Only data and its plainest accessors live here. Architecture Invariant:
//! this file knows nothing of what makes a policy valid (`policy`), when a
//! schedule runs (`schedule`) or how long a point is kept (`retention`);
//! those read these types, never the other way round.

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{codes, RuleError};
use crate::names::PolicyName;

/// Instant restore days when a policy does not say.
pub const DEFAULT_INSTANT_RESTORE_DAYS: u32 = 2;

/// How often a policy backs up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Frequency {
    /// Every day.
    Daily,
    /// On the given days of the week.
    Weekly {
        #[serde(with = "weekday_names")]
        #[schema(schema_with = weekday_names::schema)]
        days: Vec<Weekday>,
    },
}

/// When a policy backs up: a wall-clock time in a time zone, daily or on
/// some weekdays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub frequency: Frequency,
    /// Wall-clock time in `time_zone`: on the hour or half hour.
    #[schema(value_type = String, pattern = r"^([01][0-9]|2[0-3]):[03]0(:00)?$", example = "22:30:00")]
    pub time: Time,
    /// An IANA time zone name, such as `Europe/Berlin` or `UTC`.
    #[schema(example = "UTC")]
    pub time_zone: String,
}

/// A day of the month for monthly and yearly retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonthDay {
    /// 1 to 28 (Azure's limit: every month has these days).
    Day(u8),
    /// The last day of the month, whatever its number.
    Last,
}

/// A week of the month, for weekday-based monthly and yearly retention.
/// `First` is days 1–7, `Second` 8–14, `Third` 15–21, `Fourth` 22–28 and
/// `Last` the last seven days of the month (it can overlap `Fourth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum WeekOfMonth {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

/// Which days of a month a monthly or yearly rule keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum DaySelector {
    /// Given days of the month (Azure's "day based").
    DaysOfMonth(Vec<MonthDay>),
    /// Given weekdays in given weeks of the month (Azure's "week based"):
    /// `{ weeks: [First], days: [Sunday] }` is the first Sunday.
    WeekdaysOfWeeks {
        weeks: Vec<WeekOfMonth>,
        #[serde(with = "weekday_names")]
        #[schema(schema_with = weekday_names::schema)]
        days: Vec<Weekday>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyRetention {
    /// 7 to 9999.
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeeklyRetention {
    #[serde(with = "weekday_names")]
    #[schema(schema_with = weekday_names::schema)]
    pub days_of_week: Vec<Weekday>,
    /// 1 to 5163.
    pub weeks: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyRetention {
    pub selector: DaySelector,
    /// 1 to 1188.
    pub months: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct YearlyRetention {
    /// Months 1 (January) to 12, serialized by name (`"January"`).
    #[serde(with = "month_names")]
    #[schema(schema_with = month_names::schema)]
    pub months_of_year: Vec<i8>,
    pub selector: DaySelector,
    /// 1 to 99.
    pub years: u32,
}

/// The retention rules of a policy; absent rules keep nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<DailyRetention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<WeeklyRetention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<MonthlyRetention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<YearlyRetention>,
}

/// A backup policy. Deserializing checks the name only: call
/// [`BackupPolicy::validate`] before storing or using a policy.
///
/// As JSON (a daily backup at 22:30 Berlin time, kept 30 days; Sundays kept
/// 12 weeks; the first Sunday of each month 60 months; January 1st 10 years):
///
/// ```
/// # use tresor_domain::policy::BackupPolicy;
/// let json = r#"{
///   "name": "DailyGFS",
///   "schedule": { "frequency": "Daily", "time": "22:30:00", "timeZone": "Europe/Berlin" },
///   "retention": {
///     "daily": { "days": 30 },
///     "weekly": { "daysOfWeek": ["Sunday"], "weeks": 12 },
///     "monthly": {
///       "selector": { "WeekdaysOfWeeks": { "weeks": ["First"], "days": ["Sunday"] } },
///       "months": 60
///     },
///     "yearly": {
///       "monthsOfYear": ["January"],
///       "selector": { "DaysOfMonth": [1] },
///       "years": 10
///     }
///   },
///   "instantRestoreDays": 2
/// }"#;
/// let policy: BackupPolicy = serde_json::from_str(json)?;
/// policy.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A weekly schedule is `"frequency": { "Weekly": { "days": ["Saturday"] } }`;
/// a last day of the month is `"Last"` among the `DaysOfMonth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(
    description = "A backup policy: when it backs up (`schedule`) and how long \
    its recovery points are kept (`retention`). A weekly schedule is \
    `\"frequency\": {\"Weekly\": {\"days\": [\"Saturday\"]}}`; a last day of the month \
    is `\"Last\"` among the `DaysOfMonth`."
)]
pub struct BackupPolicy {
    pub name: PolicyName,
    pub schedule: Schedule,
    pub retention: Retention,
    /// Days the snapshots of a point stay for fast restores: 1–5 for a daily
    /// schedule, 5 for a weekly one (Azure's standard policy).
    #[serde(default = "default_instant_restore_days")]
    pub instant_restore_days: u32,
}

fn default_instant_restore_days() -> u32 {
    DEFAULT_INSTANT_RESTORE_DAYS
}

impl Schedule {
    /// Every day at `time` in `time_zone`.
    pub fn daily(time: Time, time_zone: &str) -> Self {
        Schedule {
            frequency: Frequency::Daily,
            time,
            time_zone: time_zone.to_owned(),
        }
    }

    /// On `days` at `time` in `time_zone`.
    pub fn weekly(days: Vec<Weekday>, time: Time, time_zone: &str) -> Self {
        Schedule {
            frequency: Frequency::Weekly { days },
            time,
            time_zone: time_zone.to_owned(),
        }
    }

    /// Loads the schedule's time zone.
    pub fn tz(&self) -> Result<TimeZone, RuleError> {
        TimeZone::get(&self.time_zone).map_err(|e| {
            RuleError::new(
                codes::INVALID_TIME_ZONE,
                format!("The time zone {:?} is not known: {e}.", self.time_zone),
                "Use an IANA time zone name such as \"Europe/Berlin\" or \"UTC\".",
            )
        })
    }

    /// The days the schedule runs on; `None` for every day.
    pub fn days(&self) -> Option<&[Weekday]> {
        match &self.frequency {
            Frequency::Daily => None,
            Frequency::Weekly { days } => Some(days),
        }
    }

    /// Whether the schedule runs on a day with this weekday.
    pub fn runs_on(&self, weekday: Weekday) -> bool {
        self.days().is_none_or(|days| days.contains(&weekday))
    }
}

impl Serialize for MonthDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MonthDay::Day(d) => s.serialize_u8(*d),
            MonthDay::Last => s.serialize_str("Last"),
        }
    }
}

impl<'de> Deserialize<'de> for MonthDay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Day(u8),
            Name(String),
        }
        match Repr::deserialize(d)? {
            Repr::Day(n) => Ok(MonthDay::Day(n)),
            Repr::Name(s) if s == "Last" => Ok(MonthDay::Last),
            Repr::Name(s) => Err(serde::de::Error::custom(format!(
                "expected a day of the month or \"Last\", found {s:?}"
            ))),
        }
    }
}

impl utoipa::PartialSchema for MonthDay {
    /// As (de)serialized above: a day's number or `"Last"`.
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(u8::MAX)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["Last"])),
            )
            .description(Some("A day of the month (1 to 28), or \"Last\"."))
            .into()
    }
}

impl ToSchema for MonthDay {}

/// Weekdays as Azure spells them: `"Monday"` ... `"Sunday"`.
pub(crate) mod weekday_names {
    use jiff::civil::Weekday;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    const NAMES: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];

    /// The schema of a list of weekdays as written here.
    pub fn schema() -> utoipa::openapi::schema::Array {
        super::names_schema(&NAMES)
    }

    pub fn name(day: Weekday) -> &'static str {
        NAMES[day.to_monday_zero_offset() as usize]
    }

    pub fn serialize<S: Serializer>(days: &[Weekday], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(days.iter().map(|d| name(*d)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Weekday>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| match NAMES.iter().position(|n| n == s) {
                Some(i) => Ok(Weekday::from_monday_zero_offset(i as i8).expect("0..7")),
                None => Err(D::Error::custom(format!("{s:?} is not a weekday"))),
            })
            .collect()
    }
}

/// Months as Azure spells them, January first.
pub const MONTH_NAMES: [&str; 12] = [
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

/// Months as Azure spells them: `"January"` ... `"December"`.
mod month_names {
    use serde::{de::Error, ser, Deserialize, Deserializer, Serializer};

    use super::MONTH_NAMES as NAMES;

    /// The schema of a list of months as written here.
    pub fn schema() -> utoipa::openapi::schema::Array {
        super::names_schema(&NAMES)
    }

    pub fn serialize<S: Serializer>(months: &[i8], s: S) -> Result<S::Ok, S::Error> {
        let names: Result<Vec<&str>, S::Error> = months
            .iter()
            .map(|m| {
                match usize::try_from(*m)
                    .ok()
                    .and_then(|m| NAMES.get(m.wrapping_sub(1)))
                {
                    Some(n) => Ok(*n),
                    None => Err(<S::Error as ser::Error>::custom(format!(
                        "{m} is not a month"
                    ))),
                }
            })
            .collect();
        s.collect_seq(names?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i8>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| match NAMES.iter().position(|n| n == s) {
                Some(i) => Ok(i as i8 + 1),
                None => Err(D::Error::custom(format!("{s:?} is not a month"))),
            })
            .collect()
    }
}

/// A list of names out of `names` (weekdays, months), for the API's description.
fn names_schema(names: &[&str]) -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names.iter().copied())),
        )
        .build()
}
