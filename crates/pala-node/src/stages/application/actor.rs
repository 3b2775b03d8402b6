//! The application loop, on its own thread (applying a block is plain computation on the
//! store; nothing here waits for IO but the checkpoint).

use super::checkpoint::{CheckpointPolicy, Verdict};
use super::commitments::{Mismatch, StateHistory};
use super::ingress::{AppMessage, AppView, ApplicationMailbox};
use super::snapshots::SnapshotPolicy;
use crate::app::{Application, KvStore};
use crate::clock::WallClock;
use crate::fatal::Fatal;
use crate::mempool::MempoolHandle;
use crate::metrics::Metrics;
use anyhow::{bail, Context, Result};
use pala_storage::StorageReader;
use pala_types::{Block, Hash};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// How often the store is asked to checkpoint (it spaces checkpoints by their own cost).
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// Applies finalized blocks that storage has but the store has not (after a crash
/// between the storage's and the application's writes), so every block is applied once,
/// recording each digest in `history` and checking each block's commitment against it.
/// Returns the commitments that disagreed (the stage reports them when it starts).
pub fn replay(
    app: &mut KvStore,
    storage: &StorageReader,
    history: &mut StateHistory,
) -> Result<Vec<Mismatch>> {
    if app.applied_height() > 0 {
        history.record(app.applied_height(), app.state_digest());
    }
    let mut mismatches = Vec::new();
    let Some((_, hi)) = storage.finalized_range() else {
        return Ok(mismatches);
    };
    let from = app.applied_height() + 1;
    for h in from..=hi {
        let Some(b) = storage
            .finalized_block(h)
            .context("reading a finalized block")?
        else {
            bail!("finalized block at height {h} is missing from storage; cannot replay the application");
        };
        if let Err(m) = history.check(&b) {
            error!("{m}");
            mismatches.push(m);
        }
        app.apply(&b);
        history.record(h, app.state_digest());
    }
    if hi >= from {
        info!(
            from,
            to = hi,
            "replayed finalized blocks into the application"
        );
        app.persist().context("persisting the application state")?;
    }
    Ok(mismatches)
}

/// What the stage needs besides the store.
pub struct ApplicationDeps {
    /// Metrics handle.
    pub metrics: Arc<Metrics>,
    /// Finalized transactions leave the pool.
    pub mempool: MempoolHandle,
    /// For the block-timestamp-to-applied latency.
    pub wall: Arc<dyn WallClock>,
    /// Submission times remembered at most (`mempool.max_txs`).
    pub max_submitted: usize,
    /// Where a failed checkpoint is reported.
    pub fatal: Fatal,
    /// The data directory (named in the messages about failed checkpoints).
    pub data_dir: std::path::PathBuf,
    /// The digests of the last applied heights (from [`replay`]).
    pub history: StateHistory,
    /// Commitments [`replay`] found disagreeing.
    pub replay_mismatches: Vec<Mismatch>,
    /// Snapshots for state sync (`None`: `state_sync.snapshot_interval = 0`).
    pub snapshots: Option<SnapshotPolicy>,
}

/// The running stage.
pub struct ApplicationStage {
    thread: std::thread::JoinHandle<()>,
}

struct State {
    store: Arc<RwLock<KvStore>>,
    deps: ApplicationDeps,
    submitted: HashMap<Hash, Instant>,
    subscribers: Vec<crossbeam_channel::Sender<Arc<Block>>>,
    /// This node's digests, shared with the [`AppView`] (proposals and votes, W-12e).
    history: Arc<Mutex<StateHistory>>,
    /// Set at the first mismatch: no more snapshots are taken or served.
    diverged: bool,
}

impl ApplicationStage {
    /// Starts the stage on its own thread. It stops once every mailbox is dropped.
    pub fn spawn(
        store: KvStore,
        capacity: usize,
        mut deps: ApplicationDeps,
    ) -> Result<(ApplicationStage, ApplicationMailbox, AppView)> {
        let store = Arc::new(RwLock::new(store));
        let history = Arc::new(Mutex::new(std::mem::take(&mut deps.history)));
        let snapshots = deps.snapshots.as_ref().map(|p| p.store.clone());
        let (tx, rx) = flume::bounded(capacity);
        let replayed = std::mem::take(&mut deps.replay_mismatches);
        let mut state = State {
            store: store.clone(),
            deps,
            submitted: HashMap::new(),
            subscribers: Vec::new(),
            history: history.clone(),
            // A node that diverged before a restart still serves nothing.
            diverged: snapshots.as_ref().is_some_and(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .refused()
                    .is_some()
            }),
        };
        for m in replayed {
            state.diverge(&m);
        }
        let thread = std::thread::Builder::new()
            .name("pala-app".into())
            .spawn(move || state.run(rx))
            .context("starting the application thread")?;
        Ok((
            ApplicationStage { thread },
            ApplicationMailbox { tx },
            AppView {
                store,
                history,
                snapshots,
            },
        ))
    }

    /// Waits until the stage has applied what it was given and checkpointed.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

