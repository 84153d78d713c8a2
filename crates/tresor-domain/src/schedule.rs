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
//! Both functions here expect a valid schedule
//! ([`Schedule::validate`]); they panic on one whose time zone does not
//! load or whose weekly days are empty, as no validated policy has those.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

use crate::policy::Schedule;

impl Schedule {
    /// The first scheduled instant strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Timestamp {
        let tz = self.valid_tz();
        // Start the day before, in case a run of that local day falls after
        // `after` (it cannot with whole-day offsets, but it costs nothing).
        let mut day = after
            .to_zoned(tz.clone())
            .date()
            .yesterday()
            .expect("in range");
        for _ in 0..9 {
            if let Some(t) = self.run_on_day(&tz, day) {
                if t > after {
                    return t;
                }
            }
            day = day.tomorrow().expect("in range");
        }
        panic!("schedule {self:?} runs on no day; validate it first");
    }

    /// Every scheduled instant in `(from, to]`, in order.
    pub fn occurrences(&self, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let tz = self.valid_tz();
        let mut out = Vec::new();
        if to <= from {
            return out;
        }
        let mut day = from
            .to_zoned(tz.clone())
            .date()
            .yesterday()
            .expect("in range");
        let last = to.to_zoned(tz.clone()).date().tomorrow().expect("in range");
        while day <= last {
            if let Some(t) = self.run_on_day(&tz, day) {
                if from < t && t <= to {
                    out.push(t);
                }
            }
            day = day.tomorrow().expect("in range");
        }
        out
    }

    /// The instant the schedule runs on `date` (a date in its time zone),
    /// or `None` if it does not run that day.
    pub fn run_on(&self, date: Date) -> Option<Timestamp> {
        self.run_on_day(&self.valid_tz(), date)
    }

    fn valid_tz(&self) -> TimeZone {
        match self.tz() {
            Ok(tz) => tz,
            Err(e) => panic!("{e}"),
        }
    }

    fn run_on_day(&self, tz: &TimeZone, date: Date) -> Option<Timestamp> {
        self.runs_on(date.weekday())
            .then(|| wall_clock_instant(tz, date.to_datetime(self.time)))
    }
}

/// The instant a wall clock in `tz` shows `dt`: the first one if it shows it
/// twice, the end of the jump if it never does.
fn wall_clock_instant(tz: &TimeZone, dt: DateTime) -> Timestamp {
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    let instant = match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the later offset, `dt` names an instant before the
            // jump; the jump itself is the next transition.
            let before_jump = after.to_timestamp(dt).expect("in range");
            let jump = tz
                .following(before_jump)
                .next()
                .expect("a gap has a transition");
            Ok(jump.timestamp())
        }
    };
    instant.expect("in range")
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
            s.next_after(ts("2026-05-01T12:00:00Z")),
            ts("2026-05-01T22:00:00Z")
        );
        // Strictly after: a run at `after` is not the next one.
        assert_eq!(
            s.next_after(ts("2026-05-01T22:00:00Z")),
            ts("2026-05-02T22:00:00Z")
        );
        let b = daily(22, 30, "Europe/Berlin");
        // Summer: CEST = UTC+2; winter: CET = UTC+1.
        assert_eq!(
            b.next_after(ts("2026-07-01T00:00:00Z")),
            ts("2026-07-01T20:30:00Z")
        );
        assert_eq!(
            b.next_after(ts("2026-01-15T21:30:00Z")),
            ts("2026-01-16T21:30:00Z")
        );
        // 00:30 Berlin on 1 January is still 31 December in UTC.
        let b = daily(0, 30, "Europe/Berlin");
        assert_eq!(
            b.next_after(ts("2026-12-31T12:00:00Z")),
            ts("2026-12-31T23:30:00Z")
        );
    }

    #[test]
    fn berlin_spring_forward() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let gap = daily(2, 30, "Europe/Berlin");
        let runs = gap.occurrences(ts("2026-03-27T12:00:00Z"), ts("2026-03-31T12:00:00Z"));
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
            at_two.next_after(ts("2026-03-28T12:00:00Z")),
            ts("2026-03-29T01:00:00Z")
        );
        // Outside the gap, the offset simply changes.
        let before = daily(1, 30, "Europe/Berlin");
        assert_eq!(
            before.next_after(ts("2026-03-28T12:00:00Z")),
            ts("2026-03-29T00:30:00Z")
        );
        let after = daily(3, 0, "Europe/Berlin");
        assert_eq!(
            after.next_after(ts("2026-03-28T12:00:00Z")),
            ts("2026-03-29T01:00:00Z")
        );
    }

    #[test]
    fn berlin_fall_back() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC), so
        // 02:00–02:59 happens twice; the run is at the first.
        let fold = daily(2, 30, "Europe/Berlin");
        let runs = fold.occurrences(ts("2026-10-24T12:00:00Z"), ts("2026-10-26T12:00:00Z"));
        assert_eq!(
            runs,
            [
                ts("2026-10-25T00:30:00Z"), // 02:30 CEST; not again at 01:30 UTC
                ts("2026-10-26T01:30:00Z"), // 02:30 CET
            ]
        );
        // Asking just after the first occurrence does not find the second.
        assert_eq!(
            fold.next_after(ts("2026-10-25T00:30:00Z")),
            ts("2026-10-26T01:30:00Z")
        );
        let after = daily(3, 0, "Europe/Berlin");
        assert_eq!(
            after.next_after(ts("2026-10-24T12:00:00Z")),
            ts("2026-10-25T02:00:00Z")
        );
    }

    #[test]
    fn new_york() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let s = daily(2, 30, "America/New_York");
        let spring = s.occurrences(ts("2026-03-07T00:00:00Z"), ts("2026-03-09T23:00:00Z"));
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
        let fall = s.occurrences(ts("2026-10-31T00:00:00Z"), ts("2026-11-02T23:00:00Z"));
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
            s.next_after(ts("2026-12-31T12:00:00Z")),
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
                let runs = s.occurrences(from, midnight(date(2027, 1, 1)) - second);
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
                    t = s.next_after(t);
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
        let runs = s.occurrences(ts("2026-03-24T00:00:00Z"), ts("2026-04-06T00:00:00Z"));
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
            s.next_after(ts("2026-12-30T12:00:00Z")),
            ts("2027-01-03T01:30:00Z")
        );
        assert_eq!(s.run_on(date(2027, 1, 3)), Some(ts("2027-01-03T01:30:00Z")));
        assert_eq!(s.run_on(date(2027, 1, 4)), None);
        assert!(s
            .occurrences(ts("2026-03-26T00:00:00Z"), ts("2026-03-26T00:00:00Z"))
            .is_empty());
    }
}
