//! `pala bench ...`: benchmark scenarios that print a summary and write a JSON result
//! under `perf/results/` (see perf/README.md).

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use pala_bench::poc::{self, PocParams, PocReport, SchemeKind};
use pala_bench::result::{self, BenchResult};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// Benchmark subcommands.
#[derive(Subcommand)]
pub enum BenchCmd {
    /// One proposer and V voters in this process over in-memory channels with a real
    /// one-way delay: the scenario of the Go proof of concept (blocks finalized per
    /// second at the proposer).
    Poc(PocArgs),
    /// Runs `poc` over K = 1, 2, 5, 10, 20 (V = 33) or V = 4, 33, 100, 300 (K = 10), one
    /// result file per point, for `tools/plot`.
    Sweep {
        /// `k` or `v`.
        #[arg(long)]
        over: String,
        /// Shared settings of every point (`--k` / `--voters` are overridden).
        #[command(flatten)]
        poc: PocArgs,
    },
    /// Real node processes on loopback (TLS, storage, HTTP) under a transaction load:
    /// finalized blocks/s and tx/s, finality latency, CPU per finalized block per role,
    /// peak RSS.
    Cluster(crate::bench_cluster::ClusterArgs),
}

/// Settings of `pala bench poc`.
#[derive(Args, Clone)]
pub struct PocArgs {
    /// Voters (V).
    #[arg(long, default_value_t = 33)]
    voters: usize,
    /// One-way delay of every message in ms (D).
    #[arg(long, default_value_t = 10)]
    delay_ms: u64,
    /// Outstanding unnotarized proposals (K).
    #[arg(long, default_value_t = 10)]
    k: u32,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Signature scheme: `insecure` (test scheme), `bls` (BLS12-381, as the node) or
    /// `none` (no signature checks: the cost of core and harness alone).
    #[arg(long, default_value = "insecure")]
    scheme: SchemeKind,
    /// Voter worker threads (default: cores - 1, at least 1; with BLS: cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Transaction bytes per block.
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// Directory of result files.
    #[arg(long, default_value = "perf/results")]
    out: PathBuf,
    /// Do not write a result file.
    #[arg(long)]
    no_save: bool,
    /// Print progress every second.
    #[arg(long)]
    progress: bool,
}

/// Runs a benchmark subcommand.
pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Poc(a) => run_poc(&a).map(|_| ()),
        BenchCmd::Sweep { over, poc } => {
            let points: Vec<PocArgs> = match over.as_str() {
                "k" => [1, 2, 5, 10, 20]
                    .into_iter()
                    .map(|k| PocArgs {
                        k,
                        voters: 33,
                        ..poc.clone()
                    })
                    .collect(),
                "v" => [4, 33, 100, 300]
                    .into_iter()
                    .map(|voters| PocArgs {
                        voters,
                        k: 10,
                        ..poc.clone()
                    })
                    .collect(),
                other => bail!("--over must be k or v, not {other:?}"),
            };
            for a in points {
                run_poc(&a)?;
            }
            Ok(())
        }
        BenchCmd::Cluster(a) => crate::bench_cluster::run(&a),
    }
}

/// Irreducible BLS cost of one block in the POC scenario, in µs, from the `min_sig`
/// medians of perf/crypto.md (2026-11-24): every voter verifies the proposal (1680),
/// signs its vote (201) and verifies the broadcast notarization (1520 at 100 voters,
/// about one verification); the proposer signs the proposal and its own aggregate seed
/// (2 x 201) and checks the V votes as one batch (2490 at V = 33, 3810 at 100,
/// 26700 at 1000; linear in between).
pub fn bls_floor_us_per_block(voters: usize) -> f64 {
    let batch = |v: f64| -> f64 {
        let pts = [(33.0, 2490.0), (100.0, 3810.0), (1000.0, 26_700.0)];
        let (a, b) = if v <= 100.0 {
            (pts[0], pts[1])
        } else {
            (pts[1], pts[2])
        };
        a.1 + (v - a.0) * (b.1 - a.1) / (b.0 - a.0)
    };
    let v = voters as f64;
    v * (1680.0 + 201.0 + 1520.0) + 2.0 * 201.0 + batch(v).max(0.0)
}

