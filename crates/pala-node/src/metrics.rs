//! Counters, gauges and histograms of the node, rendered in the Prometheus text format.
//! Everything is atomics so any stage can update without locks on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::status::StatusView;
use pala_core::Role;

/// A histogram with fixed upper bounds (in the unit of the metric).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths of the unit, so it stays an integer.
    sum_micro: AtomicU64,
}

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

impl Histogram {
    /// An empty histogram.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut acc = 0;
        for (i, b) in self.bounds.iter().enumerate() {
            acc += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {acc}");
        }
        acc += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {acc}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {}", self.count());
    }
}

/// Estimates quantile `q` from cumulative Prometheus buckets `(upper bound, count)` by
/// linear interpolation inside the bucket (what `histogram_quantile` does).
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut prev = (0.0, 0u64);
    for &(le, c) in buckets {
        if c as f64 >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let in_bucket = (c - prev.1) as f64;
            let frac = if in_bucket > 0.0 {
                (rank - prev.1 as f64) / in_bucket
            } else {
                0.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, c);
    }
    Some(prev.0)
}

/// All metrics of one node.
#[derive(Debug)]
pub struct Metrics {
    /// Votes that reached the core.
    pub votes_in: AtomicU64,
    /// Notarizations that reached the core.
    pub notarizations_in: AtomicU64,
    /// Proposals that reached the core.
    pub proposals_in: AtomicU64,
    /// Clock messages and clock notarizations that reached the core.
    pub clock_in: AtomicU64,
    /// Messages that failed signature verification.
    pub verify_failures: AtomicU64,
    /// Sizes of verification batches.
    pub verify_batch: Histogram,
    /// Votes per aggregate-verified vote batch at the primary proposer.
    pub vote_batch: Histogram,
    /// Seconds per fdatasync batch.
    pub fsync: Histogram,
    /// Records per storage batch.
    pub storage_batch: Histogram,
    /// Finalized blocks applied.
    pub finalized_blocks: AtomicU64,
    /// Transactions applied.
    pub finalized_txs: AtomicU64,
    /// Transactions rejected by the application when applied (duplicates, invalid).
    pub txs_skipped: AtomicU64,
    /// Submitted-to-applied latency of transactions submitted through this node.
    pub tx_latency: Histogram,
    /// Block timestamp to finalization on this node.
    pub block_latency: Histogram,
    /// Transactions accepted by the HTTP API.
    pub txs_submitted: AtomicU64,
    /// Transactions refused by the HTTP API (full pool, invalid, too large).
    pub txs_refused: AtomicU64,
    /// Outputs dropped because the network command queue was full.
    pub net_queue_full: AtomicU64,
    /// Forwarding requests to proposers that failed.
    pub forward_failures: AtomicU64,
    /// This node's signed messages held back by doppelganger protection.
    pub doppelganger_held: AtomicU64,
    /// Highest head height a connected committee member announced (readiness target).
    pub peer_head_height: AtomicU64,
    /// Core event counters (snapshot).
    pub core_counters: Mutex<Vec<(String, u64)>>,
    /// Channel depths (snapshot): name -> depth.
    pub channel_depths: Mutex<Vec<(&'static str, usize)>>,
    /// Peers connected.
    pub peers: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            votes_in: AtomicU64::new(0),
            notarizations_in: AtomicU64::new(0),
            proposals_in: AtomicU64::new(0),
            clock_in: AtomicU64::new(0),
            verify_failures: AtomicU64::new(0),
            verify_batch: Histogram::new(SIZE_BOUNDS),
            vote_batch: Histogram::new(SIZE_BOUNDS),
            fsync: Histogram::new(LATENCY_BOUNDS),
            storage_batch: Histogram::new(SIZE_BOUNDS),
            finalized_blocks: AtomicU64::new(0),
            finalized_txs: AtomicU64::new(0),
            txs_skipped: AtomicU64::new(0),
            tx_latency: Histogram::new(LATENCY_BOUNDS),
            block_latency: Histogram::new(LATENCY_BOUNDS),
            txs_submitted: AtomicU64::new(0),
            txs_refused: AtomicU64::new(0),
            net_queue_full: AtomicU64::new(0),
            forward_failures: AtomicU64::new(0),
            peer_head_height: AtomicU64::new(0),
            doppelganger_held: AtomicU64::new(0),
            core_counters: Mutex::new(Vec::new()),
            channel_depths: Mutex::new(Vec::new()),
            peers: AtomicI64::new(0),
        }
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Metrics {
    /// Renders every metric. `net` is the network layer's snapshot.
    pub fn render(
        &self,
        st: &StatusView,
        net: &[(String, i64)],
        mempool: (usize, usize),
    ) -> String {
        let mut o = String::with_capacity(8192);
        let mut g = |name: &str, help: &str, kind: &str, v: String| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        g(
            "pala_peers",
            "Connected peers.",
            "gauge",
            st.peers.len().to_string(),
        );
        g(
            "pala_epoch_session",
            "Session of the local epoch.",
            "gauge",
            st.epoch.0.to_string(),
        );
        g(
            "pala_epoch",
            "Epoch number within the session.",
            "gauge",
            st.epoch.1.to_string(),
        );
        g(
            "pala_head_height",
            "Height of the freshest notarized head.",
            "gauge",
            st.head_height.to_string(),
        );
        g(
            "pala_finalized_height",
            "Height of the finalized head.",
            "gauge",
            st.finalized_height.to_string(),
        );
        g(
            "pala_applied_height",
            "Height applied by the application.",
            "gauge",
            st.applied_height.to_string(),
        );
        g(
            "pala_producing",
            "1 while this node is the producing primary proposer.",
            "gauge",
            (st.producing as u8).to_string(),
        );
        g(
            "pala_ready",
            "1 when caught up.",
            "gauge",
            (st.ready as u8).to_string(),
        );
        g(
            "pala_votes_received_total",
            "Verified votes handed to the core.",
            "counter",
            get(&self.votes_in).to_string(),
        );
        g(
            "pala_notarizations_received_total",
            "Verified notarizations handed to the core.",
            "counter",
            get(&self.notarizations_in).to_string(),
        );
        g(
            "pala_proposals_received_total",
            "Verified proposals handed to the core.",
            "counter",
            get(&self.proposals_in).to_string(),
        );
        g(
            "pala_clock_received_total",
            "Verified clock messages and clock notarizations.",
            "counter",
            get(&self.clock_in).to_string(),
        );
        g(
            "pala_finalized_blocks_total",
            "Finalized blocks applied.",
            "counter",
            get(&self.finalized_blocks).to_string(),
        );
        g(
            "pala_finalized_txs_total",
            "Finalized transactions applied.",
            "counter",
            get(&self.finalized_txs).to_string(),
        );
        g(
            "pala_txs_skipped_total",
            "Finalized transactions the application skipped (duplicate or invalid).",
            "counter",
            get(&self.txs_skipped).to_string(),
        );
        g(
            "pala_txs_submitted_total",
            "Transactions accepted by the API.",
            "counter",
            get(&self.txs_submitted).to_string(),
        );
        g(
            "pala_txs_refused_total",
            "Transactions refused by the API.",
            "counter",
            get(&self.txs_refused).to_string(),
        );
        g(
            "pala_forward_failures_total",
            "Failed forwards of transactions to proposers.",
            "counter",
            get(&self.forward_failures).to_string(),
        );
        g(
            "pala_doppelganger_held_total",
            "Own votes, clock messages and proposals not sent: start-up wait or key live elsewhere.",
            "counter",
            get(&self.doppelganger_held).to_string(),
        );
        g(
            "pala_mempool_txs",
            "Transactions in the mempool.",
            "gauge",
            mempool.0.to_string(),
        );
        g(
            "pala_mempool_bytes",
            "Bytes in the mempool.",
            "gauge",
            mempool.1.to_string(),
        );
        let _ = writeln!(
            o,
            "# HELP pala_role 1 for the role this node has in the session of its local epoch.\n\
             # TYPE pala_role gauge"
        );
        for r in Role::ALL.map(Role::as_str) {
            let _ = writeln!(o, "pala_role{{role=\"{r}\"}} {}", (st.role == r) as u8);
        }
        let _ = writeln!(o, "# HELP pala_dropped_messages_total Messages dropped, by reason.\n# TYPE pala_dropped_messages_total counter");
        let _ = writeln!(
            o,
            "pala_dropped_messages_total{{reason=\"verify_failed\"}} {}",
            get(&self.verify_failures)
        );
        let _ = writeln!(
            o,
            "pala_dropped_messages_total{{reason=\"net_command_queue_full\"}} {}",
            get(&self.net_queue_full)
        );
        for (name, v) in net {
            for reason in [
                "unknown_types",
                "rate_limited_drops",
                "oversize_outbound",
                "unroutable",
            ] {
                if name == reason {
                    let _ = writeln!(o, "pala_dropped_messages_total{{reason=\"{reason}\"}} {v}");
                }
            }
        }
        for (name, v) in self
            .core_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if name.starts_with("proposal_")
                || name.starts_with("vote_")
                    && !matches!(name.as_str(), "votes_received" | "votes_sent")
                || name.starts_with("notarization_")
                || name.starts_with("clock_") && name != "clock_messages_sent"
            {
                let _ = writeln!(
                    o,
                    "pala_dropped_messages_total{{reason=\"core_{name}\"}} {v}"
                );
            }
        }
        let _ = writeln!(o, "# HELP pala_core_events_total Events counted by the protocol core.\n# TYPE pala_core_events_total counter");
        for (name, v) in self
            .core_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(o, "pala_core_events_total{{event=\"{name}\"}} {v}");
        }
        let _ = writeln!(o, "# HELP pala_channel_depth Messages waiting in a channel between stages.\n# TYPE pala_channel_depth gauge");
        for (name, d) in self
            .channel_depths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(o, "pala_channel_depth{{channel=\"{name}\"}} {d}");
        }
        let mut hs = Vec::new();
        let mut closes = Vec::new();
        let mut other = Vec::new();
        for (name, v) in net {
            if let Some(r) = name.strip_prefix("handshake_failures") {
                hs.push((r.to_string(), *v));
            } else if let Some(r) = name.strip_prefix("connections_closed") {
                closes.push((r.to_string(), *v));
            } else if matches!(name.as_str(), "handshakes_in_progress" | "inbound") {
                let _ = writeln!(o, "# TYPE pala_net_{name} gauge\npala_net_{name} {v}");
            } else if name != "peers" {
                other.push((name.clone(), *v));
            }
        }
        let _ = writeln!(o, "# HELP pala_handshake_failures_total Failed handshakes, by reason.\n# TYPE pala_handshake_failures_total counter");
        for (labels, v) in hs {
            let _ = writeln!(o, "pala_handshake_failures_total{labels} {v}");
        }
        let _ = writeln!(o, "# HELP pala_connections_closed_total Closed connections, by reason.\n# TYPE pala_connections_closed_total counter");
        for (labels, v) in closes {
            let _ = writeln!(o, "pala_connections_closed_total{labels} {v}");
        }
        for (name, v) in other {
            let _ = writeln!(
                o,
                "# TYPE pala_net_{name}_total counter\npala_net_{name}_total {v}"
            );
        }
        self.verify_batch.render(
            &mut o,
            "pala_verify_batch_size",
            "Messages per signature verification batch.",
        );
        self.vote_batch.render(
            &mut o,
            "pala_vote_batch_size",
            "Votes per aggregate-checked vote batch (PV-3).",
        );
        self.fsync.render(
            &mut o,
            "pala_fsync_seconds",
            "Duration of one storage group commit (write + fdatasync).",
        );
        self.storage_batch.render(
            &mut o,
            "pala_storage_batch_records",
            "Records per storage group commit.",
        );
        self.tx_latency.render(
            &mut o,
            "pala_tx_finality_latency_seconds",
            "From submission to this node until the transaction is applied.",
        );
        self.block_latency.render(
            &mut o,
            "pala_block_finality_latency_seconds",
            "From the block's timestamp until it is finalized on this node.",
        );
        o
    }
}

/// Parses the cumulative buckets of histogram `name` out of a Prometheus text page.
pub fn parse_buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, v) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, v.trim().parse().ok()?))
        })
        .collect()
}

/// Reads a plain metric value out of a Prometheus text page.
pub fn parse_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_buckets() {
        let h = Histogram::new(LATENCY_BOUNDS);
        for _ in 0..90 {
            h.observe(0.04);
        }
        for _ in 0..10 {
            h.observe(0.9);
        }
        let mut s = String::new();
        h.render(&mut s, "x", "x");
        let b = parse_buckets(&s, "x");
        let p50 = quantile(&b, 0.5).unwrap();
        assert!(p50 > 0.03 && p50 <= 0.05, "{p50}");
        let p99 = quantile(&b, 0.99).unwrap();
        assert!(p99 > 0.75 && p99 <= 1.0, "{p99}");
        assert_eq!(parse_value(&s, "x_count"), Some(100.0));
    }
}
