//! The discrete-event simulator: virtual time, links, faults, byzantine nodes and the
//! checkers that run after every event.

use crate::disk::SimDisk;
use pala_core::{
    Committees, CoreConfig, Input, MessageVerifier, Node, NodeParams, Output, TimerKind,
};
use pala_types::insecure::{InsecureTestScheme, InsecureTestSigner};
use pala_types::{
    Block, BlockSn, ClockMessage, Committee, Decode, Domain, Epoch, Hash, Member, Message, NodeId,
    Proposal, SignatureScheme, Signer, Vote, VoteCounting,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

/// Misbehaviour of a byzantine node (section 10: byzantine hooks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// A primary proposer that sends a different block for one sn to half the voters.
    EquivocatingProposer,
    /// A voter that also votes for a block it never saw, and repeats its votes.
    DoubleVoter,
    /// A voter that sends votes and clock messages claiming other voters' ids.
    ForgedIds,
    /// A node that replays old messages it received.
    Replayer,
    /// A node that sends undecodable bytes.
    Junk,
    /// A voter that never answers (crash-silent but connected).
    Silent,
    /// A proposer that ignores every chain update it receives (proposals,
    /// notarizations, sync, status), so when it becomes primary it proposes on its
    /// stale head — the case V-5c rejects.
    StaleView,
}

/// Builds a node's signer and proof of possession from a seed.
pub type KeyGen = Arc<dyn Fn(u64) -> (Arc<dyn Signer>, pala_types::Signature) + Send + Sync>;

/// Which signature scheme the simulated nodes use.
#[derive(Clone)]
pub enum SchemeChoice {
    /// The fast insecure test double.
    Insecure,
    /// Any real scheme with a key factory (seed -> signer), e.g. BLS from pala-crypto.
    Custom {
        /// The scheme.
        scheme: Arc<dyn SignatureScheme>,
        /// Builds a signer from a seed.
        keygen: KeyGen,
    },
}

impl std::fmt::Debug for SchemeChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemeChoice::Insecure => f.write_str("Insecure"),
            SchemeChoice::Custom { scheme, .. } => write!(f, "Custom({})", scheme.name()),
        }
    }
}

/// Parameters of one simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of proposers (node indexes `0..proposers`).
    pub proposers: usize,
    /// Number of voters (node indexes `proposers..proposers+voters`).
    pub voters: usize,
    /// Protocol parameters.
    pub core: CoreConfig,
    /// Mean one-way link delay.
    pub delay_ms: u64,
    /// Uniform jitter added to each delay, `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Byzantine nodes by index.
    pub byzantine: BTreeMap<usize, Byzantine>,
    /// Signature scheme.
    pub scheme: SchemeChoice,
    /// How many finalized blocks each simulated disk retains (None = all).
    pub retain_finalized: Option<u64>,
    /// Payload bytes per block.
    pub payload_bytes: usize,
    /// Committees of sessions 2, 3, ...: (proposer indexes, voter indexes) each; node
    /// indexes may be new (nodes that join later) or reused. Needs `core.stop_offset`.
    pub sessions: Vec<(Vec<usize>, Vec<usize>)>,
    /// Time the block maker spends filling a block before answering a payload request
    /// (the block time of N-3; 0 = seal immediately).
    pub block_time_ms: u64,
    /// Keep every finalized block with its notarization in [`Sim::finalized_log`].
    pub log_finalized: bool,
    /// Record a human-readable trace.
    pub trace: bool,
}

impl SimConfig {
    /// One proposer, `voters` voters, the spec's test timers.
    pub fn new(seed: u64, proposers: usize, voters: usize) -> Self {
        SimConfig {
            seed,
            proposers,
            voters,
            core: CoreConfig::for_tests(),
            delay_ms: 5,
            jitter_ms: 0,
            loss: 0.0,
            byzantine: BTreeMap::new(),
            scheme: SchemeChoice::Insecure,
            retain_finalized: None,
            payload_bytes: 16,
            block_time_ms: 0,
            sessions: Vec::new(),
            log_finalized: false,
            trace: false,
        }
    }
}

/// A scripted fault or environment change.
#[derive(Clone, Debug)]
pub enum Action {
    /// Split the nodes into groups; links across groups go down.
    Partition(Vec<Vec<usize>>),
    /// All links up again.
    Heal,
    /// The node stops (its disk survives).
    Crash(usize),
    /// The node restarts from its disk (`wipe`: from an empty disk).
    Restart {
        /// Node index.
        node: usize,
        /// Lose the disk first.
        wipe: bool,
    },
    /// Change the loss probability.
    SetLoss(f64),
    /// Drop every message from `from` of the given kind until `Allow` (drop rules of section 10).
    Block {
        /// Sender index.
        from: usize,
        /// Message kind (`Message::kind`).
        kind: &'static str,
    },
    /// Remove the drop rules of a sender.
    Allow(usize),
}

