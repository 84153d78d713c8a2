//! Attempts limited per client address: failed portal sign-ins and agent
//! registrations, the two calls a stranger can make with a guessed secret; and
//! failed sign-ins with a TOTP code per user name tried ([`CodeLimiter`]), so that
//! someone who holds a user's password cannot try codes from many addresses.
//!
//! A token bucket per IP address, in memory: [`Bucket::BURST`] attempts at once, then
//! one more every [`Bucket::REFILL`]. An address out of attempts gets 429 with
//! `Retry-After` and the code `TooManyAttempts`. Secrets are 256-bit random, so this
//! is not what keeps them safe; it keeps a script from filling the log and the
//! catalogue's lookups, and a typo-ing operator is not locked out for long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use tresor_api::ErrorCode;

use parking_lot::Mutex;

use crate::error::ServiceError;

/// Addresses remembered at most; beyond, those with full buckets are forgotten first.
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    const BURST: f64 = 10.0;
    const REFILL: Duration = Duration::from_secs(6);

    fn refilled(self, now: Instant) -> Bucket {
        let gained =
            now.saturating_duration_since(self.at).as_secs_f64() / Self::REFILL.as_secs_f64();
        Bucket {
            tokens: (self.tokens + gained).min(Self::BURST),
            at: now,
        }
    }
}

/// One limiter (sign-ins, registrations): buckets by client address.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryAfter(pub Duration);

impl RateLimiter {
    /// Whether `ip` may try now (without using an attempt).
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        let map = self.buckets.lock();
        match map.get(&ip).map(|b| b.refilled(now)) {
            Some(b) if b.tokens < 1.0 => Err(RetryAfter(wait(b))),
            _ => Ok(()),
        }
    }

    /// Uses one attempt of `ip`; refused when none is left.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        let mut map = self.buckets.lock();
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, b| b.refilled(now).tokens < Bucket::BURST);
        }
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            // Ten thousand addresses all out of attempts: a distributed flood. Refuse
            // newcomers too rather than grow without bound.
            return Err(RetryAfter(Bucket::REFILL));
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: Bucket::BURST,
            at: now,
        });
        *b = b.refilled(now);
        if b.tokens < 1.0 {
            return Err(RetryAfter(wait(*b)));
        }
        b.tokens -= 1.0;
        Ok(())
    }
}

fn wait(b: Bucket) -> Duration {
    Bucket::REFILL.mul_f64((1.0 - b.tokens).clamp(0.0, 1.0))
}

impl RetryAfter {
    /// The refusal: `TooManyAttempts`, with the wait in whole seconds (at least 1),
    /// which the REST adapter sends as `Retry-After`.
    pub fn error(self, what: &str) -> ServiceError {
        let secs = self.0.as_secs_f64().ceil().max(1.0) as u64;
        let mut e = ServiceError::new(
            ErrorCode::TooManyAttempts,
            format!("too many {what} from this address; try again in {secs} s"),
            "wait, then check the secret you are using: it may be wrong or used up",
        );
        e.retry_after = Some(secs);
        e
    }
}

/// Failed sign-ins with a TOTP code, counted per user name tried, from whatever
/// address: [`CodeLimiter::MAX_FAILURES`] within [`CodeLimiter::WINDOW`] of the first
/// one, and that name's sign-ins with a code are refused until the window ends.
///
/// A failure counts whichever part was wrong (name, password or code): counting only
/// wrong codes after a right password would make the refusal say that the password
/// was right. The price: anyone who knows a name can keep that user's sign-in with a
/// code refused (tokens and the admin token keep working; the audit log shows it).
/// Six digits against five tries per quarter hour take years to guess.
///
/// The windows run on the server's clock (the one tokens and approvals expire by).
/// Names are remembered at most [`CodeLimiter::MAX_NAMES`], each at most
/// [`CodeLimiter::MAX_KEY`] characters, so a flood of made-up names costs bounded
/// memory: ended windows go first, then the oldest.
#[derive(Default)]
pub struct CodeLimiter {
    windows: Mutex<HashMap<String, CodeWindow>>,
}

#[derive(Debug, Clone, Copy)]
struct CodeWindow {
    started: Timestamp,
    failures: u32,
}

impl CodeLimiter {
    pub const MAX_FAILURES: u32 = 5;
    pub const WINDOW: SignedDuration = SignedDuration::from_mins(15);
    const MAX_NAMES: usize = 10_000;
    /// User names are at most 64 characters; longer tries are cut, not kept whole.
    const MAX_KEY: usize = 64;

    /// Names compare as user names do: whatever the case of their letters.
    fn key(name: &str) -> String {
        name.trim()
            .chars()
            .take(Self::MAX_KEY)
            .collect::<String>()
            .to_lowercase()
    }

    fn ends(w: &CodeWindow) -> Timestamp {
        w.started.saturating_add(Self::WINDOW).unwrap_or(w.started)
    }

