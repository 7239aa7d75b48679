//! The node's clock. Lateness, due dates, ordering and every figure judged "now" trust only
//! this clock; tests inject a fixed or stepping one so that weekends and holidays can be
//! exercised deterministically, and demos run a fast one.
//!
//! Reading the system clock is the only effect in this crate: it sits behind the trait so the
//! rules themselves stay pure functions of the instant they are given.

use std::fmt;
use std::sync::Mutex;

use crate::time::Instant;

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> Instant;
}

/// The system's UTC clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        chrono::Utc::now()
    }
}

/// A clock that reads what it was last set to: for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<Instant>);

impl ManualClock {
    pub fn new(at: Instant) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: Instant) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The system clock shifted by a fixed amount: for demos and process-level tests that need
/// days to pass (`MOTCUA_SIMULATED_CLOCK_OFFSET_SECS` in the binary), never for production.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock(chrono::Duration);

impl OffsetClock {
    pub fn new(offset: chrono::Duration) -> Self {
        Self(offset)
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Instant {
        chrono::Utc::now() + self.0
    }
}

/// A clock that runs `rate` times faster than the system clock from the moment it is made
/// (shifted by `offset` too): for demos that compress days into minutes
/// (`--simulated-clock-rate` in the binary), never for production.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    real_start: Instant,
    simulated_start: Instant,
    rate: f64,
}

impl ScaledClock {
    pub fn new(offset: chrono::Duration, rate: f64) -> Self {
        let now = chrono::Utc::now();
        Self {
            real_start: now,
            simulated_start: now + offset,
            rate,
        }
    }

    /// A clock that reads `start` now and runs `rate` times faster from there: a node placed
    /// at a fixed instant (`--simulated-clock-start`), so a test or a demo sees the same
    /// weekday and hour whatever the day it runs on.
    pub fn starting_at(start: Instant, rate: f64) -> Self {
        Self {
            real_start: chrono::Utc::now(),
            simulated_start: start,
            rate,
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Instant {
        let real = chrono::Utc::now() - self.real_start;
        let micros = real.num_microseconds().unwrap_or(i64::MAX) as f64 * self.rate;
        self.simulated_start + chrono::Duration::microseconds(micros as i64)
    }
}
