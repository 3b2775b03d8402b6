//! The storage stage (docs/protocol.md section 9, P-2): makes the consensus stage's records
//! durable, in order, with group commit, on an executor of its own.
//!
//! The consensus stage numbers its persists and queues each as a [`PersistJob`] through a
//! [`StorageMailbox`] (never blocking). The stage takes up to [`MAX_GROUP`] queued jobs,
//! writes them as one batch with one fdatasync (both submitted through io_uring with
//! `O_DIRECT` where the filesystem allows, see [`pala_storage::LogWriter`]) and reports
//! through [`StorageEvents`] that every job up to the highest number in the group is
//! durable; the consensus stage's durability gate then releases the sends, broadcasts and
//! finalized blocks that waited on those persists (persist before send).
//!
//! Reads never go through this stage: they use a [`pala_storage::StorageReader`] taken from
//! the [`pala_storage::Storage`] before it is handed over, which never waits for a commit.

pub mod actor;
pub mod ingress;

pub use actor::StorageStage;
pub use ingress::{CommitStats, PersistJob, StorageEvents, StorageMailbox, StorageStopped};

/// Most jobs in one group commit (one batch, one fdatasync).
pub const MAX_GROUP: usize = 256;
