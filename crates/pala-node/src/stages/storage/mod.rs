//! The storage stage: makes the consensus stage's records durable, in groups (P-1..P-3).
//!
//! Input: [`PersistJob`]s through a [`StorageMailbox`], each tagged with the consensus
//! stage's persist number. Output: the [`StorageEvents`] callbacks: the highest number
//! whose records are all durable (after one fdatasync per group), commit figures, and a
//! fatal error when the disk fails. Reads (the core's sync archive, the HTTP API, the
//! application's replay) go through a [`StorageReader`], never through this stage.
//!
//! This is the page-cache version moved out of the runtime; the io_uring (DMA) version of
//! the storage work replaces these three files with the same interface.

mod actor;
mod ingress;

pub use actor::{StorageStage, StorageWriter};
pub use ingress::{CommitStats, PersistJob, StorageEvents, StorageMailbox, StorageStopped};

use pala_storage::Storage;
use pala_types::{Block, BlockSn, Hash, NotarizedBlock};
use std::sync::{Arc, RwLock};

/// Opens the writer half and a reader for the same store.
pub fn split(storage: Storage) -> (StorageWriter, StorageReader) {
    let inner = Arc::new(RwLock::new(storage));
    (
        StorageWriter {
            inner: inner.clone(),
        },
        StorageReader { inner },
    )
}

/// Read access to what is stored (clonable, `Send + Sync`).
#[derive(Clone)]
pub struct StorageReader {
    inner: Arc<RwLock<Storage>>,
}

impl StorageReader {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Storage> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The finalized block at `height`: its sn and hash.
    pub fn finalized_at(&self, height: u64) -> Option<(BlockSn, Hash)> {
        self.read().finalized_at(height)
    }

    /// The finalized block at `height`.
    pub fn finalized_block(&self, height: u64) -> pala_storage::Result<Option<Block>> {
        self.read().finalized_block(height)
    }

    /// The lowest and highest finalized heights stored.
    pub fn finalized_range(&self) -> Option<(u64, u64)> {
        self.read().finalized_range()
    }

    /// A block with its notarization.
    pub fn notarized_block(&self, sn: BlockSn) -> pala_storage::Result<Option<NotarizedBlock>> {
        self.read().notarized_block(sn)
    }
}
