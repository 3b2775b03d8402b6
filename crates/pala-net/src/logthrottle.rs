//! At most one log line per source per period: a client failing hundreds of handshakes a
//! second must not turn into hundreds of WARN lines a second (the counters still see every
//! failure).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sources remembered at most; beyond it, entries older than the period are forgotten and,
/// if none is, every new source shares one entry (a spray of addresses still logs once a
/// period).
const MAX_SOURCES: usize = 4096;

#[derive(Debug)]
struct Entry {
    last: Instant,
    suppressed: u64,
}

/// Decides which events of a source are logged.
#[derive(Debug)]
pub(crate) struct LogThrottle<K> {
    period: Duration,
    sources: Mutex<HashMap<Option<K>, Entry>>,
}

impl<K: Hash + Eq + Clone> LogThrottle<K> {
    pub(crate) fn new(period: Duration) -> Self {
        LogThrottle {
            period,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(n)` when an event of `source` at `now` should be logged, `n` being how many of
    /// its events were suppressed since its last line; `None` to stay silent.
    pub(crate) fn admit(&self, source: &K, now: Instant) -> Option<u64> {
        let mut m = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = Some(source.clone());
        if !m.contains_key(&key) && m.len() >= MAX_SOURCES {
            let period = self.period;
            m.retain(|_, e| now.saturating_duration_since(e.last) < period);
            if m.len() >= MAX_SOURCES {
                key = None;
            }
        }
        match m.get_mut(&key) {
            None => {
                m.insert(
                    key,
                    Entry {
                        last: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
            Some(e) if now.saturating_duration_since(e.last) >= self.period => {
                e.last = now;
                Some(std::mem::take(&mut e.suppressed))
            }
            Some(e) => {
                e.suppressed += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_source_per_period_with_the_suppressed_count() {
        let t = LogThrottle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(t.admit(&1, at(0)), Some(0));
        // ~920 failures a second from one client: silent for the rest of the period.
        for i in 1..=9_000 {
            assert_eq!(t.admit(&1, at(i)), None);
        }
        // Another source is not silenced by the first.
        assert_eq!(t.admit(&2, at(5)), Some(0));
        assert_eq!(t.admit(&1, at(10_000)), Some(9_000));
        assert_eq!(t.admit(&1, at(10_001)), None);
        assert_eq!(t.admit(&1, at(30_000)), Some(1));
    }

    #[test]
    fn many_sources_share_one_entry_instead_of_growing_without_bound() {
        let t = LogThrottle::new(Duration::from_secs(10));
        let now = Instant::now();
        let logged = (0..3 * MAX_SOURCES as u32)
            .filter(|i| t.admit(i, now).is_some())
            .count();
        assert_eq!(logged, MAX_SOURCES + 1);
        assert!(t.sources.lock().unwrap().len() <= MAX_SOURCES + 1);
    }
}
