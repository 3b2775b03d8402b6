//! The node's state as `/status`, `/readyz` and the metrics show it: a snapshot the
//! consensus stage publishes (every 200 ms and at each role change) and readers copy. No
//! reader holds a lock of the stage, and the stage never waits for a reader.

use pala_core::Role;
use std::sync::{Arc, RwLock};

/// The node state shown by metrics and `/status`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StatusView {
    /// Node id (hex).
    pub id: String,
    /// The role in the session of the local epoch: "proposer", "voter" or "follower"
    /// (in no committee of that session: syncs without voting or proposing).
    pub role: String,
    /// Local epoch (session, e).
    pub epoch: (u32, u32),
    /// Freshest notarized head: sn and height.
    pub head: String,
    /// Head height.
    pub head_height: u64,
    /// Finalized head sn.
    pub finalized: String,
    /// Finalized height.
    pub finalized_height: u64,
    /// Whether this node is producing blocks now (the primary proposer).
    pub producing: bool,
    /// Connected peers (hex ids).
    pub peers: Vec<String>,
    /// Height applied by the application.
    pub applied_height: u64,
    /// Transactions in the mempool.
    pub mempool_txs: usize,
    /// Whether the node can do its part now (readyz): caught up, and a proposer reaches a
    /// quorum of its session's voters, a voter the primary of its epoch.
    pub ready: bool,
    /// Why it is not ready (empty when ready).
    pub not_ready: String,
    /// Whether the node is shutting down (it no longer proposes or takes transactions).
    pub stopping: bool,
}

impl StatusView {
    /// Whether the node proposes in the session of its local epoch (it keeps a mempool).
    pub fn is_proposer(&self) -> bool {
        self.role == Role::Proposer.as_str()
    }
}

/// The writing side: held by the consensus stage only.
pub struct StatusPublisher {
    slot: Arc<RwLock<Arc<StatusView>>>,
}

/// A reader of the latest snapshot (clonable; the HTTP API and the metrics hold one).
#[derive(Clone)]
pub struct StatusReader {
    slot: Arc<RwLock<Arc<StatusView>>>,
}

/// A status board whose first snapshot is `initial`.
pub fn status_board(initial: StatusView) -> (StatusPublisher, StatusReader) {
    let slot = Arc::new(RwLock::new(Arc::new(initial)));
    (
        StatusPublisher { slot: slot.clone() },
        StatusReader { slot },
    )
}

impl StatusPublisher {
    /// Replaces the snapshot (the lock is held for a pointer swap only).
    pub fn publish(&self, view: StatusView) {
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
    }
}

impl StatusReader {
    /// The latest snapshot.
    pub fn get(&self) -> Arc<StatusView> {
        self.slot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
