//! A running node: the wiring of its stages, start-up and shutdown.
//!
//! ```text
//!  pala-net executors ──events──► verify stage (thread + rayon pool)
//!        ▲                           │ verified inputs           ▲ committee snapshots
//!        │                           ▼                           │
//!        └──── commands ◄──── consensus stage (glommio executor) ─┘
//!              (released          │ persist jobs      ▲ durable seq
//!               after             ▼                   │
//!               durability)   storage stage (glommio executor)
//!                                 │
//!  application stage (thread) ◄───┘ finalized blocks (released after durability)
//!  HTTP API threads: status snapshot, application view, mempool, storage reader
//! ```
//!
//! Each stage is a module of [`crate::stages`] with its own state and mailbox; this file
//! only builds them, connects them and stops them in order.

use crate::app::KvStore;
use crate::chain_id::{self, ChainId};
use crate::clock::{SystemClock, Ticks, WallClock};
use crate::config::Config;
use crate::fatal::Fatal;
use crate::fd_budget;
use crate::genesis::GenesisFile;
use crate::http::{HttpContext, HttpServer};
use crate::membership::Membership;
use crate::mempool::MempoolHandle;
use crate::metrics::Metrics;
use crate::persistence::{recovered_from, StorageArchive};
use crate::preflight::preflight;
use crate::stages::application::{self, ApplicationDeps, ApplicationStage};
use crate::stages::consensus::{
    self, ConsensusDeps, ConsensusMailbox, ConsensusMessage, ConsensusStage, Doppelganger, Links,
    LinksAtStart, StageHost,
};
use crate::stages::storage::{CommitStats, StorageEvents, StorageStage};
use crate::stages::verify::{VerifyDeps, VerifyStage};
use crate::state_sync::at_start::Data;
use crate::status::{status_board, StatusView};
use anyhow::{anyhow, bail, Context, Result};
use pala_core::{Committees, MessageVerifier, Node, NodeParams, Role};
use pala_crypto::{BlsScheme, BlsSigner};
use pala_net::{
    Admission, AdmitAll, CommitteeAdmission, CorePlacement, NetConfig, Network, PeerAddr,
    RateLimits,
};
use pala_storage::{Options, Storage};
use pala_types::{SignatureScheme, Signer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

/// A running node.
pub struct RunningNode {
    net: Option<Network>,
    verify: Option<VerifyStage>,
    consensus: Option<(ConsensusStage, ConsensusMailbox)>,
    storage: Option<StorageStage>,
    app: Option<ApplicationStage>,
    state_sync: Option<std::thread::JoinHandle<()>>,
    http: Option<HttpServer>,
    fatal: crossbeam_channel::Receiver<String>,
}

impl RunningNode {
    /// Starts every stage of the node described by `cfg`.
    pub fn start(cfg: Config) -> Result<RunningNode> {
        RunningNode::start_with(cfg, Arc::new(SystemClock))
    }

    /// Like [`RunningNode::start`], with the wall clock given (block timestamps and the
    /// latency figures read it; consensus timers never do).
    pub fn start_with(cfg: Config, wall: Arc<dyn WallClock>) -> Result<RunningNode> {
        preflight()?;
        let ticks = Ticks::start();
        let genesis = GenesisFile::read(&cfg.node.genesis_file)?.load()?;
        let signer =
            BlsSigner::load(&cfg.node.key_file).map_err(|e| anyhow!("node.key_file: {e}"))?;
        let id = signer.node_id();
        let chain = ChainId::new(
            genesis.network_id,
            genesis.block.hash().to_string(),
            id.to_hex(),
        );
        let data = open_data(&cfg, &chain, genesis.network_id)?;
        let scheme: Arc<dyn SignatureScheme> = Arc::new(BlsScheme::new());
        let mut committees = Committees::default();
        committees.install(scheme.as_ref(), genesis.committee.clone());
        let signer: Arc<dyn Signer> = Arc::new(signer);
        let metrics = Arc::new(Metrics::default());
        let Data {
            storage: store,
            app: mut kv,
        } = if cfg.state_sync.enabled {
            state_sync_at_start(
                &cfg,
                &genesis,
                &signer,
                &scheme,
                &committees,
                &metrics,
                &chain,
                data,
            )?
        } else {
            data
        };
        let recovered = recovered_from(&store)?;
        let reader = store.reader();
        let writer = store;
        let mut history = application::StateHistory::default();
        let replay_mismatches = application::replay(&mut kv, &reader, &mut history)?;
        let snapshots = snapshot_policy(&cfg)?;
        for c in &recovered.committees {
            committees.install(scheme.as_ref(), c.clone());
        }
        // A key in no committee is accepted: the node follows the chain until a committee
        // naming it is installed (C-3), and goes back to following when it is dropped.
        let floor = recovered
            .finalized
            .as_ref()
            .map_or(1, |nb| nb.block.sn().epoch.session.max(1));
        let membership = Membership::new(id, &committees, floor, &genesis.schedule);
        membership.check_listen(&cfg)?;
        let listening = membership.listens_at_start(&cfg);
        drop(membership);
        // Resolved once: a listen name stands for this host, and failing here names the key.
        let listen_addr = cfg.listen_addr()?;

        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (net_cpus, consensus_cpu, storage_cpu, verify_threads) = cfg.placement(ncpu);
        let cpu = |key: &str, c: i64| -> Result<Option<usize>> {
            if c >= ncpu as i64 {
                bail!(
                    "{key} = {c}: this machine has CPUs 0..={}; use one of them or -1",
                    ncpu - 1
                );
            }
            Ok((c >= 0).then_some(c as usize))
        };
        let consensus_cpu = cpu("runtime.consensus_cpu", consensus_cpu)?;
        let storage_cpu = cpu("runtime.storage_cpu", storage_cpu)?;
        if let Some(c) = net_cpus.iter().find(|c| **c >= ncpu) {
            bail!(
                "network.cpus contains {c}: this machine has CPUs 0..={}",
                ncpu - 1
            );
        }
        info!(
            cpus = ncpu,
            ?net_cpus,
            ?consensus_cpu,
            ?storage_cpu,
            verify_threads,
            "stage placement (empty: unpinned)"
        );

        // The consensus stage updates the admitted set at each reconfiguration (C-3, C-5).
        let committee_admission = Arc::new(CommitteeAdmission::default());
        let admission: Arc<dyn Admission> = if cfg.network.serve_followers {
            Arc::new(AdmitAll)
        } else {
            committee_admission.clone()
        };
        let fds = fd_budget::apply(&fd_budget::needs_of(&cfg, &genesis.committee))?;
        let mut net_cfg = net_config(&cfg, listen_addr, genesis.network_id, listening, net_cpus);
        net_cfg.max_inbound = fds.max_inbound as usize;
        let net = Network::start(net_cfg, signer.clone(), scheme.clone(), admission)
            .map_err(|e| anyhow!("starting the network: {e}"))?;

        let core = Node::recover(
            NodeParams {
                config: pala_core::CoreConfig {
                    stop_offset: genesis.stop_offset,
                    schedule: genesis.schedule.clone(),
                    ..cfg.core_config(genesis.network_id)
                },
                signer,
                scheme: scheme.clone(),
                committees: committees.clone(),
                genesis: genesis.block.clone(),
                archive: Arc::new(StorageArchive::new(reader.clone(), genesis.block.clone())),
            },
            recovered,
        );
        let role = core.role();
        info!(
            id = %id.to_hex(),
            role = role.as_str(),
            epoch = ?core.epoch(),
            head = %core.head(),
            finalized = %core.finalized(),
            "node starting"
        );
        if role == Role::Follower {
            info!(
                session = core.epoch().session,
                "this key is not in the committee of the current session: following the \
                 chain (sync, verify, store, serve reads) without voting or proposing until a \
                 committee naming it is installed"
            );
        }

        let (fatal, fatal_rx) = Fatal::channel();
        let mempool = MempoolHandle::new(cfg.mempool.clone());
        let cap = cfg.runtime.channel_capacity;
        let (status_pub, status) = status_board(StatusView {
            id: id.to_hex(),
            role: role.as_str().into(),
            not_ready: "starting".into(),
            ..StatusView::default()
        });

        let (sync_tx, sync_rx) = crossbeam_channel::bounded(crate::state_sync::serve::QUEUE);
        let sync_server = if cfg.state_sync.enabled {
            Some(
                crate::state_sync::serve::spawn(
                    crate::state_sync::serve::ServeDeps {
                        store: snapshots.as_ref().map(|p| p.store.clone()),
                        storage: reader.clone(),
                        net: net.commands(),
                        k: cfg.consensus.k,
                        per_sec: cfg.state_sync.serve_requests_per_sec,
                        sessions: Some(session_store(&cfg)?),
                        stop_offset: genesis.stop_offset,
                        metrics: metrics.clone(),
                    },
                    sync_rx,
                )
                .context("starting the state-sync server")?,
            )
        } else {
            drop(sync_rx);
            None
        };
        let (app_stage, app, app_view) = ApplicationStage::spawn(
            kv,
            cap,
            ApplicationDeps {
                metrics: metrics.clone(),
                mempool: mempool.clone(),
                wall: wall.clone(),
                max_submitted: cfg.mempool.max_txs,
                fatal: fatal.clone(),
                data_dir: cfg.node.data_dir.clone(),
                history,
                replay_mismatches,
                snapshots,
            },
        )?;
        let (cons_mailbox, cons_inbox) = consensus::inbox(cap);
        // Bound before the protocol stages start, so a port clash fails start-up cleanly.
        let http = match cfg.http_addr() {
            Some(addr) => Some(HttpServer::start(
                HttpContext {
                    cfg: cfg.clone(),
                    genesis_block: genesis.block.clone(),
                    metrics: metrics.clone(),
                    net_metrics: net.metrics().clone(),
                    status,
                    mempool: mempool.clone(),
                    app_view: app_view.clone(),
                    app: app.clone(),
                    storage: reader.clone(),
                    consensus: cons_mailbox.clone(),
                },
                addr,
            )?),
            None => None,
        };

        let (durable_tx, durable_rx) = consensus::durable_signal();
        let (storage_stage, storage_mailbox) = {
            let (m, f) = (metrics.clone(), fatal.clone());
            StorageStage::spawn(
                writer,
                storage_cpu,
                StorageEvents {
                    durable: Box::new(move |seq| durable_tx.durable(seq)),
                    committed: Box::new(move |s: CommitStats| {
                        m.fsync.observe(s.duration.as_secs_f64());
                        m.storage_batch.observe(s.records as f64);
                    }),
                    fatal: Box::new(move |msg| f.fail(msg)),
                },
                (cfg.storage.retain_finalized_heights > 0)
                    .then(|| Duration::from_millis(cfg.storage.compact_interval_ms)),
            )?
        };

        let nudge = cons_mailbox.clone();
        mempool.on_first_transaction(move || nudge.nudge(ConsensusMessage::TransactionsWaiting));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(verify_threads)
            .thread_name(|i| format!("pala-verify-{i}"))
            .build()
            .context("starting the verification pool")?;
        let (verify_stage, verify_mailbox) = VerifyStage::spawn(VerifyDeps {
            events: net.events().clone(),
            commands: net.commands(),
            scheme: scheme.clone(),
            network_id: genesis.network_id,
            committees: core.committees().clone(),
            pool,
            consensus: cons_mailbox.clone(),
            batch: cfg.runtime.verify_batch,
            bootnodes: cfg.bootnodes().into_iter().map(|b| b.addr).collect(),
            metrics: metrics.clone(),
            state_sync: sync_server.is_some().then(|| sync_tx.clone()),
            storage: reader,
        })?;

        let session_tx = sync_server.is_some().then_some(sync_tx);
        // A configuration shared by all nodes may list this node too: by id, or by the very
        // entry it listens on (a name and the IP it resolves to are not compared, so give
        // shared bootnode lists the id@ form).
        let own_listen = cfg.network.listen.parse::<PeerAddr>().ok();
        let bootnodes: BTreeMap<PeerAddr, Option<_>> = cfg
            .bootnodes()
            .into_iter()
            .filter(|b| b.id != Some(id) && Some(&b.addr) != own_listen.as_ref())
            .map(|b| (b.addr, b.id))
            .collect();
        let consensus_stage = ConsensusStage::spawn(
            ConsensusDeps {
                host: StageHost {
                    net: net.commands(),
                    storage: storage_mailbox,
                    records: Vec::new(),
                    last_seq: 0,
                    finalized: Vec::new(),
                    events: Vec::new(),
                    payload: None,
                    block_wait_ms: cfg.block.max_wait_ms,
                    verifier: MessageVerifier::new(
                        scheme.clone(),
                        genesis.network_id,
                        core.committees().clone(),
                    ),
                    wall,
                    metrics: metrics.clone(),
                    fatal,
                    doppelganger: Doppelganger::new(
                        id,
                        ticks.now(),
                        cfg.consensus.doppelganger_wait_ms,
                    ),
                    now: ticks.now(),
                },
                core,
                ticks,
                inbox: cons_inbox,
                mailbox: cons_mailbox.clone(),
                durable: durable_rx,
                links: Links::new(LinksAtStart {
                    me: id,
                    admission: committee_admission,
                    serve_followers: cfg.network.serve_followers,
                    listening,
                    listen_addr,
                    bootnodes,
                }),
                schedule: genesis.schedule.clone(),
                scheme,
                network_id: genesis.network_id,
                committees_changed: Box::new(move |c| verify_mailbox.committees_changed(c)),
                session_ended: Box::new(move |session, tail| {
                    let job = crate::state_sync::serve::Job::SessionEnded { session, tail };
                    if session_tx
                        .as_ref()
                        .is_some_and(|tx| tx.try_send(job).is_err())
                    {
                        warn!(
                            session,
                            "the state-sync queue is full: this session's proof is not kept"
                        );
                    }
                }),
                app,
                app_view,
                mempool,
                block_limits: (cfg.block.max_txs, cfg.block.max_bytes),
                status: status_pub,
                metrics,
            },
            consensus_cpu,
        )?;
        Ok(RunningNode {
            net: Some(net),
            verify: Some(verify_stage),
            consensus: Some((consensus_stage, cons_mailbox)),
            storage: Some(storage_stage),
            app: Some(app_stage),
            state_sync: sync_server,
            http,
            fatal: fatal_rx,
        })
    }

    /// The HTTP address actually bound.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.addr())
    }

    /// Fatal errors reported by the stages.
    pub fn fatal(&self) -> &crossbeam_channel::Receiver<String> {
        &self.fatal
    }

    /// Stops proposing, drains the stages, flushes storage, closes connections.
    pub fn shutdown(mut self) -> Result<()> {
        info!("shutting down: stop proposing, flush storage, close connections");
        self.stop(None)
    }

    /// Like [`RunningNode::shutdown`] after a stage reported `why`: the last line logged
    /// repeats the fatal error instead of claiming a clean stop.
    pub fn shutdown_after_fatal(mut self, why: &str) -> Result<()> {
        error!("shutting down after a fatal error: {why}");
        self.stop(Some(why))
    }

    fn stop(&mut self, fatal: Option<&str>) -> Result<()> {
        if let Some((_, mailbox)) = &self.consensus {
            let _ = mailbox.send(ConsensusMessage::StopProposing);
        }
        if let Some(h) = self.http.take() {
            h.stop();
        }
        // Nothing reaches consensus once the verify stage is gone; consensus then persists
        // what is pending and drops its storage and application mailboxes, which ends them.
        if let Some(v) = self.verify.take() {
            v.stop();
        }
        let mut result = Ok(());
        if let Some((c, mailbox)) = self.consensus.take() {
            let _ = mailbox.send(ConsensusMessage::Shutdown);
            drop(mailbox);
            result = c.join();
        }
        // The verify and consensus stages held the only senders: the state-sync server
        // ends.
        if let Some(t) = self.state_sync.take() {
            let _ = t.join();
        }
        if let Some(s) = self.storage.take() {
            result = result.and(s.shutdown());
        }
        if let Some(a) = self.app.take() {
            a.join();
        }
        if let Some(n) = self.net.take() {
            n.shutdown();
        }
        match fatal {
            None => info!("stopped cleanly"),
            Some(why) => error!("stopped after a fatal error: {why}"),
        }
        result
    }
}

