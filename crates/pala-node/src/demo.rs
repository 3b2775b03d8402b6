//! `pala demo`: a local cluster of separate node processes on loopback (real TLS, real
//! storage in a temporary directory), a transaction load, live progress and a summary.

use crate::app::KvTx;
use crate::config::fast_template;
use crate::genesis::{free_port_range, testnet, TestnetParams};
use crate::http::{get_json, request, submit_txs};
use crate::metrics::{parse_buckets, parse_value, quantile, LATENCY_BOUNDS};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Seconds of load after the cluster is up.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Voters.
    #[arg(long, default_value_t = 4)]
    pub voters: usize,
    /// Proposers.
    #[arg(long, default_value_t = 2)]
    pub proposers: usize,
    /// Offered load in transactions per second (spread over all nodes).
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// K, outstanding unnotarized proposals.
    #[arg(long, default_value_t = 2)]
    pub k: u32,
    /// Keep the cluster directory (keys, configs, data, logs) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Write the summary as JSON to this file too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Kill the primary proposer (SIGKILL) after this many seconds of load, to show the
    /// epoch change and the standby proposer taking over.
    #[arg(long)]
    pub kill_primary_after: Option<u64>,
    /// The keep-alive (`block.max_wait_ms`): longest time between two blocks when there is
    /// nothing to carry or finalize (blocks with transactions and the K blocks that
    /// finalize them are made at once).
    #[arg(long, default_value_t = 500)]
    pub block_wait_ms: u64,
}

/// What one node of the cluster cost while the load ran.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeFigures {
    /// File stem of its config (`proposer0`, `voter2`, ...).
    pub name: String,
    /// `primary` (the proposer of the first epochs), `proposer` (standby) or `voter`.
    pub role: &'static str,
    /// CPU seconds (user + system) spent during the load window.
    pub cpu_s: f64,
    /// `cpu_s` per finalized block of the window, in milliseconds.
    pub cpu_ms_per_block: f64,
    /// Peak resident set (VmHWM) over the whole life of the process, KiB.
    pub peak_rss_kib: u64,
}

/// The outcome of one cluster run: the figures of `pala demo` and `pala bench cluster`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClusterReport {
    /// Proposers started.
    pub proposers: usize,
    /// Voters started.
    pub voters: usize,
    /// Outstanding unnotarized proposals.
    pub k: u32,
    /// Offered load, transactions per second.
    pub offered_tx_per_s: u64,
    /// Seconds from start-up (every node finalized a block) until ready, in seconds.
    pub startup_seconds: f64,
    /// Length of the load window in seconds.
    pub load_seconds: f64,
    /// Transactions the nodes accepted into their mempools.
    pub submitted: u64,
    /// Transactions finalized in the window (plus the drain after it).
    pub finalized_txs: u64,
    /// Finalized height at the start and at the end of the window.
    pub height_start: u64,
    /// See `height_start`.
    pub height_end: u64,
    /// Finalized transactions per second of load.
    pub tx_per_s: f64,
    /// Finalized blocks per second of load.
    pub blocks_per_s: f64,
    /// Submission to applied at the receiving node, seconds.
    pub tx_latency_p50_s: Option<f64>,
    /// See `tx_latency_p50_s`.
    pub tx_latency_p99_s: Option<f64>,
    /// Block timestamp to finalized, over all nodes, seconds.
    pub block_latency_p50_s: Option<f64>,
    /// See `block_latency_p50_s`.
    pub block_latency_p99_s: Option<f64>,
    /// Block timestamp to finalized at the primary proposer (the node that made them).
    pub block_latency_primary_p50_s: Option<f64>,
    /// See `block_latency_primary_p50_s`.
    pub block_latency_primary_p99_s: Option<f64>,
    /// Block timestamp to finalized at the voters.
    pub block_latency_voters_p50_s: Option<f64>,
    /// See `block_latency_voters_p50_s`.
    pub block_latency_voters_p99_s: Option<f64>,
    /// One entry per node still running at the end.
    pub nodes: Vec<NodeFigures>,
}

