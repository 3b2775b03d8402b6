//! The node runtime: stages, executors and the routing of the core's outputs.
//!
//! ```text
//!  pala-net executors ──events──► ingress (batches, rayon verify pool) ──► consensus executor
//!        ▲                                                                      │ │ │
//!        └───────────── commands (released after durability) ◄─────────────────┘ │ │
//!                              storage executor ◄── record groups ────────────────┘ │
//!                              (append, one fdatasync, durable seq) ──► wakes ──────┘
//!  application thread ◄── finalized blocks (released after durability) ◄────────────┘
//! ```
//!
//! Persist-before-send: every `Persist` output gets a sequence number; every later send,
//! broadcast or finalized block is queued behind it and released, in order, only when the
//! storage stage reports that sequence durable. The consensus stage does not wait for the
//! disk itself, so while one group is being fsynced the next one is being built (group
//! commit). All channels are bounded; a stage that has nothing to do blocks on its
//! channel (no spinning).

use crate::app::{Application, KvStore};
use crate::config::Config;
use crate::genesis::{Genesis, GenesisFile};
use crate::mempool::Mempool;
use crate::metrics::{Metrics, StatusView};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use pala_core::{
    BlockArchive, Committees, Input, MessageVerifier, Node, NodeParams, Output, Record, Recovered,
    TimerKind,
};
use pala_crypto::{BlsScheme, BlsSigner};
use pala_net::{
    Admission, AdmitAll, CommitteeAdmission, CorePlacement, Direction, NetCommand, NetConfig,
    NetEvent, NetMetrics, Network, RateLimits,
};
use pala_storage::{EpochStatus, Options, Storage};
use pala_types::{
    Block, BlockSn, Committee, Hash, Message, NodeId, NotarizedBlock, SignatureScheme, Signer,
};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{debug, error, info, trace, warn};

/// State shared by the stages and the HTTP API.
pub struct Shared {
    /// The configuration in force.
    pub cfg: Config,
    /// The genesis.
    pub genesis: Genesis,
    /// This node's id.
    pub id: NodeId,
    /// The node's role in the session of its local epoch (a [`Role`] as `u8`).
    role: AtomicU8,
    /// Metrics.
    pub metrics: Metrics,
    /// Latest state for `/status`.
    pub status: RwLock<StatusView>,
    /// Transactions waiting for a block.
    pub mempool: Mutex<Mempool>,
    /// The application.
    pub app: RwLock<KvStore>,
    /// Storage (the storage stage writes; readers are the archive and the API).
    pub storage: Arc<RwLock<Storage>>,
    /// Network counters.
    pub net_metrics: Arc<NetMetrics>,
    /// Subscribers to finalized blocks (the API's stream).
    pub subscribers: Mutex<Vec<Sender<Arc<Block>>>>,
    /// Submission times of transactions submitted through this node, for latency.
    pub submitted: Mutex<HashMap<Hash, Instant>>,
    /// Set when the node is shutting down: stop proposing, refuse submissions.
    pub stopping: AtomicBool,
    /// Peers reached by dialing a `network.bootnodes` address: kept when a reconfiguration
    /// ends (C-5), whatever committee they are in.
    bootnode_peers: RwLock<std::collections::HashSet<NodeId>>,
    fatal: Sender<String>,
}

impl Shared {
    /// Reports a fatal error: the node shuts down and exits non-zero.
    pub fn fail(&self, msg: String) {
        error!("{msg}");
        let _ = self.fatal.try_send(msg);
    }

    /// The node's role in the session of its local epoch.
    pub fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Relaxed))
    }

    /// Whether the node proposes in the session of its local epoch (it keeps a mempool).
    pub fn is_proposer(&self) -> bool {
        self.role() == Role::Proposer
    }
}

/// What a node does in a session (R-1). It is decided per session from the committees the
/// node knows, so it changes at reconfigurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// In no committee of the session: syncs, verifies and serves the chain, never signs.
    Follower = 0,
    /// Votes on proposals and sends clock messages.
    Voter = 1,
    /// Proposes when the rotation makes it primary (R-2).
    Proposer = 2,
}

impl Role {
    /// The name shown by `/status` and the `pala_role` metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::Voter => "voter",
            Role::Proposer => "proposer",
        }
    }

    /// Every role, in the order the metric lists them.
    pub const ALL: [Role; 3] = [Role::Proposer, Role::Voter, Role::Follower];

    fn from_u8(v: u8) -> Role {
        match v {
            2 => Role::Proposer,
            1 => Role::Voter,
            _ => Role::Follower,
        }
    }

    fn of(c: &Committee, id: &NodeId) -> Role {
        if c.is_proposer(id) {
            Role::Proposer
        } else if c.is_voter(id) {
            Role::Voter
        } else {
            Role::Follower
        }
    }
}

/// The committees this node knows, and what follows from them: its role per session,
/// whom it dials (W-2) and whom it admits (S-3).
///
/// A proposer admits the members of the sessions in force and, ahead of time, the members
/// of the later sessions that the genesis schedule names (section 0.1 item 11): those
/// committees are public and fixed, and a member-to-be must be caught up when its session
/// begins (the new primary's readiness gate, N-2, waits for a quorum of them). Clients in
/// no such committee are followers; only a node with `network.serve_followers` (a
/// bootnode in the sense of S-3) admits them.
#[derive(Clone, Debug)]
struct Membership {
    me: NodeId,
    /// Committees of the sessions in force, oldest first (two during a reconfiguration).
    sessions: Vec<Arc<Committee>>,
    /// The genesis schedule of later sessions.
    schedule: BTreeMap<u32, Committee>,
}

impl Membership {
    fn new(me: NodeId, genesis: &Genesis, recovered: &[Committee]) -> Membership {
        let mut sessions = vec![Arc::new(genesis.committee.clone())];
        // Committees installed before a restart (C-3) verify and admit as they did then.
        for c in recovered {
            sessions.retain(|o| o.session != c.session);
            sessions.push(Arc::new(c.clone()));
        }
        sessions.sort_by_key(|c| c.session);
        if let Some(last) = sessions.last().map(|c| c.session) {
            sessions.retain(|c| c.session + 1 >= last);
        }
        Membership {
            me,
            sessions,
            schedule: genesis.schedule.clone(),
        }
    }

    /// The newest session in force.
    fn newest(&self) -> u32 {
        self.sessions.last().map_or(1, |c| c.session)
    }

    /// Scheduled committees of sessions after those in force.
    fn upcoming(&self) -> impl Iterator<Item = &Committee> {
        let newest = self.newest();
        self.schedule.range(newest + 1..).map(|(_, c)| c)
    }

    /// The role in `session` (a follower when its committee is not in force here).
    fn role(&self, session: u32) -> Role {
        self.sessions
            .iter()
            .find(|c| c.session == session)
            .map_or(Role::Follower, |c| Role::of(c, &self.me))
    }

    /// C-3: the committee of the next session is installed.
    fn install(&mut self, c: Arc<Committee>) {
        self.sessions
            .retain(|o| o.session != c.session && o.session + 1 >= c.session);
        self.sessions.push(c);
        self.sessions.sort_by_key(|c| c.session);
    }

    /// C-5: `session` is final; the committees before it retire.
    fn retire_before(&mut self, session: u32) {
        self.sessions.retain(|c| c.session >= session);
    }

    /// The committees whose members a listening node admits.
    fn admitted(&self) -> Vec<&Committee> {
        self.sessions
            .iter()
            .map(|c| c.as_ref())
            .chain(self.upcoming())
            .collect()
    }

