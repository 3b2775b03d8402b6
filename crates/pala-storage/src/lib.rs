//! Durable storage of a PaLa node (docs/protocol.md section 9, section 0.1 items 7 and 8).
//!
//! A data directory holds append-only segment files (`seg-NNNN….log`) and a `LOCK` file.
//! Records are framed as `u32 length ‖ u8 type ‖ u32 crc32c ‖ payload` and grouped into
//! batches that end with a commit marker; one batch is written with one write and made
//! durable with one fdatasync (group commit).
//!
//! One writer, many readers. [`Storage`] is the writer (staging, group commit, pruning,
//! compaction); [`LogWriter`] drives it from a glommio executor and submits each batch's
//! write and fdatasync through io_uring with `O_DIRECT` (aligned blocks, the partial tail
//! block rewritten with its committed prefix unchanged), falling back to the page cache
//! where the filesystem has no direct IO. [`StorageReader`] is a clonable `Send + Sync`
//! read handle: a batch becomes visible to it only once durable (P-2), and reads go
//! through memory maps without ever waiting for a write or an fdatasync in progress.
//!
//! On open every segment is verified and the in-memory indexes are rebuilt. A torn tail
//! (the last batch of the last segment, cut or scrambled by a crash) is cut off and
//! described in a [`RecoveryReport`]; damage anywhere else is a [`StorageError::Corrupt`]
//! naming the segment and offset.
//!
//! See [`Storage`] for the durability contract and [`inspect()`] for the read-only view.
//!
//! Linux only (uses `flock`, positional writes, `fdatasync`, io_uring); reads rely on the
//! unified page cache of Linux to see appended bytes through an existing map.

#![warn(missing_docs)]

mod dma;
mod error;
mod files;
mod index;
mod inspect;
mod reader;
mod record;
mod recover;
mod segment;
mod store;
mod writer;

pub use dma::{IoPath, LogWriter};
pub use error::{Result, StorageError};
pub use index::PruneStats;
pub use inspect::{inspect, Summary};
pub use reader::{MappedBytes, StorageReader};
pub use record::{EpochStatus, Record, RecordKind};
pub use segment::SCHEMA_VERSION;
pub use store::{
    Durable, Heads, Options, Pending, RecoveryReport, RecoverySet, Retention, SegmentInfo,
    Truncation, WritePath,
};
pub use writer::Storage;