impl ClusterReport {
    /// The nodes of one role.
    pub fn role<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a NodeFigures> + 'a {
        self.nodes.iter().filter(move |n| n.role == role)
    }
}

struct Proc {
    name: String,
    role: &'static str,
    child: Child,
    http: SocketAddr,
    cpu_at_load_start: f64,
}

fn proc_stats(pid: u32) -> (f64, u64) {
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let u: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((u + st) / tck)
        })
        .unwrap_or(0.0);
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    (cpu, hwm)
}

fn metrics_text(addr: SocketAddr) -> String {
    request(addr, "GET", "/metrics", None)
        .map(|(_, b)| b)
        .unwrap_or_default()
}

fn merged(texts: &[String], name: &str) -> Vec<(f64, u64)> {
    let mut acc: Vec<(f64, u64)> = LATENCY_BOUNDS
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .map(|b| (b, 0))
        .collect();
    for t in texts {
        for (i, (_, c)) in parse_buckets(t, name).into_iter().enumerate() {
            if let Some(a) = acc.get_mut(i) {
                a.1 += c;
            }
        }
    }
    acc
}

fn ms(v: Option<f64>) -> String {
    v.map(|s| format!("{:.0} ms", s * 1000.0))
        .unwrap_or_else(|| "n/a".into())
}

/// Runs the demo: a cluster under load with live progress, then a summary.
pub fn run(a: DemoArgs) -> Result<()> {
    let r = run_cluster(&a)?;
    print_summary(&r);
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Prints the summary of a cluster run.
pub fn print_summary(r: &ClusterReport) {
    println!();
    println!(
        "summary ({} proposers, {} voters, K = {}, {:.1} s of load, {} tx submitted)",
        r.proposers, r.voters, r.k, r.load_seconds, r.submitted
    );
    println!(
        "  finalized transactions/s : {:.0}   ({} finalized)",
        r.tx_per_s, r.finalized_txs
    );
    println!(
        "  finalized blocks/s       : {:.1}   (height {} -> {})",
        r.blocks_per_s, r.height_start, r.height_end
    );
    println!(
        "  tx finality latency      : p50 {}, p99 {}   (submission to applied, at the receiving node)",
        ms(r.tx_latency_p50_s),
        ms(r.tx_latency_p99_s)
    );
    println!(
        "  block finality latency   : p50 {}, p99 {}   (block timestamp to finalized, all nodes)",
        ms(r.block_latency_p50_s),
        ms(r.block_latency_p99_s)
    );
    println!(
        "    at the primary         : p50 {}, p99 {};  at voters: p50 {}, p99 {}",
        ms(r.block_latency_primary_p50_s),
        ms(r.block_latency_primary_p99_s),
        ms(r.block_latency_voters_p50_s),
        ms(r.block_latency_voters_p99_s)
    );
    println!("  per node                 : CPU during the load, per finalized block; peak RSS");
    for n in &r.nodes {
        println!(
            "    {:<10} {:<8} {:>7.2} CPU s/1000 blocks ({:.1} CPU s), peak RSS {:.1} MiB",
            n.name,
            n.role,
            n.cpu_ms_per_block,
            n.cpu_s,
            n.peak_rss_kib as f64 / 1024.0
        );
    }
}

/// Starts a local cluster as separate processes (this executable's `node` subcommand),
/// drives the transaction load of `a` at it with live progress lines, stops every node
/// with SIGTERM and returns the figures. Ctrl-C ends the load early.
pub fn run_cluster(a: &DemoArgs) -> Result<ClusterReport> {
    run_cluster_with(a, |_| Ok(()))
}

/// The cluster as written, before any node starts: what a caller may rearrange (for
/// example put a link emulator in front of each proposer and point the genesis at it).
pub struct ClusterLayout<'a> {
    /// The genesis file every node reads.
    pub genesis: PathBuf,
    /// The address each proposer listens on, in genesis order.
    pub proposer_listen: Vec<SocketAddr>,
    /// The configs, proposers first.
    pub configs: &'a [PathBuf],
}

