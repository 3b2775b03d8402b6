//! `pala bench cluster`: the node as operators run it — separate processes on loopback
//! with TLS, storage and the HTTP API — under a transaction load. The cluster machinery
//! is the one of `pala demo` (`pala_node::demo`); this adds the result file and, with
//! `--link-delay-ms` and friends, emulated wide-area links between the processes.

use crate::bench_regions::{self, RegionMatrix};
use anyhow::{bail, Context, Result};
use clap::Args;
use pala_bench::link::{LinkProfile, Relay, RelayStats};
use pala_bench::result::BenchResult;
use pala_node::demo::{self, ClusterLayout, ClusterReport, DemoArgs, NodeFigures};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
    /// Emulated one-way delay of every link to and from a proposer, in milliseconds
    /// (a user-space relay in front of each proposer; `pala_bench::link`).
    #[arg(long)]
    pub link_delay_ms: Option<u64>,
    /// Extra delay per chunk drawn from 0..=jitter, in milliseconds (never reordering).
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Bandwidth of each link direction in Mbit/s (unlimited if absent).
    #[arg(long)]
    pub bandwidth_mbps: Option<u64>,
    /// Probability per chunk of a loss, emulated as a 200 ms retransmission delay.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// A region latency matrix (JSON, e.g. perf/regions/aws-10.json): node i, proposers
    /// first, is placed in region i mod R and every link gets the one-way delay between
    /// its two regions (instead of --link-delay-ms).
    #[arg(long, value_name = "FILE", conflicts_with = "link_delay_ms")]
    pub regions: Option<PathBuf>,
}

impl ClusterArgs {
    fn link(&self) -> Option<LinkProfile> {
        let emulated = self.link_delay_ms.is_some()
            || self.regions.is_some()
            || self.jitter_ms > 0
            || self.bandwidth_mbps.is_some()
            || self.loss > 0.0;
        emulated.then(|| LinkProfile {
            delay: Duration::from_millis(self.link_delay_ms.unwrap_or(0)),
            jitter: Duration::from_millis(self.jitter_ms),
            bandwidth_bps: self.bandwidth_mbps.map(|m| m * 1_000_000),
            loss: self.loss,
            loss_spike: Duration::from_millis(200),
        })
    }
}

/// Puts a relay in front of every proposer and points the genesis at the relays, so
/// every connection (voter to proposer, proposer to proposer) crosses one emulated link.
/// With a region matrix each node dials from its own loopback address and each relay
/// delays a connection by the dialer's region.
fn start_relays(
    layout: &ClusterLayout<'_>,
    profile: LinkProfile,
    regions: Option<&RegionMatrix>,
    stats: &mut Vec<Arc<RelayStats>>,
) -> Result<Vec<Relay>> {
    let mut genesis = std::fs::read_to_string(&layout.genesis)
        .with_context(|| format!("reading {}", layout.genesis.display()))?;
    if regions.is_some() {
        for (n, config) in layout.configs.iter().enumerate() {
            bench_regions::set_source_address(config, n)?;
        }
    }
    let mut relays = Vec::new();
    for (p, real) in layout.proposer_listen.iter().enumerate() {
        let listen = "127.0.0.1:0".parse()?;
        let relay = match regions {
            None => Relay::start(listen, *real, profile),
            Some(m) => Relay::per_source(
                listen,
                *real,
                m.profiles_for(p, layout.configs.len(), profile),
                profile,
            ),
        }
        .context("starting a link relay")?;
        let (from, to) = (format!("\"{real}\""), format!("\"{}\"", relay.addr()));
        if !genesis.contains(&from) {
            bail!("the genesis does not name the proposer address {real}");
        }
        genesis = genesis.replace(&from, &to);
        stats.push(relay.stats_handle());
        relays.push(relay);
    }
    std::fs::write(&layout.genesis, genesis)
        .with_context(|| format!("writing {}", layout.genesis.display()))?;
    Ok(relays)
}

