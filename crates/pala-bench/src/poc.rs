//! `pala bench poc`: the proof-of-concept scenario in one process, in wall-clock time.
//!
//! One primary proposer and V voters run the real core ([`pala_core::Node`]) and the real
//! verification layer ([`MessageVerifier`]) with either the insecure test scheme or BLS.
//! They are connected hub-and-spoke (W-1) by crossbeam channels; every message is
//! delivered one one-way delay after it was sent, measured on the wall clock.
//!
//! Shape, chosen to be fast on a 2-core machine:
//! - the proposer has its own thread; the voters are spread over a few worker threads,
//!   each owning many voter cores (no thread per voter, no thread per message);
//! - each receiving thread keeps a binary heap of delivery deadlines and sleeps on its
//!   channel until shortly before the earliest one, then polls for the last 100 µs
//!   ([`SPIN_BEFORE_DEADLINE`]), so a delay costs no thread and a delivery no wake-up
//!   latency;
//! - the proposer checks each run of votes as one batch
//!   ([`MessageVerifier::verify_votes`]), as the node does;
//! - a broadcast is one `Arc<Message>` sent once per worker, shared by all its voters;
//! - everything a worker's voters send while handling one round goes to the proposer as
//!   one batch (one channel operation instead of V);
//! - `RequestPayload` is answered at once with the configured payload (no block time):
//!   the scenario measures consensus, not block filling. Persist outputs are counted and
//!   dropped: there is no storage in this scenario (see `pala bench cluster`).
//!
//! Finality is counted at the proposer, as the Go proof of concept does; latency is from
//! the proposal's broadcast to its finalization at the proposer.

use crate::stats::{self, Histogram};
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use pala_core::{
    Committees, CoreConfig, Input, MessageVerifier, NoArchive, Node, NodeParams, Output, Tick,
    TimerKind,
};
use pala_types::insecure::InsecureTestScheme;
use pala_types::{
    Block, BlockSn, Committee, Domain, Member, Message, NodeId, PreparedKeys, PublicKey, Signature,
    SignatureScheme, Signer, SignerBitmap, Vote, VoteCounting,
};
use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Network id of the benchmark committee.
const NETWORK_ID: u64 = 7;
/// Longest a thread sleeps without looking at the phase flag.
const MAX_IDLE: Duration = Duration::from_millis(20);

/// Which signature scheme the nodes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemeKind {
    /// [`InsecureTestScheme`]: linear hash tags (one hash per check, aggregates
    /// included), for protocol throughput without crypto cost.
    Insecure,
    /// BLS12-381 (`pala_crypto::BlsScheme`, the node's scheme).
    Bls,
    /// [`NoCrypto`]: every signature is valid. Not a protocol configuration: it shows
    /// what the core and this harness cost on their own.
    None,
}

impl SchemeKind {
    /// Name used on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            SchemeKind::Insecure => "insecure",
            SchemeKind::Bls => "bls",
            SchemeKind::None => "none",
        }
    }
}

impl std::str::FromStr for SchemeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "insecure" => Ok(SchemeKind::Insecure),
            "bls" => Ok(SchemeKind::Bls),
            "none" => Ok(SchemeKind::None),
            other => Err(format!("unknown scheme {other:?} (insecure|bls|none)")),
        }
    }
}

/// Parameters of a run.
#[derive(Clone, Debug)]
pub struct PocParams {
    /// Voters (V).
    pub voters: usize,
    /// One-way delay of every message, in milliseconds (D).
    pub delay_ms: u64,
    /// Outstanding unnotarized proposals (K).
    pub k: u32,
    /// Measured seconds (after the warm-up).
    pub seconds: f64,
    /// Seconds run before measuring (start-up, readiness gate, caches).
    pub warmup_seconds: f64,
    /// Signature scheme.
    pub scheme: SchemeKind,
    /// Worker threads for the voters (the proposer has its own thread).
    pub workers: usize,
    /// Bytes of transactions per block (one transaction; 0 = empty blocks).
    pub payload_bytes: usize,
    /// Resident-memory sampling period.
    pub sample_every: Duration,
}

impl PocParams {
    /// The POC row of PROTOCOL.md section 11: 33 voters, 10 ms, K = 10, insecure scheme.
    pub fn poc() -> PocParams {
        PocParams {
            voters: 33,
            delay_ms: 10,
            k: 10,
            seconds: 10.0,
            warmup_seconds: 1.0,
            scheme: SchemeKind::Insecure,
            workers: default_workers(SchemeKind::Insecure),
            payload_bytes: 0,
            sample_every: Duration::from_millis(500),
        }
    }
}

