//! The discrete-event simulator: virtual time, links, faults, byzantine nodes and the
//! checkers that run after every event.

mod accepted;
mod adversary;
mod byzantine;
mod checkers;
mod config;
mod drive;
mod faults;
mod host;
mod stats;
mod twins;

pub use adversary::{LinkRule, Withhold, CLOCK_KINDS, SYNC_KINDS};
pub use byzantine::Byzantine;
pub use config::{Action, KeyGen, SchemeChoice, SimConfig, Twin};
pub use stats::{Histogram, NodeStats};

use crate::disk::SimDisk;
use host::block_payload;
use host::Outbox;
use pala_core::driver::{Driver, PersistSeq};
use pala_core::{Committees, Input, MessageVerifier, Node, NodeParams, StateChange, Tick};
use pala_types::insecure::{InsecureTestScheme, InsecureTestSigner};
use pala_types::{
    Block, BlockSn, Committee, Decode, Domain, Epoch, Hash, Member, Message, NodeId,
    SignatureScheme, Signer, VoteCounting,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

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
    /// The earliest timer deadline of the node's driver kit.
    Wake {
        node: usize,
        inc: u64,
        at: Tick,
    },
    /// The node's disk finished syncing every record numbered up to `upto`.
    DiskSynced {
        node: usize,
        inc: u64,
        upto: PersistSeq,
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
    /// Timers, durability gate, payload and re-verification plumbing (pala-core's kit).
    driver: Driver,
    disk: SimDisk,
    /// Records handed to the disk and not yet durable (lost if the node crashes).
    unsynced: VecDeque<(PersistSeq, StateChange)>,
    /// Last record number of each driver call among `unsynced` (output batches).
    batch_ends: VecDeque<PersistSeq>,
    /// A sync of the disk is in flight.
    syncing: bool,
    /// The deadline an [`Ev::Wake`] is queued for.
    wake: Option<Tick>,
    signer: Arc<dyn Signer>,
    inc: u64,
    byz: Option<Byzantine>,
    wiped: bool,
    max_epoch: Epoch,
    replay: Vec<(usize, Message)>,
    alt_blocks: BTreeMap<BlockSn, Arc<Block>>,
    /// What the sharper byzantine behaviours remember (votes seen, own clock messages).
    mem: byzantine::Memory,
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
    /// Messages the targeted adversary dropped or delayed.
    pub adversary_hits: u64,
    /// (node, block, notarization) of every finalization, when `log_finalized`.
    pub finalized_log: Vec<(usize, Arc<Block>, Option<pala_types::Notarization>)>,
    progress: Option<(u64, u64, ProgressFn)>,
    /// What the node being driven released, executed once its call returns.
    outbox: Outbox,
    /// The proposal the node being driven is handling, for the independent checkers.
    handling: Option<pala_types::Proposal>,
    /// The independent checkers' memory.
    accepted: accepted::AcceptedMemory,
}

/// Called with a one-line summary at a fixed simulated interval.
pub type ProgressFn = Box<dyn FnMut(&str)>;

impl Sim {
    /// Builds the nodes, the committee and the links; nothing runs until [`Sim::run_until`].
    pub fn new(cfg: SimConfig) -> Sim {
        let n = cfg.key_count();
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
        let (signers, pops) = twins::add_keys(&cfg, signers, pops);
        let n = signers.len();
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
        // A twin shares its original's id; messages addressed to the id are routed by
        // side (Sim::route), so the index keeps the original.
        let mut index = HashMap::new();
        for (i, id) in ids.iter().enumerate() {
            index.entry(*id).or_insert(i);
        }
        let nodes = (0..n)
            .map(|i| SimNode {
                core: None,
                driver: Driver::new(),
                disk: SimDisk::new(genesis.clone(), cfg.retain_finalized),
                unsynced: VecDeque::new(),
                batch_ends: VecDeque::new(),
                syncing: false,
                wake: None,
                signer: signers[i].clone(),
                inc: 0,
                byz: cfg.byzantine.get(&i).copied(),
                wiped: false,
                max_epoch: Epoch::NIL,
                replay: Vec::new(),
                alt_blocks: BTreeMap::new(),
                mem: byzantine::Memory::default(),
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
            adversary_hits: 0,
            finalized_log: Vec::new(),
            progress: None,
            outbox: Outbox::default(),
            handling: None,
            accepted: accepted::AcceptedMemory::default(),
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
        self.log(|| {
            format!(
                "n{i} boots: epoch {:?}, finalized {:?}, head {:?}",
                node.epoch(),
                node.finalized(),
                node.head()
            )
        });
        let n = &mut self.nodes[i];
        n.inc += 1;
        n.core = Some(node);
        n.driver = Driver::new();
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
        self.nodes[i].byz.is_none() && !self.nodes[i].wiped && !self.is_twin(i)
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
            .filter(|&j| !self.twin_split(i, j))
            .collect()
    }

    fn link_up(&self, a: usize, b: usize) -> bool {
        if self.nodes[a].core.is_none() || self.nodes[b].core.is_none() {
            return false;
        }
        if !(self.is_proposer(a) || self.is_proposer(b)) || self.twin_split(a, b) {
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
                if !self.byzantine_receive(from, to, &msg) {
                    return;
                }
                let kind = msg.kind();
                let detail = if self.cfg.trace {
                    trace_detail(&msg)
                } else {
                    String::new()
                };
                match self.verifier.verify(msg) {
                    Ok(v) => {
                        let id = self.ids[from];
                        self.log(|| format!("n{to} <- n{from} {kind}{detail}"));
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
            Ev::Wake { node, inc, at } => {
                let n = &mut self.nodes[node];
                if n.inc == inc && n.core.is_some() && n.wake == Some(at) {
                    n.wake = None;
                    let now = self.now;
                    self.drive(node, |d, core, host| {
                        d.fire_due(core, now, host);
                    });
                    self.byzantine_tick(node);
                }
            }
            Ev::DiskSynced { node, inc, upto } => {
                let n = &mut self.nodes[node];
                if n.inc == inc && n.core.is_some() {
                    n.syncing = false;
                    while n.batch_ends.front().is_some_and(|e| *e <= upto) {
                        n.batch_ends.pop_front();
                    }
                    while n.unsynced.front().is_some_and(|(seq, _)| *seq <= upto) {
                        if let Some((_, r)) = n.unsynced.pop_front() {
                            n.disk.apply(&r);
                        }
                    }
                    self.drive(node, |d, _, host| d.durable(upto, host));
                }
            }
            Ev::Payload { node, inc, sn } => {
                if self.nodes[node].inc == inc && self.nodes[node].core.is_some() {
                    let (now, bytes) = (self.now, self.cfg.payload_bytes);
                    self.drive(node, |d, core, host| {
                        d.payload(core, now, sn, block_payload(node, sn, bytes, now), host)
                    });
                }
            }
            Ev::Act(a) => self.act(a),
        }
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
        let Some(held) = self.adversary_verdict(from, to, &msg) else {
            return;
        };
        let jitter = if self.cfg.jitter_ms > 0 {
            self.rng.gen_range(0..=self.cfg.jitter_ms)
        } else {
            0
        };
        // Links are TCP-like: FIFO per direction.
        let key = (from, to);
        let base = self.now + self.cfg.delay_ms + jitter;
        let at = if held > 0 {
            base + held
        } else {
            let at = base.max(self.last_delivery.get(&key).copied().unwrap_or(0));
            self.last_delivery.insert(key, at);
            at
        };
        let gen = self
            .link_gen
            .get(&Self::key(from, to))
            .copied()
            .unwrap_or(0);
        self.push(at, Ev::Deliver { from, to, gen, msg });
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

/// What the trace shows of a message beyond its kind: the fields that explain sync.
fn trace_detail(msg: &Message) -> String {
    match msg {
        Message::Status(s) => format!(
            " epoch {:?} head {:?} final {:?}",
            s.epoch, s.head, s.finalized
        ),
        Message::GetEpoch(e) => format!(" {e:?}"),
        Message::Epoch(r) => format!(
            " session {} clock {:?} last {} stop proof {:?}",
            r.session,
            r.clock.as_ref().map(|c| c.epoch),
            r.is_last,
            r.stop_proof
                .iter()
                .map(|b| b.block.sn())
                .collect::<Vec<_>>()
        ),
        Message::GetFresherHead(r) => format!(" from {:?}", r.head),
        Message::FresherHead(r) => format!(
            " {:?}",
            r.blocks.iter().map(|b| b.block.sn()).collect::<Vec<_>>()
        ),
        Message::Proposal(p) => format!(" {:?}", p.block.sn()),
        Message::Notarization(n) => format!(" {:?}", n.sn),
        _ => String::new(),
    }
}
