//! When a schedule runs, to the instant, across daylight-saving changes.
//!
//! A [`Schedule`] names a wall-clock time in a time zone. On each scheduled
//! day (every day, or the chosen weekdays, as dates in that time zone) it
//! runs exactly once:
//!
//! - at the instant the wall clock shows that time, on ordinary days;
//! - when the time does not exist that day because the clocks jump forward
//!   over it, at the first instant after the jump: 02:30 in Europe/Berlin
//!   on 2026-03-29 runs at 03:00 CEST (01:00 UTC);
//! - when the time occurs twice because the clocks fall back, at its first
//!   occurrence only: 02:30 in Europe/Berlin on 2026-10-25 runs at
//!   02:30 CEST (00:30 UTC), not again at 02:30 CET.
//!
//! So a day is never skipped and never run twice, and a point's date in the
//! time zone is always the scheduled day, which is what retention reads.
//!
//! Every function here returns a [`RuleError`] rather than panicking: with
//! code `InvalidTimeZone` when the schedule's time zone does not load,
//! `EmptySelection` when a weekly schedule names no day (neither passes
//! [`Schedule::validate`]), and `TimeOutOfRange` when an instant would fall
//! outside the range of dates jiff represents (years -9999 to 9999).

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

use crate::error::{codes, out_of_range, RuleError};
use crate::policy_types::Schedule;

impl Schedule {
    /// The first scheduled instant strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Result<Timestamp, RuleError> {
        let tz = self.tz()?;
        // Start the day before, in case a run of that local day falls after
        // `after` (it cannot with whole-day offsets, but it costs nothing).
        let mut day = yesterday(after.to_zoned(tz.clone()).date())?;
        for _ in 0..9 {
            if let Some(t) = self.run_on_day(&tz, day)? {
                if t > after {
                    return Ok(t);
                }
            }
            day = tomorrow(day)?;
        }
        Err(RuleError::new(
            codes::EMPTY_SELECTION,
            format!(
                "The schedule at {} in {} runs on no day of the week.",
                self.time, self.time_zone
            ),
            "Choose at least one day for a weekly schedule.",
        ))
    }

    /// Every scheduled instant in `(from, to]`, in order.
    pub fn occurrences(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Timestamp>, RuleError> {
        let tz = self.tz()?;
        let mut out = Vec::new();
        if to <= from {
            return Ok(out);
        }
        let mut day = yesterday(from.to_zoned(tz.clone()).date())?;
        let last = tomorrow(to.to_zoned(tz.clone()).date())?;
        while day <= last {
            if let Some(t) = self.run_on_day(&tz, day)? {
                if from < t && t <= to {
                    out.push(t);
                }
            }
            day = tomorrow(day)?;
        }
        Ok(out)
    }

    /// The instant the schedule runs on `date` (a date in its time zone),
    /// or `None` if it does not run that day.
    pub fn run_on(&self, date: Date) -> Result<Option<Timestamp>, RuleError> {
        self.run_on_day(&self.tz()?, date)
    }

    fn run_on_day(&self, tz: &TimeZone, date: Date) -> Result<Option<Timestamp>, RuleError> {
        if !self.runs_on(date.weekday()) {
            return Ok(None);
        }
        wall_clock_instant(tz, date.to_datetime(self.time)).map(Some)
    }
}

fn yesterday(d: Date) -> Result<Date, RuleError> {
    d.yesterday().map_err(out_of_range)
}

fn tomorrow(d: Date) -> Result<Date, RuleError> {
    d.tomorrow().map_err(out_of_range)
}

/// The instant a wall clock in `tz` shows `dt`: the first one if it shows it
/// twice, the end of the jump if it never does.
fn wall_clock_instant(tz: &TimeZone, dt: DateTime) -> Result<Timestamp, RuleError> {
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    let instant = match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt),
        AmbiguousOffset::Gap { before, after } => {
            // Read with the later offset, `dt` names an instant before the
            // jump; the jump itself is the next transition. A gap always
            // has one; should the time zone data say otherwise, read `dt`
            // with the offset before the gap, which also lands after it.
            let before_jump = after.to_timestamp(dt).map_err(out_of_range)?;
            match tz.following(before_jump).next() {
                Some(jump) => Ok(jump.timestamp()),
                None => before.to_timestamp(dt),
            }
        }
    };
    instant.map_err(out_of_range)
}

#[cfg(test)]
mod tests {
    use jiff::civil::{date, time, Weekday};

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn daily(h: i8, m: i8, tz: &str) -> Schedule {
        Schedule::daily(time(h, m, 0, 0), tz)
    }

