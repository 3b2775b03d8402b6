//! Segment files on disk: names, the directory lock, maps and creation.

use crate::error::{io_err, Result, StorageError};
use crate::segment::{crc_seed, SegmentHeader, SEGMENT_HEADER_LEN};
use memmap2::{Mmap, MmapOptions};
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub(crate) const LOCK_FILE: &str = "LOCK";

pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:020}.log"))
}

pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

pub(crate) fn random_u64() -> u64 {
    // Only needs to differ between segments and processes, not be secret from the OS:
    // std's per-process random hash keys mixed with the clock are enough and avoid a dep.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("open lock file", &path))?;
    // SAFETY: flock on a valid, owned descriptor has no memory-safety preconditions.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            StorageError::Locked(dir.to_path_buf())
        } else {
            StorageError::Io {
                op: "lock",
                path,
                source: e,
            }
        });
    }
    Ok(f)
}

/// Maps `len` bytes of `file` read-only.
pub(crate) fn map(file: &File, len: u64, path: &Path) -> Result<Mmap> {
    let len = usize::try_from(len).map_err(|_| StorageError::Io {
        op: "map",
        path: path.to_path_buf(),
        source: std::io::Error::other("segment larger than the address space"),
    })?;
    // SAFETY: the directory lock keeps other pala processes from writing these files; this
    // process only appends past every offset it reads (or truncates before mapping), and
    // reads never go past the committed length, so mapped bytes never change under a
    // reader. Mapping past the end of the file is allowed; those pages are never touched.
    unsafe { MmapOptions::new().len(len).map(file) }.map_err(io_err("map", path))
}

/// A freshly created, durable, empty segment.
pub(crate) struct NewSegment {
    pub path: PathBuf,
    pub seed: u32,
    pub file: File,
}

/// Creates segment `id` with its header, durable (file and directory entry) before any
/// batch is written: recovery relies on a bad header implying no data.
pub(crate) fn create_segment(dir: &Path, id: u64) -> Result<NewSegment> {
    let path = segment_path(dir, id);
    let nonce = random_u64();
    let header = SegmentHeader::new(id, nonce);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err("create segment", &path))?;
    file.write_all_at(header.bytes(), 0)
        .and_then(|()| file.sync_data())
        .map_err(io_err("write segment header", &path))?;
    sync_dir(dir)?;
    debug_assert_eq!(header.bytes().len(), SEGMENT_HEADER_LEN);
    Ok(NewSegment {
        path,
        seed: crc_seed(nonce),
        file,
    })
}