    /// Whether `name` may sign in with a code now (without counting an attempt).
    pub fn check(&self, name: &str, now: Timestamp) -> Result<(), RetryAfter> {
        match self.windows.lock().get(&Self::key(name)) {
            Some(w) if w.failures >= Self::MAX_FAILURES && Self::ends(w) > now => {
                let left = Self::ends(w).duration_since(now);
                Err(RetryAfter(left.unsigned_abs()))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in with a code for `name`.
    pub fn fail(&self, name: &str, now: Timestamp) {
        let key = Self::key(name);
        let mut map = self.windows.lock();
        if map.len() >= Self::MAX_NAMES && !map.contains_key(&key) {
            map.retain(|_, w| Self::ends(w) > now);
            if map.len() >= Self::MAX_NAMES {
                // A flood of names within one window: the oldest window ends first
                // anyway. (Pushing a user's count out this way costs thousands of
                // failed sign-ins, each limited per address, for five more codes.)
                let oldest = map
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        let w = map.entry(key).or_insert(CodeWindow {
            started: now,
            failures: 0,
        });
        if Self::ends(w) <= now {
            *w = CodeWindow {
                started: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

impl RetryAfter {
    /// The refusal of a sign-in with a code for `name`: `TooManyAttempts`, as for an
    /// address, with the wait. It says nothing of which part of the tries was wrong.
    pub fn user_error(self, name: &str) -> ServiceError {
        let mut e = self.error("failed sign-ins");
        let secs = e.retry_after.unwrap_or(1);
        e.message = format!(
            "too many failed sign-ins with a TOTP code for user {name} in the last {} minutes; try again in {secs} s",
            CodeLimiter::WINDOW.as_mins()
        );
        e.recommendation = "wait, then sign in with the code your authenticator app shows then; \
            if these attempts were not yours, someone may know your password: change it"
            .into();
        e
    }
}

/// The server's limiters.
#[derive(Default)]
pub struct Limiters {
    /// Failed portal sign-ins (successful ones cost nothing).
    pub sign_in: RateLimiter,
    /// Failed user sign-ins with a TOTP code, per user name.
    pub codes: CodeLimiter,
    /// Agent registrations, every attempt.
    pub register: RateLimiter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_refill() {
        let l = RateLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(l.take(ip, t0).is_ok());
        }
        let RetryAfter(w) = l.take(ip, t0).unwrap_err();
        assert!(w > Duration::from_secs(5) && w <= Bucket::REFILL, "{w:?}");
        assert!(l.check(ip, t0).is_err());
        assert!(l.take(other, t0).is_ok(), "addresses are counted apart");
        assert!(l.take(ip, t0 + Duration::from_secs(3)).is_err());
        assert!(l.take(ip, t0 + Duration::from_secs(7)).is_ok());
        assert!(l.take(ip, t0 + Duration::from_secs(8)).is_err());
        // A long pause gives the whole burst back, never more.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..10 {
            assert!(l.take(ip, later).is_ok());
        }
        assert!(l.take(ip, later).is_err());
    }

    #[test]
    fn the_table_of_addresses_is_bounded() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_ADDRESSES as u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            for _ in 0..10 {
                let _ = l.take(ip, t0);
            }
        }
        let newcomer = IpAddr::from([10, 255, 255, 255]);
        assert!(l.take(newcomer, t0).is_err());
        // Once the others have refilled, they are forgotten and room is made.
        assert!(l.take(newcomer, t0 + Duration::from_secs(3600)).is_ok());
        assert!(l.buckets.lock().len() <= MAX_ADDRESSES);
    }

    #[test]
    fn codes_are_limited_per_name_within_a_window() {
        let l = CodeLimiter::default();
        let t0: Timestamp = "2026-01-10T12:00:00Z".parse().unwrap();
        let at = |mins: i64| t0 + SignedDuration::from_mins(mins);
        for i in 0..CodeLimiter::MAX_FAILURES {
            assert!(l.check("Alice", at(i64::from(i))).is_ok());
            l.fail(" alice", at(i64::from(i)));
        }
        // The fifth failure came at minute 4: refused until minute 15, whatever the case.
        let RetryAfter(w) = l.check("ALICE", at(5)).unwrap_err();
        assert_eq!(w, Duration::from_secs(10 * 60));
        assert!(l.check("bob", at(5)).is_ok(), "names are counted apart");
        assert!(l.check("alice", at(15)).is_ok());
        // A new window starts at the next failure.
        l.fail("alice", at(15));
        assert!(l.check("alice", at(16)).is_ok());
    }

    #[test]
    fn the_table_of_names_is_bounded() {
        let l = CodeLimiter::default();
        let t0: Timestamp = "2026-01-10T12:00:00Z".parse().unwrap();
        for _ in 0..CodeLimiter::MAX_FAILURES {
            l.fail("victim", t0);
        }
        for i in 0..CodeLimiter::MAX_NAMES {
            l.fail(
                &format!("made-up-{i}-{}", "x".repeat(200)),
                t0 + SignedDuration::from_secs(1),
            );
        }
        let map = l.windows.lock();
        assert!(map.len() <= CodeLimiter::MAX_NAMES);
        assert!(map
            .keys()
            .all(|k| k.chars().count() <= CodeLimiter::MAX_KEY));
        drop(map);
        // Once windows have ended, a newcomer replaces them rather than one in force.
        let later = t0 + SignedDuration::from_mins(16);
        l.fail("newcomer", later);
        assert_eq!(l.windows.lock().len(), 1);
    }
}
