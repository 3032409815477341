//! A token bucket: the global bandwidth limit of downloads (and uploads).
//!
//! Tokens are bytes. The bucket fills at `rate` bytes per second up to
//! `burst` bytes; a transfer asks [`TokenBucket::grant`] what it may read
//! or write now and, when it got nothing, how long to wait (the transfer's
//! job arms a timer for that long instead of spinning). A rate of 0 means unlimited,
//! the default.
//!
//! Time is passed in, never read here, so that the pool's clock (virtual in
//! tests) drives it. Integer arithmetic in nanosecond-bytes keeps the
//! bucket exact over days of uptime.

use std::time::{Duration, Instant};

const NANOS: u128 = 1_000_000_000;

/// A byte-rate limiter; see the module documentation.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Bytes per second; 0 = unlimited.
    rate: u64,
    /// The most bytes that may be taken at once after a quiet period.
    burst: u64,
    /// Tokens, in byte-nanoseconds-per-second units (bytes × 10⁹), so that
    /// refilling by `elapsed_ns × rate` loses nothing to rounding.
    scaled: u128,
    last: Instant,
}

impl TokenBucket {
    /// A bucket of `rate` bytes per second (0: unlimited), starting full.
    /// The burst is a tenth of a second of the rate, at least 64 KiB, so
    /// that a transfer's writes stay large.
    pub fn new(rate: u64, now: Instant) -> TokenBucket {
        let burst = (rate / 10).max(64 * 1024);
        TokenBucket { rate, burst, scaled: u128::from(burst) * NANOS, last: now }
    }

    /// The rate in bytes per second (0: unlimited).
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Changes the rate; the tokens already there are kept (up to the new
    /// burst).
    pub fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate;
        self.burst = (rate / 10).max(64 * 1024);
        self.scaled = self.scaled.min(u128::from(self.burst) * NANOS);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.last = self.last.max(now);
        let cap = u128::from(self.burst) * NANOS;
        self.scaled =
            self.scaled.saturating_add(elapsed.saturating_mul(u128::from(self.rate))).min(cap);
    }

    /// Takes up to `want` bytes; returns how many may be moved now (0 when
    /// the bucket is empty).
    pub fn take(&mut self, want: usize, now: Instant) -> usize {
        if self.rate == 0 {
            return want;
        }
        self.refill(now);
        let have = usize::try_from(self.scaled / NANOS).unwrap_or(usize::MAX);
        let grant = want.min(have);
        self.scaled -= grant as u128 * NANOS;
        grant
    }

    /// Gives back bytes taken but not moved (a short read).
    pub fn give_back(&mut self, bytes: usize) {
        if self.rate != 0 {
            let cap = u128::from(self.burst) * NANOS;
            self.scaled = self.scaled.saturating_add(bytes as u128 * NANOS).min(cap);
        }
    }

    /// What a transfer that wants `want` bytes may move now, and how long it
    /// should wait before it asks again.
    ///
    /// Once at least `quantum` of the bytes are there, it gets all it wants
    /// (up to what is there) and a wait of what it got at the full rate: its
    /// own pace. Otherwise it gets nothing and the wait for `quantum` bytes.
    /// Several transfers share one bucket this way without one starving the
    /// others: one that was just served sits out its pace while the others
    /// take their turn, instead of coming back at once for every crumb the
    /// bucket refills with (shares are even when the pool polls them in any
    /// order, and 2:1 at worst, see the test). Unlimited: everything, no
    /// wait.
    pub fn grant(&mut self, want: usize, quantum: usize, now: Instant) -> (usize, Duration) {
        if self.rate == 0 {
            return (want, Duration::ZERO);
        }
        let wait = self.ready_in(want.min(quantum), now);
        if !wait.is_zero() {
            return (0, wait);
        }
        let got = self.take(want, now);
        (got, self.pace(got))
    }

    /// How long `bytes` take at the rate (zero when unlimited).
    pub fn pace(&self, bytes: usize) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let ns = (bytes as u128 * NANOS).div_ceil(u128::from(self.rate));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// How long until at least `min` bytes (capped at the burst) can be
    /// taken; zero when they can now.
    pub fn ready_in(&mut self, min: usize, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        self.refill(now);
        let need = u128::from((min as u64).clamp(1, self.burst)) * NANOS;
        if self.scaled >= need {
            return Duration::ZERO;
        }
        let ns = (need - self.scaled).div_ceil(u128::from(self.rate));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_grants_everything() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, t0);
        assert_eq!(b.take(usize::MAX, t0), usize::MAX);
        assert_eq!(b.ready_in(1 << 30, t0), Duration::ZERO);
    }

    #[test]
    fn the_rate_holds_over_a_simulated_minute() {
        let t0 = Instant::now();
        let rate = 1_000_000;
        let mut b = TokenBucket::new(rate, t0);
        let mut now = t0;
        let mut moved = 0u64;
        // A transfer that always wants 256 KiB and sleeps as told.
        while now < t0 + Duration::from_secs(60) {
            let got = b.take(256 * 1024, now);
            moved += got as u64;
            if got == 0 {
                let wait = b.ready_in(64 * 1024, now);
                assert!(wait > Duration::ZERO);
                now += wait;
            }
        }
        let burst = (rate / 10).max(64 * 1024);
        let expected = 60 * rate + burst;
        assert!(moved.abs_diff(expected) <= 64 * 1024, "moved {moved}, expected ~{expected}");
    }

    #[test]
    fn no_transfer_starves_another() {
        // Both wait as told, A wins every tie (the worst order a pool could
        // poll them in). With `take` alone, A (coming back at once) took
        // every crumb the bucket refilled with and B got nothing; now B gets
        // a third at worst, half when ties go either way.
        let t0 = Instant::now();
        let rate = 6 << 20;
        let mut b = TokenBucket::new(rate, t0);
        let mut next = [t0, t0];
        let mut moved = [0u64; 2];
        while next[0].min(next[1]) < t0 + Duration::from_secs(60) {
            let who = usize::from(next[1] < next[0]);
            let now = next[who];
            let (got, wait) = b.grant(256 * 1024, 64 * 1024, now);
            moved[who] += got as u64;
            next[who] = now + wait.max(Duration::from_micros(1));
        }
        let share = moved[1] as f64 / (moved[0] + moved[1]) as f64;
        assert!(share > 0.3, "the polite transfer got {share:.2} of the bytes: {moved:?}");
        let expected = 60 * rate;
        assert!(moved[0] + moved[1] <= expected + (1 << 20), "{moved:?}");
    }

    #[test]
    fn waits_are_exact_and_give_back_refunds() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1_000_000, t0);
        assert_eq!(b.take(1 << 20, t0), 100_000);
        assert_eq!(b.take(1, t0), 0);
        assert_eq!(b.ready_in(10_000, t0), Duration::from_millis(10));
        assert_eq!(b.take(10_000, t0 + Duration::from_millis(10)), 10_000);
        b.give_back(4_000);
        assert_eq!(b.take(10_000, t0 + Duration::from_millis(10)), 4_000);
        // A clock that goes back (it never should) takes nothing away.
        assert_eq!(b.take(10, t0), 0);
    }

    #[test]
    fn changing_the_rate_keeps_the_tokens_within_the_new_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10_000_000, t0);
        b.set_rate(100_000, t0);
        assert_eq!(b.take(usize::MAX, t0), 64 * 1024);
        b.set_rate(0, t0);
        assert_eq!(b.take(5, t0), 5);
    }
}
