//! The pool's clock: the one source of "now" for timers, sleeps and session
//! timeouts.
//!
//! Every job reads time through [`Context::now`](super::Context::now) or
//! [`Runtime::now`](super::Runtime::now), never `Instant::now()` directly, so
//! that a pool can run on a [`VirtualClock`]: the bot test kit advances it by
//! hours in milliseconds, and every timer, `dc.sleep` and keep-alive follows.
//!
//! Owns: the notion of the current instant. Must not: sleep, or know what the
//! time is used for. Measurements of real elapsed time (benchmarks, the Lua
//! watchdog's time budget, hashing throughput) keep using `Instant::now()`:
//! they measure the machine, not the schedule.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Where a pool reads the time from.
#[derive(Clone, Default)]
pub enum Clock {
    /// The system's monotonic clock (the normal case).
    #[default]
    System,
    /// A clock that only moves when told to (tests, `dclua test`).
    Virtual(VirtualClock),
}

impl Clock {
    /// The current instant on this clock.
    #[inline]
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Virtual(v) => v.now(),
        }
    }

    /// Whether this clock only moves when advanced.
    pub fn is_virtual(&self) -> bool {
        matches!(self, Clock::Virtual(_))
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Clock::System => f.write_str("Clock::System"),
            Clock::Virtual(v) => write!(f, "Clock::Virtual(+{:?})", v.elapsed()),
        }
    }
}

/// A manually advanced clock; cheap to clone, every clone sees the same time.
///
/// Invariant: it never goes backwards ([`VirtualClock::advance`] only adds).
#[derive(Clone)]
pub struct VirtualClock {
    inner: Rc<VirtualInner>,
}

struct VirtualInner {
    start: Instant,
    /// The wall-clock time when the clock was made (seconds since the Unix
    /// epoch), so that virtual wall time can be told ([`VirtualClock::unix_time`]).
    wall_start: f64,
    now: Cell<Instant>,
}

impl VirtualClock {
    /// A clock that starts at the current real instant and then stands still.
    pub fn new() -> VirtualClock {
        let start = Instant::now();
        let wall_start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        VirtualClock { inner: Rc::new(VirtualInner { start, wall_start, now: Cell::new(start) }) }
    }

    /// The clock's current instant.
    #[inline]
    pub fn now(&self) -> Instant {
        self.inner.now.get()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.inner.now.set(self.inner.now.get() + by);
    }

    /// Moves the clock forward to `to`; an instant in the past changes nothing.
    pub fn advance_to(&self, to: Instant) {
        if to > self.inner.now.get() {
            self.inner.now.set(to);
        }
    }

    /// The virtual wall-clock time: seconds since the Unix epoch, moving
    /// with the clock (what `os.time()` says in a state of a virtual pool).
    pub fn unix_time(&self) -> f64 {
        self.inner.wall_start + self.elapsed().as_secs_f64()
    }

    /// How far the clock was advanced since it was made.
    pub fn elapsed(&self) -> Duration {
        self.now() - self.inner.start
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        VirtualClock::new()
    }
}

impl fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtualClock(+{:?})", self.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_advanced() {
        let v = VirtualClock::new();
        let c = Clock::Virtual(v.clone());
        let t0 = c.now();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(c.now(), t0);
        v.advance(Duration::from_secs(3600));
        assert_eq!(c.now(), t0 + Duration::from_secs(3600));
        v.advance_to(t0);
        assert_eq!(v.elapsed(), Duration::from_secs(3600));
    }

    #[test]
    fn system_clock_moves() {
        let c = Clock::System;
        let t0 = c.now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.now() > t0);
        assert!(!c.is_virtual());
    }
}