/// [`run_cluster`] with `prepare` run after the files are written and before the nodes
/// start; what it returns lives until the nodes are stopped.
pub fn run_cluster_with<G>(
    a: &DemoArgs,
    prepare: impl FnOnce(&ClusterLayout<'_>) -> Result<G>,
) -> Result<ClusterReport> {
    if a.voters == 0 || a.proposers == 0 {
        bail!("--voters and --proposers must be at least 1");
    }
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    let n = a.voters + a.proposers;
    let dir = tempfile::Builder::new()
        .prefix("pala-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    let root = dir.path().to_path_buf();
    // One range for both, so the two cannot overlap.
    let p2p = free_port_range(a.proposers + n)?;
    let http = p2p + a.proposers as u16;
    let mut template = fast_template();
    template.consensus.k = a.k;
    template.block.max_wait_ms = a.block_wait_ms;
    template.log.level = "warn,pala_node=info".into();
    let t = testnet(&TestnetParams {
        voters: a.voters,
        proposers: a.proposers,
        out: root.clone(),
        network_id: 7,
        p2p_base_port: p2p,
        http_base_port: http,
        template: Some(template),
    })?;
    println!(
        "pala: {} proposers + {} voters as separate processes on 127.0.0.1, TLS 1.3, storage in {}",
        a.proposers,
        a.voters,
        root.display()
    );
    let layout = ClusterLayout {
        genesis: root.join("genesis.toml"),
        proposer_listen: (0..a.proposers)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], p2p + i as u16)))
            .collect(),
        configs: &t.configs,
    };
    let _prepared = prepare(&layout)?;
    let exe = std::env::current_exe().context("locating the pala executable")?;
    let mut procs = Vec::new();
    for (i, cfg) in t.configs.iter().enumerate() {
        let name = cfg
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = std::fs::File::create(root.join(format!("{name}.log")))?;
        // Own process group: Ctrl-C reaches only this process, which then collects the
        // final figures and stops the nodes with SIGTERM itself.
        let child = Command::new(&exe)
            .process_group(0)
            .arg("node")
            .arg("--config")
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let role = if i == 0 {
            "primary"
        } else if i < a.proposers {
            "proposer"
        } else {
            "voter"
        };
        procs.push(Proc {
            name,
            role,
            child,
            http: t.http[i].parse()?,
            cpu_at_load_start: 0.0,
        });
    }
    let result = drive(a, &root, &mut procs, &stop);
    // Clean stop: SIGTERM, then wait; SIGKILL only for a node that hangs.
    for p in &procs {
        // SAFETY: kill with a pid of our own child.
        unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut unclean = Vec::new();
    for p in &mut procs {
        loop {
            match p.child.try_wait() {
                Ok(Some(st)) => {
                    if !st.success() && st.code().is_some() {
                        unclean.push(format!("{} exited with {st}", p.name));
                    }
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    unclean.push(format!(
                        "{} did not stop within 15 s and was killed",
                        p.name
                    ));
                    break;
                }
            }
        }
    }
    if a.keep || result.is_err() {
        let kept = dir.keep();
        println!("cluster directory kept: {}", kept.display());
    }
    for u in &unclean {
        println!("warning: {u}");
    }
    result
}