#[derive(Debug)]
enum Ev {
    Deliver {
        from: usize,
        to: usize,
        gen: u64,
        msg: Message,
    },
    Junk {
        from: usize,
        to: usize,
        bytes: Vec<u8>,
    },
    Timer {
        node: usize,
        inc: u64,
        kind: TimerKind,
    },
    Payload {
        node: usize,
        inc: u64,
        sn: BlockSn,
    },
    Act(Action),
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time.
    pub at: u64,
    /// Which checker.
    pub checker: &'static str,
    /// What happened.
    pub detail: String,
}

struct SimNode {
    core: Option<Node>,
    disk: SimDisk,
    signer: Arc<dyn Signer>,
    inc: u64,
    byz: Option<Byzantine>,
    wiped: bool,
    max_epoch: Epoch,
    replay: Vec<(usize, Message)>,
    alt_blocks: BTreeMap<BlockSn, Arc<Block>>,
}

/// Latencies in 1 ms buckets (fixed memory however long the run).
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; 60_001],
            count: 0,
        }
    }
}

impl Histogram {
    /// Records one value (clamped to 60 s).
    pub fn record(&mut self, ms: u64) {
        self.buckets[ms.min(60_000) as usize] += 1;
        self.count += 1;
    }
    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Adds another histogram.
    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
    }
    /// The `p` quantile (0..=1), 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count - 1) as f64 * p).round() as u64;
        let mut seen = 0;
        for (ms, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen > rank {
                return ms as u64;
            }
        }
        60_000
    }
}

/// Per-node figures collected during a run.
#[derive(Clone, Debug, Default)]
pub struct NodeStats {
    /// Finalized blocks (this incarnation and earlier ones).
    pub finalized: u64,
    /// Finalization latencies from proposal (ms), for blocks this run saw proposed.
    pub latencies: Histogram,
}

/// The simulator.
pub struct Sim {
    /// Configuration.
    pub cfg: SimConfig,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: HashMap<usize, Ev>,
    next_ev: usize,
    rng: ChaCha8Rng,
    nodes: Vec<SimNode>,
    ids: Vec<NodeId>,
    index: HashMap<NodeId, usize>,
    committee: Committee,
    hubs: BTreeSet<usize>,
    verifier: MessageVerifier,
    scheme: Arc<dyn SignatureScheme>,
    genesis: Arc<Block>,
    partition: Option<Vec<usize>>,
    link_gen: BTreeMap<(usize, usize), u64>,
    last_delivery: BTreeMap<(usize, usize), u64>,
    drop_rules: BTreeMap<usize, BTreeSet<&'static str>>,
    // Checkers' memory.
    /// Height -> (hash, is an empty block after a stop block) of finalized blocks.
    finalized_chain: BTreeMap<u64, (Hash, bool)>,
    votes_signed: HashMap<(usize, BlockSn), Hash>,
    /// Proposal time and how many nodes finalized the block so far.
    proposed_at: HashMap<Hash, (u64, usize)>,
    /// Per-node statistics.
    pub stats: Vec<NodeStats>,
    /// Violations found (the run stops at the first one).
    pub violations: Vec<Violation>,
    /// Trace lines (when enabled).
    pub trace: Vec<String>,
    /// Messages rejected by the verifier or the decoder, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Events processed.
    pub events_processed: u64,
    /// (node, block, notarization) of every finalization, when `log_finalized`.
    pub finalized_log: Vec<(usize, Arc<Block>, Option<pala_types::Notarization>)>,
    progress: Option<(u64, u64, ProgressFn)>,
}

/// Called with a one-line summary at a fixed simulated interval.
pub type ProgressFn = Box<dyn FnMut(&str)>;

