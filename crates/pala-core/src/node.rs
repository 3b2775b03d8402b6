//! The PaLa state machine: `Node::handle(now, input) -> outputs`.

use crate::chain::{Attach, Chain};
use crate::config::{CoreConfig, Tick};
use crate::io::{BlockArchive, Input, Output, Record, Recovered, TimerKind};
use crate::role::Role;
use crate::verify::Committees;
use pala_types::{
    Block, BlockHeader, BlockSn, ClockMessage, ClockNotarization, Committee, ConsensusInfo, Domain,
    Epoch, EpochResponse, FresherHeadRequest, FresherHeadResponse, Hash, Message, NodeId,
    Notarization, NotarizedBlock, Proposal, Session, SignatureScheme, Signer, SignerBitmap, Status,
    Vote,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Everything a node needs besides its recovered state.
#[derive(Clone)]
pub struct NodeParams {
    /// Protocol parameters.
    pub config: CoreConfig,
    /// The node's consensus key.
    pub signer: Arc<dyn Signer>,
    /// The signature scheme (for aggregation).
    pub scheme: Arc<dyn SignatureScheme>,
    /// Installed committees (genesis: session 1).
    pub committees: Committees,
    /// The genesis block.
    pub genesis: Arc<Block>,
    /// Finalized blocks pruned from memory, for serving chain sync.
    pub archive: Arc<dyn BlockArchive>,
}

/// Whether a deliberately broken rule is switched on; always `false` without the
/// `mutations` feature, so production builds carry no trace of it.
#[cfg(feature = "mutations")]
macro_rules! mutated {
    ($self:ident, $m:ident) => {
        $self.cfg.mutation == Some(crate::config::Mutation::$m)
    };
}
#[cfg(not(feature = "mutations"))]
macro_rules! mutated {
    ($self:ident, $m:ident) => {
        false
    };
}

/// Why a block could not be inserted (N-9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertError {
    /// The parent is not stored: catch up towards it, then retry (temporary).
    MissingParent(BlockSn),
    /// A different block is stored at this sn.
    Conflict,
    /// At or below the finalized head, or not extending the finalized chain (N-9.5).
    Stale,
    /// The block's epoch is ahead of the local epoch and carries no proof (W-11b).
    FutureEpoch,
    /// Breaks a rule; the string names it.
    Invalid(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VoteAttempt {
    Voted,
    /// Keep in `pending` and retry on the next head extension or insertion.
    Wait,
    Drop(&'static str),
}

struct VoteCollector {
    hash: Hash,
    signers: SignerBitmap,
    aggregate: pala_types::Signature,
    broadcast: bool,
    /// Number of signers in the stored notarization (late votes raise `signers` above it).
    materialized: usize,
}

struct Production {
    epoch: Epoch,
    next_s: u32,
    awaiting_payload: bool,
}

#[derive(Default)]
struct PeerInfo {
    connected: bool,
    status: Option<Status>,
    greeted: bool,
    unnotarized_sent_at: Option<Tick>,
}

#[derive(Clone, Copy)]
struct SyncSlot {
    peer: NodeId,
    deadline: Tick,
}

/// Counters of what the node did and dropped, by reason.
pub type Counters = BTreeMap<&'static str, u64>;

/// The protocol state machine of one node (every role).
///
/// Inputs are verified messages, timer firings, payloads and connection events; outputs
/// are sends, persists, timers and finalized blocks, to be executed in order. The node
/// never reads a clock, does no IO and has no randomness: the same inputs always give the
/// same outputs.
pub struct Node {
    cfg: CoreConfig,
    me: NodeId,
    signer: Arc<dyn Signer>,
    scheme: Arc<dyn SignatureScheme>,
    committees: Committees,
    archive: Arc<dyn BlockArchive>,
    chain: Chain,
    now: Tick,

    epoch: Epoch,
    epoch_proof: Option<ClockNotarization>,
    last_clock_of_session: BTreeMap<u32, ClockNotarization>,

    // Voter.
    voted: BTreeSet<BlockSn>,
    vote_guard: BTreeMap<Epoch, u32>,
    clock_guard: Epoch,
    pending: BTreeMap<BlockSn, (NodeId, Proposal)>,
    last_clock: Option<ClockMessage>,

    // Proposer.
    production: Option<Production>,
    gate_started: Option<Tick>,
    /// The newest wall-clock time a driver supplied with a payload, for blocks the core
    /// seals without asking for one (C-2).
    wall_clock_ms: u64,
    votes: BTreeMap<BlockSn, VoteCollector>,
    unnotarized: BTreeMap<BlockSn, Proposal>,
    clocks: BTreeMap<usize, ClockMessage>,

    // Peers and sync.
    peers: BTreeMap<NodeId, PeerInfo>,
    epoch_slot: Option<SyncSlot>,
    blocks_slot: Option<SyncSlot>,
    penalties: BTreeMap<NodeId, Tick>,
    inconsistent: BTreeSet<NodeId>,

    // Reconfiguration (section 6).
    schedule: BTreeMap<Session, Committee>,
    /// The finalized stop block while its session's successor is not final yet (C-7a).
    reconfig_root: Option<BlockSn>,
    /// The committee named by the latest committee-change transaction of this session.
    next_committee: Option<Committee>,
    /// Synced blocks of a session whose committee is not installed yet (C-8).
    sync_buffer: Option<(NodeId, Vec<NotarizedBlock>)>,

    timers: BTreeMap<TimerKind, Tick>,
    out: Vec<Output>,
    status_dirty: bool,
    retry_pending: bool,
    sync_dirty: bool,
    counters: Counters,
}

impl Node {
    /// A fresh node at genesis.
    pub fn new(params: NodeParams) -> Node {
        Self::recover(params, Recovered::default())
    }

    /// A node restarted from its persisted records (P-3).
    pub fn recover(params: NodeParams, rec: Recovered) -> Node {
        let NodeParams {
            config,
            signer,
            scheme,
            committees,
            genesis,
            archive,
        } = params;
        let schedule = config.schedule.clone();
        let mut committees = committees;
        for c in rec.committees {
            committees.install(scheme.as_ref(), c);
        }
        let fin = rec.finalized.unwrap_or(NotarizedBlock {
            block: genesis,
            notarization: None,
        });
        let mut chain = Chain::new(fin.block, fin.notarization);
        let mut blocks = rec.blocks;
        blocks.sort_by_key(|b| (b.height(), b.sn()));
        for b in blocks {
            if chain
                .get(b.parent_sn())
                .is_some_and(|p| p.block.hash() == b.header.parent_hash)
                && chain.get(b.sn()).is_none()
            {
                chain.insert(b);
            }
        }
        let mut notas = rec.notarizations;
        notas.sort_by_key(|n| n.sn);
        for n in notas {
            if chain.hash(n.sn) == Some(n.block_hash) {
                chain.attach(n);
            }
        }
        let me = signer.node_id();
        // Section 0.1 item 8: keep the persisted epoch (never regress), but never below
        // the head's epoch (E-9).
        let (mut epoch, mut proof) = rec.epoch.unwrap_or((Epoch::new(1, 1), None));
        if chain.head().epoch > epoch {
            epoch = chain.head().epoch;
            proof = None;
        }
        // Restarted inside a reconfiguration window: the local epoch is already in the
        // next session. The stop block itself is below the recovered root, so branches
        // off it are no longer insertable (a documented limitation).
        let reconfig_root =
            (epoch.session > chain.finalized().epoch.session).then(|| chain.finalized());
        let mut last_clock_of_session = BTreeMap::new();
        if let Some(p) = &proof {
            last_clock_of_session.insert(p.epoch.session, p.clone());
        }
        Node {
            cfg: config,
            me,
            signer,
            scheme,
            committees,
            archive,
            chain,
            now: 0,
            epoch,
            epoch_proof: proof,
            last_clock_of_session,
            voted: BTreeSet::new(),
            vote_guard: rec
                .vote_guards
                .into_iter()
                .fold(BTreeMap::new(), |mut m, (e, s)| {
                    let v = m.entry(e).or_insert(0);
                    *v = (*v).max(s);
                    m
                }),
            clock_guard: rec.clock_guard.unwrap_or_default(),
            pending: BTreeMap::new(),
            last_clock: None,
            production: None,
            gate_started: None,
            wall_clock_ms: 0,
            votes: BTreeMap::new(),
            unnotarized: BTreeMap::new(),
            clocks: BTreeMap::new(),
            peers: BTreeMap::new(),
            epoch_slot: None,
            blocks_slot: None,
            penalties: BTreeMap::new(),
            inconsistent: BTreeSet::new(),
            schedule,
            reconfig_root,
            next_committee: None,
            sync_buffer: None,
            timers: BTreeMap::new(),
            out: Vec::new(),
            status_dirty: false,
            retry_pending: false,
            sync_dirty: false,
            counters: Counters::new(),
        }
    }

    // ------------------------------------------------------------------ accessors

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }
    /// Local epoch `L`.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
    /// Freshest notarized head.
    pub fn head(&self) -> BlockSn {
        self.chain.head()
    }
    /// Finalized head.
    pub fn finalized(&self) -> BlockSn {
        self.chain.finalized()
    }
    /// The finalized head block.
    pub fn finalized_block(&self) -> &Arc<Block> {
        self.chain.finalized_block()
    }
    /// The head block.
    pub fn head_block(&self) -> &Arc<Block> {
        self.chain.head_block()
    }
    /// The block tree (read-only).
    pub fn chain(&self) -> &Chain {
        &self.chain
    }
    /// Counters of events and drops by reason.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    /// Protocol parameters.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }
    /// The installed committees: the core's own copy, which only it changes (C-3, C-5).
    pub fn committees(&self) -> &Committees {
        &self.committees
    }
    /// This node's role in the session of its local epoch.
    pub fn role(&self) -> Role {
        self.role_in(self.epoch.session)
    }
    /// This node's role in `session`; a follower when that session's committee is
    /// not installed.
    pub fn role_in(&self, session: Session) -> Role {
        self.committees
            .get(session)
            .map_or(Role::Follower, |c| Role::in_committee(c, &self.me))
    }
    /// The node's status as sent to peers (D-15).
    pub fn status(&self) -> Status {
        Status {
            head: self.chain.head(),
            head_height: self.chain.head_block().height(),
            epoch: self.epoch,
            finalized: self.chain.finalized(),
        }
    }
    /// Whether this node is producing blocks now.
    pub fn is_producing(&self) -> bool {
        self.production.is_some()
    }
    /// Sizes of the internal buffers (for memory checks and metrics).
    pub fn buffer_sizes(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("blocks", self.chain.len()),
            ("voted", self.voted.len()),
            ("pending", self.pending.len()),
            ("vote_sets", self.votes.len()),
            ("unnotarized", self.unnotarized.len()),
            ("clocks", self.clocks.len()),
            ("peers", self.peers.len()),
        ])
    }

    fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_insert(0) += 1;
    }

    fn committee(&self, session: u32) -> Option<Arc<Committee>> {
        self.committees.get(session).cloned()
    }

    fn is_voter(&self, session: u32) -> bool {
        self.committees.is_voter(session, &self.me)
    }

    fn is_primary(&self, epoch: Epoch) -> bool {
        self.committee(epoch.session)
            .is_some_and(|c| !c.proposers.is_empty() && c.primary(epoch).id == self.me)
    }

    fn k(&self) -> u32 {
        self.cfg.k.max(1)
    }

    // ------------------------------------------------------------------ driver

    /// Handles one input at time `now` (a monotonic millisecond count, see [`Tick`]) and
    /// returns the outputs to execute in order.
    pub fn handle(&mut self, now: Tick, input: Input) -> Vec<Output> {
        self.now = self.now.max(now);
        match input {
            Input::Start => self.on_start(),
            Input::PeerConnected(p) => self.on_connected(p),
            Input::PeerDisconnected(p) => self.on_disconnected(p),
            Input::Message { from, msg } => {
                let (msg, deferred) = msg.into_parts();
                if !deferred.is_empty() {
                    // C-8: keep only the latest batch.
                    self.sync_buffer = Some((from, deferred));
                }
                self.on_message(from, msg)
            }
            Input::Timer(kind) => self.on_timer(kind),
            Input::Payload {
                sn,
                txs,
                timestamp_ms,
            } => self.on_payload(sn, txs, timestamp_ms),
        }
        self.settle();
        std::mem::take(&mut self.out)
    }

    /// Runs the follow-up work that many inputs trigger, until nothing changes.
    fn settle(&mut self) {
        for _ in 0..64 {
            if self.retry_pending {
                self.retry_pending = false;
                self.retry_pending_proposals();
            }
            self.drive_production();
            if !self.retry_pending {
                break;
            }
        }
        if self.sync_dirty {
            self.sync_dirty = false;
            self.drive_sync();
        }
        if self.status_dirty {
            self.status_dirty = false;
            self.out
                .push(Output::Broadcast(Message::Status(self.status())));
        }
    }

    fn set_timer(&mut self, kind: TimerKind, at: Tick) {
        self.timers.insert(kind, at);
        self.out.push(Output::SetTimer { kind, at });
    }

    fn persist(&mut self, r: Record) {
        self.out.push(Output::Persist(r));
    }

    fn on_start(&mut self) {
        self.reset_voter_timer();
        let hb = self.now + self.cfg.heartbeat_ms;
        self.set_timer(TimerKind::Heartbeat, hb);
        let st = self.now + self.cfg.sync_period_ms;
        self.set_timer(TimerKind::Sync, st);
        self.status_dirty = true;
    }

    fn on_connected(&mut self, p: NodeId) {
        let info = self.peers.entry(p).or_default();
        info.connected = true;
        info.greeted = false;
        self.out.push(Output::Send {
            to: p,
            msg: Message::Status(self.status()),
        });
    }

    fn on_disconnected(&mut self, p: NodeId) {
        if let Some(info) = self.peers.get_mut(&p) {
            info.connected = false;
            info.status = None;
        }
        if self.epoch_slot.is_some_and(|s| s.peer == p) {
            self.epoch_slot = None;
        }
        if self.blocks_slot.is_some_and(|s| s.peer == p) {
            self.blocks_slot = None;
        }
        self.sync_dirty = true;
    }

    fn on_timer(&mut self, kind: TimerKind) {
        match self.timers.get(&kind) {
            Some(&at) if at <= self.now => {
                self.timers.remove(&kind);
            }
            _ => return, // stale or replaced deadline
        }
        match kind {
            TimerKind::Voter => self.on_voter_timeout(),
            TimerKind::ProposerGate => {} // drive_production re-evaluates in settle()
            TimerKind::Sync => {
                let at = self.now + self.cfg.sync_period_ms;
                self.set_timer(TimerKind::Sync, at);
                self.sync_dirty = true;
            }
            TimerKind::Heartbeat => {
                let at = self.now + self.cfg.heartbeat_ms;
                self.set_timer(TimerKind::Heartbeat, at);
                self.status_dirty = true;
            }
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Message) {
        match msg {
            Message::Proposal(p) => self.on_proposal(from, p),
            Message::Vote(v) => self.on_vote(v),
            Message::Notarization(n) => {
                self.add_notarization(n);
            }
            Message::Clock(c) => self.on_clock(c),
            Message::ClockNotarization(c) => self.on_clock_notarization(c),
            Message::UnnotarizedProposals(ps) => {
                for p in ps {
                    self.on_proposal(from, p);
                }
            }
            Message::Status(s) => self.on_status(from, s),
            Message::GetEpoch(e) => self.on_get_epoch(from, e),
            Message::Epoch(r) => self.on_epoch_response(from, r),
            Message::GetFresherHead(r) => self.on_get_fresher_head(from, r),
            Message::FresherHead(r) => self.on_fresher_head(from, r),
        }
    }

    // ------------------------------------------------------------------ blocks

    /// N-9: inserts a block from another node, processing its embedded consensus info.
    fn insert_block(&mut self, block: &Arc<Block>) -> Result<(), InsertError> {
        let sn = block.sn();
        let k = self.k();
        // N-9.1
        if let Some(e) = self.chain.get(sn) {
            return if e.block.hash() == block.hash() {
                Ok(())
            } else {
                Err(InsertError::Conflict)
            };
        }
        if sn <= self.chain.root() || !sn.is_pala() {
            return Err(InsertError::Stale);
        }
        // N-9.2 / N-9.5: the tree holds only the finalized block and its descendants.
        let Some(parent) = self.chain.get(block.parent_sn()) else {
            return Err(if block.parent_sn() < self.chain.root() {
                InsertError::Stale
            } else {
                InsertError::MissingParent(block.parent_sn())
            });
        };
        let parent = parent.block.clone();
        // N-9.3
        if parent.hash() != block.header.parent_hash {
            return Err(InsertError::Invalid("parent hash mismatch"));
        }
        // N-9.4, D-4
        let ps = parent.sn();
        let serial_ok = if sn.epoch == ps.epoch {
            sn.s == ps.s + 1
        } else {
            sn.s == 1 && sn.epoch > ps.epoch
        };
        if !serial_ok {
            return Err(InsertError::Invalid("serial rule D-4"));
        }
        if block.height() != parent.height() + 1 {
            return Err(InsertError::Invalid("height is not parent height + 1"));
        }
        let offset_ok = if ps.epoch.session == sn.epoch.session {
            block.header.session_offset == parent.header.session_offset + 1
        } else {
            block.header.session_offset == 1
        };
        if !offset_ok {
            return Err(InsertError::Invalid("session offset"));
        }
        // C-4 / C-7d: the first block of a session hangs off the previous session's
        // stop block or a block after it.
        let stop = self.cfg.stop_offset;
        if ps.epoch.session != sn.epoch.session
            && ps.is_pala()
            && stop > 0
            && parent.header.session_offset < stop
        {
            return Err(InsertError::Invalid(
                "C-4: new session before the stop block",
            ));
        }
        // C-2: blocks after the stop block carry no user transactions.
        if stop > 0 && block.header.session_offset > stop && !block.txs.is_empty() {
            return Err(InsertError::Invalid(
                "C-2: transactions after the stop block",
            ));
        }
        // I-2 (section 0.1 item 9: enforced exactly).
        let info = &block.consensus;
        if sn.s == 1 {
            let expected = self.expected_timeout_block_notas(&parent);
            if info.notarizations.len() != expected.len() {
                return Err(InsertError::Invalid(
                    "I-2: (e,1) must carry the parent epoch's last K notarizations",
                ));
            }
            for (n, (esn, ehash)) in info.notarizations.iter().zip(&expected) {
                if n.sn != *esn || ehash.is_some_and(|h| h != n.block_hash) {
                    return Err(InsertError::Invalid("I-2: wrong notarization in (e,1)"));
                }
            }
            let needs_clock = sn.epoch.e > 1;
            match &info.clock {
                Some(c) if needs_clock && c.epoch == sn.epoch => {}
                None if !needs_clock => {}
                _ => {
                    return Err(InsertError::Invalid(
                        "I-2: (e,1) must carry cnota(e) iff E > 1",
                    ))
                }
            }
        } else if sn.s <= k {
            if !info.notarizations.is_empty() || info.clock.is_some() {
                return Err(InsertError::Invalid(
                    "I-2: (e,s<=K) carries no notarization",
                ));
            }
        } else {
            let target = BlockSn::at(sn.epoch, sn.s - k);
            let ok = info.clock.is_none()
                && info.notarizations.len() == 1
                && info.notarizations[0].sn == target
                && self
                    .chain
                    .hash(target)
                    .is_none_or(|h| h == info.notarizations[0].block_hash);
            if !ok {
                return Err(InsertError::Invalid(
                    "I-2: (e,s>K) must carry exactly nota(e,s-K)",
                ));
            }
        }
        // N-9.6 / E-8: the clock notarization first, so that L is already e.
        if let Some(c) = &info.clock {
            if c.epoch > self.epoch && c.epoch.session == self.epoch.session {
                self.advance_epoch(c.epoch, Some(c.clone()));
            }
        }
        if sn.epoch > self.epoch {
            return Err(InsertError::FutureEpoch);
        }
        self.chain.insert(block.clone());
        self.persist(Record::Block(block.clone()));
        self.retry_pending = true;
        for n in &info.notarizations {
            self.add_notarization(n.clone());
        }
        Ok(())
    }

    /// I-1 for `(e,1)`: the sns (and hashes, where still in memory) of the parent and
    /// its same-epoch ancestors, newest K, ascending.
    fn expected_timeout_block_notas(&self, parent: &Block) -> Vec<(BlockSn, Option<Hash>)> {
        let ps = parent.sn();
        if !ps.is_pala() {
            return Vec::new();
        }
        let first = ps.s.saturating_sub(self.k() - 1).max(1);
        (first..=ps.s)
            .map(|s| {
                let sn = BlockSn::at(ps.epoch, s);
                (sn, self.chain.hash(sn))
            })
            .collect()
    }

    /// N-10: a block with its notarization (chain sync).
    fn insert_notarized(
        &mut self,
        block: &Arc<Block>,
        nota: Option<&Notarization>,
    ) -> Result<(), InsertError> {
        if block.height() <= self.chain.root_block().height() {
            return Ok(()); // on our finalized chain already (we listed our finalized head)
        }
        let Some(n) = nota else {
            return Err(InsertError::Invalid("synced block without notarization"));
        };
        if let Some(e) = self.chain.get(block.sn()) {
            if e.block.hash() != block.hash() {
                // The notarization is the quorum's view (TestInconsistentBlock).
                self.count("sync_replaced_block");
                self.chain.remove_subtree(block.sn());
            }
        }
        self.insert_block(block)?;
        self.add_notarization(n.clone());
        Ok(())
    }

    /// NA-1..NA-6 for a notarization whose signatures were verified.
    fn add_notarization(&mut self, n: Notarization) -> bool {
        let Some(hash) = self.chain.hash(n.sn) else {
            self.count("notarization_unknown_block");
            return false;
        };
        if hash != n.block_hash {
            self.count("notarization_hash_mismatch");
            return false;
        }
        match self.chain.attach(n.clone()) {
            Attach::Ignored => false,
            Attach::Stored => {
                self.persist(Record::Notarization(n));
                true
            }
            Attach::HeadExtended(old) => {
                self.persist(Record::Notarization(n));
                self.on_head_extended(old);
                true
            }
        }
    }

    /// FC-3 and F-B.
    fn on_head_extended(&mut self, _old: BlockSn) {
        let head = self.chain.head();
        if head.epoch == self.epoch {
            self.reset_voter_timer(); // E-2(b)
        }
        self.status_dirty = true;
        self.retry_pending = true;
        self.sync_dirty = true;
        // F-B: head (e,t) with t > K finalizes (e, t-K) and its ancestors.
        let k = if mutated!(self, FinalizeOneEarly) {
            self.k() - 1
        } else {
            self.k()
        };
        if head.s > k {
            if let Some(target) = self.chain.ancestor(head, k) {
                if target > self.chain.finalized() {
                    self.finalize(target);
                }
            }
        }
    }

    fn finalize(&mut self, target: BlockSn) {
        // Does this step finalize the stop block of the current session (C-1, C-3)?
        let stop = self.stop_block_on_path(target);
        let keep_root = match (stop, self.reconfig_root) {
            (Some(st), _) => st,
            (None, Some(r)) if target.epoch.session <= r.epoch.session => r,
            _ => target,
        };
        let done = self.chain.finalize(target, keep_root);
        let fb = self.chain.finalized_block().clone();
        self.persist(Record::Finalized {
            sn: target,
            height: fb.height(),
            hash: fb.hash(),
        });
        for (block, notarization) in done {
            self.note_committee_change(&block);
            self.out.push(Output::Finalized {
                block,
                notarization,
            });
        }
        // F-2: drop what finality made useless.
        let above = BlockSn::at(target.epoch, target.s + 1);
        while self.voted.first().is_some_and(|s| *s < above) {
            self.voted.pop_first();
        }
        drop_below(&mut self.votes, &above);
        drop_below(&mut self.unnotarized, &above);
        drop_below(&mut self.pending, &above);
        let fe = target.epoch;
        self.clocks.retain(|_, c| c.epoch > fe);
        drop_below(&mut self.vote_guard, &fe);
        // C-5 before C-3: a single step can end one reconfiguration and begin the next.
        if let Some(r) = self.reconfig_root {
            if target.epoch.session > r.epoch.session {
                // Keep the new stop block as the root if this step also reached it.
                self.end_reconfiguration(stop.unwrap_or(target));
            }
        }
        if let Some(st) = stop {
            self.begin_reconfiguration(st);
        }
    }

    /// The stop block of the current session on the path from `target` down to the
    /// finalized chain, if this finalization reaches it.
    fn stop_block_on_path(&self, target: BlockSn) -> Option<BlockSn> {
        let stop = self.cfg.stop_offset;
        if stop == 0 {
            return None;
        }
        let session = self.epoch.session;
        if self
            .reconfig_root
            .is_some_and(|r| r.epoch.session == session)
        {
            return None; // already finalized
        }
        let mut sn = target;
        loop {
            let e = self.chain.get(sn)?;
            let b = &e.block;
            if b.sn().epoch.session == session && b.header.session_offset == stop {
                return Some(sn);
            }
            if b.sn().epoch.session < session
                || b.header.session_offset < stop
                || sn == self.chain.root()
            {
                return None;
            }
            sn = b.parent_sn();
        }
    }

    /// Remembers the newest valid committee-change transaction of the session, in a
    /// block at or before the stop block (section 0.1 item 11).
    fn note_committee_change(&mut self, block: &Block) {
        let stop = self.cfg.stop_offset;
        if stop == 0
            || block.header.session_offset > stop
            || block.sn().epoch.session != self.epoch.session
        {
            return;
        }
        for tx in &block.txs {
            let Some(parsed) = pala_types::committee::parse_committee_change(tx) else {
                continue;
            };
            match parsed {
                Ok(c) if self.committee_is_valid(&c) => self.next_committee = Some(c),
                _ => self.count("committee_change_invalid"),
            }
        }
    }

    fn committee_is_valid(&self, c: &Committee) -> bool {
        !c.voters.is_empty()
            && !c.proposers.is_empty()
            && c.voters.iter().chain(&c.proposers).all(|m| {
                m.id == m.public_key.node_id()
                    && self.scheme.check_public_key(&m.public_key)
                    && self.scheme.verify_possession(
                        &m.public_key,
                        self.cfg.network_id,
                        &m.proof_of_possession,
                    )
            })
    }

    /// C-3: the stop block of session S is final.
    fn begin_reconfiguration(&mut self, stop: BlockSn) {
        let s = stop.epoch.session;
        let Some(sb) = self.chain.block(stop).cloned() else {
            return;
        };
        self.persist(Record::StopBlock {
            session: s,
            sn: stop,
            height: sb.height(),
            hash: sb.hash(),
        });
        // 1. The committee of S+1: a committee-change transaction, else the genesis
        //    schedule, else the same members.
        let mut next = self
            .next_committee
            .take()
            .or_else(|| self.schedule.get(&(s + 1)).cloned())
            .or_else(|| self.committee(s).map(|c| (*c).clone()))
            .expect("the current session has a committee");
        next.session = s + 1;
        if self.committee(s + 1).is_none_or(|c| *c != next) {
            self.committees.install(self.scheme.as_ref(), next.clone());
            self.persist(Record::Committee(next.clone()));
        }
        self.out.push(Output::CommitteeInstalled(
            self.committee(s + 1).expect("installed"),
        ));
        self.reconfig_root = Some(stop);
        self.count("reconfigurations");
        // 2-5. L := (S+1, 1) (no clock notarization), stop producing, reset the timer;
        // the readiness gate of the new primary runs in settle().
        let first = Epoch::new(s + 1, 1);
        if self.epoch < first {
            self.advance_epoch(first, None);
        }
        // C-8: blocks of S+1 that arrived too early can be verified now.
        if let Some((from, blocks)) = self.sync_buffer.take() {
            self.out.push(Output::Reverify { from, blocks });
        }
    }

    /// C-5: the new session has a final block; `new_root` is the finalized head, or the
    /// next session's stop block when the same step finalized it (T-49).
    fn end_reconfiguration(&mut self, new_root: BlockSn) {
        self.reconfig_root = None;
        let fin = self.chain.finalized();
        self.chain.reroot(new_root);
        // keep the committees of the last two sessions.
        self.committees
            .retain_from(fin.epoch.session.saturating_sub(1).max(1));
        self.out.push(Output::ReconfigurationEnded {
            session: fin.epoch.session,
        });
    }

    // ------------------------------------------------------------------ voting

    /// V-0..V-7 (and the non-voter subset V-0, V-3, V-4).
    fn on_proposal(&mut self, from: NodeId, p: Proposal) {
        let sn = p.block.sn();
        // [INFERRED, MAY] an (e,1) proposal of a later epoch of this session that embeds
        // cnota(e): take the epoch first (E-6), then continue (V-0 note).
        if sn.epoch > self.epoch && sn.s == 1 && sn.epoch.session == self.epoch.session {
            if let Some(c) = p.block.consensus.clock.clone() {
                if c.epoch == sn.epoch {
                    self.advance_epoch(c.epoch, Some(c));
                }
            }
        }
        // V-0, W-11b
        if sn.epoch != self.epoch {
            self.count("proposal_wrong_epoch");
            return;
        }
        let voter = self.is_voter(sn.epoch.session);
        // V-1
        if voter && self.has_voted(sn) {
            self.count("proposal_already_voted");
            return;
        }
        // V-3 was done by the verifier. V-4: store before voting.
        let mut inserted = self.insert_block(&p.block);
        if inserted == Err(InsertError::Conflict) && mutated!(self, IgnoreConflicts) {
            self.chain.remove_subtree(sn);
            inserted = self.insert_block(&p.block);
        }
        match inserted {
            Ok(()) => {}
            Err(InsertError::MissingParent(_)) => {
                if voter {
                    self.add_pending(from, p);
                }
                self.count("proposal_missing_parent");
                self.sync_dirty = true;
                return;
            }
            Err(e) => {
                self.count(match e {
                    InsertError::Conflict => "proposal_conflict",
                    InsertError::Invalid(_) => "proposal_invalid",
                    _ => "proposal_stale",
                });
                return;
            }
        }
        if !voter {
            return;
        }
        match self.try_vote(from, &p) {
            VoteAttempt::Voted => {}
            VoteAttempt::Wait => self.add_pending(from, p),
            VoteAttempt::Drop(reason) => self.count(reason),
        }
    }

    fn has_voted(&self, sn: BlockSn) -> bool {
        if mutated!(self, IgnoreConflicts) {
            return false;
        }
        self.voted.contains(&sn) || self.vote_guard.get(&sn.epoch).is_some_and(|&s| s >= sn.s)
    }

    fn add_pending(&mut self, from: NodeId, p: Proposal) {
        self.pending.insert(p.block.sn(), (from, p));
        // V-7: at most K, evict the smallest.
        while self.pending.len() > self.k() as usize {
            self.pending.pop_first();
        }
    }

    /// V-5 and V-6 for a stored block.
    fn try_vote(&mut self, from: NodeId, p: &Proposal) -> VoteAttempt {
        let sn = p.block.sn();
        if sn.epoch != self.epoch {
            return VoteAttempt::Drop("proposal_wrong_epoch");
        }
        if self.has_voted(sn) {
            return VoteAttempt::Drop("proposal_already_voted");
        }
        match self.chain.hash(sn) {
            Some(h) if h == p.block.hash() => {}
            Some(_) => return VoteAttempt::Drop("proposal_conflict"),
            None => return VoteAttempt::Wait,
        }
        let k = self.k();
        let head = self.chain.head();
        if head.epoch == sn.epoch {
            // V-5a
            if sn.s > head.s + k {
                return VoteAttempt::Wait;
            }
        } else if head.epoch > sn.epoch {
            return VoteAttempt::Drop("proposal_behind_head"); // V-5b: E-9 makes it impossible
        } else {
            // V-5c
            if sn.s > k {
                self.sync_dirty = true;
                return VoteAttempt::Wait;
            }
            let Some(first) = self.chain.block(BlockSn::at(sn.epoch, 1)) else {
                self.sync_dirty = true;
                return VoteAttempt::Wait;
            };
            let p1 = first.parent_sn();
            if p1 < head {
                return VoteAttempt::Drop("proposal_stale_parent");
            }
            if p1 > head {
                // [INFERRED] keep it pending instead of dropping: catch-up will make
                // P1 == head and the retry votes without the proposer resending.
                self.sync_dirty = true;
                return VoteAttempt::Wait;
            }
        }
        // V-6: record the vote (and persist the guard) before it leaves the node.
        self.voted.insert(sn);
        let g = self.vote_guard.entry(sn.epoch).or_insert(0);
        if sn.s > *g {
            *g = sn.s;
            self.persist(Record::VoteGuard {
                epoch: sn.epoch,
                s: sn.s,
            });
        }
        let hash = p.block.hash();
        let vote = Vote {
            voter: self.me,
            sn,
            block_hash: hash,
            signature: self.signer.sign(Domain::Vote, self.cfg.network_id, &hash.0),
        };
        self.count("votes_sent");
        if from == self.me {
            self.on_vote(vote);
        } else {
            self.out.push(Output::Send {
                to: from,
                msg: Message::Vote(vote),
            });
        }
        VoteAttempt::Voted
    }

    fn retry_pending_proposals(&mut self) {
        let keys: Vec<BlockSn> = self.pending.keys().copied().collect();
        for sn in keys {
            let Some((from, p)) = self.pending.get(&sn).cloned() else {
                continue;
            };
            if self.chain.get(sn).is_none() {
                match self.insert_block(&p.block) {
                    Ok(()) => {}
                    Err(InsertError::MissingParent(_)) => break,
                    Err(_) => {
                        self.pending.remove(&sn);
                        continue;
                    }
                }
            }
            match self.try_vote(from, &p) {
                VoteAttempt::Voted => {
                    self.pending.remove(&sn);
                }
                VoteAttempt::Wait => break,
                VoteAttempt::Drop(_) => {
                    self.pending.remove(&sn);
                }
            }
        }
    }

    // ------------------------------------------------------------------ notarizing

    /// PV-1..PV-5 for a verified vote.
    fn on_vote(&mut self, v: Vote) {
        // PV-1
        if v.sn.epoch != self.epoch || !self.is_primary(self.epoch) {
            self.count("vote_not_for_me");
            return;
        }
        let Some(c) = self.committee(v.sn.epoch.session) else {
            return;
        };
        let Some(idx) = self.committees.voter_index(v.sn.epoch.session, &v.voter) else {
            self.count("vote_not_a_voter");
            return;
        };
        let Some(col) = self.votes.get_mut(&v.sn) else {
            self.count("vote_unknown_block");
            return;
        };
        if col.hash != v.block_hash {
            self.count("vote_hash_mismatch");
            return;
        }
        // PV-2: recorded only now that it verified (section 0.1 item 6).
        if !col.signers.insert(idx) {
            self.count("vote_duplicate");
            return;
        }
        match self.scheme.aggregate(&[&col.aggregate, &v.signature]) {
            Some(a) => col.aggregate = a,
            None => {
                // A malformed signature cannot be part of an aggregate: undo the insert.
                let mut s = SignerBitmap::new(col.signers.len());
                for i in col.signers.iter().filter(|&i| i != idx) {
                    s.insert(i);
                }
                col.signers = s;
                return;
            }
        }
        let reached = c.is_quorum(&col.signers);
        let first = !col.broadcast;
        self.count("votes_received");
        if reached && first {
            // PV-4: first quorum -> store and broadcast; late votes are folded in lazily
            // (materialize_notarization) when the notarization is embedded (PV-5).
            let n = self.materialize_notarization(v.sn).expect("quorum reached");
            self.unnotarized.remove(&v.sn);
            self.out.push(Output::Broadcast(Message::Notarization(n)));
        }
    }

    /// Builds the notarization of `sn` from the collected votes and stores it if it has
    /// more votes than the stored one.
    fn materialize_notarization(&mut self, sn: BlockSn) -> Option<Notarization> {
        let c = self.committee(sn.epoch.session)?;
        let my_idx = c.proposer_index(&self.me)?;
        let col = self.votes.get_mut(&sn)?;
        if !c.is_quorum(&col.signers) {
            return None;
        }
        col.broadcast = true;
        let n = Notarization {
            sn,
            block_hash: col.hash,
            proposer_idx: my_idx as u16,
            signers: col.signers.clone(),
            signature: col.aggregate.clone(),
        };
        if col.materialized < n.vote_count() {
            col.materialized = n.vote_count();
            self.add_notarization(n.clone());
        }
        Some(n)
    }

    // ------------------------------------------------------------------ epochs

    fn reset_voter_timer(&mut self) {
        if self.is_voter(self.epoch.session) {
            let at = self.now + self.cfg.voter_timeout_ms;
            self.set_timer(TimerKind::Voter, at);
        }
    }

    /// E-2(c), E-3.
    fn on_voter_timeout(&mut self) {
        self.reset_voter_timer();
        let Some(c) = self.committee(self.epoch.session) else {
            return;
        };
        if !self.committees.is_voter(c.session, &self.me) {
            return;
        }
        let target = self.epoch.next();
        let msg = match &self.last_clock {
            Some(m) if m.epoch == target => m.clone(),
            _ => {
                if self.clock_guard < target {
                    self.clock_guard = target;
                    self.persist(Record::ClockGuard(target));
                }
                let m = ClockMessage {
                    voter: self.me,
                    epoch: target,
                    signature: self.signer.sign(
                        Domain::Clock,
                        self.cfg.network_id,
                        &target.signing_bytes(),
                    ),
                };
                self.last_clock = Some(m.clone());
                m
            }
        };
        self.count("clock_messages_sent");
        for p in &c.proposers {
            if p.id == self.me {
                continue;
            }
            self.out.push(Output::Send {
                to: p.id,
                msg: Message::Clock(msg.clone()),
            });
        }
        if c.is_proposer(&self.me) {
            self.on_clock(msg);
        }
    }

    /// E-4, E-5.
    fn on_clock(&mut self, m: ClockMessage) {
        if m.epoch < self.epoch || m.epoch.session != self.epoch.session {
            self.count("clock_stale");
            return;
        }
        let Some(c) = self.committee(m.epoch.session) else {
            return;
        };
        let Some(my_idx) = c.proposer_index(&self.me) else {
            self.count("clock_not_a_proposer");
            return;
        };
        let Some(vidx) = self.committees.voter_index(m.epoch.session, &m.voter) else {
            return;
        };
        if self
            .clocks
            .get(&vidx)
            .is_some_and(|old| old.epoch >= m.epoch)
        {
            return;
        }
        let target = m.epoch;
        self.clocks.insert(vidx, m);
        if target <= self.epoch {
            return;
        }
        let mut signers = SignerBitmap::new(c.voters.len());
        let mut sigs = Vec::new();
        for (i, cm) in &self.clocks {
            if cm.epoch == target {
                signers.insert(*i);
                sigs.push(cm.signature.clone());
            }
        }
        if !c.is_quorum(&signers) {
            return;
        }
        let own = self
            .signer
            .sign(Domain::Clock, self.cfg.network_id, &target.signing_bytes());
        sigs.push(own);
        let refs: Vec<_> = sigs.iter().collect();
        let Some(aggregate) = self.scheme.aggregate(&refs) else {
            return;
        };
        let cn = ClockNotarization {
            epoch: target,
            proposer_idx: my_idx as u16,
            signers,
            signature: aggregate,
        };
        // E-5: broadcast first, then process locally.
        self.out
            .push(Output::Broadcast(Message::ClockNotarization(cn.clone())));
        self.advance_epoch(target, Some(cn));
    }

    /// E-6.
    fn on_clock_notarization(&mut self, c: ClockNotarization) {
        if c.epoch <= self.epoch || c.epoch.session != self.epoch.session {
            return;
        }
        self.advance_epoch(c.epoch, Some(c));
    }

    /// E-7.
    fn advance_epoch(&mut self, x: Epoch, clock: Option<ClockNotarization>) {
        if x <= self.epoch {
            return;
        }
        self.persist(Record::Epoch {
            epoch: x,
            clock: clock.clone(),
        });
        if let Some(c) = &clock {
            self.last_clock_of_session.insert(x.session, c.clone());
        }
        self.epoch = x;
        self.epoch_proof = clock;
        self.reset_voter_timer();
        self.production = None;
        self.gate_started = None;
        // Votes, unnotarized proposals and pending proposals of older epochs can no
        // longer be used (PV-1, V-0).
        self.votes.clear();
        self.unnotarized.clear();
        self.pending.retain(|sn, _| sn.epoch >= x);
        self.clocks.retain(|_, c| c.epoch > x);
        self.out.push(Output::EpochChanged(x));
        self.status_dirty = true;
        self.sync_dirty = true;
        self.count("epoch_changes");
    }

    // ------------------------------------------------------------------ production

    /// N-1, N-2, N-3: decides whether and what to produce.
    fn drive_production(&mut self) {
        let epoch = self.epoch;
        if !self.is_primary(epoch) {
            self.production = None;
            self.gate_started = None;
            return;
        }
        if self.production.as_ref().is_some_and(|p| p.epoch != epoch) {
            self.production = None;
        }
        if self.production.is_none() {
            // N-1(b)
            if self.chain.head().epoch >= epoch {
                return;
            }
            // A timeout block of epoch E > 1 must carry cnota(E) (I-1).
            if epoch.e > 1 && self.epoch_proof.as_ref().is_none_or(|c| c.epoch != epoch) {
                return;
            }
            if !self.readiness_gate() {
                return;
            }
            let next_s = self.resume_own_blocks(epoch);
            self.production = Some(Production {
                epoch,
                next_s,
                awaiting_payload: false,
            });
            self.count("production_started");
        }
        let k = self.k();
        let prod = self.production.as_ref().expect("set above");
        if prod.awaiting_payload {
            return;
        }
        let s = prod.next_s;
        if s > k {
            let needed = BlockSn::at(epoch, s - k);
            let have = self.chain.get(needed).is_some_and(|e| e.nota.is_some())
                || needed <= self.chain.finalized();
            if !have {
                return; // NA-6 wakes us when it arrives
            }
        }
        let sn = BlockSn::at(epoch, s);
        if self.after_stop_block(sn) {
            // C-2: no user transactions after the stop block: seal right away.
            if !self.seal(sn, Vec::new(), self.wall_clock_ms) {
                self.production = None;
            }
            self.retry_pending = true;
            return;
        }
        self.production.as_mut().expect("set").awaiting_payload = true;
        self.out.push(Output::RequestPayload { sn });
    }

    /// N-4: signs `block`, starts collecting its votes (with this proposer's own share
    /// of the notarization, D-12), remembers it as unnotarized and broadcasts it.
    fn propose(&mut self, c: &Committee, block: Arc<Block>) -> Proposal {
        let (sn, hash) = (block.sn(), block.hash());
        let nid = self.cfg.network_id;
        self.votes.insert(
            sn,
            VoteCollector {
                hash,
                signers: SignerBitmap::new(c.voters.len()),
                aggregate: self.signer.sign(Domain::Vote, nid, &hash.0),
                broadcast: false,
                materialized: 0,
            },
        );
        let proposal = Proposal {
            proposer: self.me,
            signature: self.signer.sign(Domain::Proposal, nid, &hash.0),
            block,
        };
        self.unnotarized.insert(sn, proposal.clone());
        self.out
            .push(Output::Broadcast(Message::Proposal(proposal.clone())));
        proposal
    }

    /// Whether the block this proposer would make at `sn` lies after its session's
    /// stop block.
    fn after_stop_block(&self, sn: BlockSn) -> bool {
        let stop = self.cfg.stop_offset;
        if stop == 0 {
            return false;
        }
        let parent = if sn.s == 1 {
            Some(self.chain.head_block())
        } else {
            self.chain.block(BlockSn::at(sn.epoch, sn.s - 1))
        };
        parent.is_some_and(|p| {
            p.sn().epoch.session == sn.epoch.session && p.header.session_offset >= stop
        })
    }

    /// A proposer that restarts inside an epoch it already produced in must not make a
    /// second, different block at an sn it proposed before (that would be equivocation):
    /// it re-proposes the blocks of `epoch` it stored and continues after them.
    fn resume_own_blocks(&mut self, epoch: Epoch) -> u32 {
        let Some(c) = self.committee(epoch.session) else {
            return 1;
        };
        let mut s = 1;
        while let Some(b) = self.chain.block(BlockSn::at(epoch, s)).cloned() {
            let sn = b.sn();
            if self.chain.get(sn).is_none_or(|e| e.nota.is_none()) {
                self.propose(&c, b);
                self.count("blocks_reproposed");
            }
            s += 1;
        }
        s
    }

    /// N-2. Returns true when production may start now.
    fn readiness_gate(&mut self) -> bool {
        let t0 = *self.gate_started.get_or_insert_with(|| {
            self.unnotarized.clear();
            self.now
        });
        let Some(c) = self.committee(self.epoch.session) else {
            return false;
        };
        let head = self.chain.head();
        let mut ids: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && p.status.as_ref().is_some_and(|s| s.head <= head))
            .map(|(id, _)| *id)
            .collect();
        ids.push(self.me);
        let ready = c.weight_of_ids(ids.iter()) >= c.quorum();
        let delay = self.cfg.first_proposal_delay_ms;
        if head.epoch.session < self.epoch.session && ready {
            return true;
        }
        if self.now < t0 + delay {
            self.set_timer(TimerKind::ProposerGate, t0 + delay);
            return false;
        }
        if ready {
            return true;
        }
        let hard = t0 + 2 * self.cfg.voter_timeout_ms;
        if self.now < hard {
            if self.timers.get(&TimerKind::ProposerGate) != Some(&hard) {
                self.set_timer(TimerKind::ProposerGate, hard);
            }
            return false;
        }
        true
    }

    fn on_payload(&mut self, sn: BlockSn, txs: Vec<Vec<u8>>, timestamp_ms: u64) {
        self.wall_clock_ms = self.wall_clock_ms.max(timestamp_ms);
        let Some(prod) = &self.production else { return };
        if !prod.awaiting_payload
            || BlockSn::at(prod.epoch, prod.next_s) != sn
            || sn.epoch != self.epoch
        {
            return;
        }
        self.production.as_mut().expect("checked").awaiting_payload = false;
        if !self.seal(sn, txs, timestamp_ms) {
            self.production = None;
        }
    }

    /// N-3, N-4: builds, stores, signs and broadcasts block `sn`, stamped with the
    /// driver's wall-clock `timestamp_ms`, but never earlier than its parent, so that
    /// timestamps along a chain never decrease even when a proposer's clock is behind.
    fn seal(&mut self, sn: BlockSn, txs: Vec<Vec<u8>>, timestamp_ms: u64) -> bool {
        if self.chain.get(sn).is_some() {
            return false; // never a second block at one sn
        }
        let k = self.k();
        let parent = if sn.s == 1 {
            self.chain.head_block().clone()
        } else {
            match self.chain.block(BlockSn::at(sn.epoch, sn.s - 1)) {
                Some(b) => b.clone(),
                None => return false,
            }
        };
        let mut info = ConsensusInfo::default();
        if sn.s == 1 {
            for (nsn, _) in self.expected_timeout_block_notas(&parent) {
                match self.chain.get(nsn).and_then(|e| e.nota.clone()) {
                    Some(n) => info.notarizations.push(n),
                    None => return false,
                }
            }
            if sn.epoch.e > 1 {
                info.clock = self.epoch_proof.clone();
            }
        } else if sn.s > k {
            let target = BlockSn::at(sn.epoch, sn.s - k);
            // PV-5: fold late votes in before embedding.
            self.materialize_notarization(target);
            match self.chain.get(target).and_then(|e| e.nota.clone()) {
                Some(n) => info.notarizations.push(n),
                None => return false,
            }
        }
        let session_offset = if parent.sn().epoch.session == sn.epoch.session {
            parent.header.session_offset + 1
        } else {
            1
        };
        let block = Arc::new(Block::new(
            BlockHeader {
                sn,
                parent_sn: parent.sn(),
                parent_hash: parent.hash(),
                height: parent.height() + 1,
                session_offset,
                timestamp_ms: timestamp_ms.max(parent.header.timestamp_ms),
            },
            txs,
            info,
        ));
        self.chain.insert(block.clone());
        self.persist(Record::Block(block.clone()));
        let Some(c) = self.committee(sn.epoch.session) else {
            return false;
        };
        let proposal = self.propose(&c, block);
        self.count("blocks_proposed");
        if let Some(p) = self.production.as_mut() {
            p.next_s = sn.s + 1;
        }
        if self.committees.is_voter(c.session, &self.me) {
            match self.try_vote(self.me, &proposal) {
                VoteAttempt::Wait => self.add_pending(self.me, proposal),
                VoteAttempt::Voted | VoteAttempt::Drop(_) => {}
            }
        }
        true
    }

    // ------------------------------------------------------------------ status & sync

    /// W-6, W-7.4.
    fn on_status(&mut self, from: NodeId, s: Status) {
        let info = self.peers.entry(from).or_default();
        info.connected = true;
        let first = !info.greeted;
        info.greeted = true;
        if s.epoch > self.epoch || s.head > self.chain.head() {
            self.sync_dirty = true;
        }
        info.status = Some(s);
        // W-7.4: a newly seen voter gets our unnotarized proposals (once per cool-down).
        if first
            && self.is_primary(self.epoch)
            && self.is_voter_of(from, self.epoch.session)
            && !self.unnotarized.is_empty()
        {
            let now = self.now;
            let cool = self.cfg.unnotarized_resend_ms;
            let info = self.peers.get_mut(&from).expect("inserted above");
            if info.unnotarized_sent_at.is_none_or(|t| now >= t + cool) {
                info.unnotarized_sent_at = Some(now);
                let ps: Vec<Proposal> = self.unnotarized.values().cloned().collect();
                self.out.push(Output::Send {
                    to: from,
                    msg: Message::UnnotarizedProposals(ps),
                });
            }
        }
    }

    fn is_voter_of(&self, id: NodeId, session: u32) -> bool {
        self.committees.is_voter(session, &id)
    }

    /// W-7.2 (serving).
    fn on_get_epoch(&mut self, from: NodeId, e: Epoch) {
        let resp = if e.session == self.epoch.session {
            EpochResponse {
                session: e.session,
                clock: self.epoch_proof.clone(),
                is_last: false,
            }
        } else if e.session < self.epoch.session {
            EpochResponse {
                session: e.session,
                clock: self.last_clock_of_session.get(&e.session).cloned(),
                is_last: true,
            }
        } else {
            EpochResponse {
                session: e.session,
                clock: None,
                is_last: false,
            }
        };
        self.out.push(Output::Send {
            to: from,
            msg: Message::Epoch(resp),
        });
    }

    fn on_epoch_response(&mut self, from: NodeId, r: EpochResponse) {
        if self.epoch_slot.is_some_and(|s| s.peer == from) {
            self.epoch_slot = None;
        }
        if let Some(c) = r.clock {
            if c.epoch > self.epoch && c.epoch.session == self.epoch.session {
                self.advance_epoch(c.epoch, Some(c));
            }
        }
        self.sync_dirty = true;
    }

    /// W-7.3 (serving).
    fn on_get_fresher_head(&mut self, from: NodeId, req: FresherHeadRequest) {
        let resp = serve_fresher_head(
            &self.chain,
            self.archive.as_ref(),
            &req,
            self.cfg.sync_blocks_per_response,
        );
        self.out.push(Output::Send {
            to: from,
            msg: Message::FresherHead(resp),
        });
    }

    fn on_fresher_head(&mut self, from: NodeId, r: FresherHeadResponse) {
        if self.blocks_slot.is_some_and(|s| s.peer == from) {
            self.blocks_slot = None;
        }
        if r.blocks.is_empty() {
            if let Some((h, hash, _)) = r.finalized {
                let fin = self.chain.finalized_block();
                let consistent = if h == fin.height() {
                    hash == fin.hash()
                } else if h < fin.height() {
                    self.archive
                        .finalized_at(h)
                        .is_none_or(|b| b.block.hash() == hash)
                } else {
                    true
                };
                if !consistent {
                    self.count("sync_peer_inconsistent");
                    self.inconsistent.insert(from);
                }
            }
            self.count("sync_empty_response");
            self.hold_off_sync_peer(from);
            return;
        }
        let before = self.chain.head();
        for nb in &r.blocks {
            if let Err(e) = self.insert_notarized(&nb.block, nb.notarization.as_ref()) {
                self.count(match e {
                    InsertError::MissingParent(_) => "sync_missing_parent",
                    _ => "sync_block_rejected",
                });
                break;
            }
        }
        if self.chain.head() > before {
            self.count("sync_progress");
        } else {
            self.hold_off_sync_peer(from);
        }
        self.sync_dirty = true;
    }

    /// [INFERRED] W-7 penalizes only a silent peer; a peer that answers without moving
    /// our head would get the same request again at once, hundreds of times a second
    /// (seen with a server that could not find the requester's genesis). Such a peer
    /// waits out `MAX_REQUEST_WAIT`, as long as a request may take anyway, while other
    /// peers can still be asked.
    fn hold_off_sync_peer(&mut self, peer: NodeId) {
        let until = self.now + self.cfg.sync_request_timeout_ms();
        let p = self.penalties.entry(peer).or_insert(until);
        *p = (*p).max(until);
    }

    /// W-7.1..W-7.3 (requesting): at most one outstanding request per slot.
    fn drive_sync(&mut self) {
        let now = self.now;
        for slot in [&mut self.epoch_slot, &mut self.blocks_slot] {
            if let Some(s) = *slot {
                if s.deadline <= now {
                    self.penalties
                        .insert(s.peer, now + self.cfg.sync_penalty_ms());
                    *slot = None;
                    *self.counters.entry("sync_timeouts").or_insert(0) += 1;
                }
            }
        }
        self.penalties.retain(|_, until| *until > now);
        let deadline = now + self.cfg.sync_request_timeout_ms();
        if self.epoch_slot.is_none() {
            let best = self
                .peers
                .iter()
                .filter(|(id, p)| p.connected && !self.penalties.contains_key(*id))
                .filter_map(|(id, p)| p.status.as_ref().map(|s| (s.epoch, *id)))
                .filter(|(e, _)| *e > self.epoch)
                .max_by_key(|(e, id)| (*e, std::cmp::Reverse(*id)));
            if let Some((_, peer)) = best {
                self.epoch_slot = Some(SyncSlot { peer, deadline });
                self.out.push(Output::Send {
                    to: peer,
                    msg: Message::GetEpoch(self.epoch),
                });
            }
        }
        if self.blocks_slot.is_none() {
            let head = self.chain.head();
            let best = self
                .peers
                .iter()
                .filter(|(id, p)| {
                    p.connected
                        && !self.penalties.contains_key(*id)
                        && !self.inconsistent.contains(*id)
                })
                .filter_map(|(id, p)| p.status.as_ref().map(|s| (s.head, *id)))
                .filter(|(h, _)| *h > head)
                .max_by_key(|(h, id)| (*h, std::cmp::Reverse(*id)));
            if let Some((_, peer)) = best {
                self.blocks_slot = Some(SyncSlot { peer, deadline });
                let req = self.fresher_head_request();
                self.out.push(Output::Send {
                    to: peer,
                    msg: Message::GetFresherHead(req),
                });
            }
        }
    }

    fn fresher_head_request(&self) -> FresherHeadRequest {
        let path = self.chain.head_path();
        let limit = self.cfg.sync_known_limit.max(2);
        let mut known: Vec<(u64, Hash)> = path
            .iter()
            .take(limit - 1)
            .map(|e| (e.block.height(), e.block.hash()))
            .collect();
        // The root is the finalized block, or the stop block during a reconfiguration
        // window, so a peer on the new session's branch finds it (C-7b).
        let root = self.chain.root_block();
        if known.last().map(|k| k.0) != Some(root.height()) {
            known.push((root.height(), root.hash()));
        }
        FresherHeadRequest {
            head: self.chain.head(),
            known,
        }
    }
}

