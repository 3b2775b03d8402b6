//! A histogram with fixed bucket bounds that stays lock-free on the hot path.
//!
//! `prometheus_client`'s own `Histogram` takes a mutex on every observation. The stages
//! observe from the verify pool, the storage thread, the application stage (once per
//! applied transaction) and the consensus loop, so the node keeps one atomic per bucket
//! instead and lets the crate write the exposition: [`EncodeMetric`] hands the bucket
//! counts to `MetricEncoder::encode_histogram`.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bounds for latencies in seconds.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.125,
    0.15, 0.175, 0.2, 0.225, 0.25, 0.275, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25,
    1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 30.0,
];

/// Bounds for batch sizes.
pub const SIZE_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A histogram with fixed upper bounds (in the unit of the metric). Clones share the
/// counts, so the registry holds one clone and the stage that observes another.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    /// One count per bound, and the last for observations above every bound.
    buckets: Vec<AtomicU64>,
    /// Sum in millionths of the unit, so that it is one integer add.
    sum_micro: AtomicU64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram(Arc::new(Inner {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
        }))
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let h = &self.0;
        let i = h
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(h.bounds.len());
        h.buckets[i].fetch_add(1, Ordering::Relaxed);
        h.sum_micro
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }

    /// Per-bucket (not cumulative) counts with their upper bounds, `+Inf` last.
    fn buckets(&self) -> Vec<(f64, u64)> {
        let h = &self.0;
        h.bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(h.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets = self.buckets();
        // The count is the sum of the buckets read, so the `+Inf` bucket always equals
        // `_count` even while observations land during the scrape.
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = self.0.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