    /// The proposers to keep connections to (W-2), by address: those of the sessions in
    /// force (a follower syncs from them), and those of every scheduled session this node
    /// is a member of (their admission knows it in advance). A proposer dials only
    /// proposers with a greater id, so each proposer pair has one connection.
    fn dial_targets(&self) -> BTreeMap<SocketAddr, NodeId> {
        let me = self.me;
        let mine = self
            .upcoming()
            .filter(|c| Role::of(c, &me) != Role::Follower);
        let mut out = BTreeMap::new();
        for c in self.sessions.iter().map(|c| c.as_ref()).chain(mine) {
            let i_propose = c.is_proposer(&me);
            for p in &c.proposers {
                if p.id == me || (i_propose && p.id < me) {
                    continue;
                }
                if let Ok(addr) = p.address.parse() {
                    out.insert(addr, p.id);
                }
            }
        }
        out
    }

    /// The first known committee (in force or scheduled) that makes this node a proposer,
    /// with the address it gives for it.
    fn proposer_of(&self) -> Option<(&Committee, &str)> {
        self.sessions
            .iter()
            .map(|c| c.as_ref())
            .chain(self.upcoming())
            .find_map(|c| {
                c.proposers
                    .iter()
                    .find(|p| p.id == self.me)
                    .map(|p| (c, p.address.as_str()))
            })
    }

    /// Start-time check: a node that is a proposer of a session in force or of a scheduled
    /// one must listen, since voters and followers dial the proposers (W-1).
    fn check_listen(&self, listen: Option<SocketAddr>, key_file: &std::path::Path) -> Result<()> {
        if listen.is_some() {
            return Ok(());
        }
        if let Some((c, address)) = self.proposer_of() {
            let origin = if c.session == 1 {
                "the genesis committee"
            } else if self.schedule.get(&c.session) == Some(c) {
                "the genesis schedule"
            } else {
                "a committee installed by a reconfiguration"
            };
            bail!(
                "network.listen is empty, but the key in {} (id {}) is a proposer of session {} \
                 ({origin}) and a proposer must listen: set network.listen to \"ip:port\" \
                 (the committee gives its address as `{}`)",
                key_file.display(),
                self.me.to_hex(),
                c.session,
                address
            );
        }
        Ok(())
    }
}

/// W-1: proposers and bootnodes are hubs. A node that is neither yet keeps its
/// `network.listen` for the reconfiguration that makes it a proposer (C-3 step 3).
fn listens_at_start(cfg: &Config, m: &Membership) -> bool {
    cfg.listen_addr().is_some() && (cfg.network.serve_followers || m.proposer_of().is_some())
}

/// Milliseconds since the Unix epoch: block timestamps are comparable across nodes.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks what glommio needs before any executor starts, with a fix in the message.
pub fn preflight() -> Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    const NEED: u64 = 512 * 1024;
    if rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < NEED {
        bail!(
            "the memlock limit is {} KiB; the io_uring executors need at least {} KiB.\n\
             Fix: `ulimit -l 65536` in this shell (raise the hard limit in \
             /etc/security/limits.conf: `* - memlock 65536`), `LimitMEMLOCK=64M` in a systemd \
             unit, or `--ulimit memlock=67108864:67108864` for docker run",
            lim.rlim_cur / 1024,
            NEED / 1024
        );
    }
    // An io_uring_setup with a tiny ring tells whether the kernel offers io_uring at all.
    let mut params = [0u32; 30];
    // SAFETY: io_uring_setup writes at most sizeof(io_uring_params) = 120 bytes into params.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 2u32, params.as_mut_ptr()) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        bail!(
            "io_uring is not available ({err}). The node needs Linux 5.8 or newer with \
             io_uring enabled: check `sysctl kernel.io_uring_disabled` (must be 0); in a \
             container, docker's default seccomp profile blocks io_uring: run with \
             `--security-opt seccomp=unconfined` or a profile that allows io_uring_setup, \
             io_uring_enter and io_uring_register"
        );
    }
    // SAFETY: fd is a descriptor we own.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// The start-time membership checks: any key is accepted (a key in no committee follows
/// the chain), but a proposer of a session in force or of a scheduled session must listen.
fn membership_at_start(
    cfg: &Config,
    genesis: &Genesis,
    id: NodeId,
    recovered: &[Committee],
) -> Result<Membership> {
    let m = Membership::new(id, genesis, recovered);
    m.check_listen(cfg.listen_addr(), &cfg.node.key_file)?;
    Ok(m)
}

/// The archive of finalized blocks the core serves chain sync from.
struct StorageArchive {
    storage: Arc<RwLock<Storage>>,
    /// The genesis block is final by definition but never written to storage, so the
    /// storage's height map starts at 1. A node that has nothing but genesis names it as
    /// its only known block in a fresher-head request (W-7.3): without it here, every peer
    /// past height 0 would find no common block and answer with no blocks, and that node
    /// would stay at genesis for good.
    genesis: Arc<Block>,
}

impl BlockArchive for StorageArchive {
    fn finalized_at(&self, height: u64) -> Option<NotarizedBlock> {
        let stored = {
            let st = self.storage.read().unwrap_or_else(|e| e.into_inner());
            st.finalized_at(height)
                .and_then(|(sn, _)| st.notarized_block(sn).ok().flatten())
        };
        stored.or_else(|| {
            (height == self.genesis.height()).then(|| NotarizedBlock {
                block: self.genesis.clone(),
                notarization: None,
            })
        })
    }
}

/// Builds the core's recovered state from the storage's recovery set (P-3).
pub fn recovered_from(st: &Storage) -> Result<Recovered> {
    let set = st.recovery_set().context("reading the recovery set")?;
    let mut rec = Recovered {
        finalized: set.root,
        ..Recovered::default()
    };
    for nb in set.descendants {
        if let Some(n) = nb.notarization {
            rec.notarizations.push(n);
        }
        rec.blocks.push(nb.block);
    }
    rec.epoch = set.epoch.map(|s| (s.epoch, s.clock));
    rec.vote_guards = set.vote_guards.into_iter().collect();
    rec.clock_guard = set.clock_guard;
    // R-3: the sessions in force are the finalized head's, the one before it, and the next
    // one inside a reconfiguration window; older committees would admit retired members.
    let root_session = rec
        .finalized
        .as_ref()
        .map_or(1, |nb| nb.block.sn().epoch.session.max(1));
    rec.committees = set
        .committees
        .into_iter()
        .filter(|c| c.session + 1 >= root_session)
        .collect();
    Ok(rec)
}

fn storage_records(r: Record) -> Vec<pala_storage::Record> {
    use pala_storage::Record as S;
    #[allow(unreachable_patterns)]
    match r {
        Record::Block(b) => vec![S::Block(b)],
        Record::Notarization(n) => vec![S::Notarization(n)],
        Record::Finalized { sn, .. } => vec![S::FinalizedHead(sn)],
        Record::Epoch { epoch, clock } => {
            let mut v = Vec::with_capacity(2);
            if let Some(c) = &clock {
                v.push(S::ClockNotarization(c.clone()));
            }
            v.push(S::EpochStatus(EpochStatus { epoch, clock }));
            v
        }
        Record::VoteGuard { epoch, s } => vec![S::VoteGuard { epoch, s }],
        Record::ClockGuard(e) => vec![S::ClockGuard(e)],
        Record::StopBlock {
            session, height, ..
        } => vec![S::StopBlock { session, height }],
        Record::Committee(c) => vec![S::Committee(c)],
        other => {
            warn!(
                ?other,
                "record kind unknown to this runtime version; not persisted"
            );
            Vec::new()
        }
    }
}

fn placement(cpu: i64) -> Placement {
    if cpu >= 0 {
        Placement::Fixed(cpu as usize)
    } else {
        Placement::Unbound
    }
}

/// Messages into the consensus stage.
enum ConsIn {
    Input(Input),
}

