//! `pala bench poc`: the proof-of-concept scenario in one process, in wall-clock time.
//!
//! One primary proposer and V voters run the real core ([`pala_core::Node`]) and the real
//! verification layer ([`MessageVerifier`]) with either the insecure test scheme or BLS.
//! They are connected hub-and-spoke (W-1) by crossbeam channels; every message is
//! delivered one one-way delay after it was sent, measured on the wall clock.
//!
//! Shape, chosen to be fast on a 2-core machine:
//! - the proposer has its own thread; the voters are spread over a few worker threads,
//!   each owning many voter cores (no thread per voter, no thread per message);
//! - each receiving thread keeps a binary heap of delivery deadlines and sleeps on its
//!   channel until shortly before the earliest one, then polls for the last 100 µs
//!   ([`SPIN_BEFORE_DEADLINE`]), so a delay costs no thread and a delivery no wake-up
//!   latency;
//! - the proposer checks each run of votes as one batch
//!   ([`MessageVerifier::verify_votes`]), as the node does;
//! - a broadcast is one `Arc<Message>` sent once per worker, shared by all its voters;
//! - everything a worker's voters send while handling one round goes to the proposer as
//!   one batch (one channel operation instead of V);
//! - every core is driven through pala-core's driver kit; `RequestPayload` is answered
//!   at once with the configured payload (no block time): the scenario measures
//!   consensus, not block filling. Records are reported durable at once and dropped:
//!   there is no storage in this scenario (see `pala bench cluster`).
//!
//! Finality is counted at the proposer, as the Go proof of concept does; latency is from
//! the proposal's broadcast to its finalization at the proposer.

mod link;
mod proposer;
mod setup;
mod voters;

pub use setup::{NoCrypto, NoCryptoSigner};

use crate::stats::{self, Histogram};
use crossbeam_channel::unbounded;
use link::{
    Batch, Env, Link, Shared, ThreadReport, ToWorker, PHASE_MEASURE, PHASE_STOP, PHASE_WARMUP,
};
use pala_core::driver::Driver;
use pala_types::{NodeId, Signer};
use proposer::{Proposer, ProposerHost};
use setup::Setup;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use voters::{Worker, WorkerHost};

/// Network id of the benchmark committee.
const NETWORK_ID: u64 = 7;
/// Longest a thread sleeps without looking at the phase flag.
const MAX_IDLE: Duration = Duration::from_millis(20);

/// Which signature scheme the nodes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemeKind {
    /// [`InsecureTestScheme`]: linear hash tags (one hash per check, aggregates
    /// included), for protocol throughput without crypto cost.
    Insecure,
    /// BLS12-381 (`pala_crypto::BlsScheme`, the node's scheme).
    Bls,
    /// [`NoCrypto`]: every signature is valid. Not a protocol configuration: it shows
    /// what the core and this harness cost on their own.
    None,
}

impl SchemeKind {
    /// Name used on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            SchemeKind::Insecure => "insecure",
            SchemeKind::Bls => "bls",
            SchemeKind::None => "none",
        }
    }
}

impl std::str::FromStr for SchemeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "insecure" => Ok(SchemeKind::Insecure),
            "bls" => Ok(SchemeKind::Bls),
            "none" => Ok(SchemeKind::None),
            other => Err(format!("unknown scheme {other:?} (insecure|bls|none)")),
        }
    }
}

/// Parameters of a run.
#[derive(Clone, Debug)]
pub struct PocParams {
    /// Voters (V).
    pub voters: usize,
    /// One-way delay of every message, in milliseconds (D).
    pub delay_ms: u64,
    /// Outstanding unnotarized proposals (K).
    pub k: u32,
    /// Measured seconds (after the warm-up).
    pub seconds: f64,
    /// Seconds run before measuring (start-up, readiness gate, caches).
    pub warmup_seconds: f64,
    /// Signature scheme.
    pub scheme: SchemeKind,
    /// Worker threads for the voters (the proposer has its own thread).
    pub workers: usize,
    /// Bytes of transactions per block (one transaction; 0 = empty blocks).
    pub payload_bytes: usize,
    /// Resident-memory sampling period.
    pub sample_every: Duration,
}

