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
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx]
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
    if !sim.run_until(end) {
        return Err(format!("violation: {:?}", sim.violations));
    }
    let finalized = sim.stats[0].finalized;
    let mut prop = sim.stats[0].latencies.clone();
    let mut voters: Vec<u64> = sim.stats[1..]
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
    Ok(BenchReport {
        blocks_per_sec: finalized as f64 / p.seconds as f64,
        proposer_p50_ms: percentile(&mut prop, 0.5),
        proposer_p99_ms: percentile(&mut prop, 0.99),
        voter_p50_ms: percentile(&mut voters, 0.5),
        voter_p99_ms: percentile(&mut voters, 0.99),
        finalized,
        events: sim.events_processed,
    })
}