/// A group of records for one fdatasync, tagged with the last persist sequence number.
struct StorageJob {
    seq: u64,
    records: Vec<pala_storage::Record>,
}

enum Effect {
    Net(NetCommand),
    Finalized(Arc<Block>),
}

/// A running node.
pub struct RunningNode {
    shared: Arc<Shared>,
    net: Option<Network>,
    ingress: Option<std::thread::JoinHandle<()>>,
    consensus: Option<ExecutorJoinHandle<()>>,
    storage: Option<ExecutorJoinHandle<()>>,
    app: Option<std::thread::JoinHandle<()>>,
    http: Option<crate::http::HttpServer>,
    fatal_rx: Receiver<String>,
}

impl RunningNode {
    /// Starts every stage of the node described by `cfg`.
    pub fn start(cfg: Config) -> Result<RunningNode> {
        preflight()?;
        let genesis = GenesisFile::read(&cfg.node.genesis_file)?.load()?;
        let signer =
            BlsSigner::load(&cfg.node.key_file).map_err(|e| anyhow!("node.key_file: {e}"))?;
        let id = signer.node_id();
        let storage = Storage::open(&cfg.node.data_dir, Options::default())
            .with_context(|| format!("opening data directory {}", cfg.node.data_dir.display()))?;
        let report = storage.recovery_report();
        if !report.is_clean() {
            warn!(?report, "storage recovered a torn or damaged tail");
        }
        let recovered = recovered_from(&storage)?;
        let storage = Arc::new(RwLock::new(storage));
        let app_path = cfg.node.data_dir.join("app-kv.bin");
        let kv = KvStore::open(Some(&app_path))?.with_network(genesis.network_id);
        // A key in no committee is accepted: the node follows the chain until a committee
        // naming it is installed (C-3), and goes back to following when it is dropped.
        let membership = membership_at_start(&cfg, &genesis, id, &recovered.committees)?;
        let scheme = Arc::new(BlsScheme::new());
        let dyn_scheme: Arc<dyn SignatureScheme> = scheme.clone();
        let mut committees = Committees::default();
        committees.install(dyn_scheme.as_ref(), genesis.committee.clone());
        for c in &recovered.committees {
            committees.install(dyn_scheme.as_ref(), c.clone());
        }
        let verifier = Arc::new(RwLock::new(MessageVerifier::new(
            dyn_scheme.clone(),
            genesis.network_id,
            committees.clone(),
        )));
        let signer: Arc<BlsSigner> = Arc::new(signer);
        let dyn_signer: Arc<dyn Signer> = signer.clone();
        let cap = cfg.runtime.channel_capacity;

        // The consensus stage updates the admitted set at each reconfiguration (C-3, C-5).
        let committee_admission = Arc::new(CommitteeAdmission::default());
        committee_admission.set_committees(&membership.admitted());
        let admission: Arc<dyn Admission> = if cfg.network.serve_followers {
            Arc::new(AdmitAll)
        } else {
            committee_admission.clone()
        };
        let listening = listens_at_start(&cfg, &membership);
        let bootnodes: BTreeMap<SocketAddr, Option<NodeId>> = cfg
            .bootnodes()
            .into_iter()
            // A configuration shared by all nodes may list this node too.
            .filter(|b| b.id != Some(id) && Some(b.addr) != cfg.listen_addr())
            .map(|b| (b.addr, b.id))
            .collect();
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (net_cpus, consensus_cpu, storage_cpu, verify_threads) = cfg.placement(ncpu);
        for (key, c) in [
            ("runtime.consensus_cpu", consensus_cpu),
            ("runtime.storage_cpu", storage_cpu),
        ] {
            if c >= ncpu as i64 {
                bail!(
                    "{key} = {c}: this machine has CPUs 0..={}; use one of them or -1",
                    ncpu - 1
                );
            }
        }
        if let Some(c) = net_cpus.iter().find(|c| **c >= ncpu) {
            bail!(
                "network.cpus contains {c}: this machine has CPUs 0..={}",
                ncpu - 1
            );
        }
        info!(
            cpus = ncpu,
            ?net_cpus,
            consensus_cpu,
            storage_cpu,
            verify_threads,
            "stage placement (-1 / empty: unpinned)"
        );
        let netcfg = NetConfig {
            network_id: genesis.network_id,
            listen: cfg.listen_addr().filter(|_| listening),
            executors: cfg.network.executors,
            placement: if net_cpus.is_empty() {
                CorePlacement::Unbound
            } else {
                CorePlacement::Pinned(net_cpus)
            },
            read_timeout: Duration::from_millis(cfg.network.read_timeout_ms),
            heartbeat_interval: Duration::ZERO,
            rate_limits: if cfg.network.peer_messages_per_sec == 0 {
                RateLimits::unlimited()
            } else {
                RateLimits {
                    messages_per_sec: cfg.network.peer_messages_per_sec,
                    ..RateLimits::default()
                }
            },
            // The hello is fixed at start: announce what this node may become.
            is_hub: cfg.listen_addr().is_some(),
            ..NetConfig::default()
        };
        let params = NodeParams {
            config: pala_core::CoreConfig {
                stop_offset: genesis.stop_offset,
                schedule: genesis.schedule.clone(),
                ..cfg.core_config(genesis.network_id)
            },
            signer: dyn_signer.clone(),
            scheme: dyn_scheme.clone(),
            committees,
            genesis: genesis.block.clone(),
            archive: Arc::new(StorageArchive {
                storage: storage.clone(),
                genesis: genesis.block.clone(),
            }),
        };
        let core = Node::recover(params, recovered);
        let role = membership.role(core.epoch().session);
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
        let net = Network::start(netcfg, dyn_signer, dyn_scheme, admission)
            .map_err(|e| anyhow!("starting the network: {e}"))?;
        let (fatal_tx, fatal_rx) = bounded(4);
        let shared = Arc::new(Shared {
            metrics: Metrics::default(),
            status: RwLock::new(StatusView {
                id: id.to_hex(),
                role: role.as_str().into(),
                ..StatusView::default()
            }),
            mempool: Mutex::new(Mempool::new(cfg.mempool.clone())),
            app: RwLock::new(kv),
            storage: storage.clone(),
            net_metrics: net.metrics().clone(),
            subscribers: Mutex::new(Vec::new()),
            submitted: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            bootnode_peers: RwLock::new(Default::default()),
            fatal: fatal_tx,
            id,
            role: AtomicU8::new(role as u8),
            genesis: genesis.clone(),
            cfg: cfg.clone(),
        });
        replay_application(&shared)?;
        // Bound before any stage starts, so a port clash fails start-up cleanly.
        let http = match cfg.http_addr() {
            Some(addr) => Some(crate::http::HttpServer::start(shared.clone(), addr)?),
            None => None,
        };

        for (addr, id) in &bootnodes {
            net.dial(*addr, *id)
                .map_err(|e| anyhow!("dialing bootnode {addr}: {e}"))?;
        }
        let mut dialed = membership.dial_targets();
        // One dial per address: a bootnode that is also a proposer stays dialed as a bootnode.
        dialed.retain(|addr, _| !bootnodes.contains_key(addr));
        for (addr, p) in &dialed {
            net.dial(*addr, Some(*p))
                .map_err(|e| anyhow!("dialing {addr}: {e}"))?;
        }

        let (cons_tx, cons_rx) = bounded::<ConsIn>(cap);
        let (job_tx, job_rx) = bounded::<StorageJob>(cap);
        let (wake_tx, wake_rx) = bounded::<()>(1);
        let (app_tx, app_rx) = bounded::<Arc<Block>>(cap);
        let durable = Arc::new(AtomicU64::new(0));

        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(verify_threads)
            .thread_name(|i| format!("pala-verify-{i}"))
            .build()
            .context("starting the verification pool")?;
        let ingress = {
            let events = net.events().clone();
            let commands = net.commands();
            let shared = shared.clone();
            let cons_tx = cons_tx.clone();
            let batch = cfg.runtime.verify_batch;
            let verifier = verifier.clone();
            std::thread::Builder::new()
                .name("pala-ingress".into())
                .spawn(move || {
                    ingress_loop(shared, events, commands, verifier, pool, cons_tx, batch)
                })
                .context("starting the ingress thread")?
        };

        let storage_exec = {
            let shared = shared.clone();
            let durable = durable.clone();
            LocalExecutorBuilder::new(placement(storage_cpu))
                .name("pala-storage")
                .io_memory(64 << 10)
                .spawn(move || async move { storage_loop(shared, job_rx, durable, wake_tx) })
                .map_err(|e| anyhow!("starting the storage executor: {e}"))?
        };

        let consensus_exec = {
            let shared = shared.clone();
            let commands = net.commands();
            let stage = ConsensusStage {
                core,
                shared,
                commands,
                jobs: Some(job_tx),
                app: Some(app_tx),
                durable,
                timers: BTreeMap::new(),
                payload: None,
                persist_seq: 0,
                sent_seq: 0,
                gate: VecDeque::new(),
                records: Vec::new(),
                local: VecDeque::new(),
                clock_last: 0,
                verifier,
                peers: Default::default(),
                admission: committee_admission,
                serve_followers: cfg.network.serve_followers,
                listening,
                listen_addr: cfg.listen_addr(),
                bootnodes,
                membership,
                dialed,
                role,
            };
            LocalExecutorBuilder::new(placement(consensus_cpu))
                .name("pala-consensus")
                .io_memory(64 << 10)
                .spawn(move || async move { stage.run(cons_rx, wake_rx) })
                .map_err(|e| anyhow!("starting the consensus executor: {e}"))?
        };
        let app = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("pala-app".into())
                .spawn(move || app_loop(shared, app_rx))
                .context("starting the application thread")?
        };
        drop(cons_tx);
        Ok(RunningNode {
            shared,
            net: Some(net),
            ingress: Some(ingress),
            consensus: Some(consensus_exec),
            storage: Some(storage_exec),
            app: Some(app),
            http,
            fatal_rx,
        })
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The HTTP address actually bound.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().map(|h| h.addr())
    }

    /// Fatal errors reported by the stages.
    pub fn fatal(&self) -> &Receiver<String> {
        &self.fatal_rx
    }

    /// Stops proposing, drains the stages, flushes storage, closes connections.
    pub fn shutdown(mut self) -> Result<()> {
        info!("shutting down: stop proposing, flush storage, close connections");
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(h) = self.http.take() {
            h.stop();
        }
        // The ingress thread notices `stopping` within its poll period and drops its
        // sender; the consensus stage then flushes and drops the storage and app senders.
        if let Some(t) = self.ingress.take() {
            let _ = t.join();
        }
        if let Some(c) = self.consensus.take() {
            let _ = c.join();
        }
        if let Some(s) = self.storage.take() {
            let _ = s.join();
        }
        if let Some(a) = self.app.take() {
            let _ = a.join();
        }
        if let Some(n) = self.net.take() {
            n.shutdown();
        }
        info!("stopped cleanly");
        Ok(())
    }
}