/// Voter worker threads: one per core beyond the proposer's, at least one; with BLS
/// one per core, since the proposer thread then mostly waits for the voters.
pub fn default_workers(scheme: SchemeKind) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match scheme {
        SchemeKind::Bls => cores,
        _ => cores.saturating_sub(1).max(1),
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct PocReport {
    /// Blocks finalized at the proposer during the measured window.
    pub finalized: u64,
    /// Length of the measured window (s).
    pub measured_seconds: f64,
    /// `finalized / measured_seconds`.
    pub blocks_per_sec: f64,
    /// Finality latency at the proposer, broadcast of the proposal to finalization (µs).
    pub latency: Histogram,
    /// How late messages were handled after their delivery deadline (µs): the cost of the
    /// harness itself (wake-up latency plus queueing behind other work).
    pub lateness: Histogram,
    /// Process CPU time (user + system) during the window (s).
    pub cpu_seconds: f64,
    /// CPU time of the proposer thread during the window (s).
    pub proposer_cpu_seconds: f64,
    /// CPU time of all voter workers during the window (s).
    pub voters_cpu_seconds: f64,
    /// Peak resident set size of the process (KiB).
    pub peak_rss_kb: u64,
    /// Resident set size over the window: (seconds since the window opened, KiB).
    pub rss_series: Vec<(f64, u64)>,
    /// Messages handed to a core during the window.
    pub messages: u64,
    /// Messages the verifier rejected (should be 0).
    pub rejected: u64,
    /// Blocks finalized at the voters during the window, summed over voters.
    pub voter_finalized: u64,
    /// Selected counters of the proposer's core at the end.
    pub proposer_counters: BTreeMap<String, u64>,
}

impl PocReport {
    /// CPU time per finalized block (µs).
    pub fn cpu_per_block_us(&self) -> f64 {
        if self.finalized == 0 {
            0.0
        } else {
            self.cpu_seconds * 1e6 / self.finalized as f64
        }
    }

    /// Slope of resident memory over the window in KiB per minute, ignoring the first
    /// sample: near zero when memory is flat.
    pub fn rss_slope_kb_per_min(&self) -> f64 {
        let pts: Vec<(f64, f64)> = self
            .rss_series
            .iter()
            .skip(1)
            .map(|&(t, kb)| (t, kb as f64))
            .collect();
        stats::slope(&pts) * 60.0
    }
}

// ---------------------------------------------------------------------------- plumbing

/// A message in flight: handled at `at`, FIFO among equal deadlines.
struct Env<T> {
    at: Instant,
    seq: u64,
    body: T,
}

impl<T> PartialEq for Env<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<T> Eq for Env<T> {}
impl<T> PartialOrd for Env<T> {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Env<T> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest deadline on top.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// From the proposer to a worker.
enum ToWorker {
    /// A broadcast: every voter of the worker receives it.
    All(Arc<Message>),
    /// To one voter (local index).
    One(usize, Message),
}

/// From a worker to the proposer: (sender, message) in send order.
type Batch = Vec<(NodeId, Message)>;

/// A link end: stamps the delivery deadline.
struct Link<T> {
    tx: Sender<Env<T>>,
    delay: Duration,
    seq: u64,
}

impl<T> Link<T> {
    fn send(&mut self, body: T) {
        self.seq += 1;
        // A closed channel means the run is stopping; nothing to do.
        let _ = self.tx.send(Env {
            at: Instant::now() + self.delay,
            seq: self.seq,
            body,
        });
    }
}

/// Deadlines of the timers the cores asked for. The heap holds at most one live entry
/// per (node, kind): a later deadline only updates the table, so the heap does not fill
/// with the voter-timer resets every head extension makes.
#[derive(Default)]
struct Timers {
    deadline: BTreeMap<(usize, TimerKind), Tick>,
    scheduled: BTreeMap<(usize, TimerKind), Tick>,
    heap: BinaryHeap<std::cmp::Reverse<(Tick, usize, TimerKind)>>,
}

impl Timers {
    fn set(&mut self, node: usize, kind: TimerKind, at: Tick) {
        self.deadline.insert((node, kind), at);
        let s = self.scheduled.entry((node, kind)).or_insert(Tick::MAX);
        if at < *s {
            *s = at;
            self.heap.push(std::cmp::Reverse((at, node, kind)));
        }
    }

    fn next(&self) -> Option<Tick> {
        self.heap.peek().map(|r| r.0 .0)
    }

    /// Pops the timers due at `now`.
    fn due(&mut self, now: Tick, out: &mut Vec<(usize, TimerKind)>) {
        while let Some(&std::cmp::Reverse((at, node, kind))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.scheduled.get(&(node, kind)) != Some(&at) {
                continue; // superseded by an earlier push
            }
            self.scheduled.remove(&(node, kind));
            match self.deadline.get(&(node, kind)).copied() {
                Some(d) if d <= now => {
                    self.deadline.remove(&(node, kind));
                    out.push((node, kind));
                }
                Some(d) => {
                    self.scheduled.insert((node, kind), d);
                    self.heap.push(std::cmp::Reverse((d, node, kind)));
                }
                None => {}
            }
        }
    }
}

/// How long before a delivery deadline a thread stops sleeping and polls its channel.
/// A timed futex wait wakes tens of µs late (more when the other core is busy) and every
/// round trip has two deliveries; at D = 10 ms, K = 10 polling raised blocks/s by about
/// 1 % of the K/2D bound (8 s A/B runs at load 7-10: 477-480 blocks/s sleeping to the
/// deadline, 483-484 polling for the last 60-150 µs).
/// It costs at most this much CPU per wake-up, and only here, in the harness.
const SPIN_BEFORE_DEADLINE: Duration = Duration::from_micros(100);

/// Waits until a message arrives, the earliest deadline in `heap` passes or `timer`
/// (a core timer, millisecond precision) is due, whichever comes first; at most
/// [`MAX_IDLE`]. Returns false when the channel is closed.
fn wait<T>(rx: &Receiver<Env<T>>, heap: &mut BinaryHeap<Env<T>>, timer: Option<Instant>) -> bool {
    let now = Instant::now();
    let deadline = heap.peek().map(|e| e.at);
    let mut wake = now + MAX_IDLE;
    for t in deadline.into_iter().chain(timer) {
        wake = wake.min(t);
    }
    if wake <= now {
        return true;
    }
    let spin = deadline == Some(wake);
    let park_until = if spin {
        wake.checked_sub(SPIN_BEFORE_DEADLINE).unwrap_or(now)
    } else {
        wake
    };
    if park_until > now {
        match rx.recv_deadline(park_until) {
            Ok(e) => {
                heap.push(e);
                return true;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
    if spin {
        loop {
            match rx.try_recv() {
                Ok(e) => {
                    heap.push(e);
                    return true;
                }
                Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => {}
            }
            if Instant::now() >= wake {
                return true;
            }
            std::hint::spin_loop();
        }
    }
    true
}

/// Asks the kernel to wake this thread on time: the default timer slack of 50 µs would
/// be added to every delivery deadline (two per round trip).
fn precise_sleeps() {
    let slack_ns: libc::c_ulong = 1;
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, slack_ns);
    }
}

const PHASE_WARMUP: u8 = 0;
const PHASE_MEASURE: u8 = 1;
const PHASE_STOP: u8 = 2;

struct Shared {
    start: Instant,
    phase: AtomicU8,
    finalized: AtomicU64,
}

impl Shared {
    fn tick(&self, now: Instant) -> Tick {
        now.saturating_duration_since(self.start).as_millis() as Tick
    }
    fn instant(&self, t: Tick) -> Instant {
        self.start + Duration::from_millis(t)
    }
}

/// Per-thread figures for the measured window.
#[derive(Default)]
struct ThreadReport {
    cpu_start: Duration,
    cpu_end: Duration,
    messages: u64,
    rejected: u64,
    finalized: u64,
    latency: Histogram,
    lateness: Histogram,
    counters: BTreeMap<String, u64>,
}

impl ThreadReport {
    /// Notes phase changes; returns false when the thread must stop.
    fn observe(&mut self, shared: &Shared, seen: &mut u8) -> bool {
        let p = shared.phase.load(Ordering::Relaxed);
        if p != *seen {
            if *seen == PHASE_WARMUP {
                self.cpu_start = stats::thread_cpu();
            }
            if p == PHASE_STOP {
                self.cpu_end = stats::thread_cpu();
            }
            *seen = p;
        }
        p != PHASE_STOP
    }

    /// Closes the CPU window when the thread left its loop without seeing the stop
    /// flag (its peer thread stopped first and the channel closed).
    fn finish(&mut self) {
        if self.cpu_end.is_zero() {
            self.cpu_end = stats::thread_cpu();
        }
    }
}

/// Scheme, proposer key, voter keys and the committee they form.
type Keys = (
    Arc<dyn SignatureScheme>,
    Arc<dyn Signer>,
    Vec<Arc<dyn Signer>>,
    Committee,
);

/// Session 1 with `keys[0]` as the proposer and the rest as voters (one seat each).
fn one_proposer_committee(
    keys: Vec<Arc<dyn Signer>>,
    member: impl Fn(&Arc<dyn Signer>) -> Member,
) -> (Arc<dyn Signer>, Vec<Arc<dyn Signer>>, Committee) {
    let committee = Committee {
        session: 1,
        proposers: vec![member(&keys[0])],
        voters: keys[1..].iter().map(&member).collect(),
        counting: VoteCounting::Seat,
    };
    let mut keys = keys.into_iter();
    let proposer = keys.next().expect("proposer key");
    (proposer, keys.collect(), committee)
}

/// Keys, committee and the parameters every core needs.
struct Setup {
    kind: SchemeKind,
    scheme: Arc<dyn SignatureScheme>,
    committee: Committee,
    proposer: Arc<dyn Signer>,
    voters: Vec<Arc<dyn Signer>>,
    committees: Committees,
    genesis: Arc<Block>,
    config: CoreConfig,
}

impl Setup {
    fn new(p: &PocParams) -> Setup {
        let (scheme, proposer, voters, committee): Keys = match p.scheme {
            SchemeKind::Insecure => {
                let s = InsecureTestScheme::new();
                let keys = (0..=p.voters)
                    .map(|i| Arc::new(s.keypair(i as u64)) as Arc<dyn Signer>)
                    .collect();
                let (prop, voters, committee) = one_proposer_committee(keys, |k| {
                    let pop = k.sign(Domain::ProofOfPossession, NETWORK_ID, &k.public_key().0);
                    Member::new(k.public_key().clone(), pop, 1, "")
                });
                (Arc::new(s), prop, voters, committee)
            }
            SchemeKind::None => {
                let keys = (0..=p.voters)
                    .map(|i| Arc::new(NoCryptoSigner::new(i as u64)) as Arc<dyn Signer>)
                    .collect();
                let (prop, voters, committee) = one_proposer_committee(keys, |k| {
                    Member::new(k.public_key().clone(), sig48(), 1, "")
                });
                (Arc::new(NoCrypto), prop, voters, committee)
            }
            SchemeKind::Bls => {
                let (committee, ps, vs) = pala_crypto::seeded_committee(
                    "pala-bench-poc",
                    1,
                    1,
                    p.voters,
                    NETWORK_ID,
                    VoteCounting::Seat,
                );
                let prop: Arc<dyn Signer> = Arc::new(ps.into_iter().next().expect("proposer"));
                let voters = vs
                    .into_iter()
                    .map(|v| Arc::new(v) as Arc<dyn Signer>)
                    .collect();
                (
                    Arc::new(pala_crypto::BlsScheme::new()),
                    prop,
                    voters,
                    committee,
                )
            }
        };
        let mut committees = Committees::default();
        committees.install(scheme.as_ref(), committee.clone());
        Setup {
            kind: p.scheme,
            scheme,
            proposer,
            voters,
            committee,
            committees,
            genesis: Arc::new(Block::genesis(b"pala-bench-poc".to_vec())),
            config: CoreConfig {
                network_id: NETWORK_ID,
                k: p.k,
                // The readiness gate only needs the voters' first statuses here.
                first_proposal_delay_ms: 10,
                ..CoreConfig::default()
            },
        }
    }

    fn node(&self, signer: &Arc<dyn Signer>) -> Node {
        Node::new(NodeParams {
            config: self.config.clone(),
            signer: signer.clone(),
            scheme: self.scheme.clone(),
            committees: self.committees.clone(),
            genesis: self.genesis.clone(),
            archive: Arc::new(NoArchive),
        })
    }

    /// A verifier with caches of its own: `BlsScheme` remembers decoded keys and
    /// verified notarizations, and in a real network every node pays for its own checks,
    /// so voters sharing a worker thread must not share those caches.
    fn verifier(&self) -> MessageVerifier {
        match self.kind {
            SchemeKind::Bls => {
                let scheme: Arc<dyn SignatureScheme> = Arc::new(pala_crypto::BlsScheme::new());
                let mut committees = Committees::default();
                committees.install(scheme.as_ref(), self.committee.clone());
                MessageVerifier::new(scheme, NETWORK_ID, committees)
            }
            // No caches to share.
            SchemeKind::Insecure | SchemeKind::None => {
                MessageVerifier::new(self.scheme.clone(), NETWORK_ID, self.committees.clone())
            }
        }
    }
}

// ---------------------------------------------------------------------------- no crypto

/// A signature scheme that accepts everything (`--scheme none`): signatures are 48 zero
/// bytes, the size of a BLS `min_sig` signature. It exists only to measure the protocol
/// core and the harness without any signature cost; never a node configuration.
pub struct NoCrypto;

/// A key of [`NoCrypto`]: a distinct public key per seed, so node ids differ.
pub struct NoCryptoSigner {
    public: PublicKey,
}

impl NoCryptoSigner {
    /// The key of `seed`.
    pub fn new(seed: u64) -> Self {
        let mut pk = vec![0u8; 96];
        pk[..8].copy_from_slice(&seed.to_le_bytes());
        NoCryptoSigner {
            public: PublicKey(pk),
        }
    }
}

fn sig48() -> Signature {
    Signature(vec![0; 48])
}

impl Signer for NoCryptoSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sign(&self, _: Domain, _: u64, _: &[u8]) -> Signature {
        sig48()
    }
}

impl PreparedKeys for NoCrypto {
    fn len(&self) -> usize {
        usize::MAX
    }
    fn verify_subset(
        &self,
        _: &SignerBitmap,
        _: Option<&PublicKey>,
        _: Domain,
        _: u64,
        _: &[u8],
        _: &Signature,
    ) -> bool {
        true
    }
}

impl SignatureScheme for NoCrypto {
    fn name(&self) -> &'static str {
        "none (benchmark only)"
    }
    fn check_public_key(&self, _: &PublicKey) -> bool {
        true
    }
    fn verify(&self, _: &PublicKey, _: Domain, _: u64, _: &[u8], _: &Signature) -> bool {
        true
    }
    fn aggregate(&self, sigs: &[&Signature]) -> Option<Signature> {
        sigs.first().map(|s| (*s).clone())
    }
    fn verify_same_message(
        &self,
        _: &[&PublicKey],
        _: Domain,
        _: u64,
        _: &[u8],
        _: &Signature,
    ) -> bool {
        true
    }
    fn prepare_keys(&self, _: &[PublicKey]) -> Arc<dyn PreparedKeys> {
        Arc::new(NoCrypto)
    }
}

// ---------------------------------------------------------------------------- proposer

struct Proposer {
    shared: Arc<Shared>,
    node: Node,
    verifier: MessageVerifier,
    rx: Receiver<Env<Batch>>,
    links: Vec<Link<ToWorker>>,
    /// Voter id -> (worker, local index).
    route: HashMap<NodeId, (usize, usize)>,
    timers: Timers,
    payload: Vec<Vec<u8>>,
    proposed_at: HashMap<BlockSn, Instant>,
    /// Consecutive votes waiting for one batch check (kept to reuse its buffer).
    vote_run: Vec<(NodeId, Vote)>,
    report: ThreadReport,
    phase: u8,
}

impl Proposer {
    fn run(mut self, voters: Vec<NodeId>) -> ThreadReport {
        precise_sleeps();
        let now = self.shared.tick(Instant::now());
        let mut outs = self.node.handle(now, Input::Start);
        for v in voters {
            outs.extend(self.node.handle(now, Input::PeerConnected(v)));
        }
        self.execute(outs);
        let mut heap: BinaryHeap<Env<Batch>> = BinaryHeap::new();
        let mut due_timers = Vec::new();
        let mut due: Vec<Env<Batch>> = Vec::new();
        while self.report.observe(&self.shared, &mut self.phase) {
            let timer = self.timers.next().map(|t| self.shared.instant(t));
            if !wait(&self.rx, &mut heap, timer) {
                break;
            }
            heap.extend(self.rx.try_iter());
            let now = Instant::now();
            let tick = self.shared.tick(now);
            while heap.peek().is_some_and(|e| e.at <= now) {
                due.push(heap.pop().expect("peeked"));
            }
            if !due.is_empty() {
                self.deliver(&mut due, now, tick);
            }
            self.timers.due(tick, &mut due_timers);
            for (_, kind) in due_timers.drain(..) {
                let outs = self.node.handle(tick, Input::Timer(kind));
                self.execute(outs);
            }
        }
        self.report.finish();
        self.report.counters = self
            .node
            .counters()
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        self.report
    }

    /// Hands every due message to the core, in arrival order.
    ///
    /// Runs of consecutive votes are checked together with
    /// [`MessageVerifier::verify_votes`] (one aggregate check per block, bisection only
    /// on failure), as the node does at the proposer; everything else one by one.
    fn deliver(&mut self, due: &mut Vec<Env<Batch>>, now: Instant, tick: Tick) {
        let measuring = self.phase == PHASE_MEASURE;
        let mut votes = std::mem::take(&mut self.vote_run);
        for e in due.drain(..) {
            if measuring {
                self.report
                    .lateness
                    .record_duration(now.saturating_duration_since(e.at));
            }
            for (from, m) in e.body {
                if measuring {
                    self.report.messages += 1;
                }
                match m {
                    Message::Vote(v) => votes.push((from, v)),
                    m => {
                        self.deliver_votes(&mut votes, tick);
                        match self.verifier.verify(m) {
                            Ok(msg) => {
                                let outs = self.node.handle(tick, Input::Message { from, msg });
                                self.execute(outs);
                            }
                            Err(_) => self.report.rejected += 1,
                        }
                    }
                }
            }
        }
        self.deliver_votes(&mut votes, tick);
        self.vote_run = votes;
    }

    fn deliver_votes(&mut self, votes: &mut Vec<(NodeId, Vote)>, tick: Tick) {
        if votes.is_empty() {
            return;
        }
        let (from, batch): (Vec<NodeId>, Vec<Vote>) = votes.drain(..).unzip();
        for (from, r) in from.into_iter().zip(self.verifier.verify_votes(batch)) {
            match r {
                Ok(v) => {
                    let outs = self.node.handle(
                        tick,
                        Input::Message {
                            from,
                            msg: v.into(),
                        },
                    );
                    self.execute(outs);
                }
                Err(_) => self.report.rejected += 1,
            }
        }
    }

    fn execute(&mut self, outs: Vec<Output>) {
        let mut work = std::collections::VecDeque::from(outs);
        while let Some(o) = work.pop_front() {
            match o {
                Output::Broadcast(msg) => {
                    if let Message::Proposal(p) = &msg {
                        self.proposed_at.insert(p.block.sn(), Instant::now());
                    }
                    let msg = Arc::new(msg);
                    for l in &mut self.links {
                        l.send(ToWorker::All(msg.clone()));
                    }
                }
                Output::Send { to, msg } => {
                    if let Some(&(w, i)) = self.route.get(&to) {
                        self.links[w].send(ToWorker::One(i, msg));
                    }
                }
                Output::SetTimer { kind, at } => self.timers.set(0, kind, at),
                Output::RequestPayload { sn } => {
                    // No block time: the scenario measures consensus, not block filling.
                    // The new proposal goes out before the rest of this batch (the
                    // status broadcast), so voters see it one handling round earlier.
                    let tick = self.shared.tick(Instant::now());
                    let txs = self.payload.clone();
                    let outs = self.node.handle(
                        tick,
                        Input::Payload {
                            sn,
                            txs,
                            timestamp_ms: tick,
                        },
                    );
                    for o in outs.into_iter().rev() {
                        work.push_front(o);
                    }
                }
                Output::Finalized { block, .. } => {
                    let sn = block.sn();
                    let proposed = self.proposed_at.remove(&sn);
                    self.shared.finalized.fetch_add(1, Ordering::Relaxed);
                    if self.phase == PHASE_MEASURE {
                        self.report.finalized += 1;
                        if let Some(t) = proposed {
                            self.report.latency.record_duration(t.elapsed());
                        }
                    }
                    // Blocks of an abandoned fork would stay forever otherwise.
                    if self.proposed_at.len() > 4096 {
                        self.proposed_at.retain(|s, _| *s > sn);
                    }
                }
                _ => {} // Persist: no storage in this scenario; EpochChanged: nothing to do.
            }
        }
    }
}

// ---------------------------------------------------------------------------- voters

struct Worker {
    shared: Arc<Shared>,
    nodes: Vec<Node>,
    ids: Vec<NodeId>,
    proposer: NodeId,
    /// One per voter (see [`Setup::verifier`]).
    verifiers: Vec<MessageVerifier>,
    rx: Receiver<Env<ToWorker>>,
    link: Link<Batch>,
    outbox: Batch,
    timers: Timers,
    report: ThreadReport,
    phase: u8,
}

impl Worker {
    fn run(mut self) -> ThreadReport {
        precise_sleeps();
        let now = self.shared.tick(Instant::now());
        for i in 0..self.nodes.len() {
            let mut outs = self.nodes[i].handle(now, Input::Start);
            outs.extend(self.nodes[i].handle(now, Input::PeerConnected(self.proposer)));
            self.execute(i, outs);
        }
        self.flush();
        let mut heap: BinaryHeap<Env<ToWorker>> = BinaryHeap::new();
        let mut due_timers = Vec::new();
        while self.report.observe(&self.shared, &mut self.phase) {
            let timer = self.timers.next().map(|t| self.shared.instant(t));
            if !wait(&self.rx, &mut heap, timer) {
                break;
            }
            heap.extend(self.rx.try_iter());
            let now = Instant::now();
            let tick = self.shared.tick(now);
            let measuring = self.phase == PHASE_MEASURE;
            while heap.peek().is_some_and(|e| e.at <= now) {
                let e = heap.pop().expect("peeked");
                if measuring {
                    self.report
                        .lateness
                        .record_duration(now.saturating_duration_since(e.at));
                }
                match e.body {
                    ToWorker::All(msg) => {
                        for i in 0..self.nodes.len() {
                            self.deliver(i, (*msg).clone(), tick);
                        }
                    }
                    ToWorker::One(i, msg) => self.deliver(i, msg, tick),
                }
                // Votes leave as soon as their proposal is handled, not after the
                // notarizations and statuses queued behind it.
                self.flush();
            }
            self.timers.due(tick, &mut due_timers);
            for (i, kind) in due_timers.drain(..) {
                let outs = self.nodes[i].handle(tick, Input::Timer(kind));
                self.execute(i, outs);
            }
            self.flush();
        }
        self.report.finish();
        self.report
    }

    fn deliver(&mut self, i: usize, msg: Message, tick: Tick) {
        if self.phase == PHASE_MEASURE {
            self.report.messages += 1;
        }
        match self.verifiers[i].verify(msg) {
            Ok(msg) => {
                let outs = self.nodes[i].handle(
                    tick,
                    Input::Message {
                        from: self.proposer,
                        msg,
                    },
                );
                self.execute(i, outs);
            }
            Err(_) => self.report.rejected += 1,
        }
    }

    fn execute(&mut self, i: usize, outs: Vec<Output>) {
        for o in outs {
            match o {
                // Hub and spoke (W-1): a voter's only peer is the proposer.
                Output::Send { to, msg } if to == self.proposer => {
                    self.outbox.push((self.ids[i], msg))
                }
                Output::Broadcast(msg) => self.outbox.push((self.ids[i], msg)),
                Output::SetTimer { kind, at } => self.timers.set(i, kind, at),
                Output::Finalized { .. } if self.phase == PHASE_MEASURE => {
                    self.report.finalized += 1
                }
                _ => {}
            }
        }
    }

    fn flush(&mut self) {
        if !self.outbox.is_empty() {
            let b = std::mem::take(&mut self.outbox);
            self.link.send(b);
        }
    }
}

// ---------------------------------------------------------------------------- run

/// Runs the scenario; `progress` receives a one-line summary about once a second.
pub fn run(p: &PocParams, mut progress: impl FnMut(&str)) -> Result<PocReport, String> {
    if p.voters == 0 || p.k == 0 || p.workers == 0 {
        return Err("voters, k and workers must be at least 1".into());
    }
    let setup = Setup::new(p);
    let delay = Duration::from_millis(p.delay_ms);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        phase: AtomicU8::new(PHASE_WARMUP),
        finalized: AtomicU64::new(0),
    });
    let workers = p.workers.min(p.voters);
    let (to_proposer, proposer_rx) = unbounded::<Env<Batch>>();
    let proposer_id = setup.proposer.node_id();
    let mut route = HashMap::new();
    let mut links = Vec::new();
    let mut worker_threads = Vec::new();
    for w in 0..workers {
        let (tx, rx) = unbounded::<Env<ToWorker>>();
        links.push(Link { tx, delay, seq: 0 });
        let mine: Vec<&Arc<dyn Signer>> = setup.voters.iter().skip(w).step_by(workers).collect();
        for (local, s) in mine.iter().enumerate() {
            route.insert(s.node_id(), (w, local));
        }
        let worker = Worker {
            shared: shared.clone(),
            nodes: mine.iter().map(|s| setup.node(s)).collect(),
            ids: mine.iter().map(|s| s.node_id()).collect(),
            proposer: proposer_id,
            verifiers: mine.iter().map(|_| setup.verifier()).collect(),
            rx,
            link: Link {
                tx: to_proposer.clone(),
                delay,
                seq: 0,
            },
            outbox: Vec::new(),
            timers: Timers::default(),
            report: ThreadReport::default(),
            phase: PHASE_WARMUP,
        };
        worker_threads.push(
            std::thread::Builder::new()
                .name(format!("poc-voters-{w}"))
                .spawn(move || worker.run())
                .map_err(|e| e.to_string())?,
        );
    }
    drop(to_proposer);
    let voter_ids: Vec<NodeId> = setup.voters.iter().map(|s| s.node_id()).collect();
    let proposer = Proposer {
        shared: shared.clone(),
        node: setup.node(&setup.proposer),
        verifier: setup.verifier(),
        rx: proposer_rx,
        links,
        route,
        timers: Timers::default(),
        payload: if p.payload_bytes > 0 {
            vec![vec![0xab; p.payload_bytes]]
        } else {
            Vec::new()
        },
        proposed_at: HashMap::new(),
        vote_run: Vec::new(),
        report: ThreadReport::default(),
        phase: PHASE_WARMUP,
    };
    let proposer_thread = std::thread::Builder::new()
        .name("poc-proposer".into())
        .spawn(move || proposer.run(voter_ids))
        .map_err(|e| e.to_string())?;

    std::thread::sleep(Duration::from_secs_f64(p.warmup_seconds.max(0.0)));
    let cpu0 = stats::process_cpu();
    let t0 = Instant::now();
    shared.phase.store(PHASE_MEASURE, Ordering::Relaxed);
    let mut rss_series = vec![(0.0, stats::rss_kb())];
    let end = t0 + Duration::from_secs_f64(p.seconds.max(0.001));
    let mut last_print = t0;
    let mut last_fin = shared.finalized.load(Ordering::Relaxed);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep(p.sample_every.min(end - now));
        let t = t0.elapsed().as_secs_f64();
        let rss = stats::rss_kb();
        rss_series.push((t, rss));
        if last_print.elapsed() >= Duration::from_secs(1) {
            let fin = shared.finalized.load(Ordering::Relaxed);
            let dt = last_print.elapsed().as_secs_f64();
            progress(&format!(
                "t={t:5.1}s  {:8.1} blocks/s  rss {:.1} MiB",
                (fin - last_fin) as f64 / dt,
                rss as f64 / 1024.0
            ));
            last_fin = fin;
            last_print = Instant::now();
        }
    }
    shared.phase.store(PHASE_STOP, Ordering::Relaxed);
    let measured = t0.elapsed().as_secs_f64();
    let cpu = stats::process_cpu().saturating_sub(cpu0);

    let prop = proposer_thread
        .join()
        .map_err(|_| "proposer thread panicked".to_string())?;
    let mut report = PocReport {
        finalized: prop.finalized,
        measured_seconds: measured,
        blocks_per_sec: prop.finalized as f64 / measured,
        latency: prop.latency.clone(),
        lateness: prop.lateness.clone(),
        cpu_seconds: cpu.as_secs_f64(),
        proposer_cpu_seconds: prop.cpu_end.saturating_sub(prop.cpu_start).as_secs_f64(),
        peak_rss_kb: stats::peak_rss_kb(),
        rss_series,
        messages: prop.messages,
        rejected: prop.rejected,
        proposer_counters: prop.counters.clone(),
        ..PocReport::default()
    };
    for t in worker_threads {
        let w = t.join().map_err(|_| "voter worker panicked".to_string())?;
        report.voters_cpu_seconds += w.cpu_end.saturating_sub(w.cpu_start).as_secs_f64();
        report.lateness.merge(&w.lateness);
        report.messages += w.messages;
        report.rejected += w.rejected;
        report.voter_finalized += w.finalized;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_run_finalizes_blocks() {
        let p = PocParams {
            voters: 4,
            delay_ms: 1,
            k: 2,
            seconds: 0.5,
            warmup_seconds: 0.2,
            scheme: SchemeKind::Insecure,
            workers: 2,
            payload_bytes: 16,
            sample_every: Duration::from_millis(100),
        };
        let r = run(&p, |_| {}).unwrap();
        assert!(r.finalized > 10, "finalized {}", r.finalized);
        assert_eq!(r.rejected, 0);
        assert!(r.latency.count() > 0);
        assert!(r.voter_finalized > 0);
        assert!(r.rss_series.len() >= 2);
        assert!(r.cpu_seconds > 0.0);
    }

    #[test]
    fn timers_fire_once_at_the_latest_deadline() {
        let mut t = Timers::default();
        let mut out = Vec::new();
        t.set(0, TimerKind::Voter, 10);
        t.set(0, TimerKind::Voter, 20); // replaces, no second heap entry
        t.set(1, TimerKind::Sync, 5);
        assert_eq!(t.heap.len(), 2);
        t.due(10, &mut out);
        assert_eq!(out, vec![(1, TimerKind::Sync)]);
        out.clear();
        t.due(19, &mut out);
        assert!(out.is_empty());
        t.due(20, &mut out);
        assert_eq!(out, vec![(0, TimerKind::Voter)]);
        t.set(0, TimerKind::Voter, 30);
        t.set(0, TimerKind::Voter, 25); // earlier: pushed again
        out.clear();
        t.due(100, &mut out);
        assert_eq!(out, vec![(0, TimerKind::Voter)]);
    }
}