impl Sim {
    /// Builds the nodes, the committee and the links; nothing runs until [`Sim::run_until`].
    pub fn new(cfg: SimConfig) -> Sim {
        let n = cfg
            .sessions
            .iter()
            .flat_map(|(p, v)| p.iter().chain(v))
            .map(|i| i + 1)
            .chain([cfg.proposers + cfg.voters])
            .max()
            .unwrap_or(0);
        type Keys = (
            Arc<dyn SignatureScheme>,
            Vec<Arc<dyn Signer>>,
            Vec<pala_types::Signature>,
        );
        let (scheme, signers, pops): Keys = match &cfg.scheme {
            SchemeChoice::Insecure => {
                let s = InsecureTestScheme::new();
                let keys: Vec<InsecureTestSigner> = (0..n)
                    .map(|i| s.keypair(cfg.seed.wrapping_mul(1000) + i as u64))
                    .collect();
                let pops = keys
                    .iter()
                    .map(|k| {
                        k.sign(
                            Domain::ProofOfPossession,
                            cfg.core.network_id,
                            &k.public_key().0,
                        )
                    })
                    .collect();
                let signers = keys
                    .into_iter()
                    .map(|k| Arc::new(k) as Arc<dyn Signer>)
                    .collect();
                (Arc::new(s), signers, pops)
            }
            SchemeChoice::Custom { scheme, keygen } => {
                let (signers, pops) = (0..n)
                    .map(|i| keygen(cfg.seed.wrapping_mul(1000) + i as u64))
                    .unzip();
                (scheme.clone(), signers, pops)
            }
        };
        let member = |i: usize| {
            Member::new(
                signers[i].public_key().clone(),
                pops[i].clone(),
                1,
                format!("sim:{i}"),
            )
        };
        let committee = Committee {
            session: 1,
            proposers: (0..cfg.proposers).map(member).collect(),
            voters: (cfg.proposers..cfg.proposers + cfg.voters)
                .map(member)
                .collect(),
            counting: VoteCounting::Seat,
        };
        let mut cfg = cfg;
        let mut hubs: BTreeSet<usize> = (0..cfg.proposers).collect();
        for (k, (ps, vs)) in cfg.sessions.clone().into_iter().enumerate() {
            hubs.extend(ps.iter().copied());
            let c = Committee {
                session: k as u32 + 2,
                proposers: ps.into_iter().map(member).collect(),
                voters: vs.into_iter().map(member).collect(),
                counting: VoteCounting::Seat,
            };
            cfg.core.schedule.insert(c.session, c);
        }
        let mut committees = Committees::default();
        committees.install(scheme.as_ref(), committee.clone());
        let verifier = MessageVerifier::new(scheme.clone(), cfg.core.network_id, committees);
        let genesis = Arc::new(Block::genesis(b"pala-sim".to_vec()));
        let ids: Vec<NodeId> = signers.iter().map(|s| s.node_id()).collect();
        let index = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let nodes = (0..n)
            .map(|i| SimNode {
                core: None,
                disk: SimDisk::new(genesis.clone(), cfg.retain_finalized),
                signer: signers[i].clone(),
                inc: 0,
                byz: cfg.byzantine.get(&i).copied(),
                wiped: false,
                max_epoch: Epoch::NIL,
                replay: Vec::new(),
                alt_blocks: BTreeMap::new(),
            })
            .collect();
        let mut sim = Sim {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            cfg,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            next_ev: 0,
            nodes,
            ids,
            index,
            committee,
            hubs,
            verifier,
            scheme,
            genesis,
            partition: None,
            link_gen: BTreeMap::new(),
            last_delivery: BTreeMap::new(),
            drop_rules: BTreeMap::new(),
            finalized_chain: BTreeMap::new(),
            votes_signed: HashMap::new(),
            proposed_at: HashMap::new(),
            stats: vec![NodeStats::default(); n],
            violations: Vec::new(),
            trace: Vec::new(),
            rejected: BTreeMap::new(),
            events_processed: 0,
            finalized_log: Vec::new(),
            progress: None,
        };
        sim.finalized_chain.insert(0, (sim.genesis.hash(), false));
        for i in 0..n {
            sim.boot(i);
        }
        for i in 0..n {
            for j in sim.neighbours(i) {
                if i < j {
                    sim.connect(i, j);
                }
            }
        }
        sim
    }

    fn params(&self, i: usize) -> NodeParams {
        let mut committees = Committees::default();
        committees.install(self.scheme.as_ref(), self.committee.clone());
        NodeParams {
            config: self.cfg.core.clone(),
            signer: self.nodes[i].signer.clone(),
            scheme: self.scheme.clone(),
            committees,
            genesis: self.genesis.clone(),
            archive: Arc::new(self.nodes[i].disk.clone()),
        }
    }