/// Applies finalized blocks that storage has but the application has not (after a crash
/// between the storage's and the application's writes), so every block is applied once.
fn replay_application(shared: &Arc<Shared>) -> Result<()> {
    let st = shared.storage.read().unwrap_or_else(|e| e.into_inner());
    let Some((_, hi)) = st.finalized_range() else {
        return Ok(());
    };
    let mut app = shared.app.write().unwrap_or_else(|e| e.into_inner());
    let from = app.applied_height() + 1;
    for h in from..=hi {
        let Some(b) = st.finalized_block(h).context("reading a finalized block")? else {
            bail!("finalized block at height {h} is missing from storage; cannot replay the application");
        };
        app.apply(&b);
    }
    if hi >= from {
        info!(
            from,
            to = hi,
            "replayed finalized blocks into the application"
        );
        app.persist().context("persisting the application state")?;
    }
    Ok(())
}

fn ingress_loop(
    shared: Arc<Shared>,
    events: flume::Receiver<NetEvent>,
    commands: flume::Sender<NetCommand>,
    verifier: Arc<RwLock<MessageVerifier>>,
    pool: rayon::ThreadPool,
    cons_tx: Sender<ConsIn>,
    batch_max: usize,
) {
    let mut failures: HashMap<NodeId, u32> = HashMap::new();
    let mut peer_heads: HashMap<NodeId, u64> = HashMap::new();
    let bootnode_addrs: Vec<SocketAddr> = shared.cfg.bootnodes().iter().map(|b| b.addr).collect();
    let m = &shared.metrics;
    while !shared.stopping.load(Ordering::Relaxed) {
        let first = match events.recv_timeout(Duration::from_millis(100)) {
            Ok(e) => e,
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(flume::RecvTimeoutError::Disconnected) => break,
        };
        let mut evs = vec![first];
        while evs.len() < batch_max {
            match events.try_recv() {
                Ok(e) => evs.push(e),
                Err(_) => break,
            }
        }
        let mut slots: Vec<Option<Input>> = Vec::with_capacity(evs.len());
        let mut msgs = Vec::new();
        for ev in evs {
            match ev {
                NetEvent::PeerUp {
                    peer,
                    addr,
                    direction,
                    ..
                } => {
                    info!(peer = %peer.to_hex(), %addr, "peer connected");
                    if direction == Direction::Outbound && bootnode_addrs.contains(&addr) {
                        shared
                            .bootnode_peers
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(peer);
                    }
                    slots.push(Some(Input::PeerConnected(peer)));
                }
                NetEvent::PeerDown { peer, reason } => {
                    info!(peer = %peer.to_hex(), reason = reason.as_str(), "peer disconnected");
                    peer_heads.remove(&peer);
                    slots.push(Some(Input::PeerDisconnected(peer)));
                }
                NetEvent::HandshakeFailed { addr, reason, .. } => {
                    debug!(%addr, reason = reason.as_str(), "handshake failed");
                }
                NetEvent::Message { peer, message } => {
                    if let Message::Status(s) = &message {
                        trace!(peer = %peer.to_hex(), head = %s.head, epoch = ?s.epoch, "status received");
                        peer_heads.insert(peer, s.head_height);
                        let max = peer_heads.values().copied().max().unwrap_or(0);
                        m.peer_head_height.store(max, Ordering::Relaxed);
                    }
                    if let Message::FresherHead(r) = &message {
                        debug!(
                            peer = %peer.to_hex(), blocks = r.blocks.len(), finalized = ?r.finalized.map(|f| f.0),
                            "sync response received"
                        );
                    }
                    msgs.push((slots.len(), peer, message));
                    slots.push(None);
                }
                _ => {}
            }
        }
        if !msgs.is_empty() {
            m.verify_batch.observe(msgs.len() as f64);
            let verifier = verifier.read().unwrap_or_else(|e| e.into_inner()).clone();
            // Votes on one block share a message: they are checked as one aggregate per
            // block, with bisection only when an aggregate fails (PV-3); every other
            // message is verified on its own, in parallel on the pool.
            let (votes, others): (Vec<_>, Vec<_>) = msgs
                .into_iter()
                .partition(|(_, _, msg)| matches!(msg, Message::Vote(_)));
            let checked: Vec<_> = pool.install(|| {
                let mut out: Vec<_> = others
                    .into_par_iter()
                    .map(|(i, peer, msg)| (i, peer, verifier.verify(msg)))
                    .collect();
                if !votes.is_empty() {
                    let (meta, raw): (Vec<_>, Vec<_>) = votes
                        .into_iter()
                        .map(|(i, peer, msg)| match msg {
                            Message::Vote(v) => ((i, peer), v),
                            _ => unreachable!("partitioned on votes"),
                        })
                        .unzip();
                    m.vote_batch.observe(raw.len() as f64);
                    let results = verifier.verify_votes(raw);
                    out.extend(
                        meta.into_iter()
                            .zip(results)
                            .map(|((i, peer), r)| (i, peer, r.map(Into::into))),
                    );
                }
                out
            });
            for (i, peer, r) in checked {
                match r {
                    Ok(msg) => {
                        count_message(m, &msg);
                        slots[i] = Some(Input::Message { from: peer, msg });
                    }
                    Err(e) => {
                        m.verify_failures.fetch_add(1, Ordering::Relaxed);
                        let f = failures.entry(peer).or_insert(0);
                        *f += 1;
                        debug!(peer = %peer.to_hex(), error = %e, "message failed verification");
                        // Section 0.1 item 6: past a threshold, drop the peer.
                        if *f == 100 {
                            warn!(peer = %peer.to_hex(), "too many invalid messages; disconnecting");
                            let _ = commands.try_send(NetCommand::Disconnect { peer });
                            failures.remove(&peer);
                        }
                    }
                }
            }
        }
        for input in slots.into_iter().flatten() {
            if cons_tx.send(ConsIn::Input(input)).is_err() {
                return;
            }
        }
    }
}

