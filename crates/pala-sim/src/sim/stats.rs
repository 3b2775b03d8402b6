//! Figures collected during a run.

/// Latencies in 1 ms buckets (fixed memory however long the run).
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; 60_001],
            count: 0,
        }
    }
}

impl Histogram {
    /// Records one value (clamped to 60 s).
    pub fn record(&mut self, ms: u64) {
        self.buckets[ms.min(60_000) as usize] += 1;
        self.count += 1;
    }
    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Adds another histogram.
    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
    }
    /// The `p` quantile (0..=1), 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count - 1) as f64 * p).round() as u64;
        let mut seen = 0;
        for (ms, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen > rank {
                return ms as u64;
            }
        }
        60_000
    }
}

/// Per-node figures collected during a run.
#[derive(Clone, Debug, Default)]
pub struct NodeStats {
    /// Finalized blocks (this incarnation and earlier ones).
    pub finalized: u64,
    /// Finalization latencies from proposal (ms), for blocks this run saw proposed.
    pub latencies: Histogram,
}
