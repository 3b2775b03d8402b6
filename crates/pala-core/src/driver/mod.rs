//! The driver kit: what every host of [`Node::handle`] needs, so a host only supplies
//! its IO (network, disk, mempool, verifier) and its clock.
//!
//! A [`Driver`] routes the core's outputs:
//! - [`Output::Persist`] gets a persist number and goes to [`Host::persist`]; the host
//!   reports durability with [`Driver::durable`] (or at once, [`Durability::Durable`]);
//! - [`Output::Send`], [`Output::Broadcast`] and [`Output::Finalized`] pass the
//!   [`DurabilityGate`]: they reach [`Host::release`] in core order, each only once every
//!   persist before it is durable (persist-before-send, section 0.1 items 7 and 8: blocks
//!   before votes V-4, the vote guard before the vote, the epoch before the status
//!   announcing it; a finalized block reaches the application only once its record
//!   survives a crash). Host effects that must not overtake them (a dial after a
//!   committee change, C-3) take the same path with [`Driver::after_persists`];
//! - [`Output::SetTimer`] arms the [`TimerTable`]; the host sleeps until
//!   [`Driver::next_deadline`] and calls [`Driver::fire_due`];
//! - [`Output::RequestPayload`] asks [`Host::payload`]: a host that has transactions at
//!   once returns them and the block is built within the same call, as the next input
//!   once the batch that asked for it is routed (so nothing of that batch, such as its
//!   status broadcast, goes out after the fresher proposal); a host that
//!   fills blocks over time (the node's mempool, N-3) returns `None` and answers later
//!   with [`Driver::payload`]. One block per call is built in place: a node that forms a
//!   quorum alone would otherwise extend its chain forever within one call; a further
//!   request is due at once ([`Driver::next_deadline`]) and served by the next
//!   [`Driver::fire_due`];
//! - [`Output::Reverify`] (C-8) hands the deferred blocks, as the fresher-head response
//!   they came in, to [`Host::reverify`]; verified, they are fed back within the same
//!   call, after the batch;
//! - the remaining outputs are [`Event`]s for [`Host::event`], which run at once (they
//!   change what the host accepts, not what others see).
//!
//! The kit holds no node: the host keeps its [`Node`] (a crashed node in the simulator
//! is one that is gone) and passes it in. It reads no clock: `now` is the host's
//! monotonic [`Tick`], and block timestamps come from the host with each [`Payload`].

#[cfg(feature = "mutations")]
mod broken_gate;
mod gate;
mod timers;

pub use gate::{DurabilityGate, PersistSeq};
pub use timers::{DueTimers, TimerTable};

use crate::config::Tick;
use crate::io::{Input, Output, StateChange};
use crate::node::Node;
use crate::verify::Verified;
use pala_types::{
    Block, BlockSn, Committee, Epoch, FresherHeadResponse, Message, NodeId, Notarization, Session,
    StateCommitment,
};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

/// Whether a record handed to [`Host::persist`] is durable on return.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Durability {
    /// This record and every earlier one survive a crash (synchronous storage, or a
    /// host without storage whose durability is not part of what it measures).
    Durable,
    /// Storage will report it with [`Driver::durable`].
    Pending,
}

/// An effect the gate let through, in core order.
#[derive(Clone, Debug)]
pub enum Released<E> {
    /// [`Output::Send`].
    Send {
        /// Destination.
        to: NodeId,
        /// Message.
        msg: Message,
    },
    /// [`Output::Broadcast`].
    Broadcast(Message),
    /// [`Output::Finalized`]: hand the block to the application.
    Finalized {
        /// The block.
        block: Arc<Block>,
        /// Its notarization.
        notarization: Option<Notarization>,
    },
    /// An effect of the host's own, submitted with [`Driver::after_persists`].
    Host(E),
}

/// Outputs that change the host's own state and need no durability first.
#[derive(Clone, Debug)]
pub enum Event {
    /// [`Output::EpochChanged`].
    EpochChanged(Epoch),
    /// [`Output::CommitteeInstalled`] (C-3): install it in the verifier and the network.
    CommitteeInstalled(Arc<Committee>),
    /// [`Output::ReconfigurationEnded`] (C-5).
    ReconfigurationEnded {
        /// The session now in force.
        session: Session,
    },
}