/// The storage options `[storage]` asks for.
fn storage_options(cfg: &Config) -> Options {
    let s = &cfg.storage;
    Options {
        segment_size: s.segment_kib << 10,
        retention: match s.retain_finalized_heights {
            0 => pala_storage::Retention::KeepAll,
            n => pala_storage::Retention::KeepFinalizedHeights(n),
        },
        ..Options::default()
    }
}

/// Opens the data directory: its chain binding, the block store and the application.
fn open_data(cfg: &Config, chain: &ChainId, network_id: u64) -> Result<Data> {
    // Before storage touches the directory: recovery would truncate a foreign tail.
    chain_id::bind(&cfg.node.data_dir, chain)?;
    let storage = Storage::open(&cfg.node.data_dir, storage_options(cfg))
        .with_context(|| format!("opening data directory {}", cfg.node.data_dir.display()))?;
    let report = storage.recovery_report();
    if !report.is_clean() {
        warn!(?report, "storage recovered a torn or damaged tail");
    }
    let app = KvStore::open(Some(&cfg.node.data_dir.join("app-kv.bin")))?.with_network(network_id);
    Ok(Data { storage, app })
}

/// A node with nothing finalized, or whose finalized head no peer stores any more, asks
/// its peers for a snapshot first (W-12b, W-12f); without an offer that checks it starts
/// from its own data (or genesis).
#[allow(clippy::too_many_arguments)]
fn state_sync_at_start(
    cfg: &Config,
    genesis: &crate::genesis::Genesis,
    signer: &Arc<dyn Signer>,
    scheme: &Arc<dyn SignatureScheme>,
    committees: &Committees,
    metrics: &Metrics,
    chain: &ChainId,
    data: Data,
) -> Result<Data> {
    let stored = data.storage.reader().committees()?;
    let mut known: Vec<&pala_types::Committee> = vec![&genesis.committee];
    known.extend(stored.iter().rev());
    let peers = crate::state_sync::at_start::peers(
        signer.node_id(),
        cfg.bootnodes().into_iter().map(|b| (b.addr, b.id)),
        &known,
    );
    let verifier = MessageVerifier::new(scheme.clone(), genesis.network_id, committees.clone());
    let deps = crate::state_sync::JoinDeps {
        net: net_config(
            cfg,
            cfg.listen_addr()?,
            genesis.network_id,
            true,
            Vec::new(),
        ),
        signer: signer.clone(),
        scheme: scheme.clone(),
        verifier: &verifier,
        rules: crate::state_sync::committees::ChainRules {
            scheme: scheme.clone(),
            network_id: genesis.network_id,
            stop_offset: genesis.stop_offset,
            k: cfg.consensus.k,
            schedule: genesis.schedule.clone(),
        },
        sessions_dir: cfg.node.data_dir.join("sessions"),
        peers,
        k: cfg.consensus.k,
        discovery: Duration::from_millis(cfg.state_sync.discovery_ms),
        chunk_timeout: Duration::from_millis(cfg.state_sync.chunk_timeout_ms),
        peer_rate: cfg.state_sync.serve_requests_per_sec,
        metrics,
    };
    crate::state_sync::at_start::at_start(
        deps,
        data,
        &cfg.node.data_dir,
        &cfg.node.key_file,
        || open_data(cfg, chain, genesis.network_id),
    )
}

