//! What goes into the storage stage and what comes out of it.

use std::time::Duration;

/// Records to make durable together, tagged with the consensus stage's persist number.
pub struct PersistJob {
    /// Every persist up to this number is in this job or an earlier one.
    pub seq: u64,
    /// The records, in the order the core emitted them.
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
#[derive(Clone, Copy, Debug)]
pub struct CommitStats {
    /// Records written.
    pub records: usize,
    /// Bytes written.
    pub bytes: u64,
    /// From the first write to the end of the sync.
    pub duration: Duration,
}

/// The storage stage stopped (after a disk failure or at shutdown).
#[derive(Debug, thiserror::Error)]
#[error("the storage stage has stopped")]
pub struct StorageStopped;

/// The way into the storage stage.
#[derive(Clone)]
pub struct StorageMailbox {
    pub(super) jobs: flume::Sender<PersistJob>,
}

impl StorageMailbox {
    /// Queues a job; never blocks an executor (returns Err when the stage has stopped).
    /// The queue is unbounded: the consensus stage releases nothing that depends on a
    /// job before it is durable, so a slow disk holds the protocol back there.
    pub fn persist(&self, job: PersistJob) -> Result<(), StorageStopped> {
        self.jobs.send(job).map_err(|_| StorageStopped)
    }

    /// Jobs queued and not yet taken by the stage.
    pub fn queued(&self) -> usize {
        self.jobs.len()
    }
}
