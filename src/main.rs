//! `pala`: the PaLa validator command line.

mod bench_cli;
mod bench_cluster;
mod bench_regions;
mod node_cli;

use anyhow::{bail, Result};

/// mimalloc: many small allocations on the hot paths, across threads.
#[global_allocator]
static GLOBAL: pala_node::Allocator = pala_node::Allocator;
use clap::{Parser, Subcommand};
use pala_sim::{bench, scenarios, sweep};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "pala",
    version,
    about = "PaLa BFT consensus: validator node, simulator and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Deterministic simulation of a cluster running the real protocol core.
    Sim {
        #[command(subcommand)]
        cmd: SimCmd,
    },
    /// Benchmarks that write machine-readable results under perf/results.
    Bench {
        #[command(subcommand)]
        cmd: bench_cli::BenchCmd,
    },
    #[command(flatten)]
    Node(node_cli::NodeCmd),
}

#[derive(Subcommand)]
enum SimCmd {
    /// Runs one named scenario with live progress.
    Run {
        /// Scenario name (see `pala sim list`).
        #[arg(long, default_value = "normal")]
        scenario: String,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the full event trace.
        #[arg(long)]
        trace: bool,
    },
    /// Lists the scenarios.
    List,
    /// Runs the randomized sweep over many seeds (all cores), checking safety on every
    /// event and liveness after healing.
    Sweep {
        /// Number of seeds.
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Also change committees every few dozen blocks (section 6).
        #[arg(long)]
        reconfig: bool,
    },
    /// Virtual-time throughput and finality latency of one proposer and V voters.
    Bench {
        /// Voters.
        #[arg(long, default_value_t = 33)]
        voters: usize,
        /// One-way delay (ms).
        #[arg(long, default_value_t = 10)]
        delay_ms: u64,
        /// Outstanding unnotarized proposals.
        #[arg(long, default_value_t = 10)]
        k: u32,
        /// Simulated seconds.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Sim { cmd } => sim(cmd),
        Cmd::Bench { cmd } => bench_cli::run(cmd),
        Cmd::Node(cmd) => node_cli::run(cmd),
    }
}

