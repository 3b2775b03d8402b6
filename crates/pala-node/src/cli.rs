//! The operator commands shared by the `pala` binary and the crate's own `pala-node`
//! binary: `keygen`, `testnet`, `node`, `demo`.

use crate::config::Config;
use crate::genesis::{keygen, testnet_on, testnet_spares_on, TestnetParams};
use crate::layout::HostLayout;
use crate::runtime::RunningNode;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use crossbeam_channel::{bounded, select};
use std::path::PathBuf;
use tracing::info;

/// Operator subcommands.
#[derive(Subcommand, Debug)]
pub enum OperatorCmd {
    /// Creates a BLS secret key file (mode 0600) and prints the public identity line that
    /// goes into a genesis file.
    Keygen {
        /// Key file to create (never overwritten); the identity is also written to FILE.pub.
        #[arg(long)]
        out: PathBuf,
        /// Network id the proof of possession is made for.
        #[arg(long, default_value_t = 1)]
        network_id: u64,
    },
    /// Writes keys, a genesis file and one config per node for a cluster on 127.0.0.1, or
    /// with --hosts / --host-template for nodes on hosts of their own, reached by name.
    Testnet(TestnetArgs),
    /// Runs a validator node.
    Node {
        /// The TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Starts a local cluster as separate processes with real TLS and storage, drives
    /// transactions at it, shows live progress and a summary.
    Demo(crate::demo::DemoArgs),
}

/// Arguments of `testnet`.
#[derive(Args, Debug, Clone)]
pub struct TestnetArgs {
    /// Number of voters.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Number of proposers.
    #[arg(long, default_value_t = 2)]
    pub proposers: usize,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Network id.
    #[arg(long, default_value_t = 1)]
    pub network_id: u64,
    /// First peer-to-peer port (proposer i listens on PORT+i); with host names, the port
    /// of every proposer.
    #[arg(long, default_value_t = 7100)]
    pub p2p_port: u16,
    /// First HTTP port (node i serves on PORT+i); with host names, the port of every node.
    #[arg(long, default_value_t = 8100)]
    pub http_port: u16,
    /// Nodes on hosts of their own, named for a deployment in deploy/: `compose`
    /// (services proposer0, voter0, ...) or `k8s` (pods pala-proposer-0.pala, ...). Every
    /// node listens on 0.0.0.0 with the same ports, and its data directory is
    /// /var/lib/pala.
    #[arg(long, value_name = "LAYOUT", conflicts_with = "host_template")]
    pub hosts: Option<String>,
    /// As --hosts, with host names from a template with {role} (proposer, voter, spare)
    /// and {i}, e.g. 'pala-{role}-{i}.pala.validators.svc.cluster.local'.
    #[arg(long, value_name = "TEMPLATE")]
    pub host_template: Option<String>,
    /// Short timers for a local cluster (voter timeout 2 s, first proposal 200 ms,
    /// heartbeat 1 s) instead of the production defaults.
    #[arg(long)]
    pub fast: bool,
    /// Also writes keys and configs (`spare0.toml`, ...) for this many nodes that are in
    /// no genesis committee, to join later through a `sessions` entry of genesis.toml or
    /// a committee-change transaction.
    #[arg(long, default_value_t = 0)]
    pub spare: usize,
}

pub use crate::config::fast_template;

/// Installs the tracing subscriber ("human" or "json").
pub fn init_logging(format: &str, level: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

/// Runs a node until SIGINT/SIGTERM (clean shutdown, `Ok`) or a fatal error (`Err`).
pub fn run_node(config: &std::path::Path) -> Result<()> {
    let cfg = Config::load(config)?;
    init_logging(&cfg.log.format, &cfg.log.level);
    let (sig_tx, sig_rx) = bounded::<i32>(1);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("pala-signals".into())
        .spawn(move || {
            if let Some(s) = signals.forever().next() {
                let _ = sig_tx.send(s);
            }
        })
        .context("starting the signal thread")?;
    let node = RunningNode::start(cfg)?;
    if let Some(a) = node.http_addr() {
        info!(http = %a, "API listening");
    }
    let fatal = node.fatal().clone();
    let failure = select! {
        recv(sig_rx) -> s => {
            info!(signal = s.unwrap_or(0), "signal received");
            None
        }
        recv(fatal) -> m => Some(m.unwrap_or_default()),
    };
    match failure {
        None => node.shutdown(),
        Some(m) => {
            let _ = node.shutdown_after_fatal(&m);
            bail!("node stopped after a fatal error: {m}")
        }
    }
}

/// Runs an operator subcommand.
pub fn run(cmd: OperatorCmd) -> Result<()> {
    match cmd {
        OperatorCmd::Keygen { out, network_id } => {
            let line = keygen(&out, network_id)?;
            println!("{line}");
            eprintln!(
                "secret key written to {} (mode 0600); public identity also in {}.pub",
                out.display(),
                out.display()
            );
            Ok(())
        }
        OperatorCmd::Testnet(a) => {
            let params = TestnetParams {
                voters: a.validators,
                proposers: a.proposers,
                out: a.out.clone(),
                network_id: a.network_id,
                p2p_base_port: a.p2p_port,
                http_base_port: a.http_port,
                template: a.fast.then(fast_template),
            };
            let hosts = match (&a.hosts, &a.host_template) {
                (Some(p), _) => Some(HostLayout::preset(p)?),
                (None, Some(t)) => Some(HostLayout::from_template(t)?),
                (None, None) => None,
            };
            let t = testnet_on(&params, hosts.as_ref())?;
            let spares = testnet_spares_on(&params, hosts.as_ref(), a.spare)?;
            println!(
                "testnet of {} proposers and {} voters written to {}",
                a.proposers,
                a.validators,
                a.out.display()
            );
            for (c, h) in t.configs.iter().zip(&t.http) {
                println!("  pala node --config {}   # API http://{h}", c.display());
            }
            if a.spare > 0 {
                println!(
                    "{} spare node(s), in no committee yet (they follow the chain until a \
                     committee naming them is installed; put an identity below into a \
                     `sessions` entry of genesis.toml before the first start):",
                    a.spare
                );
                for ((c, h), id) in spares
                    .configs
                    .iter()
                    .zip(&spares.http)
                    .zip(&spares.identities)
                {
                    println!("  pala node --config {}   # API http://{h}", c.display());
                    println!("    identity = \"{id}\"");
                }
            }
            Ok(())
        }
        OperatorCmd::Node { config } => run_node(&config),
        OperatorCmd::Demo(args) => crate::demo::run(args),
    }
}