fn count_message(m: &Metrics, msg: &Message) {
    let c = match msg {
        Message::Vote(_) => &m.votes_in,
        Message::Proposal(_) | Message::UnnotarizedProposals(_) => &m.proposals_in,
        Message::Notarization(_) => &m.notarizations_in,
        Message::Clock(_) | Message::ClockNotarization(_) => &m.clock_in,
        _ => return,
    };
    c.fetch_add(1, Ordering::Relaxed);
}

struct ConsensusStage {
    core: Node,
    shared: Arc<Shared>,
    commands: flume::Sender<NetCommand>,
    jobs: Option<Sender<StorageJob>>,
    app: Option<Sender<Arc<Block>>>,
    durable: Arc<AtomicU64>,
    timers: BTreeMap<TimerKind, u64>,
    payload: Option<(BlockSn, u64)>,
    persist_seq: u64,
    sent_seq: u64,
    gate: VecDeque<(u64, Effect)>,
    records: Vec<pala_storage::Record>,
    local: VecDeque<Input>,
    clock_last: u64,
    verifier: Arc<RwLock<MessageVerifier>>,
    peers: std::collections::BTreeSet<NodeId>,
    /// The members a listening node admits (unless it serves followers, which admits all).
    admission: Arc<CommitteeAdmission>,
    /// `network.serve_followers`.
    serve_followers: bool,
    /// Whether the network layer listens.
    listening: bool,
    /// `network.listen`, where to listen once this node becomes a proposer.
    listen_addr: Option<SocketAddr>,
    /// `network.bootnodes` (without this node itself), dialed for the whole run.
    bootnodes: BTreeMap<SocketAddr, Option<NodeId>>,
    /// The committees known here and what follows from them.
    membership: Membership,
    /// Proposer addresses the network layer keeps connected.
    dialed: BTreeMap<SocketAddr, NodeId>,
    /// The role in the session of the local epoch.
    role: Role,
}

impl ConsensusStage {
    /// Brings admission and the dialed proposers in line with the known committees.
    fn apply_membership(&mut self) {
        self.admission.set_committees(&self.membership.admitted());
        let mut targets = self.membership.dial_targets();
        targets.retain(|addr, _| !self.bootnodes.contains_key(addr));
        let gone: Vec<SocketAddr> = self
            .dialed
            .keys()
            .filter(|a| !targets.contains_key(a))
            .copied()
            .collect();
        for addr in gone {
            self.dialed.remove(&addr);
            self.effect(Effect::Net(NetCommand::Undial { addr }));
        }
        for (addr, id) in targets {
            if self.dialed.insert(addr, id) != Some(id) {
                self.effect(Effect::Net(NetCommand::Dial {
                    addr,
                    expected: Some(id),
                }));
            }
        }
    }