impl State {
    fn run(mut self, rx: flume::Receiver<AppMessage>) {
        let mut last_persist = Instant::now();
        let mut policy = CheckpointPolicy::default();
        loop {
            match rx.recv_timeout(PERSIST_EVERY) {
                Ok(AppMessage::Finalized(block)) => self.apply(&block),
                Ok(AppMessage::Submitted(txs)) => {
                    let room = self.deps.max_submitted.saturating_sub(self.submitted.len());
                    self.submitted.extend(txs.into_iter().take(room));
                }
                Ok(AppMessage::Subscribe(s)) => self.subscribers.push(s),
                Err(flume::RecvTimeoutError::Timeout) => {}
                Err(flume::RecvTimeoutError::Disconnected) => break,
            }
            if last_persist.elapsed() >= PERSIST_EVERY {
                let result = self.write().persist();
                match policy.outcome(result, &self.deps.data_dir) {
                    Verdict::Quiet => {}
                    Verdict::Retry(m) => warn!("{m}"),
                    Verdict::Fatal(m) => {
                        self.deps.fatal.fail(m);
                        // Nothing more is written: the node is stopping.
                        return;
                    }
                }
                last_persist = Instant::now();
            }
        }
        if let Err(e) = self.write().persist() {
            error!("persisting the application state at shutdown failed: {e}");
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KvStore> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs and counts a mismatch; the first one against this node's own digest stops
    /// snapshots (module docs of `commitments`).
    fn diverge(&mut self, m: &Mismatch) {
        error!(
            block = m.block_height,
            committed_height = m.committed.height,
            committed_digest = %m.committed.digest,
            "{m}"
        );
        self.deps.metrics.state_commitment_mismatches.inc();
        // A commitment to a height not below its block's is the proposer's error alone,
        // whatever this node's state: it says nothing against this node's snapshots.
        if self.diverged || m.mine.is_none() {
            return;
        }
        self.diverged = true;
        if let Some(p) = &self.deps.snapshots {
            let mut store = p.store.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = store.refuse_serving(&m.to_string()) {
                error!("recording that snapshots are no longer served failed: {e}");
            }
        }
    }

    fn apply(&mut self, block: &Arc<Block>) {
        let (applied, digest) = {
            let mut app = self.write();
            if block.height() <= app.applied_height() {
                return;
            }
            let n = app.apply(block);
            (n, app.state_digest())
        };
        let checked = {
            let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
            let checked = history.check(block);
            history.record(block.height(), digest);
            checked
        };
        match checked {
            Ok(true) => {
                self.deps.metrics.state_commitments_checked.inc();
            }
            Ok(false) => {}
            Err(m) => self.diverge(&m),
        }
        if let Some(p) = &self.deps.snapshots {
            if !self.diverged && p.due(block.height()) {
                let app = self.store.read().unwrap_or_else(|e| e.into_inner());
                p.take(&app, &self.deps.metrics);
            }
        }
        let m = &self.deps.metrics;
        m.finalized_blocks.inc();
        m.finalized_txs.inc_by(applied as u64);
        m.txs_skipped.inc_by((block.txs.len() - applied) as u64);
        let now = self.deps.wall.now_ms();
        m.block_latency
            .observe(now.saturating_sub(block.header.timestamp_ms) as f64 / 1000.0);
        let hashes: Vec<Hash> = block.txs.iter().map(|t| Hash::of(t)).collect();
        for h in &hashes {
            if let Some(t0) = self.submitted.remove(h) {
                m.tx_latency.observe(t0.elapsed().as_secs_f64());
            }
        }
        self.deps.mempool.remove(hashes);
        // A subscriber that does not keep up is dropped rather than buffered.
        self.subscribers
            .retain(|s| s.try_send(block.clone()).is_ok());
    }
}
