//! Verified state sync, the parts a serving node and a joining node share: the snapshot
//! [`Manifest`] and its chunks, the [`Restore`] that checks a received snapshot against a
//! finalized header's [`pala_types::StateCommitment`] chunk by chunk, and the
//! [`SnapshotStore`] that keeps the newest snapshots in the data directory.
//!
//! Which block carries which state: block `h` commits to the state after the newest
//! finalized height its proposer had applied when it sealed `h` (always below `h`; see
//! [`pala_types::StateCommitment`]). A snapshot at height `s` is therefore vouched for by
//! any finalized block whose commitment names `s`; with snapshots every
//! `state_sync.snapshot_interval` heights a joining node picks the newest snapshot that
//! a finalized header it has verified names.

pub mod at_start;
pub mod behind;
pub mod committees;
mod discover;
mod join;
mod manifest;
pub mod proof;
mod restore;
pub mod serve;
pub mod sessions;
mod set_aside;
mod store;
pub mod wire;

pub use discover::{Behind, Discovery};
pub use join::{join, JoinDeps, Joined, Session};
pub use manifest::{ChunkInfo, Manifest, MAX_APP_META, MAX_CHUNK_BYTES};
pub use restore::{Restore, RestoreError};
pub use set_aside::set_aside;
pub use store::{SnapshotStore, StoreError};

/// A snapshot in memory: its manifest and its chunks, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// What the chunks are checked against.
    pub manifest: Manifest,
    /// The chunks.
    pub chunks: Vec<Vec<u8>>,
}
