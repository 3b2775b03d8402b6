//! The storage engine: segment files, group commit, recovery and reads.

use crate::error::{io_err, Result, StorageError};
use crate::index::{BlockEntry, Index, Loc, PruneStats};
use crate::record::{EpochStatus, IndexOp, Record, RecordKind, COMMIT_KIND};
use crate::segment::{
    self, commit_payload, crc_seed, finish_record, kind_name, put_record, SegmentHeader,
    COMMIT_RECORD_LEN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use memmap2::{Mmap, MmapOptions};
use pala_types::codec::Decode;
use pala_types::{
    Block, BlockSn, ClockNotarization, Committee, Epoch, Hash, Notarization, NotarizedBlock,
    Session,
};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_size: 64 << 20,
            max_record_len: 64 << 20,
            retention: Retention::KeepAll,
            prune_on_open: true,
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
    instance: u64,
    seq: u64,
}

/// Acknowledgement that every record appended before the [`Storage::sync`] call that
/// returned it is on stable storage (written and fdatasync'ed). Only `sync` constructs it,
/// and only after the fdatasync returned success, so holding one is the proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable {
    instance: u64,
    upto: u64,
    batch: Option<u64>,
    records: usize,
    bytes: u64,
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

struct Segment {
    id: u64,
    path: PathBuf,
    seed: u32,
    map: Mmap,
    len: u64,
    records: u64,
}

struct PendingOp {
    op: IndexOp,
    /// Offset of the record header inside the pending buffer.
    rel: usize,
    kind: u8,
}

/// The storage of one node: a directory of segment files plus in-memory indexes.
///
/// # Durability contract
/// * [`append`](Storage::append) only stages a record in memory and returns a [`Pending`]
///   ticket. Nothing is durable, and nothing is visible to the read API, until
///   [`sync`](Storage::sync) returns `Ok(Durable)`: it writes all staged records as one
///   batch followed by a commit marker, calls fdatasync once, then updates the indexes.
///   A node must not send a message that depends on a record (a vote after its vote guard,
///   a clock message after its clock guard) before it holds a `Durable` that
///   [`covers`](Durable::covers) that record's ticket.
/// * A batch is atomic: after a crash either all of its records are recovered or none
///   (P-2 needs this for notarization + finalized head, and for epoch status + clock
///   notarization).
/// * If a write or fsync fails the storage is poisoned: every later call fails and the
///   process must reopen the directory, which recovers whatever did reach the disk.
/// * Records staged but not synced when the `Storage` is dropped are discarded; they were
///   never acknowledged.
///
/// Reads return slices into the memory maps; the borrow checker keeps them from
/// outliving a remap, since every operation that remaps takes `&mut self`.
pub struct Storage {
    dir: PathBuf,
    opts: Options,
    segments: BTreeMap<u64, Segment>,
    active_id: u64,
    active_file: File,
    /// Mapped length of the active segment; the map may extend past the end of the file
    /// so appends do not need a remap, and only bytes below `len` are ever read.
    active_cap: u64,
    _lock: File,
    instance: u64,
    buf: Vec<u8>,
    ops: Vec<PendingOp>,
    next_record: u64,
    durable_upto: u64,
    next_batch: u64,
    index: Index,
    report: RecoveryReport,
    poisoned: Option<String>,
}

const LOCK_FILE: &str = "LOCK";

pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:020}.log"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
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