/// The contents of a block the core asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// Opaque transactions.
    pub txs: Vec<Vec<u8>>,
    /// The host's wall-clock time in ms since the Unix epoch: the block's timestamp
    /// (the core keeps timestamps non-decreasing along the chain). Never a [`Tick`].
    pub timestamp_ms: u64,
    /// The newest finalized height the host's application has applied and its state
    /// digest, for the block's header ([`StateCommitment::NONE`] without an application).
    pub state: StateCommitment,
}

/// What a host provides to a [`Driver`].
pub trait Host {
    /// The host's own effects ordered behind persists ([`Driver::after_persists`]);
    /// [`Infallible`] for a host that has none.
    type Effect;

    /// Make `record` durable. Records come numbered 1, 2, ... in order; a host that
    /// groups them reports the highest number of a durable group to
    /// [`Driver::durable`]. The records of one driver call are one atomic group: after a
    /// crash all of them or none may be found (the core's recovery relies on it at a
    /// stop block, docs/protocol.md section 13, P-3).
    fn persist(&mut self, seq: PersistSeq, record: StateChange) -> Durability;

    /// Execute an effect whose persists are durable.
    fn release(&mut self, effect: Released<Self::Effect>);

    /// React to a change of epoch or committee.
    fn event(&mut self, event: Event);

    /// Transactions for block `sn`, requested at `now`: `Some` to build it at once,
    /// `None` to answer later with [`Driver::payload`] (or never, when the host stops
    /// proposing).
    fn payload(&mut self, now: Tick, sn: BlockSn) -> Option<Payload>;

    /// Verify again blocks from `from` that arrived before their session's committee was
    /// installed (C-8). `sync` is the fresher-head response carrying them. `None` when
    /// they still do not verify: they are dropped, and chain sync fetches them again.
    fn reverify(&mut self, from: NodeId, sync: Message) -> Option<Verified<Message>>;
}

/// The timer table, the durability gate and the payload and re-verification plumbing of
/// one node. `E` is the host's own gated effect ([`Host::Effect`]).
#[derive(Debug)]
pub struct Driver<E = Infallible> {
    timers: TimerTable,
    gate: DurabilityGate<Released<E>>,
    /// Outputs of the current input still to route, reused across calls.
    work: VecDeque<Output>,
    /// Inputs the kit derived (a payload, re-verified blocks), fed after the batch.
    derived: VecDeque<Input>,
    /// A block was built in place during the current call.
    built_in_place: bool,
    /// A payload request left for the next [`Driver::fire_due`], and when it was made.
    payload_wanted: Option<(BlockSn, Tick)>,
    /// [`Mutation::SendBeforePersist`](crate::Mutation::SendBeforePersist) has fired.
    #[cfg(feature = "mutations")]
    broke_gate: bool,
}

impl<E> Default for Driver<E> {
    fn default() -> Self {
        Driver {
            timers: TimerTable::new(),
            gate: DurabilityGate::new(),
            work: VecDeque::new(),
            derived: VecDeque::new(),
            built_in_place: false,
            payload_wanted: None,
            #[cfg(feature = "mutations")]
            broke_gate: false,
        }
    }
}

impl<E> Driver<E> {
    /// A kit for a node that starts (or restarts) now: no timers, nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `input` to `node` at `now` and routes every output, then does the same for
    /// the inputs the kit derived from them (an immediate payload, re-verified blocks).
    pub fn handle<H: Host<Effect = E>>(
        &mut self,
        node: &mut Node,
        now: Tick,
        input: Input,
        host: &mut H,
    ) {
        debug_assert!(self.work.is_empty());
        self.built_in_place = false;
        self.work.extend(node.handle(now, input));
        loop {
            while let Some(out) = self.work.pop_front() {
                self.route(node, now, out, host);
            }
            match self.derived.pop_front() {
                Some(input) => self.work.extend(node.handle(now, input)),
                None => break,
            }
        }
    }

    /// Serves a payload request left from an earlier call, then fires every timer due
    /// at `now`.
    pub fn fire_due<H: Host<Effect = E>>(&mut self, node: &mut Node, now: Tick, host: &mut H) {
        if let Some((sn, _)) = self.payload_wanted.take() {
            if let Some(p) = host.payload(now, sn) {
                self.payload(node, now, sn, p, host);
            }
        }
        for kind in self.timers.take_due(now) {
            self.handle(node, now, Input::Timer(kind), host);
        }
    }

