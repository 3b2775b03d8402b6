//! The node's two clocks.
//!
//! Consensus timers (heartbeat, voter timeout, sync period, the proposer's block wait)
//! run on [`Ticks`]: milliseconds from an `Instant` taken when the node starts. That clock
//! is monotonic, so stepping the system clock (an operator's `date -s`, an NTP jump, a VM
//! resumed from a snapshot) neither freezes nor fires a timer.
//!
//! The wall clock ([`WallClock`]) is read only where the spec asks for a time that means
//! something to other nodes: the timestamp a proposer offers for its block (the core
//! stamps `max(parent timestamp, offered)`, so a clock stepped back cannot make block time
//! go backwards) and, through block timestamps, the application's deduplication window.
//! It is a trait so that a test can step it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as a source the node can be given.
pub trait WallClock: Send + Sync {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The system clock shifted by an offset that can be changed while the node runs: what a
/// careless operator does to one process's clock, reproducible in a test.
#[derive(Debug, Default)]
pub struct SteppedClock {
    offset_ms: AtomicI64,
}

impl SteppedClock {
    /// A clock that reads as the system clock until stepped.
    pub fn new() -> Arc<SteppedClock> {
        Arc::new(SteppedClock::default())
    }

    /// Moves the clock by `delta_ms` (negative: backwards).
    pub fn step(&self, delta_ms: i64) {
        self.offset_ms.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl WallClock for SteppedClock {
    fn now_ms(&self) -> u64 {
        let base = SystemClock.now_ms() as i64;
        base.saturating_add(self.offset_ms.load(Ordering::SeqCst))
            .max(0) as u64
    }
}

/// The consensus clock: milliseconds since the node started, never backwards.
#[derive(Clone, Copy, Debug)]
pub struct Ticks {
    origin: Instant,
}

impl Ticks {
    /// A clock whose tick 0 is now.
    pub fn start() -> Ticks {
        Ticks {
            origin: Instant::now(),
        }
    }

    /// The current tick.
    pub fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// The `Instant` of tick `t` (for sleeping until a deadline).
    pub fn instant_of(&self, t: u64) -> Instant {
        self.origin + std::time::Duration::from_millis(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepping_the_wall_clock_leaves_ticks_alone() {
        let wall = SteppedClock::new();
        let ticks = Ticks::start();
        let (w0, t0) = (wall.now_ms(), ticks.now());
        wall.step(-300_000);
        let (w1, t1) = (wall.now_ms(), ticks.now());
        assert!(w1 + 299_000 < w0, "the wall clock went back: {w0} -> {w1}");
        assert!(t1 >= t0, "ticks never go back: {t0} -> {t1}");
        wall.step(600_000);
        assert!(wall.now_ms() > w0 + 299_000);
        assert!(
            ticks.now() < t1 + 1_000,
            "a forward step is not a jump in ticks"
        );
    }
}
