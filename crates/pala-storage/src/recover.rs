//! Recovery: scan every segment, verify it, cut a torn tail, rebuild the index.

use crate::error::{io_err, Result, StorageError};
use crate::files::{list_segments, map, segment_path, sync_dir};
use crate::index::{Index, Loc};
use crate::record::{Record, RecordKind};
use crate::segment::{self, crc_seed, kind_name, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::store::{Options, RecoveryReport, SegmentInfo, Truncation};
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A segment as recovery found it.
pub(crate) struct Segment {
    pub id: u64,
    pub path: PathBuf,
    pub seed: u32,
    pub map: Mmap,
    /// Committed (logical) length.
    pub len: u64,
    pub records: u64,
}

/// The scanned state of a directory, shared by [`crate::Storage::open`] and [`crate::inspect`].
pub(crate) struct Recovered {
    pub segments: BTreeMap<u64, Segment>,
    pub files: BTreeMap<u64, File>,
    pub index: Index,
    pub report: RecoveryReport,
    pub last_batch: Option<u64>,
}

/// Scans every segment, verifies it, rebuilds the index. With `repair`, cuts a torn tail
/// and removes a torn empty last segment; without, only reports them.
pub(crate) fn recover(dir: &Path, opts: &Options, repair: bool) -> Result<Recovered> {
    let ids = list_segments(dir)?;
    let mut out = Recovered {
        segments: BTreeMap::new(),
        files: BTreeMap::new(),
        index: Index::default(),
        report: RecoveryReport::default(),
        last_batch: None,
    };
    let max_len = opts.max_record_len as usize;
    for (i, &id) in ids.iter().enumerate() {
        let is_last = i + 1 == ids.len();
        let path = segment_path(dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(repair)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let file_len = file.metadata().map_err(io_err("stat", &path))?.len();
        out.report.segments += 1;
        let mut head = [0u8; SEGMENT_HEADER_LEN];
        let got = file.read_at(&mut head, 0).map_err(io_err("read", &path))?;
        let header = match SegmentHeader::parse(&head[..got], id) {
            Ok(h) => h,
            // The header is fdatasync'ed before any batch is written, so a bad header with
            // nothing after it can only be a crash during creation of the last segment.
            Err(_) if is_last && file_len <= SEGMENT_HEADER_LEN as u64 => {
                if repair {
                    drop(file);
                    fs::remove_file(&path).map_err(io_err("remove torn segment", &path))?;
                    sync_dir(dir)?;
                }
                out.report.removed_segment = Some(path);
                continue;
            }
            Err(reason) => return Err(StorageError::BadSegmentHeader { path, reason }),
        };
        let seed = crc_seed(header.nonce());
        let image = map(&file, file_len, &path)?;
        let scan = segment::scan(&image, seed, max_len, out.last_batch);
        // Below the file length when a DMA writer padded the last block (see `segment`).
        let mut len = scan.end as u64;
        if let Some(d) = &scan.damage {
            if !is_last || d.valid_data_after {
                let why = if is_last {
                    "committed batches follow it"
                } else {
                    "a later segment exists"
                };
                return Err(StorageError::Corrupt {
                    path,
                    offset: d.bad_offset as u64,
                    reason: format!("{} ({why}, so this is not a torn tail)", d.reason),
                });
            }
            out.report.truncated = Some(Truncation {
                segment: path.clone(),
                offset: d.committed_end as u64,
                dropped_bytes: file_len - d.committed_end as u64,
                dropped_records: d.uncommitted_records,
                bad_offset: d.bad_offset as u64,
                reason: d.reason.clone(),
            });
            len = d.committed_end as u64;
            if repair {
                file.set_len(len)
                    .map_err(io_err("truncate torn tail of", &path))?;
                file.sync_all().map_err(io_err("fsync", &path))?;
            }
        }
        for raw in &scan.records {
            let kind = RecordKind::from_code(raw.kind).ok_or_else(|| StorageError::Corrupt {
                path: path.clone(),
                offset: raw.offset as u64,
                reason: format!(
                    "committed record has unknown type {} (written by a newer version?)",
                    kind_name(raw.kind)
                ),
            })?;
            let payload = &image[raw.payload_off..raw.end()];
            let rec =
                Record::decode_payload(kind, payload).map_err(|source| StorageError::Decode {
                    path: path.clone(),
                    offset: raw.offset as u64,
                    kind: kind.name().to_string(),
                    source,
                })?;
            let loc = Loc {
                segment: id,
                offset: raw.payload_off as u64,
                len: raw.len as u32,
            };
            out.index.apply(rec.index_op(), loc);
            *out.report.records.entry(kind.name()).or_default() += 1;
        }
        out.report.batches += scan.batches;
        if scan.last_batch_seq.is_some() {
            out.last_batch = scan.last_batch_seq;
        }
        drop(image);
        let map = map(&file, len, &path)?;
        out.segments.insert(
            id,
            Segment {
                id,
                path,
                seed,
                map,
                len,
                records: scan.records.len() as u64,
            },
        );
        out.files.insert(id, file);
    }
    out.index.refresh_finalized();
    if opts.prune_on_open {
        out.report.pruned = out.index.prune();
    }
    Ok(out)
}

pub(crate) struct Inspected {
    pub index: Index,
    pub report: RecoveryReport,
    pub segments: Vec<SegmentInfo>,
}

/// Read-only recovery for `inspect`.
pub(crate) fn inspect_dir(dir: &Path, opts: &Options) -> Result<Inspected> {
    if !dir.is_dir() {
        return Err(StorageError::NoDataDir(dir.to_path_buf()));
    }
    let rec = recover(dir, opts, false)?;
    let last = rec.segments.keys().next_back().copied();
    let segments = rec
        .segments
        .values()
        .map(|s| SegmentInfo {
            id: s.id,
            path: s.path.clone(),
            len: s.len,
            records: s.records,
            active: Some(s.id) == last,
        })
        .collect();
    Ok(Inspected {
        index: rec.index,
        report: rec.report,
        segments,
    })
}
