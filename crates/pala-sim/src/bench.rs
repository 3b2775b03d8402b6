//! Virtual-time throughput and finality latency (`pala sim bench`): one proposer and V
//! voters, fixed one-way delay, zero processing time.

use crate::sim::{Sim, SimConfig};
use pala_core::CoreConfig;

/// Parameters of a simulated benchmark.
#[derive(Clone, Debug)]
pub struct BenchParams {
    /// Voters.
    pub voters: usize,
    /// One-way delay in ms.
    pub delay_ms: u64,
    /// K.
    pub k: u32,
    /// Simulated seconds.
    pub seconds: u64,
}

/// Results of a simulated benchmark.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Blocks finalized at the proposer per simulated second.
    pub blocks_per_sec: f64,
    /// Median finality latency at the proposer (simulated ms from proposal).
    pub proposer_p50_ms: u64,
    /// 99th percentile at the proposer.
    pub proposer_p99_ms: u64,
    /// Median finality latency at the voters.
    pub voter_p50_ms: u64,
    /// 99th percentile at the voters.
    pub voter_p99_ms: u64,
    /// Blocks finalized at the proposer.
    pub finalized: u64,
    /// Events simulated.
    pub events: u64,
    /// (blocks finalized at the proposer, resident KiB of this process) at each tenth of the run.
    pub rss_samples: Vec<(u64, u64)>,
    /// Sizes of the proposer core's buffers at the end (must not grow with run length).
    pub core_buffers: std::collections::BTreeMap<&'static str, usize>,
}

/// Resident set size of this process in KiB (Linux; 0 elsewhere).
pub fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Runs the benchmark scenario.
pub fn run(p: &BenchParams) -> Result<BenchReport, String> {
    let mut cfg = SimConfig::new(1, 1, p.voters);
    cfg.core = CoreConfig {
        k: p.k,
        first_proposal_delay_ms: 10,
        ..CoreConfig::default()
    };
    cfg.delay_ms = p.delay_ms;
    cfg.payload_bytes = 0;
    cfg.retain_finalized = Some(64);
    let mut sim = Sim::new(cfg);
    let end = p.seconds * 1000;
    let mut rss_samples = Vec::new();
    let step = (end / 10).max(1);
    let mut t = 0;
    while t < end {
        t = (t + step).min(end);
        if !sim.run_until(t) {
            return Err(format!("violation: {:?}", sim.violations));
        }
        rss_samples.push((sim.stats[0].finalized, resident_kib()));
    }
    let core_buffers = sim.node(0).map(|n| n.buffer_sizes()).unwrap_or_default();
    let finalized = sim.stats[0].finalized;
    let prop = &sim.stats[0].latencies;
    let mut voters = crate::sim::Histogram::default();
    for s in &sim.stats[1..] {
        voters.merge(&s.latencies);
    }
    Ok(BenchReport {
        blocks_per_sec: finalized as f64 / p.seconds as f64,
        proposer_p50_ms: prop.percentile(0.5),
        proposer_p99_ms: prop.percentile(0.99),
        voter_p50_ms: voters.percentile(0.5),
        voter_p99_ms: voters.percentile(0.99),
        finalized,
        events: sim.events_processed,
        rss_samples,
        core_buffers,
    })
}