fn sim(cmd: SimCmd) -> Result<()> {
    match cmd {
        SimCmd::List => {
            for (name, about) in scenarios::SCENARIOS {
                println!("{name:<16} {about}");
            }
            Ok(())
        }
        SimCmd::Run {
            scenario,
            seed,
            trace,
        } => run_scenario(&scenario, seed, trace),
        SimCmd::Sweep {
            seeds,
            from,
            reconfig,
        } => run_sweep(seeds, from, reconfig),
        SimCmd::Bench {
            voters,
            delay_ms,
            k,
            seconds,
        } => {
            let t = Instant::now();
            let r = bench::run(&bench::BenchParams {
                voters,
                delay_ms,
                k,
                seconds,
            })
            .map_err(anyhow::Error::msg)?;
            println!("simulated: 1 proposer, {voters} voters, one-way delay {delay_ms} ms, K = {k}, {seconds} s");
            println!(
                "finalized blocks per simulated second: {:.1}",
                r.blocks_per_sec
            );
            println!(
                "finality latency at the proposer: p50 {} ms, p99 {} ms (4 one-way delays = {} ms)",
                r.proposer_p50_ms,
                r.proposer_p99_ms,
                4 * delay_ms
            );
            println!(
                "finality latency at the voters:   p50 {} ms, p99 {} ms (5 one-way delays = {} ms)",
                r.voter_p50_ms,
                r.voter_p99_ms,
                5 * delay_ms
            );
            let rss: Vec<String> = r
                .rss_samples
                .iter()
                .map(|(b, kib)| format!("{b}:{}MiB", kib / 1024))
                .collect();
            println!("resident memory by finalized blocks: {}", rss.join(" "));
            println!("proposer core buffers at the end: {:?}", r.core_buffers);
            println!(
                "({} blocks finalized, {} events, {:.1} s wall)",
                r.finalized,
                r.events,
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

fn run_scenario(name: &str, seed: u64, trace: bool) -> Result<()> {
    let t = Instant::now();
    let progress: pala_sim::sim::ProgressFn = Box::new(|line: &str| println!("{line}"));
    let out = scenarios::run_with_progress(name, seed, trace, Some(progress))
        .map_err(anyhow::Error::msg)?;
    let sim = &out.sim;
    if trace {
        for l in &sim.trace {
            println!("{l}");
        }
    }
    println!(
        "scenario {name}, seed {seed}: {} nodes, {} ms simulated, {} events",
        sim.len(),
        sim.now(),
        sim.events_processed
    );
    for i in 0..sim.len() {
        let role = if sim.is_proposer(i) {
            "proposer"
        } else {
            "voter"
        };
        match sim.node(i) {
            Some(n) => println!(
                "  node {i:>2} {role:<8} {:<6} epoch {:?} head {:?} finalized {:?} (height {})",
                if sim.is_honest(i) { "honest" } else { "faulty" },
                n.epoch(),
                n.head(),
                n.finalized(),
                n.finalized_block().height()
            ),
            None => println!("  node {i:>2} {role:<8} crashed"),
        }
    }
    if !sim.rejected.is_empty() {
        println!("rejected messages: {:?}", sim.rejected);
    }
    println!("wall time {:.2} s", t.elapsed().as_secs_f64());
    match out.failure {
        None => {
            println!("1 passed, 0 failed");
            Ok(())
        }
        Some(f) => {
            println!("FAILED: {f}");
            println!("replay: {}", sim.replay_hint(name));
            bail!("scenario failed")
        }
    }
}

/// One seed's recovery after healing: (ms until finality resumed, ms until every honest
/// node caught up, epochs the frontier advanced, seed).
type SeedRecovery = (Option<u64>, Option<u64>, u32, u64);

/// Recovery after healing over the sweep's seeds.
fn print_recovery(r: &[SeedRecovery]) {
    let figure = |name: &str, pick: &dyn Fn(&SeedRecovery) -> Option<u64>| {
        let mut ms: Vec<(u64, u64)> = r.iter().filter_map(|x| Some((pick(x)?, x.3))).collect();
        ms.sort_unstable();
        let q = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)].0;
        if let Some(&(max, seed)) = ms.last() {
            println!(
                "{name} after healing: p50 {} ms, p99 {} ms, max {max} ms (seed {seed})",
                q(0.5),
                q(0.99)
            );
        }
    };
    figure("finality resumed", &|x| x.0);
    figure("every honest node caught up", &|x| x.1);
    if let Some((_, _, e, s)) = r.iter().max_by_key(|x| (x.2, std::cmp::Reverse(x.3))) {
        println!("most epochs the honest frontier advanced after healing: {e} (seed {s})");
    }
}

fn run_sweep(seeds: u64, from: u64, reconfig: bool) -> Result<()> {
    let min_changes = std::sync::atomic::AtomicU32::new(u32::MAX);
    let recoveries = std::sync::Mutex::new(Vec::new());
    let t = Instant::now();
    let done = AtomicU64::new(0);
    let failures: Vec<(u64, String)> = (from..from + seeds)
        .into_par_iter()
        .filter_map(|seed| {
            let r = sweep::run_seed_mode(seed, reconfig);
            min_changes.fetch_min(r.sessions_changed, Ordering::Relaxed);
            recoveries
                .lock()
                .expect("recovery figures")
                .push((r.recovery_ms, r.caught_up_ms, r.epochs_after_heal, seed));
            if reconfig && r.sessions_changed < 5 && r.failure.is_none() {
                println!("seed {seed}: only {} committee changes completed by every honest node", r.sessions_changed);
            }
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(1000) {
                eprintln!("... {n}/{seeds} seeds ({:.0} s)", t.elapsed().as_secs_f64());
            }
            r.failure.map(|f| {
                let scenario = if reconfig { "random-reconfig" } else { "random" };
                println!("seed {seed} FAILED: {f}\n  replay: cargo run --release -- sim run --scenario {scenario} --seed {seed} --trace");
                (seed, f)
            })
        })
        .collect();
    println!(
        "sweep of seeds {from}..{} took {:.1} s on {} threads",
        from + seeds,
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    print_recovery(&recoveries.into_inner().expect("recovery figures"));
    if reconfig {
        println!(
            "fewest committee changes completed by every honest node in one seed: {}",
            min_changes.load(Ordering::Relaxed)
        );
    }
    println!(
        "{} passed, {} failed",
        seeds - failures.len() as u64,
        failures.len()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{} seeds failed", failures.len())
    }
}
