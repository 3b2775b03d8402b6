//! The application stage: applies finalized blocks to the replicated store in height
//! order, exactly once, and serves what follows from them (queries, streams, latency).
//!
//! Inputs ([`ApplicationMailbox`]): finalized blocks from the consensus stage (released
//! after they are durable), submission times from the HTTP API, stream subscriptions.
//! Outputs: the store, read through an [`AppView`]; finalized transactions removed from
//! the mempool; blocks to subscribers; metrics. The store is checkpointed every second
//! and at shutdown; on start, [`replay`] applies the finalized blocks storage has above
//! the store's height (after a crash between the two writes).

mod actor;
mod checkpoint;
mod ingress;

pub use actor::{replay, ApplicationDeps, ApplicationStage};
pub use ingress::{AppView, ApplicationMailbox, ApplicationStopped};
