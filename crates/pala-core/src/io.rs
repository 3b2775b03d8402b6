//! Inputs, outputs and persisted records of the state machine.

use crate::config::Tick;
use crate::verify::Verified;
use pala_types::{
    Block, BlockSn, ClockNotarization, Committee, Epoch, Hash, Message, NodeId, Notarization,
    NotarizedBlock, Session, StateCommitment,
};
use std::sync::Arc;

/// The timers the core asks its driver to run. Each kind has at most one deadline; a
/// new [`Output::SetTimer`] replaces the previous one of the same kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// The voter timer `T_VOTER` (E-2).
    Voter,
    /// Re-evaluation of the proposer readiness gate (N-2).
    ProposerGate,
    /// Chain syncer poll (W-7).
    Sync,
    /// Status heartbeat (W-6).
    Heartbeat,
}

/// Something that happened to the node.
#[derive(Clone, Debug)]
pub enum Input {
    /// The node starts (fresh or after recovery): arm timers, announce status.
    Start,
    /// An authenticated connection to `peer` is up (S-2.7).
    PeerConnected(NodeId),
    /// The connection to `peer` is gone.
    PeerDisconnected(NodeId),
    /// A message from a peer whose signatures were checked.
    Message {
        /// The authenticated sender.
        from: NodeId,
        /// The message.
        msg: Verified<Message>,
    },
    /// A timer of [`Output::SetTimer`] fired.
    Timer(TimerKind),
    /// Transactions for the block the core asked for with [`Output::RequestPayload`].
    Payload {
        /// The sn that was requested.
        sn: BlockSn,
        /// Opaque transactions.
        txs: Vec<Vec<u8>>,
        /// Wall-clock milliseconds since the Unix epoch, for the block's timestamp
        /// (D-6); the core stamps `max(parent's timestamp, timestamp_ms)`. Unlike
        /// [`Tick`], this clock may step; the core never times anything with it.
        timestamp_ms: u64,
        /// The application state the host had applied, sealed into the block's header
        /// as given (the core never looks inside it).
        state: StateCommitment,
    },
}

/// A safety-critical state change. The driver must make it durable before it executes
/// any later [`Output::Send`] or [`Output::Broadcast`] of the same batch (section 0.1
/// items 7 and 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateChange {
    /// A block entered the store (before voting for it, V-4).
    Block(Arc<Block>),
    /// A notarization (the best known for its sn).
    Notarization(Notarization),
    /// The finalized head moved.
    Finalized {
        /// New finalized head.
        sn: BlockSn,
        /// Its height.
        height: u64,
        /// Its hash.
        hash: Hash,
    },
    /// The local epoch with its proof (E-7 step 1); `None` for the first epoch of a session.
    Epoch {
        /// New local epoch.
        epoch: Epoch,
        /// The clock notarization proving it.
        clock: Option<ClockNotarization>,
    },
    /// Highest serial voted in an epoch (section 0.1 item 7).
    VoteGuard {
        /// The epoch.
        epoch: Epoch,
        /// Highest voted serial.
        s: u32,
    },
    /// Highest epoch a clock message was signed for.
    ClockGuard(Epoch),
    /// The committee of a new session, installed when reconfiguration begins (C-3).
    Committee(Committee),
    /// A session's stop block became final (C-1).
    StopBlock {
        /// The session it ends.
        session: Session,
        /// Its sn.
        sn: BlockSn,
        /// Its height.
        height: u64,
        /// Its hash.
        hash: Hash,
    },
}

/// What the core asks its driver to do, in order.
#[derive(Clone, Debug)]
pub enum Output {
    /// Make a record durable (before any later send).
    Persist(StateChange),
    /// Send to one peer.
    Send {
        /// Destination.
        to: NodeId,
        /// Message.
        msg: Message,
    },
    /// Send to every connected peer.
    Broadcast(Message),
    /// Fire [`Input::Timer`] of this kind at `at` (replacing an earlier deadline).
    SetTimer {
        /// Which timer.
        kind: TimerKind,
        /// When.
        at: Tick,
    },
    /// The primary proposer wants transactions for block `sn`; answer with
    /// [`Input::Payload`].
    RequestPayload {
        /// The block to fill.
        sn: BlockSn,
    },
    /// A block became final; emitted once per block, in chain order.
    Finalized {
        /// The block.
        block: Arc<Block>,
        /// Its notarization.
        notarization: Option<Notarization>,
    },
    /// The local epoch changed.
    EpochChanged(Epoch),
    /// Reconfiguration began (C-3): install this committee in the verifier and the
    /// network (connect to its proposers; admit its members).
    CommitteeInstalled(Arc<Committee>),
    /// Reconfiguration ended (C-5): the new session is final; peers that are not members
    /// of `session` (nor bootnodes) may be dropped.
    ReconfigurationEnded {
        /// The session now in force.
        session: Session,
    },
    /// Synced blocks of a session that could not be verified before its committee was
    /// installed (C-8): verify them again now and feed them back as a
    /// `FresherHead` message from `from`.
    Reverify {
        /// The peer that sent them.
        from: NodeId,
        /// The blocks, in chain order.
        blocks: Vec<NotarizedBlock>,
    },
}

/// Read access to finalized blocks that the core pruned from memory, so it can serve
/// chain sync (W-7.3). The node backs it with its storage, the simulator with its
/// simulated disk.
pub trait BlockArchive: Send + Sync {
    /// The finalized block at `height` with its notarization, if retained.
    fn finalized_at(&self, height: u64) -> Option<NotarizedBlock>;
}

/// An archive that retains nothing (a node that only serves recent blocks).
pub struct NoArchive;

impl BlockArchive for NoArchive {
    fn finalized_at(&self, _height: u64) -> Option<NotarizedBlock> {
        None
    }
}

/// What a restarting node loads from its storage (P-3).
#[derive(Clone, Debug, Default)]
pub struct RecoveredState {
    /// The finalized head with its notarization (genesis if nothing was finalized).
    pub finalized: Option<NotarizedBlock>,
    /// Stored blocks above the finalized head (any order).
    pub blocks: Vec<Arc<Block>>,
    /// Stored notarizations of those blocks.
    pub notarizations: Vec<Notarization>,
    /// The persisted epoch and its proof.
    pub epoch: Option<(Epoch, Option<ClockNotarization>)>,
    /// Highest voted serial per epoch.
    pub vote_guards: Vec<(Epoch, u32)>,
    /// Highest epoch a clock message was signed for.
    pub clock_guard: Option<Epoch>,
    /// Committees installed by reconfigurations (beyond genesis).
    pub committees: Vec<Committee>,
}
