//! `pala bench cluster`: the node as operators run it — separate processes on loopback
//! with TLS, storage and the HTTP API — under a transaction load. The cluster machinery
//! is the one of `pala demo` (`pala_node::demo`); this adds the result file.

use anyhow::Result;
use clap::Args;
use pala_bench::result::BenchResult;
use pala_node::demo::{self, ClusterReport, DemoArgs, NodeFigures};
use serde_json::json;
use std::path::PathBuf;

/// Settings of `pala bench cluster`.
#[derive(Args, Clone)]
pub struct ClusterArgs {
    /// Cluster shape, load and duration (the options of `pala demo`).
    #[command(flatten)]
    pub cluster: DemoArgs,
    /// Directory of result files.
    #[arg(long, default_value = "perf/results")]
    pub out: PathBuf,
    /// Do not write a result file.
    #[arg(long)]
    pub no_save: bool,
}

/// Runs the cluster benchmark, prints the summary and writes `cluster_*.json`.
pub fn run(a: &ClusterArgs) -> Result<()> {
    let mut res = BenchResult::new("cluster");
    let r = demo::run_cluster(&a.cluster)?;
    res.machine.load_after = pala_bench::stats::load_average();
    demo::print_summary(&r);
    fill(&mut res, &a.cluster, &r);
    for role in ["primary", "proposer", "voter"] {
        if let Some(ms) = res.figure(&format!("cpu_ms_per_block_{role}")) {
            println!("  mean CPU per finalized block, {role:<8}: {ms:.2} ms");
        }
    }
    if !a.no_save {
        let path = res.write_to(&a.out)?;
        println!("result: {}", path.display());
        pala_bench::result::print_change_against_previous(&a.out, &path);
    }
    Ok(())
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = xs.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| sum / n as f64)
}

fn max_rss<'a>(nodes: impl Iterator<Item = &'a NodeFigures>) -> u64 {
    nodes.map(|n| n.peak_rss_kib).max().unwrap_or(0)
}

fn fill(res: &mut BenchResult, a: &DemoArgs, r: &ClusterReport) {
    let ms = |s: Option<f64>| s.map(|s| s * 1000.0);
    res.params.insert("voters".into(), json!(a.voters));
    res.params.insert("proposers".into(), json!(a.proposers));
    res.params.insert("k".into(), json!(a.k));
    res.params
        .insert("offered_tx_per_sec".into(), json!(a.rate));
    res.params
        .insert("block_wait_ms".into(), json!(a.block_wait_ms));
    res.settings.insert("seconds".into(), json!(a.duration));
    if let Some(after) = a.kill_primary_after {
        res.settings
            .insert("kill_primary_after_s".into(), json!(after));
    }
    let f = &mut res.figures;
    f.insert("blocks_per_sec".into(), json!(r.blocks_per_s));
    f.insert("tx_per_sec".into(), json!(r.tx_per_s));
    f.insert("submitted".into(), json!(r.submitted));
    f.insert("finalized_txs".into(), json!(r.finalized_txs));
    f.insert("load_seconds".into(), json!(r.load_seconds));
    f.insert("startup_seconds".into(), json!(r.startup_seconds));
    f.insert("tx_latency_p50_ms".into(), json!(ms(r.tx_latency_p50_s)));
    f.insert("tx_latency_p99_ms".into(), json!(ms(r.tx_latency_p99_s)));
    f.insert(
        "block_latency_p50_ms".into(),
        json!(ms(r.block_latency_p50_s)),
    );
    f.insert(
        "block_latency_p99_ms".into(),
        json!(ms(r.block_latency_p99_s)),
    );
    for role in ["primary", "proposer", "voter"] {
        if let Some(v) = mean(r.role(role).map(|n| n.cpu_ms_per_block)) {
            f.insert(format!("cpu_ms_per_block_{role}"), json!(v));
            f.insert(format!("peak_rss_kb_{role}"), json!(max_rss(r.role(role))));
        }
    }
    f.insert(
        "cpu_ms_per_block_cluster".into(),
        json!(r.nodes.iter().map(|n| n.cpu_ms_per_block).sum::<f64>()),
    );
    f.insert("peak_rss_kb".into(), json!(max_rss(r.nodes.iter())));
    f.insert("nodes".into(), json!(r.nodes));
}
