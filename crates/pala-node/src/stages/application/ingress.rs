//! The application stage's mailbox and its read-only view.

use super::commitments::{BeforeVote, StateHistory};
use crate::app::{Application, KvEntry, KvStore};
use crate::state_sync::SnapshotStore;
use pala_types::{Block, Hash, StateCommitment};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Instant;

pub(super) enum AppMessage {
    /// A finalized block, durable, in height order.
    Finalized(Arc<Block>),
    /// Transactions submitted through this node and when (for the latency histogram).
    Submitted(Vec<(Hash, Instant)>),
    /// A stream subscriber (dropped when it does not keep up).
    Subscribe(crossbeam_channel::Sender<Arc<Block>>),
}

/// The application stage stopped.
#[derive(Debug, thiserror::Error)]
#[error("the application stage has stopped")]
pub struct ApplicationStopped;

/// The way into the application stage.
#[derive(Clone)]
pub struct ApplicationMailbox {
    pub(super) tx: flume::Sender<AppMessage>,
}

impl ApplicationMailbox {
    /// Hands over a finalized block; waits (without blocking the executor) while the
    /// stage is behind.
    pub async fn finalized(&self, block: Arc<Block>) -> Result<(), ApplicationStopped> {
        self.tx
            .send_async(AppMessage::Finalized(block))
            .await
            .map_err(|_| ApplicationStopped)
    }

    /// Records submission times; dropped when the stage is behind (they only feed a
    /// latency histogram).
    pub fn submitted(&self, txs: Vec<(Hash, Instant)>) {
        let _ = self.tx.try_send(AppMessage::Submitted(txs));
    }

    /// A stream of finalized blocks from now on; `None` when the stage is behind or gone.
    pub fn subscribe(&self, capacity: usize) -> Option<crossbeam_channel::Receiver<Arc<Block>>> {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        self.tx.try_send(AppMessage::Subscribe(tx)).ok().map(|_| rx)
    }

    /// Messages queued.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }
}

/// Read-only access to the applied state (the HTTP API, the status snapshot). Only the
/// application stage writes it; a reader holds the lock for one lookup.
#[derive(Clone)]
pub struct AppView {
    pub(super) store: Arc<RwLock<KvStore>>,
    pub(super) history: Arc<Mutex<StateHistory>>,
    pub(super) snapshots: Option<Arc<Mutex<SnapshotStore>>>,
}

impl AppView {
    fn read(&self) -> RwLockReadGuard<'_, KvStore> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks a transaction before it enters the mempool.
    pub fn check_tx(&self, tx: &[u8]) -> Result<(), String> {
        self.read().check_tx(tx)
    }

    /// The height at which a transaction took effect (inside the deduplication window).
    pub fn applied(&self, h: &Hash) -> Option<u64> {
        self.read().applied(h)
    }

    /// A key and the applied height it was read at.
    pub fn get(&self, key: &str) -> (Option<KvEntry>, u64) {
        let app = self.read();
        (app.get(key).cloned(), app.applied_height())
    }

    /// Height of the last applied block.
    pub fn applied_height(&self) -> u64 {
        self.read().applied_height()
    }

    fn history(&self) -> MutexGuard<'_, StateHistory> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest applied height and its state digest ([`StateCommitment::NONE`] before
    /// the first block).
    pub fn commitment(&self) -> StateCommitment {
        self.history().latest()
    }

    /// What a block at `height` proposed now commits to under the window `k`: the newest
    /// applied state W-12e allows there.
    pub fn commitment_for(&self, height: u64, k: u32) -> StateCommitment {
        self.history()
            .at_or_below(StateCommitment::newest_height_for(height, k))
    }

    /// `block`'s commitment against this node's digests, before voting for it (W-12e).
    pub fn before_vote(&self, block: &Block) -> BeforeVote {
        self.history().before_vote(block)
    }

    /// The snapshots kept for state sync (`None` when `state_sync.snapshot_interval` is
    /// 0).
    pub fn snapshots(&self) -> Option<Arc<Mutex<SnapshotStore>>> {
        self.snapshots.clone()
    }
}