    /// C-3 step 3: a node that the installed committee `c` makes a proposer becomes a hub,
    /// before the new voters dial it.
    fn start_listening(&mut self, c: &Committee) {
        let me = self.shared.id;
        let address = c
            .proposers
            .iter()
            .find(|p| p.id == me)
            .map_or("", |p| p.address.as_str());
        let Some(addr) = self.listen_addr else {
            error!(
                session = c.session,
                "network.listen is empty, but this node's key is a proposer of session {}: \
                 voters cannot connect to it, so it cannot propose. Set network.listen to \
                 \"ip:port\" (the committee gives `{address}`) and restart",
                c.session,
            );
            return;
        };
        // Waiting here is brief (one bind on the network executor) and happens once per
        // promotion; the outcome decides what to tell the operator.
        let (tx, rx) = flume::bounded(1);
        let wait = Duration::from_secs(5);
        let cmd = NetCommand::Listen {
            addr,
            reply: Some(tx),
        };
        let outcome = match self.commands.send_timeout(cmd, wait) {
            Ok(()) => rx
                .recv_timeout(wait)
                .map_err(|_| "the network layer did not answer".to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(_) => Err("the network layer did not take the command".to_string()),
        };
        match outcome {
            Ok(bound) => {
                info!(session = c.session, %bound, "proposer of the new session: listening");
                self.listening = true;
            }
            Err(e) => error!(
                session = c.session,
                "this node's key is a proposer of session {}, but listening on network.listen \
                 = \"{addr}\" failed: {e}. Voters cannot connect to it; fix network.listen \
                 (the committee gives `{address}`) and restart",
                c.session,
            ),
        }
    }

    /// Whether a connection to `peer` stays after a reconfiguration ends (C-5).
    fn keeps(&self, peer: &NodeId) -> bool {
        self.dialed.values().any(|p| p == peer)
            || self
                .shared
                .bootnode_peers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(peer)
            || (self.listening && (self.serve_followers || self.admission.contains(peer)))
    }

    /// Follows the role of the session of the local epoch, which is what the core acts on
    /// (it votes and proposes only as a member of that session's committee).
    fn update_role(&mut self) {
        let session = self.core.epoch().session;
        let role = self.membership.role(session);
        if role == self.role {
            return;
        }
        info!(
            session,
            from = self.role.as_str(),
            to = role.as_str(),
            "role changed"
        );
        self.role = role;
        self.shared.role.store(role as u8, Ordering::Relaxed);
        self.shared
            .status
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .role = role.as_str().into();
    }

    fn now(&mut self) -> u64 {
        // Never backwards, even if the wall clock is stepped.
        self.clock_last = self.clock_last.max(unix_ms());
        self.clock_last
    }

    fn run(mut self, rx: Receiver<ConsIn>, wake: Receiver<()>) {
        let publish_every = 200;
        let mut next_publish = 0;
        self.feed(Input::Start);
        self.flush();
        loop {
            let now = self.now();
            let mut deadline = next_publish;
            if let Some(t) = self.timers.values().min() {
                deadline = deadline.min(*t);
            }
            if let Some((_, t)) = self.payload {
                deadline = deadline.min(t);
            }
            let wait = Duration::from_millis(deadline.saturating_sub(now));
            let mut disconnected = false;
            select! {
                recv(rx) -> m => match m {
                    Ok(ConsIn::Input(i)) => self.local.push_back(i),
                    Err(_) => disconnected = true,
                },
                recv(wake) -> _ => {},
                default(wait) => {},
            }
            // Take what else is queued so one storage group covers many inputs.
            while self.local.len() < 1024 {
                match rx.try_recv() {
                    Ok(ConsIn::Input(i)) => self.local.push_back(i),
                    Err(_) => break,
                }
            }
            let now = self.now();
            let due: Vec<TimerKind> = self
                .timers
                .iter()
                .filter(|(_, t)| **t <= now)
                .map(|(k, _)| *k)
                .collect();
            for k in due {
                self.timers.remove(&k);
                self.local.push_back(Input::Timer(k));
            }
            self.maybe_payload(now);
            while let Some(i) = self.local.pop_front() {
                self.feed(i);
                if self.local.is_empty() {
                    let now = self.now();
                    self.maybe_payload(now);
                }
            }
            self.flush();
            self.release();
            if now >= next_publish {
                self.publish();
                next_publish = now + publish_every;
            }
            if disconnected {
                break;
            }
        }
        self.drain();
    }

    /// Answers the core's payload request when the block is full or its time is up.
    fn maybe_payload(&mut self, now: u64) {
        let Some((sn, deadline)) = self.payload else {
            return;
        };
        if self.shared.stopping.load(Ordering::Relaxed) {
            // Stop proposing: the request is dropped, never answered.
            self.payload = None;
            return;
        }
        let b = &self.shared.cfg.block;
        let mut pool = self
            .shared
            .mempool
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if now < deadline && !pool.can_fill(b.max_txs, b.max_bytes) {
            return;
        }
        let txs = pool.take(b.max_txs, b.max_bytes);
        drop(pool);
        self.payload = None;
        self.local.push_back(Input::Payload {
            sn,
            txs,
            timestamp_ms: unix_ms(),
        });
    }

    fn feed(&mut self, input: Input) {
        match &input {
            Input::PeerConnected(p) => {
                self.peers.insert(*p);
            }
            Input::PeerDisconnected(p) => {
                self.peers.remove(p);
            }
            _ => {}
        }
        let now = self.now();
        let outs = self.core.handle(now, input);
        for o in outs {
            self.route(o, now);
        }
    }

    fn route(&mut self, o: Output, now: u64) {
        #[allow(unreachable_patterns)]
        match o {
            Output::Persist(r) => {
                self.records.extend(storage_records(r));
                self.persist_seq += 1;
            }
            Output::Send { to, msg } => {
                match &msg {
                    Message::GetEpoch(e) => {
                        debug!(peer = %to.to_hex(), epoch = ?e, "sync request: epoch")
                    }
                    Message::GetFresherHead(r) => debug!(
                        peer = %to.to_hex(), head = %r.head, known = ?r.known.iter().map(|k| k.0).collect::<Vec<_>>(),
                        "sync request: fresher head"
                    ),
                    Message::FresherHead(r) => debug!(
                        peer = %to.to_hex(), blocks = r.blocks.len(), finalized = ?r.finalized.map(|f| f.0),
                        "sync response: fresher head"
                    ),
                    _ => {}
                }
                self.effect(Effect::Net(NetCommand::Send { to, message: msg }))
            }
            Output::Broadcast(msg) => {
                if let Message::Proposal(p) = &msg {
                    trace!(sn = %p.block.sn(), peers = self.peers.len(), "proposal broadcast");
                }
                self.effect(Effect::Net(NetCommand::Broadcast { message: msg }))
            }
            Output::SetTimer { kind, at } => {
                self.timers.insert(kind, at);
            }
            Output::RequestPayload { sn } => {
                self.payload = Some((sn, now + self.shared.cfg.block.max_wait_ms));
            }
            Output::Finalized { block, .. } => self.effect(Effect::Finalized(block)),
            Output::EpochChanged(e) => {
                info!(epoch = ?e, "epoch changed");
                self.update_role();
            }
            Output::CommitteeInstalled(c) => {
                info!(session = c.session, "committee installed");
                self.verifier
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .install((*c).clone());
                let me = self.shared.id;
                if c.is_proposer(&me) && !self.listening {
                    self.start_listening(&c);
                }
                // C-3 step 3: admit the new members and connect to the new proposers.
                self.membership.install(c);
                self.apply_membership();
                self.update_role();
            }
            Output::ReconfigurationEnded { session } => {
                // C-5: the new session is final; retired voters and proposers go. A
                // follower keeps its connections: they are how it syncs.
                info!(session, "reconfiguration ended");
                self.membership.retire_before(session);
                self.apply_membership();
                self.update_role();
                if self.membership.role(session) != Role::Follower {
                    let retired: Vec<NodeId> = self
                        .peers
                        .iter()
                        .filter(|p| !self.keeps(p))
                        .copied()
                        .collect();
                    for peer in retired {
                        self.effect(Effect::Net(NetCommand::Disconnect { peer }));
                    }
                }
            }
            Output::Reverify { from, blocks } => {
                let msg = Message::FresherHead(pala_types::FresherHeadResponse {
                    blocks,
                    finalized: None,
                });
                let r = self
                    .verifier
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .verify(msg);
                match r {
                    Ok(msg) => self.local.push_back(Input::Message { from, msg }),
                    Err(e) => debug!(error = %e, "deferred blocks failed verification"),
                }
            }
            other => debug!(?other, "output not handled by this runtime version"),
        }
    }

    fn effect(&mut self, e: Effect) {
        let need = self.persist_seq;
        if self.gate.is_empty() && need <= self.durable.load(Ordering::Acquire) {
            self.execute(e);
        } else {
            self.gate.push_back((need, e));
        }
    }

    fn execute(&mut self, e: Effect) {
        match e {
            Effect::Net(c) => {
                // Never block on the network: a full queue means the peer or layer is
                // overloaded, and the protocol recovers from a lost message.
                if let Err(flume::TrySendError::Full(_)) = self.commands.try_send(c) {
                    self.shared
                        .metrics
                        .net_queue_full
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Effect::Finalized(b) => {
                if let Some(app) = &self.app {
                    let _ = app.send(b);
                }
            }
        }
    }

    /// Hands the records of this round to the storage stage as one group.
    fn flush(&mut self) {
        if self.records.is_empty() || self.sent_seq == self.persist_seq {
            return;
        }
        let job = StorageJob {
            seq: self.persist_seq,
            records: std::mem::take(&mut self.records),
        };
        self.sent_seq = self.persist_seq;
        if let Some(j) = &self.jobs {
            if j.send(job).is_err() {
                self.shared.fail("storage stage stopped".into());
            }
        }
    }

    /// Releases effects whose records are durable, in order.
    fn release(&mut self) {
        let d = self.durable.load(Ordering::Acquire);
        while self.gate.front().is_some_and(|(need, _)| *need <= d) {
            if let Some((_, e)) = self.gate.pop_front() {
                self.execute(e);
            }
        }
    }

    fn publish(&mut self) {
        let c = &self.core;
        let peers: Vec<String> = self.peers.iter().map(|p| p.to_hex()).collect();
        self.shared
            .metrics
            .peers
            .store(peers.len() as i64, Ordering::Relaxed);
        let ready = !peers.is_empty()
            && c.head_block().height() + 2 * c.config().k as u64 + 2
                >= self.shared.metrics.peer_head_height.load(Ordering::Relaxed);
        let applied = self
            .shared
            .app
            .read()
            .map(|a| a.applied_height())
            .unwrap_or(0);
        let mempool_txs = self.shared.mempool.lock().map(|p| p.size().0).unwrap_or(0);
        {
            let mut st = self
                .shared
                .status
                .write()
                .unwrap_or_else(|e| e.into_inner());
            st.epoch = (c.epoch().session, c.epoch().e);
            st.role = self.role.as_str().into();
            st.head = c.head().to_string();
            st.head_height = c.head_block().height();
            st.finalized = c.finalized().to_string();
            st.finalized_height = c.finalized_block().height();
            st.producing = c.is_producing();
            st.peers = peers;
            st.applied_height = applied;
            st.mempool_txs = mempool_txs;
            st.ready = ready;
        }
        let counters: Vec<(String, u64)> = c
            .counters()
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        *self
            .shared
            .metrics
            .core_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = counters;
        let depths = vec![
            ("consensus_gate", self.gate.len()),
            ("storage_jobs", self.jobs.as_ref().map_or(0, |j| j.len())),
            ("application", self.app.as_ref().map_or(0, |a| a.len())),
            ("net_commands", self.commands.len()),
        ];
        let mut d = self
            .shared
            .metrics
            .channel_depths
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        d.retain(|(n, _)| !depths.iter().any(|(m, _)| m == n));
        d.extend(depths);
    }

    /// Shutdown: persist what is pending, wait until durable, release the last effects.
    fn drain(&mut self) {
        self.flush();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.durable.load(Ordering::Acquire) < self.persist_seq && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.release();
        self.publish();
        self.jobs = None;
        self.app = None;
    }
}

fn storage_loop(
    shared: Arc<Shared>,
    jobs: Receiver<StorageJob>,
    durable: Arc<AtomicU64>,
    wake: Sender<()>,
) {
    let m = &shared.metrics;
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < 256 {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let seq = group.iter().map(|j| j.seq).max().unwrap_or(0);
        let n: usize = group.iter().map(|j| j.records.len()).sum();
        let t = Instant::now();
        let result = (|| -> pala_storage::Result<()> {
            let mut st = shared.storage.write().unwrap_or_else(|e| e.into_inner());
            for j in &group {
                for r in &j.records {
                    let _ = st.append(r)?;
                }
            }
            st.sync()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                m.fsync.observe(t.elapsed().as_secs_f64());
                m.storage_batch.observe(n as f64);
                durable.store(seq, Ordering::Release);
                if let Err(TrySendError::Disconnected(_)) = wake.try_send(()) {
                    break;
                }
            }
            Err(e) => {
                shared.fail(format!("storage failed, stopping the node: {e}"));
                return;
            }
        }
    }
    debug!("storage stage stopped");
}

fn app_loop(shared: Arc<Shared>, rx: Receiver<Arc<Block>>) {
    let m = &shared.metrics;
    let mut last_persist = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(block) => {
                let now = unix_ms();
                let applied = {
                    let mut app = shared.app.write().unwrap_or_else(|e| e.into_inner());
                    if block.height() <= app.applied_height() {
                        continue;
                    }
                    app.apply(&block)
                };
                m.finalized_blocks.fetch_add(1, Ordering::Relaxed);
                m.finalized_txs.fetch_add(applied as u64, Ordering::Relaxed);
                m.txs_skipped
                    .fetch_add((block.txs.len() - applied) as u64, Ordering::Relaxed);
                m.block_latency
                    .observe(now.saturating_sub(block.header.timestamp_ms) as f64 / 1000.0);
                let hashes: Vec<Hash> = block.txs.iter().map(|t| Hash::of(t)).collect();
                {
                    let mut sub = shared.submitted.lock().unwrap_or_else(|e| e.into_inner());
                    for h in &hashes {
                        if let Some(t0) = sub.remove(h) {
                            m.tx_latency.observe(t0.elapsed().as_secs_f64());
                        }
                    }
                }
                shared
                    .mempool
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(hashes);
                let mut subs = shared.subscribers.lock().unwrap_or_else(|e| e.into_inner());
                // A subscriber that does not keep up is dropped rather than buffered.
                subs.retain(|s| s.try_send(block.clone()).is_ok());
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if last_persist.elapsed() >= Duration::from_secs(1) {
            if let Err(e) = shared
                .app
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .persist()
            {
                shared.fail(format!("persisting the application state failed: {e}"));
            }
            last_persist = Instant::now();
        }
    }
    if let Err(e) = shared
        .app
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .persist()
    {
        error!("persisting the application state at shutdown failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_core::chain::Chain;
    use pala_core::serve_fresher_head;
    use pala_types::{
        BlockHeader, ConsensusInfo, FresherHeadRequest, Member, Notarization, PublicKey, Signature,
        SignerBitmap,
    };

    fn child(parent: &Block, sn: BlockSn) -> Arc<Block> {
        Arc::new(Block::new(
            BlockHeader {
                sn,
                parent_sn: parent.sn(),
                parent_hash: parent.hash(),
                height: parent.height() + 1,
                session_offset: sn.s,
                timestamp_ms: 1000 + sn.s as u64,
            },
            vec![vec![sn.s as u8]],
            ConsensusInfo::default(),
        ))
    }

    fn nota(b: &Block) -> Notarization {
        let mut signers = SignerBitmap::new(4);
        for i in 0..3 {
            signers.insert(i);
        }
        Notarization {
            sn: b.sn(),
            block_hash: b.hash(),
            proposer_idx: 0,
            signers,
            signature: Signature(vec![7; 48]),
        }
    }

    /// A node that starts (or is wiped) after its peers finalized past genesis knows only
    /// genesis; the cluster stall of 2026-11-25 was every peer answering it with "no
    /// common block" because the storage-backed archive had no height 0.
    #[test]
    fn fresher_head_request_from_genesis_is_served_once_peers_finalized_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = Arc::new(Block::genesis(b"net".to_vec()));
        let mut blocks = vec![genesis.clone()];
        for s in 1..=5u32 {
            let b = child(blocks.last().unwrap(), BlockSn::new(1, 1, s));
            blocks.push(b);
        }
        // What a node persists: every non-genesis block with its notarization, then the
        // finalized head.
        let mut st = Storage::open(dir.path(), Options::default()).unwrap();
        let mut records = Vec::new();
        for b in &blocks[1..] {
            records.push(pala_storage::Record::Block(b.clone()));
            records.push(pala_storage::Record::Notarization(nota(b)));
        }
        let top = blocks.last().unwrap().clone();
        records.push(pala_storage::Record::FinalizedHead(top.sn()));
        st.commit(&records).unwrap();
        st.sync().unwrap();
        assert_eq!(st.finalized_range(), Some((1, 5)), "genesis is not stored");
        let archive = StorageArchive {
            storage: Arc::new(RwLock::new(st)),
            genesis: genesis.clone(),
        };

        // The serving side has pruned everything below its finalized head from memory.
        let chain = Chain::new(top.clone(), Some(nota(&top)));
        let req = FresherHeadRequest {
            head: genesis.sn(),
            known: vec![(genesis.height(), genesis.hash())],
        };
        let resp = serve_fresher_head(&chain, &archive, &req, 16);
        let heights: Vec<u64> = resp.blocks.iter().map(|nb| nb.block.height()).collect();
        assert_eq!(heights, vec![1, 2, 3, 4, 5], "response: {resp:?}");
        assert!(resp.blocks.iter().all(|nb| nb.notarization.is_some()));
        assert_eq!(archive.finalized_at(0).map(|nb| nb.block), Some(genesis));
    }

    /// Start-up accepts any key; what it is follows from the committees it knows.
    #[test]
    fn start_accepts_non_members_and_requires_listen_of_scheduled_proposers() {
        use crate::genesis::{GenesisMember, GenesisSession};
        let nid = 5;
        let keys: Vec<BlsSigner> = (0..6).map(|_| BlsSigner::generate()).collect();
        let ids: Vec<NodeId> = keys.iter().map(|k| k.node_id()).collect();
        let member = |i: usize, address: &str| GenesisMember {
            identity: keys[i].identity(nid).to_line(),
            address: address.into(),
        };
        // Session 1: proposer 0, voters 1-3. Session 2 on: proposers 0 and 4, voters 1, 2
        // and 5 (3 is dropped, 4 and 5 join).
        let genesis = GenesisFile {
            network_id: nid,
            payload: "t".into(),
            stop_offset: 6,
            proposers: vec![member(0, "127.0.0.1:7000")],
            voters: vec![member(1, ""), member(2, ""), member(3, "")],
            sessions: vec![GenesisSession {
                proposers: vec![member(0, "127.0.0.1:7000"), member(4, "127.0.0.1:7004")],
                voters: vec![member(1, ""), member(2, ""), member(5, "")],
            }],
        }
        .load()
        .unwrap();
        let cfg = |listen: &str| {
            let text = format!(
                "[node]\nkey_file = \"keys/n.key\"\ndata_dir = \"d\"\ngenesis_file = \"g\"\n\
                 [network]\nlisten = \"{listen}\"\n"
            );
            Config::from_toml(&text, std::path::Path::new("n.toml"), &[]).unwrap()
        };
        let targets = |m: &Membership| m.dial_targets().into_values().collect::<Vec<_>>();

        // In no committee at all: accepted as a follower that dials the proposer in force,
        // and no proposer admits it (it is nobody's member-to-be).
        let stranger = BlsSigner::generate().node_id();
        let m = membership_at_start(&cfg(""), &genesis, stranger, &[]).unwrap();
        assert_eq!(m.role(1), Role::Follower);
        assert_eq!(targets(&m), vec![ids[0]]);
        let admitted = CommitteeAdmission::default();
        admitted.set_committees(&m.admitted());
        assert!(!admitted.contains(&stranger));
        assert!(
            admitted.contains(&ids[5]),
            "members-to-be are admitted early"
        );

        // A voter-to-be: a follower of session 1 that also dials the proposers of session 2,
        // and a voter once session 2 is installed.
        let mut m = membership_at_start(&cfg(""), &genesis, ids[5], &[]).unwrap();
        assert_eq!(m.role(1), Role::Follower);
        let mut t = targets(&m);
        t.sort();
        let mut want = vec![ids[0], ids[4]];
        want.sort();
        assert_eq!(t, want);
        m.install(Arc::new(genesis.schedule[&2].clone()));
        assert_eq!((m.role(1), m.role(2)), (Role::Follower, Role::Voter));

        // A dropped voter: a voter of session 1, a follower from session 2 on; after C-5
        // it still dials the proposers in force, which is how it keeps syncing.
        let mut m = membership_at_start(&cfg(""), &genesis, ids[3], &[]).unwrap();
        assert_eq!(m.role(1), Role::Voter);
        m.install(Arc::new(genesis.schedule[&2].clone()));
        m.retire_before(2);
        assert_eq!(m.role(2), Role::Follower);
        assert_eq!(targets(&m).len(), 2);

        // A proposer-to-be must listen, and the error says which key to set and why.
        let e = membership_at_start(&cfg(""), &genesis, ids[4], &[])
            .expect_err("a scheduled proposer without network.listen is refused")
            .to_string();
        for want in [
            "network.listen",
            "keys/n.key",
            "session 2",
            "genesis schedule",
            "127.0.0.1:7004",
        ] {
            assert!(e.contains(want), "`{want}` missing from: {e}");
        }
        let m = membership_at_start(&cfg("127.0.0.1:7004"), &genesis, ids[4], &[]).unwrap();
        assert_eq!((m.role(1), m.role(2)), (Role::Follower, Role::Follower));
        // W-2: proposer 4 dials proposer 0 only if 0 has the greater id; as a follower of
        // session 1 it dials it anyway.
        assert_eq!(targets(&m), vec![ids[0]]);
        // The genesis proposer still must listen, as before.
        let e = membership_at_start(&cfg(""), &genesis, ids[0], &[])
            .expect_err("a genesis proposer without network.listen is refused")
            .to_string();
        assert!(
            e.contains("network.listen") && e.contains("genesis committee"),
            "{e}"
        );
    }

    #[test]
    fn only_proposers_and_bootnodes_listen_at_start() {
        let nid = 5;
        let keys: Vec<BlsSigner> = (0..3).map(|_| BlsSigner::generate()).collect();
        let ids: Vec<NodeId> = keys.iter().map(|k| k.node_id()).collect();
        let member = |i: usize, address: &str| crate::genesis::GenesisMember {
            identity: keys[i].identity(nid).to_line(),
            address: address.into(),
        };
        let genesis = GenesisFile {
            network_id: nid,
            payload: "t".into(),
            stop_offset: 0,
            proposers: vec![member(0, "127.0.0.1:7000")],
            voters: vec![member(1, "")],
            sessions: vec![],
        }
        .load()
        .unwrap();
        let cfg = |listen: &str, serve: bool| {
            let text = format!(
                "[node]\nkey_file = \"k\"\ndata_dir = \"d\"\ngenesis_file = \"g\"\n\
                 [network]\nlisten = \"{listen}\"\nserve_followers = {serve}\n"
            );
            Config::from_toml(&text, std::path::Path::new("n.toml"), &[]).unwrap()
        };
        let listens = |c: &Config, id: NodeId, recovered: &[Committee]| {
            listens_at_start(c, &membership_at_start(c, &genesis, id, recovered).unwrap())
        };
        let at = "127.0.0.1:7009";
        assert!(listens(&cfg(at, false), ids[0], &[]), "a proposer");
        assert!(
            listens(&cfg(at, true), ids[1], &[]),
            "a voter serving followers"
        );
        // A voter or follower keeps network.listen for when it becomes a proposer (C-3).
        assert!(!listens(&cfg(at, false), ids[1], &[]));
        assert!(!listens(&cfg(at, false), ids[2], &[]));
        assert!(!listens(&cfg("", true), ids[2], &[]));
        // After a restart, a committee installed by a reconfiguration counts too.
        let mut promoted = genesis.committee.clone();
        promoted.session = 2;
        promoted.proposers[0].id = ids[2];
        assert!(listens(&cfg(at, false), ids[2], &[promoted]));
    }

    /// A committee from a committee-change transaction exists nowhere but in the node's
    /// storage: a restart inside the reconfiguration window must get it back.
    #[test]
    fn installed_committees_are_persisted_and_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let member = |i: u8| {
            Member::new(
                PublicKey(vec![i; 4]),
                Signature(vec![i; 8]),
                1,
                format!("127.0.0.1:{}", 9000 + i as u16),
            )
        };
        let committee = |session: u32| Committee {
            session,
            proposers: vec![member(1)],
            voters: (2..2 + session as u8).map(member).collect(),
            counting: Default::default(),
        };
        let genesis = Block::genesis(b"net".to_vec());
        let fin = child(&genesis, BlockSn::new(4, 1, 1));
        let mut records = Vec::new();
        for session in 2..=5 {
            records.extend(storage_records(Record::Committee(committee(session))));
        }
        records.extend(storage_records(Record::Block(fin.clone())));
        records.extend(storage_records(Record::Notarization(nota(&fin))));
        records.extend(storage_records(Record::Finalized {
            sn: fin.sn(),
            height: fin.height(),
            hash: fin.hash(),
        }));
        let mut st = Storage::open(dir.path(), Options::default()).unwrap();
        st.commit(&records).unwrap();
        st.close().unwrap();

        let st = Storage::open(dir.path(), Options::default()).unwrap();
        let rec = recovered_from(&st).unwrap();
        // Finalized in session 4: sessions 3 to 5 are in force, session 2 is retired (R-3).
        assert_eq!(
            rec.committees,
            vec![committee(3), committee(4), committee(5)]
        );
    }
}
