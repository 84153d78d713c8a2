//! Attempts limited per client address: failed portal sign-ins and agent
//! registrations, the two calls a stranger can make with a guessed secret.
//!
//! A token bucket per IP address, in memory: [`Bucket::BURST`] attempts at once, then
//! one more every [`Bucket::REFILL`]. An address out of attempts gets 429 with
//! `Retry-After` and the code `TooManyAttempts`. Secrets are 256-bit random, so this
//! is not what keeps them safe; it keeps a script from filling the log and the
//! catalogue's lookups, and a typo-ing operator is not locked out for long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};
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

/// The server's limiters.
#[derive(Default)]
pub struct Limiters {
    /// Failed portal sign-ins (successful ones cost nothing).
    pub sign_in: RateLimiter,
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
}