/// The session proofs this node keeps for joiners (W-12a).
fn session_store(cfg: &Config) -> Result<crate::state_sync::sessions::SessionStore> {
    let dir = cfg.node.data_dir.join("sessions");
    crate::state_sync::sessions::SessionStore::open(&dir)
        .with_context(|| format!("opening the session proofs in {}", dir.display()))
}

/// Where and how often the application stage takes snapshots for state sync; the kept
/// ones are checked (damaged files deleted) before the node starts.
fn snapshot_policy(cfg: &Config) -> Result<Option<application::SnapshotPolicy>> {
    let s = &cfg.state_sync;
    if s.snapshot_interval == 0 {
        return Ok(None);
    }
    let dir = cfg.node.data_dir.join("snapshots");
    let (store, warnings) = crate::state_sync::SnapshotStore::open(&dir, s.keep)
        .context("opening the state-sync snapshots")?;
    for w in warnings {
        warn!("{w}");
    }
    if let Some(why) = store.refused() {
        warn!(
            "this node serves no state-sync snapshot: {why}. What to do: find out why its \
             state disagreed (a different binary or configuration than the other nodes), \
             rebuild its data directory, then delete {}",
            dir.join("DIVERGED").display()
        );
    }
    Ok(Some(application::SnapshotPolicy {
        store: Arc::new(std::sync::Mutex::new(store)),
        interval: s.snapshot_interval,
        chunk_bytes: s.chunk_bytes,
    }))
}

