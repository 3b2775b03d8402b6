//! The read half of a data directory: a clonable, `Send + Sync` handle that never waits for
//! a commit in progress.
//!
//! The writer publishes what a batch added only after the batch is durable (P-2: nothing
//! not yet fdatasync'ed is ever visible), by taking the view's lock for the in-memory
//! update alone: appending index entries and, when a segment was rolled or its map grown,
//! swapping in a new map. No IO happens under that lock, on either side: a read holds it
//! only for index lookups and to clone the `Arc` of the map it needs, then slices and
//! decodes outside it. So a read overlaps a write and an fdatasync freely, and the longest
//! a read can wait is one in-memory index update.

use crate::error::{Result, StorageError};
use crate::index::{BlockEntry, Index, Loc};
use crate::record::{EpochStatus, RecordKind};
use crate::segment::RECORD_HEADER_LEN;
use crate::store::{Heads, RecoverySet, SegmentInfo};
use memmap2::Mmap;
use pala_types::codec::Decode;
use pala_types::{
    Block, BlockSn, ClockNotarization, Committee, Epoch, Hash, Notarization, NotarizedBlock,
    Session,
};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// One segment as readers see it: its map and its committed (logical) length. The file
/// may be longer (a DMA writer pads the last block; a write may be in flight), and the map
/// may extend past the file; only bytes below `len` are ever read.
#[derive(Clone)]
pub(crate) struct SegmentView {
    pub path: PathBuf,
    pub map: Arc<Mmap>,
    pub len: u64,
    pub records: u64,
}

/// Everything durable, as of the last published commit.
pub(crate) struct View {
    pub index: Index,
    pub segments: BTreeMap<u64, SegmentView>,
    pub active: u64,
}

struct Shared {
    dir: PathBuf,
    view: RwLock<View>,
}

/// Read access to a data directory (see the module docs for what it never waits on).
/// Cloning is cheap; every clone sees each commit as soon as the writer publishes it.
#[derive(Clone)]
pub struct StorageReader {
    shared: Arc<Shared>,
}

/// A record's bytes straight from the segment's memory map (no copy). Holding it keeps
/// that map alive, even past a later remap or the segment's deletion by compaction.
#[derive(Clone)]
pub struct MappedBytes {
    map: Arc<Mmap>,
    range: Range<usize>,
}

impl Deref for MappedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[self.range.clone()]
    }
}

impl AsRef<[u8]> for MappedBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for MappedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MappedBytes({} bytes)", self.range.len())
    }
}

impl PartialEq<[u8]> for MappedBytes {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<&[u8]> for MappedBytes {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

impl PartialEq<Vec<u8>> for MappedBytes {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == other[..]
    }
}

impl StorageReader {
    pub(crate) fn new(dir: PathBuf, view: View) -> StorageReader {
        StorageReader {
            shared: Arc::new(Shared {
                dir,
                view: RwLock::new(view),
            }),
        }
    }

    /// A poisoned lock only means a panic elsewhere while holding it; the view itself is
    /// updated in one piece by the writer, so it stays usable.
    fn view(&self) -> RwLockReadGuard<'_, View> {
        self.shared.view.read().unwrap_or_else(|e| e.into_inner())
    }

