//! What goes into the storage stage and what comes out of it.
//!
//! The mailbox is a flume channel: its sender is `Send + Sync + Clone` and never blocks
//! (unbounded), so the consensus executor, std threads and tests can all queue jobs, and
//! its receiver is awaited with `recv_async` on the storage executor without blocking it.
//! glommio's own shared channels would tie every sender to an executor it must first
//! `connect` on, which the consensus stage's callers do not all have. The queue is
//! unbounded because `persist` must never block the consensus executor; what it holds is
//! what consensus produced while one commit was on the disk, drained [`super::MAX_GROUP`]
//! jobs at a time.

use std::time::Duration;

/// Records to make durable together, tagged with the consensus stage's persist number.
pub struct PersistJob {
    /// Persist number: once this job is durable, every job with a lower number is too.
    pub seq: u64,
    /// The records, written in this order within the batch.
    pub records: Vec<pala_storage::Record>,
}

/// What the stage reports; the node wiring turns these into metrics and wake-ups.
pub struct StorageEvents {
    /// Every job with seq <= this is durable (called from the storage executor).
    pub durable: Box<dyn Fn(u64) + Send>,
    /// One group commit done: records, bytes, and the commit's duration.
    pub committed: Box<dyn Fn(CommitStats) + Send>,
    /// The disk failed: the node must stop (message says what happened and what to do).
    pub fatal: Box<dyn Fn(String) + Send>,
}

/// Figures of one group commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitStats {
    /// Records in the batch.
    pub records: usize,
    /// Bytes written for it, framing and commit marker included (block padding excluded).
    pub bytes: u64,
    /// From staging the first record to the end of the fdatasync.
    pub duration: Duration,
}

/// The stage is gone (shut down, or stopped after a disk failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the storage stage has stopped")]
pub struct StorageStopped;

pub(super) enum Message {
    Persist(PersistJob),
    /// Commit what is queued, sync and stop.
    Stop,
}

/// The handle the consensus stage queues jobs through.
#[derive(Clone)]
pub struct StorageMailbox {
    pub(super) tx: flume::Sender<Message>,
}

impl StorageMailbox {
    /// Queues a job; never blocks an executor (returns Err when the stage has stopped).
    pub fn persist(&self, job: PersistJob) -> Result<(), StorageStopped> {
        self.tx
            .send(Message::Persist(job))
            .map_err(|_| StorageStopped)
    }

    /// Jobs queued and not yet taken by the stage (a gauge for `/metrics`).
    pub fn queued(&self) -> usize {
        self.tx.len()
    }
}
