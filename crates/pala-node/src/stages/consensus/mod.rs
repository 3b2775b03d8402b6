//! The consensus stage: the only place the core runs.
//!
//! Inputs ([`ConsensusMailbox`]): verified messages and peer events from the verify
//! stage, bootnode connections, the network layer's answers, stop requests, requests for
//! the chain view (`GET /chain`, answered on their reply channel); durability
//! reports from storage ([`DurableWatch`]); its own timers on the monotonic [`Ticks`]
//! clock (crate::clock).
//!
//! Outputs, routed by the core's driver kit (`pala_core::driver`):
//! - records, numbered, to the storage stage as one [`PersistJob`] per round (P-1);
//! - sends, broadcasts and finalized blocks through the kit's durability gate: each is
//!   released, in core order, only once every persist before it is durable (section 0.1
//!   items 7-8). The stage does not wait for the disk itself, so while one group is being
//!   synced the next is being built (group commit);
//! - dials, undials and disconnects of a reconfiguration (C-3, C-5) through the same gate;
//! - a snapshot of the core's committees to the verify stage after each change (the one
//!   source of truth is `Node::committees()`);
//! - the status snapshot, every 200 ms and at each role change, with readiness
//!   (`readiness`: caught up, and a proposer reaches a quorum of voters, a voter its
//!   primary);
//! - the chain view ([`crate::chain_view`]), only when asked, with the last epoch changes
//!   it records as the core reports them.
//!
//! [`Ticks`]: crate::clock::Ticks
//! [`PersistJob`]: crate::stages::storage::PersistJob

mod actor;
mod commitment_gate;
mod doppelganger;
mod host;
mod ingress;
mod links;
mod readiness;

pub use actor::{ConsensusDeps, ConsensusStage};
pub use doppelganger::Doppelganger;
pub(crate) use host::trace_pipeline;
pub use host::StageHost;
pub use ingress::{
    durable_signal, ConsensusMailbox, ConsensusMessage, ConsensusStopped, DurableNotifier,
    DurableWatch,
};
pub use links::{Links, LinksAtStart};

/// The consensus stage's inbox, bounded by `runtime.channel_capacity`: the mailbox for
/// the senders and the receiver for [`ConsensusDeps::inbox`].
pub fn inbox(capacity: usize) -> (ConsensusMailbox, flume::Receiver<ConsensusMessage>) {
    let (tx, rx) = flume::bounded(capacity);
    (ConsensusMailbox { tx }, rx)
}
