//! Snapshots every `state_sync.snapshot_interval` finalized heights, kept for state sync.

use crate::app::{Application, KvStore};
use crate::metrics::Metrics;
use crate::state_sync::SnapshotStore;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::{info, warn};

/// When and how the stage takes snapshots (`[state_sync]`).
pub struct SnapshotPolicy {
    /// Where they are kept (shared with whatever serves them).
    pub store: Arc<Mutex<SnapshotStore>>,
    /// A snapshot at every height divisible by this (> 0).
    pub interval: u64,
    /// Target bytes per chunk.
    pub chunk_bytes: usize,
}

impl SnapshotPolicy {
    /// Whether a snapshot is due after applying `height`.
    pub fn due(&self, height: u64) -> bool {
        height > 0 && height.is_multiple_of(self.interval)
    }

    /// Takes and writes a snapshot of `app`. A failure is logged and the next interval
    /// tries again: a missing snapshot only means peers fetch an older one.
    pub fn take(&self, app: &KvStore, metrics: &Metrics) {
        let t0 = Instant::now();
        let Some(snap) = app.snapshot(self.chunk_bytes) else {
            return;
        };
        let cut = t0.elapsed();
        let m = &snap.manifest;
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if store.refused().is_some() {
            return;
        }
        match store.write(&snap) {
            Ok(()) => {
                metrics.state_snapshots.inc();
                info!(
                    height = m.height,
                    digest = %m.state_digest,
                    pairs = m.total_pairs,
                    chunks = m.chunks.len(),
                    bytes = m.total_bytes(),
                    cut_ms = cut.as_millis() as u64,
                    total_ms = t0.elapsed().as_millis() as u64,
                    "state snapshot written"
                );
            }
            Err(e) => warn!(height = m.height, "writing a state snapshot failed: {e}"),
        }
    }
}
