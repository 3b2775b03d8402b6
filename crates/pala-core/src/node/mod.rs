//! The PaLa state machine: `Node::handle(now, input) -> outputs`.
//!
//! One `Node` plays every role: it asks per event whether it is a voter, a
//! proposer or the primary proposer of the relevant session or epoch. This file holds the
//! node's state (docs/protocol.md section 3.1), its recovery (P-3) and the dispatch of inputs;
//! each rule group lives in its own file (the table is in the crate docs):
//!
//! | state (section 3.1) | persisted | owner |
//! |---|---|---|
//! | block tree, notarizations, `head`, `final` | yes | [`Chain`] |
//! | `L` and the clock notarization proving it, per session | yes | `Node` (`epochs`) |
//! | `voted`, vote guard, `pending`, clock guard | guards only | `Voter` (`voting`) |
//! | `votes`, `unnotarized_proposals`, `clocks`, production | no | `Proposer` (`production`) |
//! | peer statuses, sync slots and penalties | no | `Syncer` (`sync`) |
//! | schedule, stop-block root, next committee, deferred blocks, stop block proofs | committees only; the open window's proof is rebuilt from the store (C-9d) | `Reconfiguration` |
//!
//! After every input, `settle` runs the follow-up work that many rules trigger, in one
//! place: retrying pending proposals (V-7), production (N-1), the chain syncer (W-7) and
//! the status broadcast (W-6).

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

mod epochs;
mod finality;
mod insertion;
mod notarization;
mod production;
mod reconfiguration;
mod sync;
mod voting;

pub use insertion::InsertError;
pub use sync::serve_fresher_head;

use crate::chain::Chain;
use crate::config::{CoreConfig, Tick};
use crate::counters::{CoreEvent, Counters};
use crate::io::{BlockArchive, Input, Output, RecoveredState, StateChange, TimerKind};
use crate::role::Role;
use crate::verify::Committees;
use pala_types::{
    Block, BlockSn, ClockNotarization, Committee, Epoch, Message, NodeId, NotarizedBlock, Session,
    SignatureScheme, Signer, Status,
};
use production::Proposer;
use reconfiguration::Reconfiguration;
use std::collections::BTreeMap;
use std::sync::Arc;
use sync::Syncer;
use voting::Voter;

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
    /// The committees of the recent sessions; only reconfiguration changes them.
    committees: Committees,
    archive: Arc<dyn BlockArchive>,
    chain: Chain,
    /// The newest [`Tick`] seen; only timers are measured with it.
    now: Tick,

    /// The local epoch `L` (E-1).
    epoch: Epoch,
    /// The clock notarization proving `L`; `None` for the first epoch of a session (E-11).
    epoch_proof: Option<ClockNotarization>,
    /// The last clock notarization of each session, served to peers (W-7.2).
    last_clock_of_session: BTreeMap<Session, ClockNotarization>,

    voter: Voter,
    proposer: Proposer,
    sync: Syncer,
    reconfig: Reconfiguration,

    /// The deadline of each timer asked for; a firing without one is stale.
    timers: BTreeMap<TimerKind, Tick>,
    /// Outputs of the input being handled, in order.
    out: Vec<Output>,
    /// Follow-up work for `settle`.
    status_dirty: bool,
    retry_pending: bool,
    sync_dirty: bool,
    counters: Counters,
}

impl Node {
    /// A fresh node at genesis.
    pub fn new(params: NodeParams) -> Node {
        Self::recover(params, RecoveredState::default())
    }

    /// A node restarted from its persisted records (P-3).
    pub fn recover(params: NodeParams, rec: RecoveredState) -> Node {
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
        let mut node = Node {
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
            voter: Voter {
                vote_guard: rec
                    .vote_guards
                    .into_iter()
                    .fold(BTreeMap::new(), |mut m, (e, s)| {
                        let v = m.entry(e).or_insert(0);
                        *v = (*v).max(s);
                        m
                    }),
                clock_guard: rec.clock_guard.unwrap_or_default(),
                ..Voter::default()
            },
            proposer: Proposer::default(),
            sync: Syncer::default(),
            reconfig: Reconfiguration {
                schedule,
                root: reconfig_root,
                next_committee: None,
                deferred_blocks: None,
                stop_proofs: BTreeMap::new(),
            },
            timers: BTreeMap::new(),
            out: Vec::new(),
            status_dirty: false,
            retry_pending: false,
            sync_dirty: false,
            counters: Counters::default(),
        };
        node.rescan_committee_changes(); // C-1 across a restart
        node.rebuild_stop_proof(); // C-9d
        node
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }
    /// Local epoch `L`.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
    /// The clock notarization proving `L` (E-11): `None` for the first epoch of a session
    /// (C-3 sets it without one) and after a restart that found no proof.
    pub fn epoch_proof(&self) -> Option<&ClockNotarization> {
        self.epoch_proof.as_ref()
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
        self.proposer.production.is_some()
    }
    /// Sizes of the internal buffers (for memory checks and metrics).
    pub fn buffer_sizes(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("blocks", self.chain.block_count()),
            ("voted", self.voter.voted.len()),
            ("pending", self.voter.pending.len()),
            ("vote_sets", self.proposer.votes.len()),
            ("unnotarized", self.proposer.unnotarized.len()),
            ("clocks", self.proposer.clocks.len()),
            ("peers", self.sync.peers.len()),
        ])
    }

    fn count(&mut self, event: CoreEvent) {
        self.counters.bump(event);
    }

    fn committee(&self, session: u32) -> Option<Arc<Committee>> {
        self.committees.get(session).cloned()
    }

    fn is_voter(&self, session: u32) -> bool {
        self.committees.is_voter(session, &self.me)
    }

    /// The committee of `L`'s session, if this node is `primary(L)`.
    fn primary_committee(&self) -> Option<Arc<Committee>> {
        self.committee(self.epoch.session)
            .filter(|c| !c.proposers.is_empty() && c.primary(self.epoch).id == self.me)
    }

    fn is_primary(&self) -> bool {
        self.primary_committee().is_some()
    }

    fn k(&self) -> u32 {
        self.cfg.k.max(1)
    }

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
                    self.reconfig.deferred_blocks = Some((from, deferred));
                }
                self.on_message(from, msg)
            }
            Input::Timer(kind) => self.on_timer(kind),
            Input::Payload {
                sn,
                txs,
                timestamp_ms,
                state,
            } => self.on_payload(sn, txs, timestamp_ms, state),
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

    fn persist(&mut self, r: StateChange) {
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
}
