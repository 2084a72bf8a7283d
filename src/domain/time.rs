//! Time: one timestamp type (jiff's `Timestamp`, an instant with nanosecond precision) and the
//! clock the store and the service layer read it from, so that tests can move time.
//!
//! Auth0 writes dates as RFC 3339 in UTC with milliseconds (`2026-03-01T10:00:00.000Z`);
//! that is the only format customdb writes. What it reads (a connection's
//! `cache_invalidate_before`, a stored date) may carry any offset or precision: it is parsed,
//! never compared as text.

use std::sync::{Arc, Mutex};

pub use jiff::Timestamp;

/// Where the current time comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until it is moved (tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn at(start: Timestamp) -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(start)))
    }

    /// Moves the clock forward by `secs` seconds.
    pub fn advance(&self, secs: i64) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now = now
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap_or(*now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The clock everything uses unless told otherwise.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// `t` as Auth0 writes dates: RFC 3339, UTC, milliseconds (truncated, so a date written
/// never lies after the instant it stands for).
pub fn format(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// An RFC 3339 time with any offset and precision, or why it is not one.
pub fn parse(text: &str) -> Result<Timestamp, String> {
    text.parse::<Timestamp>().map_err(|e| {
        format!("{text:?} is not an RFC 3339 time such as 2026-03-01T10:00:00.000Z ({e})")
    })
}

/// The system clock's seconds since the Unix epoch (token and ticket expiries).
pub fn unix_now() -> i64 {
    Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_as_auth0_and_reads_any_offset() {
        let t = parse("2026-03-01T12:00:00+02:00").unwrap();
        assert_eq!(format(t), "2026-03-01T10:00:00.000Z");
        assert_eq!(
            format(parse("2026-03-01T10:00:00.123956Z").unwrap()),
            "2026-03-01T10:00:00.123Z"
        );
        assert!(parse("2026-03-01").is_err(), "a date without a time");
        assert!(parse("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(parse("2026-03-01T10:00:00Z").unwrap());
        assert_eq!(format(clock.now()), "2026-03-01T10:00:00.000Z");
        clock.advance(61);
        assert_eq!(format(clock.now()), "2026-03-01T10:01:01.000Z");
    }
}
