//! Token buckets for the per-peer incoming limits (W-11e).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A token bucket refilled at `rate` tokens per second with a burst of one second.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: f64) -> Self {
        TokenBucket {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
    }

    /// Takes `n` tokens, going into debt if needed, and returns how long the caller must wait
    /// for the debt to be repaid. Debt instead of refusal lets a single message larger than
    /// the burst through, just later.
    pub(crate) fn take(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= n;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Takes `n` tokens only if available.
    pub(crate) fn try_take(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// Total incoming bytes per one-second window over all peers, shared by all executors.
#[derive(Debug)]
pub(crate) struct GlobalMeter {
    base: Instant,
    window: AtomicU64,
    current: AtomicU64,
    previous: AtomicU64,
}

impl GlobalMeter {
    pub(crate) fn new() -> Self {
        GlobalMeter {
            base: Instant::now(),
            window: AtomicU64::new(0),
            current: AtomicU64::new(0),
            previous: AtomicU64::new(0),
        }
    }

    /// Records `n` bytes and returns the recent rate (the larger of the last full window and
    /// the current one). Races between executors may misplace a few bytes across a window
    /// boundary, which is harmless for a threshold.
    pub(crate) fn add(&self, n: u64, now: Instant) -> u64 {
        let w = now.saturating_duration_since(self.base).as_secs();
        let seen = self.window.load(Ordering::Relaxed);
        if w != seen
            && self
                .window
                .compare_exchange(seen, w, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let last = self.current.swap(0, Ordering::Relaxed);
            self.previous
                .store(if w == seen + 1 { last } else { 0 }, Ordering::Relaxed);
        }
        let cur = self.current.fetch_add(n, Ordering::Relaxed) + n;
        cur.max(self.previous.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_delays_beyond_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0);
        for _ in 0..10 {
            assert_eq!(b.take(1.0, t0), Duration::ZERO);
        }
        let wait = b.take(1.0, t0);
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(101),
            "{wait:?}"
        );
        assert!(!b.try_take(1.0, t0));
        assert!(b.try_take(1.0, t0 + Duration::from_millis(300)));
    }

    #[test]
    fn meter_reports_recent_rate() {
        let m = GlobalMeter::new();
        let t0 = m.base;
        assert_eq!(m.add(100, t0), 100);
        assert_eq!(m.add(50, t0 + Duration::from_millis(1500)), 100);
        assert_eq!(m.add(10, t0 + Duration::from_millis(5000)), 10);
    }
}