    #[test]
    fn ordinary_days() {
        let s = daily(22, 0, "UTC");
        assert_eq!(
            s.next_after(ts("2026-05-01T12:00:00Z")).unwrap(),
            ts("2026-05-01T22:00:00Z")
        );
        // Strictly after: a run at `after` is not the next one.
        assert_eq!(
            s.next_after(ts("2026-05-01T22:00:00Z")).unwrap(),
            ts("2026-05-02T22:00:00Z")
        );
        let b = daily(22, 30, "Europe/Berlin");
        // Summer: CEST = UTC+2; winter: CET = UTC+1.
        assert_eq!(
            b.next_after(ts("2026-07-01T00:00:00Z")).unwrap(),
            ts("2026-07-01T20:30:00Z")
        );
        assert_eq!(
            b.next_after(ts("2026-01-15T21:30:00Z")).unwrap(),
            ts("2026-01-16T21:30:00Z")
        );
        // 00:30 Berlin on 1 January is still 31 December in UTC.
        let b = daily(0, 30, "Europe/Berlin");
        assert_eq!(
            b.next_after(ts("2026-12-31T12:00:00Z")).unwrap(),
            ts("2026-12-31T23:30:00Z")
        );
    }

    #[test]
    fn berlin_spring_forward() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let gap = daily(2, 30, "Europe/Berlin");
        let runs = gap
            .occurrences(ts("2026-03-27T12:00:00Z"), ts("2026-03-31T12:00:00Z"))
            .unwrap();
        assert_eq!(
            runs,
            [
                ts("2026-03-28T01:30:00Z"), // 02:30 CET
                ts("2026-03-29T01:00:00Z"), // 03:00 CEST, the end of the jump
                ts("2026-03-30T00:30:00Z"), // 02:30 CEST
                ts("2026-03-31T00:30:00Z"),
            ]
        );
        let at_two = daily(2, 0, "Europe/Berlin");
        assert_eq!(
            at_two.next_after(ts("2026-03-28T12:00:00Z")).unwrap(),
            ts("2026-03-29T01:00:00Z")
        );
        // Outside the gap, the offset simply changes.
        let before = daily(1, 30, "Europe/Berlin");
        assert_eq!(
            before.next_after(ts("2026-03-28T12:00:00Z")).unwrap(),
            ts("2026-03-29T00:30:00Z")
        );
        let after = daily(3, 0, "Europe/Berlin");
        assert_eq!(
            after.next_after(ts("2026-03-28T12:00:00Z")).unwrap(),
            ts("2026-03-29T01:00:00Z")
        );
    }

    #[test]
    fn berlin_fall_back() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC), so
        // 02:00–02:59 happens twice; the run is at the first.
        let fold = daily(2, 30, "Europe/Berlin");
        let runs = fold
            .occurrences(ts("2026-10-24T12:00:00Z"), ts("2026-10-26T12:00:00Z"))
            .unwrap();
        assert_eq!(
            runs,
            [
                ts("2026-10-25T00:30:00Z"), // 02:30 CEST; not again at 01:30 UTC
                ts("2026-10-26T01:30:00Z"), // 02:30 CET
            ]
        );
        // Asking just after the first occurrence does not find the second.
        assert_eq!(
            fold.next_after(ts("2026-10-25T00:30:00Z")).unwrap(),
            ts("2026-10-26T01:30:00Z")
        );
        let after = daily(3, 0, "Europe/Berlin");
        assert_eq!(
            after.next_after(ts("2026-10-24T12:00:00Z")).unwrap(),
            ts("2026-10-25T02:00:00Z")
        );
    }

    #[test]
    fn new_york() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let s = daily(2, 30, "America/New_York");
        let spring = s
            .occurrences(ts("2026-03-07T00:00:00Z"), ts("2026-03-09T23:00:00Z"))
            .unwrap();
        assert_eq!(
            spring,
            [
                ts("2026-03-07T07:30:00Z"),
                ts("2026-03-08T07:00:00Z"),
                ts("2026-03-09T06:30:00Z")
            ]
        );
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00 UTC).
        let s = daily(1, 30, "America/New_York");
        let fall = s
            .occurrences(ts("2026-10-31T00:00:00Z"), ts("2026-11-02T23:00:00Z"))
            .unwrap();
        assert_eq!(
            fall,
            [
                ts("2026-10-31T05:30:00Z"),
                ts("2026-11-01T05:30:00Z"), // 01:30 EDT; not again at 06:30 UTC
                ts("2026-11-02T06:30:00Z"),
            ]
        );
        // 23:00 New York on 31 December is 1 January in UTC.
        let s = daily(23, 0, "America/New_York");
        assert_eq!(
            s.next_after(ts("2026-12-31T12:00:00Z")).unwrap(),
            ts("2027-01-01T04:00:00Z")
        );
    }

    #[test]
    fn one_run_per_day_all_year() {
        for tz in ["Europe/Berlin", "America/New_York", "UTC"] {
            for (h, m) in [(0, 0), (1, 30), (2, 0), (2, 30), (3, 0), (23, 30)] {
                let s = daily(h, m, tz);
                let zone = TimeZone::get(tz).unwrap();
                let midnight = |d: Date| d.to_zoned(zone.clone()).unwrap().timestamp();
                let second = jiff::SignedDuration::from_secs(1);
                let from = midnight(date(2026, 1, 1)) - second;
                let runs = s
                    .occurrences(from, midnight(date(2027, 1, 1)) - second)
                    .unwrap();
                let dates: Vec<_> = runs
                    .iter()
                    .map(|t| t.to_zoned(zone.clone()).date())
                    .collect();
                assert_eq!(dates.len(), 365, "{tz} {h}:{m}");
                assert_eq!(dates[0], date(2026, 1, 1));
                assert!(dates.windows(2).all(|w| w[1] == w[0].tomorrow().unwrap()));
                // next_after walks the same instants.
                let mut t = from;
                for r in &runs {
                    t = s.next_after(t).unwrap();
                    assert_eq!(t, *r);
                }
            }
        }
    }

    #[test]
    fn weekly() {
        let s = Schedule::weekly(
            vec![Weekday::Sunday, Weekday::Wednesday],
            time(2, 30, 0, 0),
            "Europe/Berlin",
        );
        let runs = s
            .occurrences(ts("2026-03-24T00:00:00Z"), ts("2026-04-06T00:00:00Z"))
            .unwrap();
        assert_eq!(
            runs,
            [
                ts("2026-03-25T01:30:00Z"), // Wednesday, CET
                ts("2026-03-29T01:00:00Z"), // Sunday, in the gap
                ts("2026-04-01T00:30:00Z"), // Wednesday, CEST
                ts("2026-04-05T00:30:00Z"),
            ]
        );
        // Across the year: Thursday 2026-12-31 to Sunday 2027-01-03.
        assert_eq!(
            s.next_after(ts("2026-12-30T12:00:00Z")).unwrap(),
            ts("2027-01-03T01:30:00Z")
        );
        assert_eq!(
            s.run_on(date(2027, 1, 3)).unwrap(),
            Some(ts("2027-01-03T01:30:00Z"))
        );
        assert_eq!(s.run_on(date(2027, 1, 4)).unwrap(), None);
        assert!(s
            .occurrences(ts("2026-03-26T00:00:00Z"), ts("2026-03-26T00:00:00Z"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn unknown_time_zone_is_an_error() {
        let s = daily(22, 0, "Mars/Olympus");
        let t = ts("2026-05-01T12:00:00Z");
        let code = |r: Result<_, RuleError>| r.err().map(|e: RuleError| e.code);
        assert_eq!(
            code(s.next_after(t).map(|_| ())),
            Some(codes::INVALID_TIME_ZONE)
        );
        assert_eq!(
            code(s.occurrences(t, ts("2026-05-09T12:00:00Z")).map(|_| ())),
            Some(codes::INVALID_TIME_ZONE)
        );
        assert_eq!(
            code(s.run_on(date(2026, 5, 1)).map(|_| ())),
            Some(codes::INVALID_TIME_ZONE)
        );
    }

    #[test]
    fn no_day_and_edge_of_time_are_errors() {
        let none = Schedule::weekly(vec![], time(22, 0, 0, 0), "UTC");
        let e = none.next_after(ts("2026-05-01T12:00:00Z")).unwrap_err();
        assert_eq!(e.code, codes::EMPTY_SELECTION);
        assert!(none
            .occurrences(ts("2026-05-01T12:00:00Z"), ts("2026-05-09T12:00:00Z"))
            .unwrap()
            .is_empty());
        let s = daily(22, 0, "UTC");
        assert_eq!(
            s.next_after(Timestamp::MAX).unwrap_err().code,
            codes::TIME_OUT_OF_RANGE
        );
        assert_eq!(
            s.occurrences(Timestamp::MIN, ts("2026-05-01T12:00:00Z"))
                .unwrap_err()
                .code,
            codes::TIME_OUT_OF_RANGE
        );
    }
}
