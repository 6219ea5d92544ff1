//! The service's time. Everything a request or a timer decides by the time (scores' decision
//! time and records, outcomes' receipt, idempotency claims and when they count as abandoned,
//! the history sync's window; the approval SLAs and escalations next) reads it from one
//! [`Clock`] in the application's state, so tests and replays set the time instead of
//! sleeping. Production runs on [`SystemClock`].

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// Where the time comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// The time as the store keeps it: RFC 3339 in UTC with microseconds.
    fn now_text(&self) -> String {
        text(self.now())
    }
}

/// The clock as the application state holds it.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until it is set or moved on: for tests and replays.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock(Mutex::new(at)))
    }

    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().expect("not poisoned") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("not poisoned")
    }
}

/// `t` as the store keeps times: RFC 3339 in UTC with microseconds, so that texts compare as
/// the times do.
pub fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(chrono::Duration::seconds(61));
        assert_eq!(clock.now_text(), "2026-03-01T08:01:01.000000Z");
    }

    #[test]
    fn stored_times_compare_as_the_times_do() {
        let a = DateTime::parse_from_rfc3339("2026-03-01T08:00:00.5Z").unwrap();
        let b = DateTime::parse_from_rfc3339("2026-03-01T08:00:01Z").unwrap();
        assert!(text(a.with_timezone(&Utc)) < text(b.with_timezone(&Utc)));
    }
}
