//! The application stage: applies finalized blocks to the replicated store in height
//! order, exactly once, and serves what follows from them (queries, streams, latency).
//!
//! Inputs ([`ApplicationMailbox`]): finalized blocks from the consensus stage (released
//! after they are durable), submission times from the HTTP API, stream subscriptions.
//! Outputs: the store, read through an [`AppView`]; finalized transactions removed from
//! the mempool; blocks to subscribers; metrics. The store is checkpointed every second
//! and at shutdown; on start, [`replay`] applies the finalized blocks storage has above
//! the store's height (after a crash between the two writes).
//!
//! State commitments: after every block the stage records the store's digest (the last
//! [`HISTORY`] heights) in a history shared with the [`AppView`], from which the
//! consensus stage takes the commitment it seals into a proposal and checks the
//! commitments of the proposals it votes for (W-12e); every finalized block's commitment
//! is checked against the history again when it is applied (`commitments`). Every
//! `state_sync.snapshot_interval` heights it writes a snapshot for state sync
//! (`crate::state_sync`), unless a mismatch was seen.

mod actor;
mod checkpoint;
mod commitments;
mod ingress;
mod snapshots;
#[cfg(test)]
pub(crate) mod tests;

pub use actor::{replay, ApplicationDeps, ApplicationStage};
pub use commitments::{BeforeVote, Mismatch, StateHistory, HISTORY};
pub use ingress::{AppView, ApplicationMailbox, ApplicationStopped};
pub use snapshots::SnapshotPolicy;
