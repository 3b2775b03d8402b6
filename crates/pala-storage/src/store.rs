//! What the storage engine promises and reports: options, durability tickets, recovery
//! reports and the recovery set.

use crate::index::PruneStats;
use crate::record::EpochStatus;
use pala_types::{BlockSn, Committee, Epoch, Hash, NotarizedBlock, Session};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Tuning knobs of a data directory.
#[derive(Clone, Debug)]
pub struct Options {
    /// A new segment is started when a batch would push the active one past this size.
    /// A batch never spans segments, so a single batch larger than this gets a segment of
    /// its own. Default 64 MiB.
    pub segment_size: u64,
    /// Largest accepted record payload; larger lengths found on disk are treated as
    /// corruption. Default 64 MiB.
    pub max_record_len: u32,
    /// What [`Storage::compact`] may delete. Default [`Retention::KeepAll`].
    pub retention: Retention,
    /// Run [`Storage::prune`] at the end of recovery. Default true.
    pub prune_on_open: bool,
    /// How [`crate::LogWriter`] writes. Default [`WritePath::Auto`].
    pub write_path: WritePath,
}

/// How batches reach the disk (see [`crate::LogWriter`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WritePath {
    /// Direct IO through io_uring where the filesystem supports `O_DIRECT`, else the page
    /// cache (logged once at open).
    #[default]
    Auto,
    /// Direct IO through io_uring, or refuse to open.
    Dma,
    /// Positional writes and fdatasync through the page cache.
    PageCache,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_size: 64 << 20,
            max_record_len: 64 << 20,
            retention: Retention::KeepAll,
            prune_on_open: true,
            write_path: WritePath::Auto,
        }
    }
}

/// How long old finalized data is kept on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Never delete segments.
    KeepAll,
    /// Keep finalized blocks whose height is within this distance of the finalized head;
    /// segments holding only older data are rewritten (live records copied forward) and
    /// deleted by [`Storage::compact`].
    KeepFinalizedHeights(u64),
}

/// Proof that a record was appended, *not* that it is durable. Compare it with a
/// [`Durable`] from [`Storage::sync`] to learn that.
#[must_use = "a Pending ticket is only useful to check against a later Durable"]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub(crate) instance: u64,
    pub(crate) seq: u64,
}

/// Acknowledgement that every record appended before the [`Storage::sync`] call that
/// returned it is on stable storage (written and fdatasync'ed). Only `sync` constructs it,
/// and only after the fdatasync returned success, so holding one is the proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable {
    pub(crate) instance: u64,
    pub(crate) upto: u64,
    pub(crate) batch: Option<u64>,
    pub(crate) records: usize,
    pub(crate) bytes: u64,
}

impl Durable {
    /// True if the ticket's record is covered by this acknowledgement.
    pub fn covers(&self, p: &Pending) -> bool {
        p.instance == self.instance && p.seq <= self.upto
    }
    /// Sequence number of the batch this sync committed (`None` if nothing was pending).
    pub fn batch(&self) -> Option<u64> {
        self.batch
    }
    /// Records committed by this sync.
    pub fn records(&self) -> usize {
        self.records
    }
    /// Bytes written by this sync, framing included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// What was dropped from the end of the log on open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The segment file.
    pub segment: PathBuf,
    /// The file was cut at this offset (end of the last committed batch).
    pub offset: u64,
    /// Bytes removed.
    pub dropped_bytes: u64,
    /// Records in the removed range that verified on their own but belonged to a batch
    /// that never committed (the writer never acknowledged them).
    pub dropped_records: usize,
    /// Offset of the first record that failed to verify, or of the missing commit marker.
    pub bad_offset: u64,
    /// Why the tail was judged torn.
    pub reason: String,
}

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files read.
    pub segments: usize,
    /// Committed batches found.
    pub batches: u64,
    /// Committed records found, by kind name.
    pub records: BTreeMap<&'static str, u64>,
    /// A torn tail that was cut off (or, for [`crate::inspect`], would be).
    pub truncated: Option<Truncation>,
    /// A last segment whose header never became durable (crash while creating it); it
    /// held no data and was removed.
    pub removed_segment: Option<PathBuf>,
    /// What pruning removed from the indexes after the scan.
    pub pruned: PruneStats,
}

impl RecoveryReport {
    /// True when nothing had to be dropped or removed.
    pub fn is_clean(&self) -> bool {
        self.truncated.is_none() && self.removed_segment.is_none()
    }

    /// Total committed records.
    pub fn total_records(&self) -> u64 {
        self.records.values().sum()
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "recovery: {} segments, {} batches, {} records",
            self.segments,
            self.batches,
            self.total_records()
        )?;
        for (k, n) in &self.records {
            writeln!(f, "  {k:<20} {n}")?;
        }
        match &self.truncated {
            None => writeln!(f, "  tail: clean")?,
            Some(t) => writeln!(
                f,
                "  tail: torn in {} at offset {}: {}; cut at {}, dropped {} bytes ({} uncommitted records)",
                t.segment.display(),
                t.bad_offset,
                t.reason,
                t.offset,
                t.dropped_bytes,
                t.dropped_records
            )?,
        }
        if let Some(p) = &self.removed_segment {
            writeln!(f, "  removed segment with a torn header: {}", p.display())?;
        }
        let p = &self.pruned;
        write!(
            f,
            "  pruned from index: {} blocks, {} notarizations, {} vote guards",
            p.blocks, p.notarizations, p.vote_guards
        )
    }
}

/// One segment file as seen by [`Storage::segments`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Segment id (increasing).
    pub id: u64,
    /// File path.
    pub path: PathBuf,
    /// Valid length in bytes.
    pub len: u64,
    /// Committed records (commit markers excluded).
    pub records: u64,
    /// True for the segment receiving appends.
    pub active: bool,
}

/// The heads a node reports in its status and `inspect` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heads {
    /// Finalized head sn (from the latest finalized-head record).
    pub finalized: Option<BlockSn>,
    /// Height and hash of the finalized head block, if it is stored.
    pub finalized_block: Option<(u64, Hash)>,
    /// Freshest sn that has both a stored block and a notarization.
    pub freshest_notarized: Option<BlockSn>,
    /// Freshest stored block sn.
    pub freshest_block: Option<BlockSn>,
    /// Local epoch from the latest epoch status.
    pub epoch: Option<Epoch>,
}

/// Everything a consensus core needs to restart from this data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoverySet {
    /// The finalized head block with its notarization; when no finalized head was ever
    /// recorded, the stored genesis block (sn `(0,0,1)`) if any.
    pub root: Option<NotarizedBlock>,
    /// Every stored block that descends from `root`, parents before children, each with
    /// its best stored notarization.
    pub descendants: Vec<NotarizedBlock>,
    /// Latest epoch status.
    pub epoch: Option<EpochStatus>,
    /// Highest voted `s` per epoch.
    pub vote_guards: BTreeMap<Epoch, u32>,
    /// Highest epoch a clock message was signed for.
    pub clock_guard: Option<Epoch>,
    /// Stop-block heights per session.
    pub stop_blocks: BTreeMap<Session, u64>,
    /// Installed committees, oldest session first (the caller picks those still in force).
    pub committees: Vec<Committee>,
}