/// The network layer's configuration.
fn net_config(
    cfg: &Config,
    listen_addr: Option<SocketAddr>,
    network_id: u64,
    listening: bool,
    cpus: Vec<usize>,
) -> NetConfig {
    NetConfig {
        network_id,
        listen: listen_addr.filter(|_| listening),
        executors: cfg.network.executors,
        placement: if cpus.is_empty() {
            CorePlacement::Unbound
        } else {
            CorePlacement::Pinned(cpus)
        },
        read_timeout: Duration::from_millis(cfg.network.read_timeout_ms),
        // A restarted proposer is reached again within half a voter timeout (at most the
        // layer's 1 s), so a rolling restart costs no more than a failover.
        proposer_redial_max: Duration::from_millis(cfg.consensus.voter_timeout_ms / 2).clamp(
            Duration::from_millis(100),
            NetConfig::default().proposer_redial_max,
        ),
        rate_limits: if cfg.network.peer_messages_per_sec == 0 {
            RateLimits::unlimited()
        } else {
            RateLimits {
                messages_per_sec: cfg.network.peer_messages_per_sec,
                ..RateLimits::default()
            }
        },
        // The hello is fixed at start: announce what this node may become.
        is_hub: listen_addr.is_some(),
        max_inbound: cfg.network.max_inbound,
        max_handshakes: cfg.network.max_handshakes,
        max_handshakes_per_source: cfg.network.max_handshakes_per_source,
        max_inflight_frame_bytes: cfg.network.max_inflight_frame_mib << 20,
        // Validated by the config check.
        source_address: cfg.network.source_address.parse().ok(),
        ..NetConfig::default()
    }
}