    /// When the host must call [`Driver::fire_due`] next: the earliest timer deadline,
    /// or at once for a payload request left from an earlier call.
    pub fn next_deadline(&self) -> Option<Tick> {
        let wanted = self.payload_wanted.map(|(_, at)| at);
        match (self.timers.next_deadline(), wanted) {
            (Some(t), Some(w)) => Some(t.min(w)),
            (t, w) => t.or(w),
        }
    }

    /// Answers a payload request the host deferred ([`Host::payload`] returned `None`).
    pub fn payload<H: Host<Effect = E>>(
        &mut self,
        node: &mut Node,
        now: Tick,
        sn: BlockSn,
        payload: Payload,
        host: &mut H,
    ) {
        let input = Input::Payload {
            sn,
            txs: payload.txs,
            timestamp_ms: payload.timestamp_ms,
            state: payload.state,
        };
        self.handle(node, now, input, host);
    }

    /// Storage reports every persist numbered `<= upto` durable; releases what waited
    /// for it. Late, repeated and out-of-order reports are harmless.
    pub fn durable<H: Host<Effect = E>>(&mut self, upto: PersistSeq, host: &mut H) {
        self.gate.durable(upto);
        self.release_ready(host);
    }

    /// Runs a host effect once every persist issued so far is durable, after every
    /// effect already waiting.
    pub fn after_persists<H: Host<Effect = E>>(&mut self, effect: E, host: &mut H) {
        if let Some(e) = self.gate.submit(Released::Host(effect)) {
            host.release(e);
        }
    }

    /// The timers armed.
    pub fn timers(&self) -> &TimerTable {
        &self.timers
    }

    /// The gate (persists issued and durable, effects held), for metrics and shutdown.
    pub fn gate(&self) -> &DurabilityGate<Released<E>> {
        &self.gate
    }

    fn route<H: Host<Effect = E>>(&mut self, node: &Node, now: Tick, out: Output, host: &mut H) {
        match out {
            Output::Persist(record) => {
                let seq = self.gate.persist();
                if host.persist(seq, record) == Durability::Durable {
                    self.durable(seq, host);
                }
            }
            Output::Send { to, msg } => self.submit(node, Released::Send { to, msg }, host),
            Output::Broadcast(msg) => self.submit(node, Released::Broadcast(msg), host),
            Output::Finalized {
                block,
                notarization,
            } => self.submit(
                node,
                Released::Finalized {
                    block,
                    notarization,
                },
                host,
            ),
            Output::SetTimer { kind, at } => self.timers.set(kind, at),
            Output::RequestPayload { sn } => {
                // The core asks for one block at a time; a newer request replaces one
                // left for later.
                self.payload_wanted = None;
                if self.built_in_place {
                    self.payload_wanted = Some((sn, now));
                } else if let Some(p) = host.payload(now, sn) {
                    self.built_in_place = true;
                    let input = Input::Payload {
                        sn,
                        txs: p.txs,
                        timestamp_ms: p.timestamp_ms,
                        state: p.state,
                    };
                    self.derived.push_back(input);
                }
            }
            Output::Reverify { from, blocks } => {
                let sync = Message::FresherHead(FresherHeadResponse {
                    blocks,
                    finalized: None,
                });
                if let Some(msg) = host.reverify(from, sync) {
                    self.derived.push_back(Input::Message { from, msg });
                }
            }
            Output::EpochChanged(e) => host.event(Event::EpochChanged(e)),
            Output::CommitteeInstalled(c) => host.event(Event::CommitteeInstalled(c)),
            Output::ReconfigurationEnded { session } => {
                host.event(Event::ReconfigurationEnded { session })
            }
        }
    }

    fn submit<H: Host<Effect = E>>(&mut self, node: &Node, effect: Released<E>, host: &mut H) {
        if self.breaks_gate(node, &effect) {
            host.release(effect);
            return;
        }
        if let Some(e) = self.gate.submit(effect) {
            host.release(e);
        }
    }

    fn release_ready<H: Host<Effect = E>>(&mut self, host: &mut H) {
        while let Some(e) = self.gate.pop_released() {
            host.release(e);
        }
    }

    #[cfg(not(feature = "mutations"))]
    #[inline(always)]
    fn breaks_gate(&mut self, _: &Node, _: &Released<E>) -> bool {
        false
    }
}

#[cfg(test)]
mod tests;