/// Removes the keys below `bound`, keeping the rest: what `split_off(bound)` keeps, but
/// in place. Finalization does this on every block for several maps, and `split_off`
/// builds a new tree each time.
fn drop_below<K: Ord, V>(m: &mut BTreeMap<K, V>, bound: &K) {
    while m.first_key_value().is_some_and(|(k, _)| k < bound) {
        m.pop_first();
    }
}

/// W-7.3: answers a fresher-head request from the freshest notarized chain (`chain` for
/// the part above the finalized head, `archive` below it). Pure, so the node can also
/// run it off the consensus executor.
pub fn serve_fresher_head(
    chain: &Chain,
    archive: &dyn BlockArchive,
    req: &FresherHeadRequest,
    max_blocks: usize,
) -> FresherHeadResponse {
    let path = chain.head_path(); // newest first, down to the root
    let fin = chain.root_block();
    let fin_h = fin.height();
    let on_my_chain = |h: u64, hash: Hash| -> bool {
        if h >= fin_h {
            path.iter()
                .any(|e| e.block.height() == h && e.block.hash() == hash)
        } else {
            archive
                .finalized_at(h)
                .is_some_and(|b| b.block.hash() == hash)
        }
    };
    let Some(&(common_h, _)) = req.known.iter().find(|(h, hash)| on_my_chain(*h, *hash)) else {
        let f = chain.finalized_block();
        return FresherHeadResponse {
            blocks: Vec::new(),
            finalized: Some((f.height(), f.hash(), f.sn())),
        };
    };
    let mut blocks = Vec::new();
    let head_h = chain.head_block().height();
    let mut h = common_h + 1;
    while h <= head_h && blocks.len() < max_blocks.max(1) {
        let nb = if h > fin_h {
            path.iter()
                .find(|e| e.block.height() == h)
                .map(|e| NotarizedBlock {
                    block: e.block.clone(),
                    notarization: e.nota.clone(),
                })
        } else if h == fin_h {
            let e = &path[path.len() - 1];
            Some(NotarizedBlock {
                block: e.block.clone(),
                notarization: e.nota.clone(),
            })
        } else {
            archive.finalized_at(h)
        };
        match nb {
            Some(nb) if nb.notarization.is_some() || !nb.block.sn().is_pala() => blocks.push(nb),
            _ => break,
        }
        h += 1;
    }
    FresherHeadResponse {
        blocks,
        finalized: None,
    }
}
