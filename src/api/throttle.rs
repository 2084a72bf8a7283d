//! Per-address token buckets on the endpoints anyone may call without a token
//! (`/oauth/token`, `/dbconnections/*`, `/lo/reset`): one client cannot take a tenant's run
//! slots or the server's bcrypt time by itself. Beyond its bucket, a client gets 429 with
//! `Retry-After`. IPv6 clients are counted per /64, which one host usually holds whole.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Addresses tracked at most; beyond it, full buckets are forgotten first, and if every one is
/// in use a new address is let through untracked rather than refused.
const MAX_TRACKED: usize = 100_000;

/// A bucket's size and how fast it refills.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests a second, sustained.
    pub per_second: f64,
    /// Requests at once after a quiet period.
    pub burst: f64,
}

impl Default for Rate {
    fn default() -> Self {
        Rate {
            per_second: 50.0,
            burst: 200.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets; `None` lets everything through (`serve --rate-limit-per-ip 0`).
#[derive(Debug, Default)]
pub struct Throttle {
    rate: Option<Rate>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Throttle {
    pub fn new(rate: Option<Rate>) -> Self {
        Throttle {
            rate,
            buckets: Mutex::default(),
        }
    }

    /// Takes one request from `ip`'s bucket at `now`, or answers how many seconds until the
    /// next one is allowed.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let refilled = |b: &Bucket| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            (b.tokens + elapsed * rate.per_second).min(rate.burst)
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let key = key(ip);
        if !buckets.contains_key(&key) && buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, b| refilled(b) < rate.burst);
            if buckets.len() >= MAX_TRACKED {
                return Ok(());
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        let tokens = refilled(bucket);
        if tokens < 1.0 {
            let wait = (1.0 - tokens) / rate.per_second;
            return Err(wait.ceil().max(1.0) as u64);
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        Ok(())
    }
}

/// Whether a path is one of the endpoints the buckets guard.
pub fn guarded(path: &str) -> bool {
    matches!(path, "/oauth/token" | "/lo/reset") || path.starts_with("/dbconnections/")
}

/// The bucket an address counts against: itself, or its /64 for IPv6.
fn key(ip: IpAddr) -> IpAddr {
    match crate::domain::protection::canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_empties_refills_and_counts_ipv6_per_64() {
        let t = Throttle::new(Some(Rate {
            per_second: 2.0,
            burst: 3.0,
        }));
        let start = Instant::now();
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(t.take(a, start), Ok(()));
        }
        assert_eq!(t.take(a, start), Err(1));
        assert_eq!(
            t.take("203.0.113.2".parse().unwrap(), start),
            Ok(()),
            "another address"
        );
        assert_eq!(
            t.take(a, start + Duration::from_millis(500)),
            Ok(()),
            "refilled one"
        );
        assert_eq!(t.take(a, start + Duration::from_millis(500)), Err(1));
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        for _ in 0..3 {
            t.take(v6("2001:db8:1:2::1"), start).unwrap();
        }
        assert_eq!(
            t.take(v6("2001:db8:1:2:ffff::9"), start),
            Err(1),
            "same /64"
        );
        assert_eq!(t.take(v6("2001:db8:1:3::1"), start), Ok(()));
        let off = Throttle::new(None);
        for _ in 0..1000 {
            assert_eq!(off.take(a, start), Ok(()));
        }
        assert!(
            guarded("/dbconnections/signup") && guarded("/oauth/token") && !guarded("/userinfo")
        );
    }
}