impl PocParams {
    /// The POC row of docs/protocol.md section 11: 33 voters, 10 ms, K = 10, insecure scheme.
    pub fn poc() -> PocParams {
        PocParams {
            voters: 33,
            delay_ms: 10,
            k: 10,
            seconds: 10.0,
            warmup_seconds: 1.0,
            scheme: SchemeKind::Insecure,
            workers: default_workers(SchemeKind::Insecure),
            payload_bytes: 0,
            sample_every: Duration::from_millis(500),
        }
    }
}

/// Voter worker threads: one per core beyond the proposer's, at least one; with BLS
/// one per core, since the proposer thread then mostly waits for the voters.
pub fn default_workers(scheme: SchemeKind) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match scheme {
        SchemeKind::Bls => cores,
        _ => cores.saturating_sub(1).max(1),
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct PocReport {
    /// Blocks finalized at the proposer during the measured window.
    pub finalized: u64,
    /// Length of the measured window (s).
    pub measured_seconds: f64,
    /// `finalized / measured_seconds`.
    pub blocks_per_sec: f64,
    /// Finality latency at the proposer, broadcast of the proposal to finalization (µs).
    pub latency: Histogram,
    /// How late messages were handled after their delivery deadline (µs): the cost of the
    /// harness itself (wake-up latency plus queueing behind other work).
    pub lateness: Histogram,
    /// Process CPU time (user + system) during the window (s).
    pub cpu_seconds: f64,
    /// CPU time of the proposer thread during the window (s).
    pub proposer_cpu_seconds: f64,
    /// CPU time of all voter workers during the window (s).
    pub voters_cpu_seconds: f64,
    /// Peak resident set size of the process (KiB).
    pub peak_rss_kb: u64,
    /// Resident set size over the window: (seconds since the window opened, KiB).
    pub rss_series: Vec<(f64, u64)>,
    /// Messages handed to a core during the window.
    pub messages: u64,
    /// Messages the verifier rejected (should be 0).
    pub rejected: u64,
    /// Blocks finalized at the voters during the window, summed over voters.
    pub voter_finalized: u64,
    /// Selected counters of the proposer's core at the end.
    pub proposer_counters: BTreeMap<String, u64>,
}

impl PocReport {
    /// CPU time per finalized block (µs).
    pub fn cpu_per_block_us(&self) -> f64 {
        if self.finalized == 0 {
            0.0
        } else {
            self.cpu_seconds * 1e6 / self.finalized as f64
        }
    }

    /// Slope of resident memory over the window in KiB per minute, ignoring the first
    /// sample: near zero when memory is flat.
    pub fn rss_slope_kb_per_min(&self) -> f64 {
        let pts: Vec<(f64, f64)> = self
            .rss_series
            .iter()
            .skip(1)
            .map(|&(t, kb)| (t, kb as f64))
            .collect();
        stats::slope(&pts) * 60.0
    }
}

/// Runs the scenario; `progress` receives a one-line summary about once a second.
pub fn run(p: &PocParams, mut progress: impl FnMut(&str)) -> Result<PocReport, String> {
    if p.voters == 0 || p.k == 0 || p.workers == 0 {
        return Err("voters, k and workers must be at least 1".into());
    }
    let setup = Setup::new(p);
    let delay = Duration::from_millis(p.delay_ms);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        phase: AtomicU8::new(PHASE_WARMUP),
        finalized: AtomicU64::new(0),
    });
    let workers = p.workers.min(p.voters);
    let (to_proposer, proposer_rx) = unbounded::<Env<Batch>>();
    let proposer_id = setup.proposer.node_id();
    let mut route = HashMap::new();
    let mut links = Vec::new();
    let mut worker_threads = Vec::new();
    for w in 0..workers {
        let (tx, rx) = unbounded::<Env<ToWorker>>();
        links.push(Link { tx, delay, seq: 0 });
        let mine: Vec<&Arc<dyn Signer>> = setup.voters.iter().skip(w).step_by(workers).collect();
        for (local, s) in mine.iter().enumerate() {
            route.insert(s.node_id(), (w, local));
        }
        let worker = Worker {
            shared: shared.clone(),
            nodes: mine.iter().map(|s| setup.node(s)).collect(),
            drivers: mine.iter().map(|_| Driver::new()).collect(),
            rx,
            link: Link {
                tx: to_proposer.clone(),
                delay,
                seq: 0,
            },
            host: WorkerHost {
                ids: mine.iter().map(|s| s.node_id()).collect(),
                proposer: proposer_id,
                verifiers: mine.iter().map(|_| setup.verifier()).collect(),
                current: 0,
                outbox: Vec::new(),
                report: ThreadReport::default(),
                phase: PHASE_WARMUP,
            },
        };
        worker_threads.push(
            std::thread::Builder::new()
                .name(format!("poc-voters-{w}"))
                .spawn(move || worker.run())
                .map_err(|e| e.to_string())?,
        );
    }
    drop(to_proposer);
    let voter_ids: Vec<NodeId> = setup.voters.iter().map(|s| s.node_id()).collect();
    let proposer = Proposer {
        shared: shared.clone(),
        node: setup.node(&setup.proposer),
        driver: Driver::new(),
        verifier: setup.verifier(),
        rx: proposer_rx,
        vote_run: Vec::new(),
        host: ProposerHost {
            shared: shared.clone(),
            links,
            route,
            payload: if p.payload_bytes > 0 {
                vec![vec![0xab; p.payload_bytes]]
            } else {
                Vec::new()
            },
            proposed_at: HashMap::new(),
            report: ThreadReport::default(),
            phase: PHASE_WARMUP,
        },
    };
    let proposer_thread = std::thread::Builder::new()
        .name("poc-proposer".into())
        .spawn(move || proposer.run(voter_ids))
        .map_err(|e| e.to_string())?;

    std::thread::sleep(Duration::from_secs_f64(p.warmup_seconds.max(0.0)));
    let cpu0 = stats::process_cpu();
    let t0 = Instant::now();
    shared.phase.store(PHASE_MEASURE, Ordering::Relaxed);
    let mut rss_series = vec![(0.0, stats::rss_kb())];
    let end = t0 + Duration::from_secs_f64(p.seconds.max(0.001));
    let mut last_print = t0;
    let mut last_fin = shared.finalized.load(Ordering::Relaxed);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep(p.sample_every.min(end - now));
        let t = t0.elapsed().as_secs_f64();
        let rss = stats::rss_kb();
        rss_series.push((t, rss));
        if last_print.elapsed() >= Duration::from_secs(1) {
            let fin = shared.finalized.load(Ordering::Relaxed);
            let dt = last_print.elapsed().as_secs_f64();
            progress(&format!(
                "t={t:5.1}s  {:8.1} blocks/s  rss {:.1} MiB",
                (fin - last_fin) as f64 / dt,
                rss as f64 / 1024.0
            ));
            last_fin = fin;
            last_print = Instant::now();
        }
    }
    shared.phase.store(PHASE_STOP, Ordering::Relaxed);
    let measured = t0.elapsed().as_secs_f64();
    let cpu = stats::process_cpu().saturating_sub(cpu0);

    let prop = proposer_thread
        .join()
        .map_err(|_| "proposer thread panicked".to_string())?;
    let mut report = PocReport {
        finalized: prop.finalized,
        measured_seconds: measured,
        blocks_per_sec: prop.finalized as f64 / measured,
        latency: prop.latency.clone(),
        lateness: prop.lateness.clone(),
        cpu_seconds: cpu.as_secs_f64(),
        proposer_cpu_seconds: prop.cpu_end.saturating_sub(prop.cpu_start).as_secs_f64(),
        peak_rss_kb: stats::peak_rss_kb(),
        rss_series,
        messages: prop.messages,
        rejected: prop.rejected,
        proposer_counters: prop.counters.clone(),
        ..PocReport::default()
    };
    for t in worker_threads {
        let w = t.join().map_err(|_| "voter worker panicked".to_string())?;
        report.voters_cpu_seconds += w.cpu_end.saturating_sub(w.cpu_start).as_secs_f64();
        report.lateness.merge(&w.lateness);
        report.messages += w.messages;
        report.rejected += w.rejected;
        report.voter_finalized += w.finalized;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_run_finalizes_blocks() {
        let p = PocParams {
            voters: 4,
            delay_ms: 1,
            k: 2,
            seconds: 0.5,
            warmup_seconds: 0.2,
            scheme: SchemeKind::Insecure,
            workers: 2,
            payload_bytes: 16,
            sample_every: Duration::from_millis(100),
        };
        let r = run(&p, |_| {}).unwrap();
        assert!(r.finalized > 10, "finalized {}", r.finalized);
        assert_eq!(r.rejected, 0);
        assert!(r.latency.count() > 0);
        assert!(r.voter_finalized > 0);
        assert!(r.rss_series.len() >= 2);
        assert!(r.cpu_seconds > 0.0);
    }
}
