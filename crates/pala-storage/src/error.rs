//! Errors of the storage layer.

use pala_types::DecodeError;
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong opening, writing or reading a data directory.
#[derive(Debug, Error)]
pub enum StorageError {
    /// An operating-system call failed.
    #[error("I/O error while trying to {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another `Storage` in this one) has the directory open.
    #[error("data directory {0} is in use by another process (lock held on its LOCK file)")]
    Locked(PathBuf),
    /// `inspect` was pointed at a directory that does not exist.
    #[error("data directory {0} does not exist")]
    NoDataDir(PathBuf),
    /// A segment header is unreadable (and the segment is not a torn, empty last segment).
    #[error("segment {path}: bad header: {reason}")]
    BadSegmentHeader {
        /// The segment file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Data that had been committed does not verify: corruption in the middle of a segment
    /// or anywhere in a segment that is not the last one. Never skipped silently, because
    /// skipping could forget a vote guard or an epoch.
    #[error("segment {path} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the first record that does not verify.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// A record's checksum verified but its payload does not decode (a bug or a format
    /// this build does not understand).
    #[error("segment {path} at offset {offset}: {kind} record does not decode: {source}")]
    Decode {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the record header.
        offset: u64,
        /// Record kind.
        kind: String,
        /// The decode error.
        #[source]
        source: DecodeError,
    },
    /// A single record is larger than [`crate::Options::max_record_len`].
    #[error("record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// Encoded payload size.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The pending batch would exceed what a commit marker can describe.
    #[error("pending batch would reach {len} bytes (limit 4 GiB); sync before appending more")]
    BatchTooLarge {
        /// Size the batch would have had.
        len: usize,
    },
    /// A write or fsync failed earlier. After a failed fsync the kernel may have dropped
    /// dirty pages while reporting success to later calls, so the only safe continuation
    /// is to reopen and let recovery establish what is on disk.
    #[error(
        "storage is unusable after an earlier failure ({0}); reopen the data directory to recover"
    )]
    Poisoned(String),
    /// Direct IO was demanded ([`crate::WritePath::Dma`]) but the directory's filesystem
    /// does not support it.
    #[error("direct IO (O_DIRECT) is not supported for {dir}: {reason}; put the data directory on ext4 or xfs, or allow the page-cache path")]
    DirectIoUnsupported {
        /// The data directory.
        dir: PathBuf,
        /// What the probe found.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, StorageError>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.into();
    move |source| StorageError::Io { op, path, source }
}