fn random_u64() -> u64 {
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

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn lock_dir(dir: &Path) -> Result<File> {
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
fn map(file: &File, len: u64, path: &Path) -> Result<Mmap> {
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

/// The scanned state of a directory, shared by [`Storage::open`] and [`crate::inspect`].
pub(crate) struct Recovered {
    segments: BTreeMap<u64, Segment>,
    files: BTreeMap<u64, File>,
    index: Index,
    report: RecoveryReport,
    last_batch: Option<u64>,
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
        let mut len = file_len;
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

impl Storage {
    /// Opens (creating if needed) the data directory, recovers it and locks it against
    /// other processes. A torn tail is cut off and described in
    /// [`recovery_report`](Storage::recovery_report); corruption anywhere else is an error.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Storage> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err("create data directory", &dir))?;
        let lock = lock_dir(&dir)?;
        let rec = recover(&dir, &opts, true)?;
        let Recovered {
            mut segments,
            mut files,
            index,
            report,
            last_batch,
        } = rec;
        let instance = random_u64();
        let (active_id, active_file) = match segments.keys().next_back().copied() {
            Some(id) => (id, files.remove(&id).expect("every segment has its file")),
            None => {
                let id = report
                    .removed_segment
                    .as_ref()
                    .and_then(|p| p.file_name()?.to_str().and_then(parse_segment_name))
                    .unwrap_or(1);
                let (seg, file) = create_segment(&dir, id)?;
                segments.insert(id, seg);
                (id, file)
            }
        };
        let mut s = Storage {
            dir,
            segments,
            active_id,
            active_file,
            active_cap: 0,
            _lock: lock,
            instance,
            buf: Vec::new(),
            ops: Vec::new(),
            next_record: 1,
            durable_upto: 0,
            next_batch: last_batch.map_or(1, |b| b + 1),
            index,
            report,
            poisoned: None,
            opts,
        };
        s.remap_active(0)?;
        Ok(s)
    }

    /// The directory this storage lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// What recovery found when this storage was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(StorageError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    fn active(&self) -> &Segment {
        &self.segments[&self.active_id]
    }

    /// Ensures the active map covers at least `need` bytes, growing it to a whole segment
    /// so that ordinary appends never remap.
    fn remap_active(&mut self, need: u64) -> Result<()> {
        let seg = &self.segments[&self.active_id];
        let want = need.max(seg.len);
        if self.active_cap >= want && self.active_cap > 0 {
            return Ok(());
        }
        let cap = want.max(self.opts.segment_size);
        let m = map(&self.active_file, cap, &seg.path)?;
        self.segments
            .get_mut(&self.active_id)
            .expect("active segment")
            .map = m;
        self.active_cap = cap;
        Ok(())
    }

    /// Stages a record for the next [`sync`](Storage::sync). The returned ticket is not an
    /// acknowledgement; see the type's contract.
    pub fn append(&mut self, record: &Record) -> Result<Pending> {
        self.check_poisoned()?;
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
        record.encode_payload(&mut self.buf);
        let len = self.buf.len() - start - RECORD_HEADER_LEN;
        if len > self.opts.max_record_len as usize {
            self.buf.truncate(start);
            return Err(StorageError::RecordTooLarge {
                len,
                max: self.opts.max_record_len as usize,
            });
        }
        if self.buf.len() + COMMIT_RECORD_LEN > u32::MAX as usize {
            let len = self.buf.len();
            self.buf.truncate(start);
            return Err(StorageError::BatchTooLarge { len });
        }
        let kind = record.kind().code();
        let seed = self.active().seed;
        finish_record(&mut self.buf, start, len, seed, kind);
        self.ops.push(PendingOp {
            op: record.index_op(),
            rel: start,
            kind,
        });
        let seq = self.next_record;
        self.next_record += 1;
        Ok(Pending {
            instance: self.instance,
            seq,
        })
    }

    /// Number of staged records not yet synced.
    pub fn pending_records(&self) -> usize {
        self.ops.len()
    }

    /// Writes every staged record as one atomic batch, fdatasyncs once, makes the records
    /// visible to reads and returns the acknowledgement. With nothing staged it returns an
    /// acknowledgement for what was already durable, without touching the disk.
    pub fn sync(&mut self) -> Result<Durable> {
        self.check_poisoned()?;
        if self.ops.is_empty() {
            return Ok(Durable {
                instance: self.instance,
                upto: self.durable_upto,
                batch: None,
                records: 0,
                bytes: 0,
            });
        }
        let total = (self.buf.len() + COMMIT_RECORD_LEN) as u64;
        let active_len = self.active().len;
        if active_len > SEGMENT_HEADER_LEN as u64 && active_len + total > self.opts.segment_size {
            self.roll_over()?;
        }
        let seed = self.active().seed;
        let batch_bytes = self.buf.len() as u32;
        let payload = commit_payload(self.next_batch, self.ops.len() as u32, batch_bytes);
        put_record(&mut self.buf, seed, COMMIT_KIND, &payload);
        let base = self.active().len;
        let path = self.active().path.clone();
        if let Err(e) = self
            .active_file
            .write_all_at(&self.buf, base)
            .and_then(|()| self.active_file.sync_data())
        {
            let msg = format!("write/fdatasync of {} failed: {e}", path.display());
            self.poisoned = Some(msg);
            return Err(StorageError::Io {
                op: "append to",
                path,
                source: e,
            });
        }
        let new_len = base + total;
        if let Err(e) = self.remap_active(new_len) {
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        let seg = self
            .segments
            .get_mut(&self.active_id)
            .expect("active segment");
        seg.len = new_len;
        seg.records += self.ops.len() as u64;
        for op in self.ops.drain(..) {
            let mut len_bytes = [0u8; 4];
            len_bytes.copy_from_slice(&self.buf[op.rel..op.rel + 4]);
            let len = u32::from_le_bytes(len_bytes);
            debug_assert_ne!(op.kind, COMMIT_KIND);
            let loc = Loc {
                segment: self.active_id,
                offset: base + (op.rel + RECORD_HEADER_LEN) as u64,
                len,
            };
            self.index.apply(op.op, loc);
        }
        self.index.refresh_finalized();
        let records = (self.next_record - 1 - self.durable_upto) as usize;
        self.durable_upto = self.next_record - 1;
        self.buf.clear();
        let batch = self.next_batch;
        self.next_batch += 1;
        Ok(Durable {
            instance: self.instance,
            upto: self.durable_upto,
            batch: Some(batch),
            records,
            bytes: total,
        })
    }

    /// Appends `records` and syncs them as one batch, together with anything already
    /// staged. If a record cannot be staged, none of `records` is kept.
    pub fn commit<'a>(&mut self, records: impl IntoIterator<Item = &'a Record>) -> Result<Durable> {
        let mark = (self.buf.len(), self.ops.len(), self.next_record);
        for r in records {
            if let Err(e) = self.append(r) {
                self.buf.truncate(mark.0);
                self.ops.truncate(mark.1);
                self.next_record = mark.2;
                return Err(e);
            }
        }
        self.sync()
    }

    /// Starts a new segment and re-seals the staged batch with its checksum seed.
    fn roll_over(&mut self) -> Result<()> {
        let id = self.active_id + 1;
        let (seg, file) = match create_segment(&self.dir, id) {
            Ok(v) => v,
            Err(e) => {
                self.poisoned = Some(e.to_string());
                return Err(e);
            }
        };
        let seed = seg.seed;
        // The old segment is complete: map exactly its length to give back address space.
        let old = self
            .segments
            .get_mut(&self.active_id)
            .expect("active segment");
        old.map = map(&self.active_file, old.len, &old.path)?;
        self.segments.insert(id, seg);
        self.active_id = id;
        self.active_file = file;
        self.active_cap = 0;
        self.remap_active(0)?;
        for op in &self.ops {
            let mut len = [0u8; 4];
            len.copy_from_slice(&self.buf[op.rel..op.rel + 4]);
            finish_record(
                &mut self.buf,
                op.rel,
                u32::from_le_bytes(len) as usize,
                seed,
                op.kind,
            );
        }
        Ok(())
    }

    fn payload(&self, loc: Loc) -> Result<&[u8]> {
        let seg = self
            .segments
            .get(&loc.segment)
            .ok_or_else(|| StorageError::Corrupt {
                path: segment_path(&self.dir, loc.segment),
                offset: loc.offset,
                reason: "indexed segment is gone".into(),
            })?;
        let end = loc.offset + loc.len as u64;
        if end > seg.len {
            return Err(StorageError::Corrupt {
                path: seg.path.clone(),
                offset: loc.offset,
                reason: format!(
                    "indexed record ends at {end}, past the segment end {}",
                    seg.len
                ),
            });
        }
        Ok(&seg.map[loc.offset as usize..end as usize])
    }

    fn decode<T: Decode>(&self, loc: Loc, kind: RecordKind) -> Result<T> {
        let bytes = self.payload(loc)?;
        T::from_bytes(bytes).map_err(|source| StorageError::Decode {
            path: segment_path(&self.dir, loc.segment),
            offset: loc.offset - RECORD_HEADER_LEN as u64,
            kind: kind.name().into(),
            source,
        })
    }

    fn block_at(&self, e: &BlockEntry) -> Result<Block> {
        let b: Block = self.decode(e.loc, RecordKind::Block)?;
        // The checksum was verified on open; the hash check catches anything that changed
        // the file since (a bad disk under the page cache, another writer).
        if b.hash() != e.meta.hash {
            return Err(StorageError::Corrupt {
                path: segment_path(&self.dir, e.loc.segment),
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

    fn entry_by_sn(&self, sn: BlockSn) -> Option<&BlockEntry> {
        self.index
            .by_sn
            .get(&sn)
            .and_then(|h| self.index.by_hash.get(h))
    }

    /// The canonical encoding of the block at `sn`, straight from the map (no copy).
    pub fn block_bytes(&self, sn: BlockSn) -> Result<Option<&[u8]>> {
        self.entry_by_sn(sn)
            .map(|e| self.payload(e.loc))
            .transpose()
    }

    /// The canonical encoding of the block with this hash, straight from the map.
    pub fn block_bytes_by_hash(&self, hash: &Hash) -> Result<Option<&[u8]>> {
        self.index
            .by_hash
            .get(hash)
            .map(|e| self.payload(e.loc))
            .transpose()
    }

    /// The block at `sn` (the latest stored one if a proposer equivocated).
    pub fn block(&self, sn: BlockSn) -> Result<Option<Block>> {
        self.entry_by_sn(sn).map(|e| self.block_at(e)).transpose()
    }

    /// The block with this hash.
    pub fn block_by_hash(&self, hash: &Hash) -> Result<Option<Block>> {
        self.index
            .by_hash
            .get(hash)
            .map(|e| self.block_at(e))
            .transpose()
    }

    /// True if a block with this hash is stored.
    pub fn has_block(&self, hash: &Hash) -> bool {
        self.index.by_hash.contains_key(hash)
    }

    /// `(sn, hash)` of the finalized block at `height`, if the finalized chain down to it
    /// is stored.
    pub fn finalized_at(&self, height: u64) -> Option<(BlockSn, Hash)> {
        self.index.finalized.get(&height).copied()
    }

    /// The finalized block at `height`.
    pub fn finalized_block(&self, height: u64) -> Result<Option<Block>> {
        match self.index.finalized.get(&height) {
            None => Ok(None),
            Some((_, h)) => self.block_by_hash(h),
        }
    }

    /// The finalized block at `height` as raw bytes from the map.
    pub fn finalized_block_bytes(&self, height: u64) -> Result<Option<&[u8]>> {
        match self.index.finalized.get(&height) {
            None => Ok(None),
            Some((_, h)) => self.block_bytes_by_hash(h),
        }
    }

    /// Heights `(lowest, highest)` of the stored contiguous finalized chain.
    pub fn finalized_range(&self) -> Option<(u64, u64)> {
        let lo = *self.index.finalized.keys().next()?;
        let hi = *self.index.finalized.keys().next_back()?;
        Some((lo, hi))
    }

    /// The best (latest written) notarization for `sn`.
    pub fn notarization(&self, sn: BlockSn) -> Result<Option<Notarization>> {
        self.index
            .notarizations
            .get(&sn)
            .map(|n| self.decode(n.loc, RecordKind::Notarization))
            .transpose()
    }

    /// The block at `sn` with its notarization, as chain sync sends it (N-10).
    pub fn notarized_block(&self, sn: BlockSn) -> Result<Option<NotarizedBlock>> {
        let Some(e) = self.entry_by_sn(sn).copied() else {
            return Ok(None);
        };
        self.notarized(&e).map(Some)
    }

    fn notarized(&self, e: &BlockEntry) -> Result<NotarizedBlock> {
        let block = Arc::new(self.block_at(e)?);
        let notarization = match self.index.notarizations.get(&e.meta.sn) {
            Some(n) if n.block_hash == e.meta.hash => {
                Some(self.decode(n.loc, RecordKind::Notarization)?)
            }
            _ => None,
        };
        Ok(NotarizedBlock {
            block,
            notarization,
        })
    }

    /// The latest epoch status (the highest epoch ever written).
    pub fn epoch_status(&self) -> Result<Option<EpochStatus>> {
        self.index
            .epoch_status
            .map(|(_, loc)| self.decode(loc, RecordKind::EpochStatus))
            .transpose()
    }

    /// The stored clock notarization for `epoch`.
    pub fn clock_notarization(&self, epoch: Epoch) -> Result<Option<ClockNotarization>> {
        self.index
            .clock_notarizations
            .get(&epoch)
            .map(|loc| self.decode(*loc, RecordKind::ClockNotarization))
            .transpose()
    }

    /// The newest stored clock notarization of `session` (for `get-epoch`, W-7.2).
    pub fn newest_clock_notarization(&self, session: Session) -> Result<Option<ClockNotarization>> {
        self.index
            .clock_notarizations
            .range(Epoch::new(session, 0)..=Epoch::new(session, u32::MAX))
            .next_back()
            .map(|(_, loc)| self.decode(*loc, RecordKind::ClockNotarization))
            .transpose()
    }

    /// Highest `s` voted in `epoch`.
    pub fn vote_guard(&self, epoch: Epoch) -> Option<u32> {
        self.index.vote_guards.get(&epoch).copied()
    }

    /// All vote guards still kept.
    pub fn vote_guards(&self) -> &BTreeMap<Epoch, u32> {
        &self.index.vote_guards
    }

    /// Highest epoch a clock message was signed for.
    pub fn clock_guard(&self) -> Option<Epoch> {
        self.index.clock_guard
    }

    /// The finalized head sn.
    pub fn finalized_head(&self) -> Option<BlockSn> {
        self.index.finalized_head
    }

    /// Stop-block height of `session`.
    pub fn stop_block(&self, session: Session) -> Option<u64> {
        self.index.stop_blocks.get(&session).copied()
    }

    /// All stop blocks.
    pub fn stop_blocks(&self) -> &BTreeMap<Session, u64> {
        &self.index.stop_blocks
    }

    /// The stored committee of `session`.
    pub fn committee(&self, session: Session) -> Result<Option<Committee>> {
        self.index
            .committees
            .get(&session)
            .map(|loc| self.decode(*loc, RecordKind::Committee))
            .transpose()
    }

    /// Every stored committee, oldest session first.
    pub fn committees(&self) -> Result<Vec<Committee>> {
        self.index
            .committees
            .values()
            .map(|loc| self.decode(*loc, RecordKind::Committee))
            .collect()
    }

    /// Number of indexed blocks.
    pub fn block_count(&self) -> usize {
        self.index.by_hash.len()
    }

    /// Number of indexed notarizations.
    pub fn notarization_count(&self) -> usize {
        self.index.notarizations.len()
    }

    /// Heads summary.
    pub fn heads(&self) -> Heads {
        heads_of(&self.index)
    }

    /// What a consensus core needs to restart (see [`RecoverySet`]).
    pub fn recovery_set(&self) -> Result<RecoverySet> {
        let root = match self.index.finalized_head {
            Some(_) => self.index.finalized_entry().copied(),
            None => self.entry_by_sn(BlockSn::GENESIS).copied(),
        };
        let (root_nb, descendants) = match root {
            None => (None, Vec::new()),
            Some(r) => {
                let d = self
                    .index
                    .descendants(&r.meta)
                    .iter()
                    .map(|e| self.notarized(e))
                    .collect::<Result<Vec<_>>>()?;
                (Some(self.notarized(&r)?), d)
            }
        };
        Ok(RecoverySet {
            root: root_nb,
            descendants,
            epoch: self.epoch_status()?,
            vote_guards: self.index.vote_guards.clone(),
            clock_guard: self.index.clock_guard,
            stop_blocks: self.index.stop_blocks.clone(),
            committees: self.committees()?,
        })
    }

    /// Drops forks and stale data below the finalized head from the indexes: blocks that
    /// neither are on the finalized chain nor descend from the finalized head, their
    /// notarizations, and vote guards of epochs the node can no longer vote in. The bytes
    /// stay in their segments until [`compact`](Storage::compact) rewrites them.
    pub fn prune(&mut self) -> PruneStats {
        self.index.prune()
    }

    /// Applies the [`Retention`] policy: deletes old segments whose only live content is
    /// finalized blocks below the retention window, after copying everything else they
    /// hold that is still live (blocks, notarizations, epoch status, clock notarizations,
    /// committees) plus a checkpoint of the small state records (guards, finalized head,
    /// stop blocks) into one new durable batch. Pruned forks in those segments go with them. Never
    /// touches the active segment. Returns the deleted segment ids.
    ///
    /// Crash safety: the copies are durable before any file is deleted, and duplicates
    /// left by a crash between the two are harmless (indexing is idempotent).
    pub fn compact(&mut self) -> Result<Vec<u64>> {
        self.check_poisoned()?;
        let Retention::KeepFinalizedHeights(keep) = self.opts.retention else {
            return Ok(Vec::new());
        };
        let Some(head) = self.index.finalized_entry().copied() else {
            return Ok(Vec::new());
        };
        self.index.prune();
        let threshold = head.meta.height.saturating_sub(keep);
        // Candidates: the oldest non-active segments, stopping at the first one holding a
        // finalized block inside the window (later ones would too, as heights grow with ids).
        let recent: std::collections::HashSet<u64> = self
            .index
            .finalized
            .range(threshold..)
            .filter_map(|(_, (_, h))| self.index.by_hash.get(h).map(|e| e.loc.segment))
            .collect();
        let mut victims: Vec<u64> = Vec::new();
        for &id in self.segments.keys() {
            if id == self.active_id || recent.contains(&id) {
                break;
            }
            victims.push(id);
        }
        if victims.is_empty() {
            return Ok(Vec::new());
        }
        let doomed = |loc: &Loc| victims.contains(&loc.segment);
        self.index.forget_finalized_below(threshold);
        let mut copies: Vec<Record> = Vec::new();
        let mut blocks: Vec<&BlockEntry> = self
            .index
            .by_hash
            .values()
            .filter(|e| doomed(&e.loc))
            .collect();
        blocks.sort_by_key(|e| (e.meta.height, e.meta.sn));
        for e in blocks {
            copies.push(Record::Block(Arc::new(self.block_at(e)?)));
        }
        for n in self.index.notarizations.values().filter(|n| doomed(&n.loc)) {
            copies.push(Record::Notarization(
                self.decode(n.loc, RecordKind::Notarization)?,
            ));
        }
        for loc in self
            .index
            .clock_notarizations
            .values()
            .filter(|l| doomed(l))
        {
            copies.push(Record::ClockNotarization(
                self.decode(*loc, RecordKind::ClockNotarization)?,
            ));
        }
        for loc in self.index.committees.values().filter(|l| doomed(l)) {
            copies.push(Record::Committee(self.decode(*loc, RecordKind::Committee)?));
        }
        if let Some(status) = self.epoch_status()? {
            copies.push(Record::EpochStatus(status));
        }
        copies.extend(
            self.index
                .vote_guards
                .iter()
                .map(|(e, s)| Record::VoteGuard { epoch: *e, s: *s }),
        );
        copies.extend(self.index.clock_guard.map(Record::ClockGuard));
        copies.extend(self.index.finalized_head.map(Record::FinalizedHead));
        copies.extend(
            self.index
                .stop_blocks
                .iter()
                .map(|(s, h)| Record::StopBlock {
                    session: *s,
                    height: *h,
                }),
        );
        self.commit(&copies)?;
        for id in &victims {
            if let Some(seg) = self.segments.remove(id) {
                fs::remove_file(&seg.path)
                    .map_err(io_err("remove compacted segment", &seg.path))?;
            }
        }
        sync_dir(&self.dir)?;
        Ok(victims)
    }

    /// The segment files, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segments
            .values()
            .map(|s| SegmentInfo {
                id: s.id,
                path: s.path.clone(),
                len: s.len,
                records: s.records,
                active: s.id == self.active_id,
            })
            .collect()
    }

    /// Syncs anything staged and closes the directory.
    pub fn close(mut self) -> Result<Durable> {
        self.sync()
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

fn create_segment(dir: &Path, id: u64) -> Result<(Segment, File)> {
    let path = segment_path(dir, id);
    let nonce = random_u64();
    let header = SegmentHeader::new(id, nonce);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err("create segment", &path))?;
    // Header durable before any batch: recovery relies on a bad header implying no data.
    file.write_all_at(header.bytes(), 0)
        .and_then(|()| file.sync_data())
        .map_err(io_err("write segment header", &path))?;
    sync_dir(dir)?;
    let map = map(&file, SEGMENT_HEADER_LEN as u64, &path)?;
    Ok((
        Segment {
            id,
            path,
            seed: crc_seed(nonce),
            map,
            len: SEGMENT_HEADER_LEN as u64,
            records: 0,
        },
        file,
    ))
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