fn run_poc(a: &PocArgs) -> Result<PocReport> {
    let p = PocParams {
        voters: a.voters,
        delay_ms: a.delay_ms,
        k: a.k,
        seconds: a.seconds,
        warmup_seconds: a.warmup,
        scheme: a.scheme,
        workers: a.workers.unwrap_or_else(|| poc::default_workers(a.scheme)),
        payload_bytes: a.payload_bytes,
        sample_every: Duration::from_millis(if a.seconds >= 30.0 { 1000 } else { 250 }),
    };
    let mut res = BenchResult::new("poc");
    println!(
        "poc: 1 proposer, {} voters, one-way delay {} ms, K = {}, scheme {}, {} voter workers + 1 proposer thread, {} s (+{} s warm-up), load {:.2}",
        p.voters,
        p.delay_ms,
        p.k,
        p.scheme.name(),
        p.workers.min(p.voters),
        p.seconds,
        p.warmup_seconds,
        res.machine.load_before.unwrap_or(f64::NAN)
    );
    let progress = a.progress;
    let r = poc::run(&p, |line| {
        if progress {
            println!("  {line}");
        }
    })
    .map_err(anyhow::Error::msg)?;
    res.machine.load_after = pala_bench::stats::load_average();

    let ms = |us: u64| us as f64 / 1000.0;
    let bound = (p.delay_ms > 0).then(|| p.k as f64 * 1000.0 / (2.0 * p.delay_ms as f64));
    println!(
        "finalized blocks/s at the proposer: {:.1}{}",
        r.blocks_per_sec,
        bound.map_or(String::new(), |b| format!(
            " (bound K/2D = {b:.0}; {:.1} %)",
            r.blocks_per_sec / b * 100.0
        ))
    );
    println!(
        "finality latency (proposal to finalized, proposer): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(r.latency.quantile(0.5)),
        ms(r.latency.quantile(0.99)),
        ms(r.latency.max())
    );
    println!(
        "CPU: {:.2} s in {:.2} s ({:.0} % of one core), {:.1} µs per block (proposer thread {:.2} s, voter workers {:.2} s)",
        r.cpu_seconds,
        r.measured_seconds,
        r.cpu_seconds / r.measured_seconds * 100.0,
        r.cpu_per_block_us(),
        r.proposer_cpu_seconds,
        r.voters_cpu_seconds
    );
    let first = r.rss_series.first().map_or(0, |s| s.1);
    let last = r.rss_series.last().map_or(0, |s| s.1);
    println!(
        "memory: RSS {:.1} -> {:.1} MiB over the window (slope {:+.1} KiB/min), peak {:.1} MiB",
        first as f64 / 1024.0,
        last as f64 / 1024.0,
        r.rss_slope_kb_per_min(),
        r.peak_rss_kb as f64 / 1024.0
    );
    println!(
        "harness: {} messages ({:.0}/s), delivery lateness p50 {} µs p99 {} µs, {} rejected",
        r.messages,
        r.messages as f64 / r.measured_seconds,
        r.lateness.quantile(0.5),
        r.lateness.quantile(0.99),
        r.rejected
    );

    res.params.insert("voters".into(), json!(p.voters));
    res.params.insert("delay_ms".into(), json!(p.delay_ms));
    res.params.insert("k".into(), json!(p.k));
    res.params.insert("scheme".into(), json!(p.scheme.name()));
    res.params
        .insert("payload_bytes".into(), json!(p.payload_bytes));
    res.settings.insert("seconds".into(), json!(p.seconds));
    res.settings
        .insert("warmup_seconds".into(), json!(p.warmup_seconds));
    res.settings.insert("workers".into(), json!(p.workers));
    res.settings
        .insert("vote_check".into(), json!("batched (verify_votes)"));
    let f = &mut res.figures;
    f.insert("blocks_per_sec".into(), json!(r.blocks_per_sec));
    f.insert("finalized".into(), json!(r.finalized));
    f.insert("measured_seconds".into(), json!(r.measured_seconds));
    if let Some(b) = bound {
        f.insert("bound_blocks_per_sec".into(), json!(b));
    }
    f.insert("latency_p50_ms".into(), json!(ms(r.latency.quantile(0.5))));
    f.insert("latency_p99_ms".into(), json!(ms(r.latency.quantile(0.99))));
    f.insert("latency_mean_ms".into(), json!(r.latency.mean() / 1000.0));
    f.insert("latency_max_ms".into(), json!(ms(r.latency.max())));
    f.insert("cpu_seconds".into(), json!(r.cpu_seconds));
    f.insert("cpu_per_block_us".into(), json!(r.cpu_per_block_us()));
    f.insert("proposer_cpu_seconds".into(), json!(r.proposer_cpu_seconds));
    f.insert("voters_cpu_seconds".into(), json!(r.voters_cpu_seconds));
    f.insert("peak_rss_kb".into(), json!(r.peak_rss_kb));
    f.insert("rss_first_kb".into(), json!(first));
    f.insert("rss_last_kb".into(), json!(last));
    f.insert(
        "rss_slope_kb_per_min".into(),
        json!(r.rss_slope_kb_per_min()),
    );
    f.insert("rss_series".into(), json!(r.rss_series));
    f.insert(
        "messages_per_sec".into(),
        json!(r.messages as f64 / r.measured_seconds),
    );
    f.insert("lateness_p50_us".into(), json!(r.lateness.quantile(0.5)));
    f.insert("lateness_p99_us".into(), json!(r.lateness.quantile(0.99)));
    f.insert("rejected".into(), json!(r.rejected));
    f.insert(
        "voter_blocks_per_sec".into(),
        json!(r.voter_finalized as f64 / r.measured_seconds / p.voters as f64),
    );
    f.insert("proposer_counters".into(), json!(r.proposer_counters));
    if p.scheme == SchemeKind::Bls && r.finalized > 0 {
        let floor = bls_floor_us_per_block(p.voters);
        let ratio = r.cpu_per_block_us() / floor;
        f.insert("crypto_floor_us_per_block".into(), json!(floor));
        f.insert("cpu_to_crypto_floor_ratio".into(), json!(ratio));
        println!(
            "BLS: irreducible crypto {:.0} µs per block (perf/crypto.md), measured CPU {:.0} µs per block: ratio {:.2}",
            floor,
            r.cpu_per_block_us(),
            ratio
        );
        // The crypto.md medians come from another day and load; the same operations
        // timed now, right after the run, give a ratio within one run.
        let now = pala_bench::floor::measure_bls_floor(p.voters);
        let ratio_now = r.cpu_per_block_us() / now.floor_us;
        f.insert(
            "crypto_floor_measured_us_per_block".into(),
            json!(now.floor_us),
        );
        f.insert("crypto_sign_us".into(), json!(now.sign_us));
        f.insert("crypto_verify_us".into(), json!(now.verify_us));
        f.insert(
            "crypto_aggregate_check_us".into(),
            json!(now.aggregate_check_us),
        );
        f.insert(
            "crypto_notarization_check_us".into(),
            json!(now.notarization_check_us),
        );
        f.insert(
            "cpu_to_measured_crypto_floor_ratio".into(),
            json!(ratio_now),
        );
        println!(
            "BLS, timed after the run: sign {:.0} µs, verify {:.0} µs, notarization check {:.0} µs, {}-vote batch check {:.0} µs -> floor {:.0} µs per block: ratio {:.2}",
            now.sign_us,
            now.verify_us,
            now.notarization_check_us,
            p.voters,
            now.aggregate_check_us,
            now.floor_us,
            ratio_now
        );
    }

    if !a.no_save {
        let path = res.write_to(&a.out)?;
        println!("result: {}", path.display());
        result::print_change_against_previous(&a.out, &path);
    }
    Ok(r)
}