    /// For the writer's publication step only (never held across IO).
    pub(crate) fn view_mut(&self) -> RwLockWriteGuard<'_, View> {
        self.shared.view.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the index under the lock (lookups only: keep it short).
    pub(crate) fn with_index<T>(&self, f: impl FnOnce(&Index) -> T) -> T {
        f(&self.view().index)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The bytes at `loc`, checked against the committed length.
    pub(crate) fn bytes_at(&self, loc: Loc) -> Result<MappedBytes> {
        let seg = {
            let v = self.view();
            v.segments.get(&loc.segment).cloned()
        };
        let seg = seg.ok_or_else(|| StorageError::Corrupt {
            path: crate::files::segment_path(self.dir(), loc.segment),
            offset: loc.offset,
            reason: "indexed segment is gone".into(),
        })?;
        let end = loc.offset + loc.len as u64;
        if end > seg.len {
            return Err(StorageError::Corrupt {
                path: seg.path,
                offset: loc.offset,
                reason: format!(
                    "indexed record ends at {end}, past the segment end {}",
                    seg.len
                ),
            });
        }
        Ok(MappedBytes {
            map: seg.map,
            range: loc.offset as usize..end as usize,
        })
    }

    pub(crate) fn decode<T: Decode>(&self, loc: Loc, kind: RecordKind) -> Result<T> {
        let bytes = self.bytes_at(loc)?;
        T::from_bytes(&bytes).map_err(|source| StorageError::Decode {
            path: crate::files::segment_path(self.dir(), loc.segment),
            offset: loc.offset - RECORD_HEADER_LEN as u64,
            kind: kind.name().into(),
            source,
        })
    }

    pub(crate) fn block_at(&self, e: &BlockEntry) -> Result<Block> {
        let b: Block = self.decode(e.loc, RecordKind::Block)?;
        // The checksum was verified on open; the hash check catches anything that changed
        // the file since (a bad disk under the page cache, another writer).
        if b.hash() != e.meta.hash {
            return Err(StorageError::Corrupt {
                path: crate::files::segment_path(self.dir(), e.loc.segment),
                offset: e.loc.offset - RECORD_HEADER_LEN as u64,
                reason: format!(
                    "block hash is {} but the index says {}",
                    b.hash(),
                    e.meta.hash
                ),
            });
        }
        Ok(b)
    }

    fn entry_by_sn(&self, sn: BlockSn) -> Option<BlockEntry> {
        self.with_index(|i| i.by_sn.get(&sn).and_then(|h| i.by_hash.get(h)).copied())
    }

    fn entry_by_hash(&self, hash: &Hash) -> Option<BlockEntry> {
        self.with_index(|i| i.by_hash.get(hash).copied())
    }

    fn finalized_hash(&self, height: u64) -> Option<Hash> {
        self.with_index(|i| i.finalized.get(&height).map(|(_, h)| *h))
    }

    /// The canonical encoding of the block at `sn`, straight from the map (no copy).
    pub fn block_bytes(&self, sn: BlockSn) -> Result<Option<MappedBytes>> {
        self.entry_by_sn(sn)
            .map(|e| self.bytes_at(e.loc))
            .transpose()
    }

    /// The canonical encoding of the block with this hash, straight from the map.
    pub fn block_bytes_by_hash(&self, hash: &Hash) -> Result<Option<MappedBytes>> {
        self.entry_by_hash(hash)
            .map(|e| self.bytes_at(e.loc))
            .transpose()
    }

    /// The block at `sn` (the latest stored one if a proposer equivocated).
    pub fn block(&self, sn: BlockSn) -> Result<Option<Block>> {
        self.entry_by_sn(sn).map(|e| self.block_at(&e)).transpose()
    }

    /// The block with this hash.
    pub fn block_by_hash(&self, hash: &Hash) -> Result<Option<Block>> {
        self.entry_by_hash(hash)
            .map(|e| self.block_at(&e))
            .transpose()
    }

    /// True if a block with this hash is stored.
    pub fn has_block(&self, hash: &Hash) -> bool {
        self.with_index(|i| i.by_hash.contains_key(hash))
    }

    /// `(sn, hash)` of the finalized block at `height`, if the finalized chain down to it
    /// is stored.
    pub fn finalized_at(&self, height: u64) -> Option<(BlockSn, Hash)> {
        self.with_index(|i| i.finalized.get(&height).copied())
    }

    /// The finalized block at `height`.
    pub fn finalized_block(&self, height: u64) -> Result<Option<Block>> {
        match self.finalized_hash(height) {
            None => Ok(None),
            Some(h) => self.block_by_hash(&h),
        }
    }

    /// The finalized block at `height` as raw bytes from the map.
    pub fn finalized_block_bytes(&self, height: u64) -> Result<Option<MappedBytes>> {
        match self.finalized_hash(height) {
            None => Ok(None),
            Some(h) => self.block_bytes_by_hash(&h),
        }
    }

    /// Heights `(lowest, highest)` of the stored contiguous finalized chain.
    pub fn finalized_range(&self) -> Option<(u64, u64)> {
        self.with_index(|i| {
            let lo = *i.finalized.keys().next()?;
            let hi = *i.finalized.keys().next_back()?;
            Some((lo, hi))
        })
    }

    /// The best (latest written) notarization for `sn`.
    pub fn notarization(&self, sn: BlockSn) -> Result<Option<Notarization>> {
        self.with_index(|i| i.notarizations.get(&sn).map(|n| n.loc))
            .map(|loc| self.decode(loc, RecordKind::Notarization))
            .transpose()
    }

    /// The block at `sn` with its notarization, as chain sync sends it (N-10).
    pub fn notarized_block(&self, sn: BlockSn) -> Result<Option<NotarizedBlock>> {
        let Some(e) = self.entry_by_sn(sn) else {
            return Ok(None);
        };
        self.notarized(&e).map(Some)
    }

    fn notarized(&self, e: &BlockEntry) -> Result<NotarizedBlock> {
        let block = Arc::new(self.block_at(e)?);
        let nota = self.with_index(|i| {
            i.notarizations
                .get(&e.meta.sn)
                .filter(|n| n.block_hash == e.meta.hash)
                .map(|n| n.loc)
        });
        let notarization = nota
            .map(|loc| self.decode(loc, RecordKind::Notarization))
            .transpose()?;
        Ok(NotarizedBlock {
            block,
            notarization,
        })
    }

    /// The latest epoch status (the highest epoch ever written).
    pub fn epoch_status(&self) -> Result<Option<EpochStatus>> {
        self.with_index(|i| i.epoch_status.map(|(_, loc)| loc))
            .map(|loc| self.decode(loc, RecordKind::EpochStatus))
            .transpose()
    }

    /// The stored clock notarization for `epoch`.
    pub fn clock_notarization(&self, epoch: Epoch) -> Result<Option<ClockNotarization>> {
        self.with_index(|i| i.clock_notarizations.get(&epoch).copied())
            .map(|loc| self.decode(loc, RecordKind::ClockNotarization))
            .transpose()
    }

    /// The newest stored clock notarization of `session` (for `get-epoch`, W-7.2).
    pub fn newest_clock_notarization(&self, session: Session) -> Result<Option<ClockNotarization>> {
        self.with_index(|i| {
            i.clock_notarizations
                .range(Epoch::new(session, 0)..=Epoch::new(session, u32::MAX))
                .next_back()
                .map(|(_, loc)| *loc)
        })
        .map(|loc| self.decode(loc, RecordKind::ClockNotarization))
        .transpose()
    }

    /// Highest `s` voted in `epoch`.
    pub fn vote_guard(&self, epoch: Epoch) -> Option<u32> {
        self.with_index(|i| i.vote_guards.get(&epoch).copied())
    }

    /// All vote guards still kept.
    pub fn vote_guards(&self) -> BTreeMap<Epoch, u32> {
        self.with_index(|i| i.vote_guards.clone())
    }

    /// Highest epoch a clock message was signed for.
    pub fn clock_guard(&self) -> Option<Epoch> {
        self.with_index(|i| i.clock_guard)
    }

    /// The finalized head sn.
    pub fn finalized_head(&self) -> Option<BlockSn> {
        self.with_index(|i| i.finalized_head)
    }

    /// Stop-block height of `session`.
    pub fn stop_block(&self, session: Session) -> Option<u64> {
        self.with_index(|i| i.stop_blocks.get(&session).copied())
    }

    /// All stop blocks.
    pub fn stop_blocks(&self) -> BTreeMap<Session, u64> {
        self.with_index(|i| i.stop_blocks.clone())
    }

    /// The stored committee of `session`.
    pub fn committee(&self, session: Session) -> Result<Option<Committee>> {
        self.with_index(|i| i.committees.get(&session).copied())
            .map(|loc| self.decode(loc, RecordKind::Committee))
            .transpose()
    }

    /// Every stored committee, oldest session first.
    pub fn committees(&self) -> Result<Vec<Committee>> {
        let locs: Vec<Loc> = self.with_index(|i| i.committees.values().copied().collect());
        locs.into_iter()
            .map(|loc| self.decode(loc, RecordKind::Committee))
            .collect()
    }

    /// Number of indexed blocks.
    pub fn block_count(&self) -> usize {
        self.with_index(|i| i.by_hash.len())
    }

    /// Number of indexed notarizations.
    pub fn notarization_count(&self) -> usize {
        self.with_index(|i| i.notarizations.len())
    }

    /// Heads summary.
    pub fn heads(&self) -> Heads {
        self.with_index(heads_of)
    }

    /// What a consensus core needs to restart (see [`RecoverySet`]).
    pub fn recovery_set(&self) -> Result<RecoverySet> {
        // One consistent cut of the index; the blocks are decoded outside the lock.
        let (root, descendants, vote_guards, clock_guard, stop_blocks) = self.with_index(|i| {
            let root = match i.finalized_head {
                Some(_) => i.finalized_entry().copied(),
                None => i
                    .by_sn
                    .get(&BlockSn::GENESIS)
                    .and_then(|h| i.by_hash.get(h))
                    .copied(),
            };
            let descendants = root.map(|r| i.descendants(&r.meta)).unwrap_or_default();
            (
                root,
                descendants,
                i.vote_guards.clone(),
                i.clock_guard,
                i.stop_blocks.clone(),
            )
        });
        let root = root.map(|r| self.notarized(&r)).transpose()?;
        let descendants = descendants
            .iter()
            .map(|e| self.notarized(e))
            .collect::<Result<Vec<_>>>()?;
        Ok(RecoverySet {
            root,
            descendants,
            epoch: self.epoch_status()?,
            vote_guards,
            clock_guard,
            stop_blocks,
            committees: self.committees()?,
        })
    }

    /// The segment files, oldest first, with their committed lengths.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let v = self.view();
        v.segments
            .iter()
            .map(|(id, s)| SegmentInfo {
                id: *id,
                path: s.path.clone(),
                len: s.len,
                records: s.records,
                active: *id == v.active,
            })
            .collect()
    }
}

pub(crate) fn heads_of(index: &Index) -> Heads {
    let freshest_notarized = index
        .notarizations
        .iter()
        .rev()
        .find(|(_, n)| index.by_hash.contains_key(&n.block_hash))
        .map(|(sn, _)| *sn);
    Heads {
        finalized: index.finalized_head,
        finalized_block: index
            .finalized_entry()
            .map(|e| (e.meta.height, e.meta.hash)),
        freshest_notarized,
        freshest_block: index.by_sn.keys().next_back().copied(),
        epoch: index.epoch_status.map(|(e, _)| e),
    }
}