/// Runs the cluster benchmark, prints the summary and writes `cluster_*.json`.
pub fn run(a: &ClusterArgs) -> Result<()> {
    let mut res = BenchResult::new("cluster");
    let link = a.link();
    let regions = a.regions.as_deref().map(RegionMatrix::load).transpose()?;
    if regions
        .as_ref()
        .is_some_and(|_| a.cluster.proposers + a.cluster.voters > 245)
    {
        bail!("--regions gives each node its own 127.0.0.x: at most 245 nodes");
    }
    let mut relay_stats = Vec::new();
    let cpu_before = process_cpu_s();
    let r = demo::run_cluster_with(&a.cluster, |layout| match link {
        Some(p) => start_relays(layout, p, regions.as_ref(), &mut relay_stats),
        None => Ok(Vec::new()),
    })?;
    res.machine.load_after = pala_bench::stats::load_average();
    demo::print_summary(&r);
    fill(&mut res, &a.cluster, &r);
    if let Some(p) = link {
        report_link(
            &mut res,
            &p,
            &r,
            &relay_stats,
            process_cpu_s() - cpu_before,
            regions.is_none(),
        );
    }
    if let Some(m) = &regions {
        report_regions(&mut res, m, &r);
    }
    report_crypto_floor(&mut res, &r);
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

/// CPU seconds of this process so far: the load generator, the metrics scraping and the
/// relays (whose own share their threads count).
fn process_cpu_s() -> f64 {
    pala_bench::stats::process_cpu().as_secs_f64()
}

/// The emulated links: what theory says for them and what the relays cost.
fn report_link(
    res: &mut BenchResult,
    p: &LinkProfile,
    r: &ClusterReport,
    stats: &[Arc<RelayStats>],
    bench_cpu_s: f64,
    uniform: bool,
) {
    let d = p.delay.as_secs_f64() * 1000.0;
    let sum = |f: fn(&RelayStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
    let chunks = sum(|s| s.chunks.load(Ordering::Relaxed));
    let bytes = sum(|s| s.bytes.load(Ordering::Relaxed));
    let relay_cpu_s = sum(|s| s.cpu_ns.load(Ordering::Relaxed)) as f64 / 1e9;
    let lateness_us =
        sum(|s| s.lateness_ns.load(Ordering::Relaxed)) as f64 / 1e3 / chunks.max(1) as f64;
    println!(
        "  emulated links           : one-way {d:.0} ms, jitter {} ms, bandwidth {}, loss {}",
        p.jitter.as_millis(),
        p.bandwidth_bps.map_or("unlimited".to_string(), |b| format!(
            "{} Mbit/s",
            b / 1_000_000
        )),
        p.loss
    );
    if uniform {
        println!(
        "  theory (F-B, hub and spoke): block final at the primary after 4 delays = {:.0} ms, at voters after 5 = {:.0} ms; tx final after 6 = {:.0} ms",
        4.0 * d,
        5.0 * d,
        6.0 * d
    );
    }
    let bound = r.k as f64 / (2.0 * d / 1000.0);
    if uniform && d > 0.0 {
        println!(
            "  K / (2 x delay) bound    : {bound:.1} blocks/s; measured {:.1} ({:.0} %)",
            r.blocks_per_s,
            100.0 * r.blocks_per_s / bound
        );
    }
    println!(
        "  relays                   : {} MB in {chunks} chunks, {relay_cpu_s:.2} CPU s ({:.1} us per chunk), release {lateness_us:.0} us late on average; bench process total {bench_cpu_s:.2} CPU s",
        bytes / 1_000_000,
        relay_cpu_s * 1e6 / chunks.max(1) as f64
    );
    res.params.insert("link_delay_ms".into(), json!(d));
    res.params
        .insert("jitter_ms".into(), json!(p.jitter.as_millis() as u64));
    res.params.insert(
        "bandwidth_mbps".into(),
        json!(p.bandwidth_bps.map(|b| b / 1_000_000)),
    );
    res.params.insert("loss".into(), json!(p.loss));
    let f = &mut res.figures;
    if uniform {
        f.insert("theory_block_final_primary_ms".into(), json!(4.0 * d));
        f.insert("theory_block_final_voter_ms".into(), json!(5.0 * d));
        f.insert("theory_tx_final_ms".into(), json!(6.0 * d));
    }
    if uniform && d > 0.0 {
        f.insert("k_over_2d_blocks_per_sec".into(), json!(bound));
    }
    f.insert("relay_cpu_s".into(), json!(relay_cpu_s));
    f.insert("relay_chunks".into(), json!(chunks));
    f.insert("relay_bytes".into(), json!(bytes));
    f.insert("relay_lateness_us".into(), json!(lateness_us));
}

/// The BLS work a finalized block needs at each role, timed in this process right after
/// the run (the nodes are stopped, so the machine is the one they ran on, not busier):
/// - a voter verifies the proposal, signs its vote and checks one notarization (the
///   broadcast one; the same notarization embedded later need not be checked again);
/// - the primary signs the proposal and its own share of the aggregate and checks the
///   V votes as one aggregate;
/// - a standby proposer verifies the proposal and checks one notarization.
///
/// The floor counts those operations one by one; "combined" is the same work with the
/// proposal and the notarization checked in one combination, as the node does when they
/// arrive together, so it is the lower of the two bounds.
fn report_crypto_floor(res: &mut BenchResult, r: &ClusterReport) {
    let f = pala_bench::floor::measure_bls_floor(r.voters);
    let floors = [
        ("primary", 2.0 * f.sign_us + f.aggregate_check_us, None),
        (
            "proposer",
            f.verify_us + f.notarization_check_us,
            Some(f.proposal_with_notarization_us),
        ),
        (
            "voter",
            f.verify_us + f.sign_us + f.notarization_check_us,
            Some(f.sign_us + f.proposal_with_notarization_us),
        ),
    ];
    println!(
        "  crypto floor (BLS, timed after the run: sign {:.0} us, verify {:.0} us, {}-vote aggregate check {:.0} us, notarization check {:.0} us, proposal and notarization combined {:.0} us):",
        f.sign_us,
        f.verify_us,
        r.voters,
        f.aggregate_check_us,
        f.notarization_check_us,
        f.proposal_with_notarization_us
    );
    for (role, floor_us, combined_us) in floors {
        let Some(cpu_ms) = mean(r.role(role).map(|n| n.cpu_ms_per_block)) else {
            continue;
        };
        let ratio = cpu_ms * 1000.0 / floor_us;
        let combined = combined_us.map_or(String::new(), |c| {
            res.figures.insert(
                format!("cpu_to_combined_floor_ratio_{role}"),
                json!(cpu_ms * 1000.0 / c),
            );
            format!(
                " (combined floor {:.2} ms: {:.2} x)",
                c / 1000.0,
                cpu_ms * 1000.0 / c
            )
        });
        println!(
            "    {role:<8}: floor {:.2} ms per block, measured {cpu_ms:.2} ms: {ratio:.2} x{combined}",
            floor_us / 1000.0
        );
        res.figures.insert(
            format!("crypto_floor_ms_per_block_{role}"),
            json!(floor_us / 1000.0),
        );
        res.figures
            .insert(format!("cpu_to_crypto_floor_ratio_{role}"), json!(ratio));
    }
}

/// Where the nodes were and what hub-and-spoke finality their primary's quorum links allow.
fn report_regions(res: &mut BenchResult, m: &RegionMatrix, r: &ClusterReport) {
    let names: Vec<String> = (0..r.proposers + r.voters)
        .map(|n| m.regions[m.region_of(n)].clone())
        .collect();
    let (proposers, voters) = names.split_at(r.proposers);
    println!(
        "  regions                  : proposers in {}; voters in {} ({})",
        proposers.join(", "),
        voters.join(", "),
        m.source
    );
    let voter_ids: Vec<usize> = (r.proposers..r.proposers + r.voters).collect();
    let t = m.theory(0, &voter_ids);
    println!(
        "  theory (primary's quorum links): the quorum's farthest voter is {:.1} ms away; block final at the primary after 4 of its delays = {:.0} ms, at voters p50 {:.0} ms, farthest voter {:.0} ms",
        t.quorum_delay_ms, t.primary_ms, t.voter_p50_ms, t.voter_max_ms
    );
    res.params.insert("regions".into(), json!(names));
    let f = &mut res.figures;
    f.insert("theory_quorum_delay_ms".into(), json!(t.quorum_delay_ms));
    f.insert("theory_block_final_primary_ms".into(), json!(t.primary_ms));
    f.insert(
        "theory_block_final_voter_p50_ms".into(),
        json!(t.voter_p50_ms),
    );
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
    for (key, v) in [
        (
            "block_latency_primary_p50_ms",
            r.block_latency_primary_p50_s,
        ),
        (
            "block_latency_primary_p99_ms",
            r.block_latency_primary_p99_s,
        ),
        ("block_latency_voters_p50_ms", r.block_latency_voters_p50_s),
        ("block_latency_voters_p99_ms", r.block_latency_voters_p99_s),
    ] {
        f.insert(key.into(), json!(ms(v)));
    }
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