fn drive(
    a: &DemoArgs,
    root: &Path,
    procs: &mut [Proc],
    stop: &Arc<AtomicBool>,
) -> Result<ClusterReport> {
    let addrs: Vec<SocketAddr> = procs.iter().map(|p| p.http).collect();
    print!("starting nodes");
    let t0 = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            println!();
            bail!("stopped before the cluster was up");
        }
        for p in procs.iter_mut() {
            if let Ok(Some(st)) = p.child.try_wait() {
                bail!(
                    "node {} exited during start-up ({st}); its log: {}",
                    p.name,
                    root.join(format!("{}.log", p.name)).display()
                );
            }
        }
        let ready = addrs.iter().all(|h| {
            get_json(*h, "/status")
                .map(|(_, v)| v["finalized_height"].as_u64().unwrap_or(0) > 0)
                .unwrap_or(false)
        });
        if ready {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!(
                "the cluster did not finalize a block within 60 s; logs in {}",
                root.display()
            );
        }
        print!(".");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_millis(300));
    }
    let startup_seconds = t0.elapsed().as_secs_f64();
    println!(
        " up in {startup_seconds:.1} s; driving {} tx/s for {} s (Ctrl-C stops)",
        a.rate, a.duration
    );
    let height0 = status_height(addrs[0]);
    for p in procs.iter_mut() {
        p.cpu_at_load_start = proc_stats(p.child.id()).0;
    }
    let txs0 = parse_value(&metrics_text(addrs[0]), "pala_finalized_txs_total").unwrap_or(0.0);

    // Load: every 50 ms a batch to the next node, round-robin over all nodes.
    let sent = Arc::new(AtomicU64::new(0));
    let load_stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let sent = sent.clone();
        let load_stop = load_stop.clone();
        let stop = stop.clone();
        let addrs = addrs.clone();
        let rate = a.rate;
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut i: u64 = 0;
            let mut tick: u64 = 0;
            while !load_stop.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                tick += 1;
                let due = rate * tick / 20;
                let batch: Vec<KvTx> = (i..due)
                    .map(|j| KvTx {
                        k: format!("key-{}", j % 10_000),
                        v: format!("value-{j}"),
                        n: j,
                    })
                    .collect();
                let to = addrs[(tick as usize) % addrs.len()];
                if !batch.is_empty() {
                    if let Ok(acc) = submit_txs(to, &batch) {
                        sent.fetch_add(acc.len() as u64, Ordering::Relaxed);
                    }
                }
                i = due;
                let next = start + Duration::from_millis(50 * tick);
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        })
    };

    let load_start = Instant::now();
    let mut last = (Instant::now(), height0, txs0);
    let mut killed = false;
    println!(
        "{:>5}  {:>9}  {:>8}  {:>8}  {:>9}  {:>9}  {:>6}  {:>5}",
        "t(s)", "finalized", "blocks/s", "tx/s", "p50 final", "p99 final", "epoch", "peers"
    );
    while load_start.elapsed() < Duration::from_secs(a.duration) && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(after) = a.kill_primary_after {
            if !killed && load_start.elapsed() >= Duration::from_secs(after) {
                killed = true;
                // SAFETY: kill with a pid of our own child.
                unsafe { libc::kill(procs[0].child.id() as i32, libc::SIGKILL) };
                println!("  -- killed {} (SIGKILL); the standby proposer should take over after the voter timeout", procs[0].name);
            }
        }
        let live: Vec<SocketAddr> = procs
            .iter_mut()
            .filter_map(|p| matches!(p.child.try_wait(), Ok(None)).then_some(p.http))
            .collect();
        let Some(obs) = live
            .iter()
            .copied()
            .find(|h| get_json(*h, "/status").is_ok())
        else {
            println!("no node answers; stopping");
            break;
        };
        let (_, st) = get_json(obs, "/status")?;
        let h = st["finalized_height"].as_u64().unwrap_or(0);
        let texts: Vec<String> = live.iter().map(|h| metrics_text(*h)).collect();
        let txs = texts
            .iter()
            .filter_map(|t| parse_value(t, "pala_finalized_txs_total"))
            .fold(0.0, f64::max);
        let lat = merged(&texts, "pala_tx_finality_latency_seconds");
        let dt = last.0.elapsed().as_secs_f64();
        println!(
            "{:>5.0}  {:>9}  {:>8.1}  {:>8.0}  {:>9}  {:>9}  {:>6}  {:>5}",
            load_start.elapsed().as_secs_f64(),
            h,
            (h.saturating_sub(last.1)) as f64 / dt,
            (txs - last.2).max(0.0) / dt,
            ms(quantile(&lat, 0.5)),
            ms(quantile(&lat, 0.99)),
            format!("{},{}", st["epoch"][0], st["epoch"][1]),
            st["peers"].as_array().map_or(0, |p| p.len()),
        );
        last = (Instant::now(), h, txs);
    }
    load_stop.store(true, Ordering::Relaxed);
    let _ = loader.join();
    let load_secs = load_start.elapsed().as_secs_f64();
    // Blocks and CPU are counted over the load window; transactions after a drain, so
    // that those submitted near its end count.
    let live: Vec<usize> = (0..procs.len())
        .filter(|i| matches!(procs[*i].child.try_wait(), Ok(None)))
        .collect();
    let obs = live.first().map(|i| procs[*i].http).unwrap_or(addrs[0]);
    let h_end = status_height(obs);
    let blocks = h_end.saturating_sub(height0);
    let cpu_at_load_end: Vec<f64> = live
        .iter()
        .map(|i| proc_stats(procs[*i].child.id()).0)
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let texts: Vec<String> = live.iter().map(|i| metrics_text(procs[*i].http)).collect();
    let nodes = live
        .iter()
        .zip(cpu_at_load_end)
        .map(|(i, cpu)| {
            let p = &procs[*i];
            let peak_rss_kib = proc_stats(p.child.id()).1;
            let cpu_s = (cpu - p.cpu_at_load_start).max(0.0);
            NodeFigures {
                name: p.name.clone(),
                role: p.role,
                cpu_s,
                cpu_ms_per_block: cpu_s * 1000.0 / blocks.max(1) as f64,
                peak_rss_kib,
            }
        })
        .collect();
    let txs_end = texts
        .iter()
        .filter_map(|t| parse_value(t, "pala_finalized_txs_total"))
        .fold(0.0, f64::max);
    let tx_lat = merged(&texts, "pala_tx_finality_latency_seconds");
    let blk_lat = merged(&texts, "pala_block_finality_latency_seconds");
    let of_role = |role: &str| -> Vec<String> {
        live.iter()
            .zip(&texts)
            .filter(|(i, _)| procs[**i].role == role)
            .map(|(_, t)| t.clone())
            .collect()
    };
    let blk_primary = merged(&of_role("primary"), "pala_block_finality_latency_seconds");
    let blk_voters = merged(&of_role("voter"), "pala_block_finality_latency_seconds");
    let txs = (txs_end - txs0).max(0.0);
    if blocks == 0 {
        bail!(
            "no block was finalized during the load; logs in {}",
            root.display()
        );
    }
    Ok(ClusterReport {
        proposers: a.proposers,
        voters: a.voters,
        k: a.k,
        offered_tx_per_s: a.rate,
        startup_seconds,
        load_seconds: load_secs,
        submitted: sent.load(Ordering::Relaxed),
        finalized_txs: txs as u64,
        height_start: height0,
        height_end: h_end,
        tx_per_s: txs / load_secs,
        blocks_per_s: blocks as f64 / load_secs,
        tx_latency_p50_s: quantile(&tx_lat, 0.5),
        tx_latency_p99_s: quantile(&tx_lat, 0.99),
        block_latency_p50_s: quantile(&blk_lat, 0.5),
        block_latency_p99_s: quantile(&blk_lat, 0.99),
        block_latency_primary_p50_s: quantile(&blk_primary, 0.5),
        block_latency_primary_p99_s: quantile(&blk_primary, 0.99),
        block_latency_voters_p50_s: quantile(&blk_voters, 0.5),
        block_latency_voters_p99_s: quantile(&blk_voters, 0.99),
        nodes,
    })
}

fn status_height(addr: SocketAddr) -> u64 {
    get_json(addr, "/status")
        .map(|(_, v)| v["finalized_height"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}