    fn boot(&mut self, i: usize) {
        let rec = self.nodes[i].disk.recovered();
        let node = Node::recover(self.params(i), rec);
        let n = &mut self.nodes[i];
        n.inc += 1;
        n.core = Some(node);
        self.feed(i, Input::Start);
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Current virtual time.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The core of node `i` (None while crashed).
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].core.as_ref()
    }

    /// Node id of index `i`.
    pub fn id(&self, i: usize) -> NodeId {
        self.ids[i]
    }

    /// The committee.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// Whether node `i` is honest (not byzantine, never wiped).
    pub fn is_honest(&self, i: usize) -> bool {
        self.nodes[i].byz.is_none() && !self.nodes[i].wiped
    }

    /// Whether `i` is a proposer of some session (proposers are the network's hubs).
    pub fn is_proposer(&self, i: usize) -> bool {
        self.hubs.contains(&i)
    }

    /// The committee of `session`, once some node installed it.
    pub fn committee_of(&self, session: u32) -> Option<Arc<Committee>> {
        self.verifier.committees().get(session).cloned()
    }

    /// Node index of an id.
    pub fn index_of(&self, id: &NodeId) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The finalized block hash recorded at `height` (the newest agreed one).
    pub fn finalized_hash_at(&self, height: u64) -> Option<Hash> {
        self.finalized_chain.get(&height).map(|e| e.0)
    }

    /// Finalized height of node `i` (0 while crashed).
    pub fn finalized_height(&self, i: usize) -> u64 {
        self.node(i).map_or(0, |n| n.finalized_block().height())
    }

    /// Total records node `i` persisted.
    pub fn disk_records(&self, i: usize) -> u64 {
        self.nodes[i].disk.records_written()
    }

    fn neighbours(&self, i: usize) -> Vec<usize> {
        // W-1: proposers are hubs, voters are spokes; voters never talk to each other.
        (0..self.len())
            .filter(|&j| j != i && (self.is_proposer(i) || self.is_proposer(j)))
            .collect()
    }

    fn link_up(&self, a: usize, b: usize) -> bool {
        if self.nodes[a].core.is_none() || self.nodes[b].core.is_none() {
            return false;
        }
        if !(self.is_proposer(a) || self.is_proposer(b)) {
            return false;
        }
        match &self.partition {
            Some(g) => g[a] == g[b],
            None => true,
        }
    }

    fn key(a: usize, b: usize) -> (usize, usize) {
        (a.min(b), a.max(b))
    }

    fn connect(&mut self, a: usize, b: usize) {
        let (ida, idb) = (self.ids[a], self.ids[b]);
        self.feed(a, Input::PeerConnected(idb));
        self.feed(b, Input::PeerConnected(ida));
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        *self.link_gen.entry(Self::key(a, b)).or_insert(0) += 1;
        let (ida, idb) = (self.ids[a], self.ids[b]);
        if self.nodes[a].core.is_some() {
            self.feed(a, Input::PeerDisconnected(idb));
        }
        if self.nodes[b].core.is_some() {
            self.feed(b, Input::PeerDisconnected(ida));
        }
    }

    /// Schedules an action at virtual time `at`.
    pub fn schedule(&mut self, at: u64, a: Action) {
        self.push(at, Ev::Act(a));
    }

    fn push(&mut self, at: u64, ev: Ev) {
        let id = self.next_ev;
        self.next_ev += 1;
        self.events.insert(id, ev);
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, id)));
    }

    fn log(&mut self, s: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = format!("{:>8} {}", self.now, s());
            self.trace.push(line);
        }
    }

    /// Runs until virtual time `t` or the first violation. Returns false on a violation.
    pub fn run_until(&mut self, t: u64) -> bool {
        while let Some(Reverse((at, _, id))) = self.queue.peek().copied() {
            if at > t || !self.violations.is_empty() {
                break;
            }
            self.queue.pop();
            self.now = at;
            let ev = self.events.remove(&id).expect("event exists");
            self.events_processed += 1;
            self.step(ev);
            if self.progress.as_ref().is_some_and(|p| self.now >= p.1) {
                self.report_progress();
            }
        }
        if self.violations.is_empty() {
            self.now = self.now.max(t);
        }
        self.violations.is_empty()
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { from, to, gen, msg } => {
                if !self.link_up(from, to)
                    || self
                        .link_gen
                        .get(&Self::key(from, to))
                        .copied()
                        .unwrap_or(0)
                        != gen
                {
                    return;
                }
                if self.nodes[to].byz == Some(Byzantine::StaleView)
                    && matches!(
                        msg,
                        Message::Proposal(_)
                            | Message::Notarization(_)
                            | Message::UnnotarizedProposals(_)
                            | Message::FresherHead(_)
                            | Message::Status(_)
                    )
                {
                    return;
                }
                if self.nodes[to].byz == Some(Byzantine::Replayer)
                    && self.nodes[to].replay.len() < 64
                {
                    self.nodes[to].replay.push((from, msg.clone()));
                }
                let kind = msg.kind();
                match self.verifier.verify(msg) {
                    Ok(v) => {
                        let id = self.ids[from];
                        self.log(|| format!("n{to} <- n{from} {kind}"));
                        self.feed(to, Input::Message { from: id, msg: v });
                    }
                    Err(e) => {
                        *self.rejected.entry(format!("{kind}: {e}")).or_insert(0) += 1;
                    }
                }
            }
            Ev::Junk { from, to, bytes } => {
                if !self.link_up(from, to) {
                    return;
                }
                match Message::from_bytes(&bytes) {
                    Err(e) => *self.rejected.entry(format!("decode: {e}")).or_insert(0) += 1,
                    Ok(m) => {
                        if let Err(e) = self.verifier.verify(m) {
                            *self.rejected.entry(format!("junk: {e}")).or_insert(0) += 1;
                        }
                    }
                }
            }
            Ev::Timer { node, inc, kind } => {
                if self.nodes[node].inc == inc && self.nodes[node].core.is_some() {
                    self.feed(node, Input::Timer(kind));
                    self.byzantine_tick(node);
                }
            }
            Ev::Payload { node, inc, sn } => {
                if self.nodes[node].inc == inc && self.nodes[node].core.is_some() {
                    let txs = vec![format!("tx:{node}:{sn:?}")
                        .into_bytes()
                        .into_iter()
                        .chain(std::iter::repeat(0u8))
                        .take(self.cfg.payload_bytes.max(1))
                        .collect()];
                    self.feed(
                        node,
                        Input::Payload {
                            sn,
                            txs,
                            timestamp_ms: self.now,
                        },
                    );
                }
            }
            Ev::Act(a) => self.act(a),
        }
    }

    fn act(&mut self, a: Action) {
        self.log(|| format!("action {a:?}"));
        match a {
            Action::Partition(groups) => {
                let before: Vec<(usize, usize)> = self
                    .all_links()
                    .into_iter()
                    .filter(|&(a, b)| self.link_up(a, b))
                    .collect();
                let mut g = vec![usize::MAX; self.len()];
                for (gi, members) in groups.iter().enumerate() {
                    for &m in members {
                        g[m] = gi;
                    }
                }
                // Nodes not listed form their own group each.
                for (i, x) in g.iter_mut().enumerate() {
                    if *x == usize::MAX {
                        *x = 1000 + i;
                    }
                }
                self.partition = Some(g);
                for (a, b) in before {
                    if !self.link_up(a, b) {
                        self.disconnect(a, b);
                    }
                }
            }
            Action::Heal => {
                let before: BTreeSet<(usize, usize)> = self
                    .all_links()
                    .into_iter()
                    .filter(|&(a, b)| self.link_up(a, b))
                    .collect();
                self.partition = None;
                for (a, b) in self.all_links() {
                    if self.link_up(a, b) && !before.contains(&(a, b)) {
                        self.connect(a, b);
                    }
                }
            }
            Action::Crash(i) => {
                if self.nodes[i].core.is_none() {
                    return;
                }
                let peers: Vec<usize> = self
                    .neighbours(i)
                    .into_iter()
                    .filter(|&j| self.link_up(i, j))
                    .collect();
                for j in peers {
                    self.disconnect(i, j);
                }
                self.nodes[i].core = None;
                self.nodes[i].inc += 1;
            }
            Action::Restart { node, wipe } => {
                if self.nodes[node].core.is_some() {
                    return;
                }
                if wipe {
                    self.nodes[node].disk.wipe();
                    if !self.is_proposer(node) {
                        // A wiped voter forgot what it signed: it is no longer honest.
                        self.nodes[node].wiped = true;
                    }
                    self.nodes[node].max_epoch = Epoch::NIL;
                }
                self.boot(node);
                let peers: Vec<usize> = self
                    .neighbours(node)
                    .into_iter()
                    .filter(|&j| self.link_up(node, j))
                    .collect();
                for j in peers {
                    *self.link_gen.entry(Self::key(node, j)).or_insert(0) += 1;
                    self.connect(node, j);
                }
            }
            Action::SetLoss(p) => self.cfg.loss = p,
            Action::Block { from, kind } => {
                self.drop_rules.entry(from).or_default().insert(kind);
            }
            Action::Allow(from) => {
                self.drop_rules.remove(&from);
            }
        }
    }

    fn all_links(&self) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for a in 0..self.len() {
            for b in a + 1..self.len() {
                if self.is_proposer(a) || self.is_proposer(b) {
                    v.push((a, b));
                }
            }
        }
        v
    }

    /// Injects a message as if `from` had sent it to `to` (scenario helper).
    pub fn inject(&mut self, from: usize, to: usize, msg: Message) {
        self.send(from, to, msg);
    }

    fn send(&mut self, from: usize, to: usize, msg: Message) {
        if !self.link_up(from, to) {
            return;
        }
        if self
            .drop_rules
            .get(&from)
            .is_some_and(|k| k.contains(msg.kind()))
        {
            return;
        }
        if self.cfg.loss > 0.0 && self.rng.gen_bool(self.cfg.loss.min(1.0)) {
            return;
        }
        let jitter = if self.cfg.jitter_ms > 0 {
            self.rng.gen_range(0..=self.cfg.jitter_ms)
        } else {
            0
        };
        // Links are TCP-like: FIFO per direction.
        let key = (from, to);
        let at = (self.now + self.cfg.delay_ms + jitter)
            .max(self.last_delivery.get(&key).copied().unwrap_or(0));
        self.last_delivery.insert(key, at);
        let gen = self
            .link_gen
            .get(&Self::key(from, to))
            .copied()
            .unwrap_or(0);
        self.push(at, Ev::Deliver { from, to, gen, msg });
    }

    /// Feeds one input to node `i` and executes its outputs with all checks.
    fn feed(&mut self, i: usize, input: Input) {
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        let outs = core.handle(self.now, input);
        for o in outs {
            self.execute(i, o);
        }
        self.check_node(i);
    }

    fn execute(&mut self, i: usize, o: Output) {
        match o {
            Output::Persist(r) => self.nodes[i].disk.apply(&r),
            Output::Send { to, msg } => {
                self.check_persisted_before_send(i, &msg);
                if let Some(&j) = self.index.get(&to) {
                    self.send_from(i, j, msg);
                }
            }
            Output::Broadcast(msg) => {
                self.check_persisted_before_send(i, &msg);
                if let Message::Proposal(p) = &msg {
                    self.proposed_at
                        .entry(p.block.hash())
                        .or_insert((self.now, 0));
                }
                for j in self.neighbours(i) {
                    self.send_from(i, j, msg.clone());
                }
            }
            Output::SetTimer { kind, at } => {
                let inc = self.nodes[i].inc;
                self.push(at.max(self.now), Ev::Timer { node: i, inc, kind });
            }
            Output::RequestPayload { sn } => {
                let inc = self.nodes[i].inc;
                self.push(
                    self.now + self.cfg.block_time_ms,
                    Ev::Payload { node: i, inc, sn },
                );
            }
            Output::Finalized {
                block,
                notarization,
            } => {
                if self.cfg.log_finalized {
                    self.finalized_log.push((i, block.clone(), notarization));
                }
                self.on_finalized(i, &block)
            }
            Output::EpochChanged(e) => self.log(|| format!("n{i} epoch {e:?}")),
            Output::CommitteeInstalled(c) => {
                self.log(|| format!("n{i} installs the committee of session {}", c.session));
                match self.verifier.committees().get(c.session) {
                    None => self.verifier.install((*c).clone()),
                    Some(old) if **old != *c => {
                        let d = format!(
                            "node {i} installed a different committee for session {}",
                            c.session
                        );
                        self.violation("committee-mismatch", d);
                    }
                    Some(_) => {}
                }
            }
            Output::ReconfigurationEnded { session } => {
                self.log(|| format!("n{i} reconfiguration ended, session {session}"))
            }
            Output::Reverify { from, blocks } => {
                let msg = Message::FresherHead(pala_types::FresherHeadResponse {
                    blocks,
                    finalized: None,
                });
                match self.verifier.verify(msg) {
                    Ok(v) => self.feed(i, Input::Message { from, msg: v }),
                    Err(e) => *self.rejected.entry(format!("reverify: {e}")).or_insert(0) += 1,
                }
            }
        }
    }

    /// Sends with the node's byzantine behaviour applied.
    fn send_from(&mut self, i: usize, j: usize, msg: Message) {
        match self.nodes[i].byz {
            None | Some(Byzantine::Replayer) | Some(Byzantine::Junk) => self.send(i, j, msg),
            Some(Byzantine::Silent) => {
                if !matches!(msg, Message::Vote(_) | Message::Clock(_)) {
                    self.send(i, j, msg)
                }
            }
            Some(Byzantine::EquivocatingProposer) => {
                // Odd voters get a conflicting block first and then the real one.
                if let Message::Proposal(p) = &msg {
                    if j % 2 == 1 && !self.is_proposer(j) {
                        let alt = self.equivocate(i, p);
                        self.send(i, j, Message::Proposal(alt));
                    }
                }
                self.send(i, j, msg)
            }
            Some(Byzantine::StaleView) => self.send(i, j, msg),
            Some(Byzantine::DoubleVoter) => {
                if let Message::Vote(v) = &msg {
                    let other = Hash::of(&[v.block_hash.0.as_slice(), b"other"].concat());
                    let signer = self.nodes[i].signer.clone();
                    let bad = Vote {
                        voter: v.voter,
                        sn: v.sn,
                        block_hash: other,
                        signature: signer.sign(Domain::Vote, self.cfg.core.network_id, &other.0),
                    };
                    self.send(i, j, Message::Vote(bad));
                    self.send(i, j, msg.clone());
                }
                self.send(i, j, msg)
            }
            Some(Byzantine::ForgedIds) => {
                let victim =
                    self.cfg.proposers + (i + 1 - self.cfg.proposers) % self.cfg.voters.max(1);
                let victim_id = self.ids[victim];
                let signer = self.nodes[i].signer.clone();
                let nid = self.cfg.core.network_id;
                match &msg {
                    Message::Vote(v) => {
                        let forged = Vote {
                            voter: victim_id,
                            sn: v.sn,
                            block_hash: Hash::of(b"forged"),
                            signature: signer.sign(Domain::Vote, nid, &Hash::of(b"forged").0),
                        };
                        self.send(i, j, Message::Vote(forged));
                    }
                    Message::Clock(c) => {
                        let e = Epoch::new(c.epoch.session, c.epoch.e + 5);
                        let forged = ClockMessage {
                            voter: victim_id,
                            epoch: e,
                            signature: signer.sign(Domain::Clock, nid, &e.signing_bytes()),
                        };
                        self.send(i, j, Message::Clock(forged));
                    }
                    _ => {}
                }
                self.send(i, j, msg)
            }
        }
    }

    fn equivocate(&mut self, i: usize, p: &Proposal) -> Proposal {
        let b = &p.block;
        let parent_hash = self.nodes[i]
            .alt_blocks
            .get(&b.parent_sn())
            .map_or(b.header.parent_hash, |a| a.hash());
        let alt = Arc::new(Block::new(
            pala_types::BlockHeader {
                parent_hash,
                ..b.header.clone()
            },
            vec![b"equivocation".to_vec()],
            b.consensus.clone(),
        ));
        self.nodes[i].alt_blocks.insert(b.sn(), alt.clone());
        if self.nodes[i].alt_blocks.len() > 64 {
            self.nodes[i].alt_blocks.pop_first();
        }
        let signer = self.nodes[i].signer.clone();
        Proposal {
            proposer: p.proposer,
            signature: signer.sign(Domain::Proposal, self.cfg.core.network_id, &alt.hash().0),
            block: alt,
        }
    }

    fn byzantine_tick(&mut self, i: usize) {
        match self.nodes[i].byz {
            Some(Byzantine::Replayer) if !self.nodes[i].replay.is_empty() => {
                let k = self.rng.gen_range(0..self.nodes[i].replay.len());
                let (_, m) = self.nodes[i].replay[k].clone();
                for j in self.neighbours(i) {
                    self.send(i, j, m.clone());
                }
            }
            Some(Byzantine::Junk) => {
                let len = self.rng.gen_range(0..200);
                let mut bytes: Vec<u8> = (0..len).map(|_| self.rng.gen()).collect();
                if let Some(b) = bytes.first_mut() {
                    *b = [0x12u8, 0x13, 0x14, 0x15, 0x16, 0x20, 0x21, 0x28]
                        [self.rng.gen_range(0..8)];
                }
                for j in self.neighbours(i) {
                    if self.link_up(i, j) {
                        let at = self.now + self.cfg.delay_ms;
                        self.push(
                            at,
                            Ev::Junk {
                                from: i,
                                to: j,
                                bytes: bytes.clone(),
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn violation(&mut self, checker: &'static str, detail: String) {
        self.violations.push(Violation {
            at: self.now,
            checker,
            detail,
        });
    }

    /// Checker (d): persist-before-send.
    fn check_persisted_before_send(&mut self, i: usize, msg: &Message) {
        if !self.is_honest(i) {
            return;
        }
        let disk = &self.nodes[i].disk;
        let problem = match msg {
            Message::Vote(v) if v.voter == self.ids[i] => {
                if !disk.has_block(v.sn, v.block_hash) {
                    Some(format!(
                        "vote for {:?} sent before its block was durable",
                        v.sn
                    ))
                } else if disk.vote_guard(v.sn.epoch).is_none_or(|g| g < v.sn.s) {
                    Some(format!(
                        "vote for {:?} sent before its vote guard was durable",
                        v.sn
                    ))
                } else {
                    None
                }
            }
            Message::Proposal(p) if !disk.has_block(p.block.sn(), p.block.hash()) => Some(format!(
                "proposal {:?} sent before its block was durable",
                p.block.sn()
            )),
            Message::Clock(c)
                if c.voter == self.ids[i] && disk.clock_guard().is_none_or(|g| g < c.epoch) =>
            {
                Some(format!(
                    "clock message {:?} sent before its guard was durable",
                    c.epoch
                ))
            }
            Message::Status(s)
                if s.epoch > Epoch::new(1, 1) && disk.epoch().is_none_or(|e| e < s.epoch) =>
            {
                Some(format!(
                    "status with epoch {:?} sent before the epoch was durable",
                    s.epoch
                ))
            }
            _ => None,
        };
        if let Some(p) = problem {
            self.violation("persist-before-send", format!("node {i}: {p}"));
        }
        // Checker (b), first half: an honest voter never signs two blocks at one sn.
        if let Message::Vote(v) = msg {
            if self.votes_signed.len() > 200_000 {
                // Bounded memory on long runs: forget votes far below every node's
                // finalized head (a vote there would be refused by the guard anyway and
                // can no longer conflict with anything that is not yet final).
                let floor = (0..self.len())
                    .filter_map(|j| self.node(j).map(|n| n.finalized()))
                    .min()
                    .unwrap_or_default();
                self.votes_signed.retain(|(_, sn), _| *sn >= floor);
            }
            if v.voter == self.ids[i] {
                match self.votes_signed.insert((i, v.sn), v.block_hash) {
                    Some(h) if h != v.block_hash => self.violation(
                        "double-vote",
                        format!("node {i} voted two blocks at {:?}", v.sn),
                    ),
                    _ => {}
                }
            }
        }
    }

    fn on_finalized(&mut self, i: usize, block: &Arc<Block>) {
        self.stats[i].finalized += 1;
        let n = self.len();
        if let Some(e) = self.proposed_at.get_mut(&block.hash()) {
            self.stats[i].latencies.record(self.now - e.0);
            e.1 += 1;
            if e.1 >= n {
                self.proposed_at.remove(&block.hash());
            }
        }
        if self.proposed_at.len() > 100_000 {
            // Blocks some node will never finalize (abandoned forks, crashed nodes).
            let cutoff = self.now.saturating_sub(60_000);
            self.proposed_at.retain(|_, e| e.0 >= cutoff);
        }
        self.log(|| format!("n{i} finalized {:?} h={}", block.sn(), block.height()));
        if !self.is_honest(i) {
            return;
        }
        // Checker (a): finalized chains never conflict, except (C-7d) empty blocks after
        // a stop block until the next session has a final block.
        let h = block.height();
        let stop = self.cfg.core.stop_offset;
        let after_stop = |b: &Block| stop > 0 && b.header.session_offset > stop && b.txs.is_empty();
        let relaxed = after_stop(block);
        match self.finalized_chain.get(&h).copied() {
            Some((x, old_relaxed)) if x != block.hash() => {
                if old_relaxed || relaxed {
                    // C-7: one side is an empty block after a stop block; the branch that
                    // carries the next session wins, so keep the non-relaxed one.
                    if old_relaxed {
                        self.finalized_chain.insert(h, (block.hash(), relaxed));
                    }
                } else {
                    let d = format!(
                        "node {i} finalized {:?} at height {h}, conflicting with another node",
                        block.sn()
                    );
                    self.violation("finality-conflict", d);
                }
            }
            Some(_) => {}
            None => {
                self.finalized_chain.insert(h, (block.hash(), relaxed));
            }
        }
        if self.finalized_chain.len() > 4096 {
            // Keep the checker's memory bounded on long runs: heights far below every
            // node's finalized head cannot be finalized again.
            let cut = h.saturating_sub(2048);
            self.finalized_chain = self.finalized_chain.split_off(&cut);
        }
    }

    /// Checkers (b) epoch monotonicity and (c) `head.epoch <= L`.
    fn check_node(&mut self, i: usize) {
        let Some(core) = self.nodes[i].core.as_ref() else {
            return;
        };
        let (epoch, head) = (core.epoch(), core.head());
        if head.epoch > epoch {
            self.violation(
                "head-epoch",
                format!("node {i}: head {head:?} is ahead of its epoch {epoch:?}"),
            );
        }
        if self.is_honest(i) {
            if epoch < self.nodes[i].max_epoch {
                let d = format!(
                    "node {i}: epoch went back from {:?} to {epoch:?}",
                    self.nodes[i].max_epoch
                );
                self.violation("epoch-regress", d);
            }
            self.nodes[i].max_epoch = epoch;
        }
    }

    /// Calls `f` with a summary line every `interval_ms` of simulated time.
    pub fn set_progress(&mut self, interval_ms: u64, f: ProgressFn) {
        self.progress = Some((interval_ms.max(1), self.now + interval_ms.max(1), f));
    }

    fn report_progress(&mut self) {
        let alive: Vec<usize> = (0..self.len())
            .filter(|&i| self.nodes[i].core.is_some())
            .collect();
        let fin: Vec<u64> = alive.iter().map(|&i| self.finalized_height(i)).collect();
        let max_epoch = alive
            .iter()
            .filter_map(|&i| self.node(i).map(|n| n.epoch()))
            .max()
            .unwrap_or_default();
        let line = format!(
            "t={:>6} ms  finalized height min {} max {}  epoch {:?}  alive {}/{}  events {}",
            self.now,
            fin.iter().min().copied().unwrap_or(0),
            fin.iter().max().copied().unwrap_or(0),
            max_epoch,
            alive.len(),
            self.len(),
            self.events_processed
        );
        if let Some((interval, next, f)) = self.progress.as_mut() {
            f(&line);
            while *next <= self.now {
                *next += *interval;
            }
        }
    }

    /// The smallest finalized height among alive honest nodes.
    pub fn min_honest_finalized(&self) -> u64 {
        (0..self.len())
            .filter(|&i| self.is_honest(i) && self.nodes[i].core.is_some())
            .map(|i| self.finalized_height(i))
            .min()
            .unwrap_or(0)
    }

    /// The replay command for this configuration's seed (printed on failure).
    pub fn replay_hint(&self, scenario: &str) -> String {
        format!(
            "cargo run --release -- sim run --scenario {scenario} --seed {} --trace",
            self.cfg.seed
        )
    }
}
