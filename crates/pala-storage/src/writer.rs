//! The write half: staging, group commit through the page cache, segment roll-over,
//! pruning and compaction. The DMA path ([`crate::LogWriter`]) reuses the staging, sealing
//! and publication steps here and replaces only the write and the fdatasync.

use crate::error::{io_err, Result, StorageError};
use crate::files::{create_segment, lock_dir, map, sync_dir};
use crate::index::{BlockEntry, Loc, PruneStats};
use crate::reader::{SegmentView, StorageReader, View};
use crate::record::{IndexOp, Record, RecordKind, COMMIT_KIND};
use crate::recover::{recover, Recovered};
use crate::segment::{
    commit_payload, finish_record, put_record, COMMIT_RECORD_LEN, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN,
};
use crate::store::{Durable, Options, Pending, RecoveryReport, Retention};
use memmap2::Mmap;
use std::fs::{self, File};
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct PendingOp {
    op: IndexOp,
    /// Offset of the record header inside the pending buffer.
    rel: usize,
    kind: u8,
}

/// The segment receiving appends.
pub(crate) struct ActiveSegment {
    pub id: u64,
    pub path: PathBuf,
    pub seed: u32,
    pub file: File,
    /// Committed (logical) length: where the next batch goes. The file may be longer
    /// (DMA block padding, or a torn write not yet overwritten).
    pub len: u64,
    pub records: u64,
    pub map: Arc<Mmap>,
    /// Mapped length; the map may extend past the end of the file so that appends do not
    /// need a remap, and only bytes below `len` are ever read.
    pub cap: u64,
}

/// A batch sealed with its commit marker, ready to be written at `base` of `segment`.
pub(crate) struct Sealed {
    pub segment: u64,
    pub base: u64,
    pub total: u64,
}

/// A test-only callback the writer runs in the middle of each commit, after the batch's
/// write and before its fdatasync and publication, so that a test can check that readers
/// do not wait for a commit on the disk. Empty unless the `test-hooks` feature is on.
#[derive(Default)]
pub(crate) struct CommitIoHook {
    #[cfg(feature = "test-hooks")]
    hook: Option<Box<dyn Fn() + Send + Sync>>,
}

impl CommitIoHook {
    #[inline]
    pub(crate) fn fire(&self) {
        #[cfg(feature = "test-hooks")]
        if let Some(hook) = &self.hook {
            hook();
        }
    }
}

/// The storage of one node: a directory of segment files plus in-memory indexes. This is
/// the single writer; [`reader`](Storage::reader) hands out read handles, and every read
/// method of [`StorageReader`] is available here too (through `Deref`).
///
/// # Durability contract
/// * [`append`](Storage::append) only stages a record in memory and returns a [`Pending`]
///   ticket. Nothing is durable, and nothing is visible to the read API, until
///   [`sync`](Storage::sync) returns `Ok(Durable)`: it writes all staged records as one
///   batch followed by a commit marker, calls fdatasync once, then publishes the records
///   to readers. A node must not send a message that depends on a record (a vote after
///   its vote guard, a clock message after its clock guard) before it holds a `Durable`
///   that [`covers`](Durable::covers) that record's ticket.
/// * A batch is atomic: after a crash either all of its records are recovered or none
///   (P-2 needs this for notarization + finalized head, and for epoch status + clock
///   notarization).
/// * If a write or fsync fails the storage is poisoned: every later call fails and the
///   process must reopen the directory, which recovers whatever did reach the disk.
/// * Records staged but not synced when the `Storage` is dropped are discarded; they were
///   never acknowledged.
pub struct Storage {
    opts: Options,
    reader: StorageReader,
    pub(crate) active: ActiveSegment,
    _lock: File,
    instance: u64,
    pub(crate) buf: Vec<u8>,
    ops: Vec<PendingOp>,
    next_record: u64,
    durable_upto: u64,
    next_batch: u64,
    report: RecoveryReport,
    poisoned: Option<String>,
    pub(crate) commit_io_hook: CommitIoHook,
}

impl Deref for Storage {
    type Target = StorageReader;
    fn deref(&self) -> &StorageReader {
        &self.reader
    }
}

impl Storage {
    /// Opens (creating if needed) the data directory, recovers it and locks it against
    /// other processes. A torn tail is cut off and described in
    /// [`recovery_report`](Storage::recovery_report); corruption anywhere else is an error.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Storage> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err("create data directory", &dir))?;
        let lock = lock_dir(&dir)?;
        let Recovered {
            segments,
            mut files,
            index,
            report,
            last_batch,
        } = recover(&dir, &opts, true)?;
        let mut seeds = std::collections::BTreeMap::new();
        let mut views = std::collections::BTreeMap::new();
        for (id, s) in segments {
            seeds.insert(id, s.seed);
            let view = SegmentView {
                path: s.path,
                map: Arc::new(s.map),
                len: s.len,
                records: s.records,
            };
            views.insert(id, view);
        }
        let active = match views.keys().next_back().copied() {
            Some(id) => {
                let v = &views[&id];
                let file = files.remove(&id).expect("every segment has its file");
                let seed = seeds[&id];
                let cap = opts.segment_size.max(v.len);
                ActiveSegment {
                    id,
                    path: v.path.clone(),
                    seed,
                    map: Arc::new(map(&file, cap, &v.path)?),
                    file,
                    len: v.len,
                    records: v.records,
                    cap,
                }
            }
            None => {
                let id = report
                    .removed_segment
                    .as_ref()
                    .and_then(|p| {
                        p.file_name()?
                            .to_str()
                            .and_then(crate::files::parse_segment_name)
                    })
                    .unwrap_or(1);
                new_active(&dir, id, &opts)?
            }
        };
        views.insert(active.id, active.view());
        let reader = StorageReader::new(
            dir,
            View {
                index,
                segments: views,
                active: active.id,
            },
        );
        Ok(Storage {
            reader,
            active,
            _lock: lock,
            instance: crate::files::random_u64(),
            buf: Vec::new(),
            ops: Vec::new(),
            next_record: 1,
            durable_upto: 0,
            next_batch: last_batch.map_or(1, |b| b + 1),
            report,
            poisoned: None,
            commit_io_hook: CommitIoHook::default(),
            opts,
        })
    }

    /// A read handle (cheap to clone, `Send + Sync`, never waits for a commit).
    pub fn reader(&self) -> StorageReader {
        self.reader.clone()
    }

    /// The options it was opened with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// What recovery found when this storage was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Test only: runs `hook` on the writer's thread during every later commit, between
    /// the batch's write and its fdatasync (on both write paths), before publication.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn set_commit_io_hook(&mut self, hook: impl Fn() + Send + Sync + 'static) {
        self.commit_io_hook.hook = Some(Box::new(hook));
    }

    pub(crate) fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(StorageError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Marks the storage unusable after a failed write or sync (see the contract).
    pub(crate) fn poison(&mut self, op: &'static str, e: std::io::Error) -> StorageError {
        let path = self.active.path.clone();
        self.poisoned = Some(format!("{op} {} failed: {e}", path.display()));
        StorageError::Io {
            op,
            path,
            source: e,
        }
    }

    /// Marks the storage unusable for a reason other than a failed write.
    pub(crate) fn poison_with(&mut self, why: String) {
        self.poisoned = Some(why);
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
        finish_record(&mut self.buf, start, len, self.active.seed, kind);
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

    /// The acknowledgement for what is already durable.
    pub(crate) fn ack_durable(&self) -> Durable {
        Durable {
            instance: self.instance,
            upto: self.durable_upto,
            batch: None,
            records: 0,
            bytes: 0,
        }
    }

    /// Closes the staged batch with its commit marker, rolling over to a new segment
    /// first if the batch does not fit. `None` when nothing is staged.
    pub(crate) fn seal(&mut self) -> Result<Option<Sealed>> {
        self.check_poisoned()?;
        if self.ops.is_empty() {
            return Ok(None);
        }
        let total = (self.buf.len() + COMMIT_RECORD_LEN) as u64;
        if self.active.len > SEGMENT_HEADER_LEN as u64
            && self.active.len + total > self.opts.segment_size
        {
            self.roll_over()?;
        }
        let payload = commit_payload(
            self.next_batch,
            self.ops.len() as u32,
            self.buf.len() as u32,
        );
        put_record(&mut self.buf, self.active.seed, COMMIT_KIND, &payload);
        Ok(Some(Sealed {
            segment: self.active.id,
            base: self.active.len,
            total,
        }))
    }

    /// After the sealed batch is durable: makes its records visible to readers and
    /// returns the acknowledgement. The view's lock is held only for the index update.
    pub(crate) fn publish(&mut self, sealed: Sealed) -> Result<Durable> {
        let new_len = sealed.base + sealed.total;
        if new_len > self.active.cap {
            // Only a batch larger than the segment size gets here (it has a segment of
            // its own); map it whole before anyone can look for its records.
            let m = map(&self.active.file, new_len, &self.active.path)
                .inspect_err(|e| self.poisoned = Some(e.to_string()))?;
            self.active.map = Arc::new(m);
            self.active.cap = new_len;
        }
        self.active.len = new_len;
        self.active.records += self.ops.len() as u64;
        let updates: Vec<(IndexOp, Loc)> = self
            .ops
            .drain(..)
            .map(|op| {
                let mut len_bytes = [0u8; 4];
                len_bytes.copy_from_slice(&self.buf[op.rel..op.rel + 4]);
                debug_assert_ne!(op.kind, COMMIT_KIND);
                let loc = Loc {
                    segment: self.active.id,
                    offset: sealed.base + (op.rel + RECORD_HEADER_LEN) as u64,
                    len: u32::from_le_bytes(len_bytes),
                };
                (op.op, loc)
            })
            .collect();
        {
            let mut v = self.reader.view_mut();
            v.segments.insert(self.active.id, self.active.view());
            for (op, loc) in updates {
                v.index.apply(op, loc);
            }
            v.index.refresh_finalized();
        }
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
            bytes: sealed.total,
        })
    }

    /// Writes every staged record as one atomic batch through the page cache (one
    /// positional write, one fdatasync), publishes the records to readers and returns the
    /// acknowledgement. With nothing staged it returns an acknowledgement for what was
    /// already durable, without touching the disk. Blocks the calling thread for the
    /// fdatasync; [`crate::LogWriter::sync`] is the io_uring version.
    pub fn sync(&mut self) -> Result<Durable> {
        let Some(sealed) = self.seal()? else {
            return Ok(self.ack_durable());
        };
        if let Err(e) = self
            .active
            .file
            .write_all_at(&self.buf, sealed.base)
            .and_then(|()| {
                self.commit_io_hook.fire();
                self.active.file.sync_data()
            })
        {
            return Err(self.poison("write/fdatasync of", e));
        }
        self.publish(sealed)
    }

    /// Appends `records` and syncs them as one batch, together with anything already
    /// staged. If a record cannot be staged, none of `records` is kept.
    pub fn commit<'a>(&mut self, records: impl IntoIterator<Item = &'a Record>) -> Result<Durable> {
        self.stage_all(records)?;
        self.sync()
    }

    /// Stages `records`, all or none.
    pub(crate) fn stage_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Result<()> {
        let mark = (self.buf.len(), self.ops.len(), self.next_record);
        for r in records {
            if let Err(e) = self.append(r) {
                self.buf.truncate(mark.0);
                self.ops.truncate(mark.1);
                self.next_record = mark.2;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Starts a new segment and re-seals the staged batch with its checksum seed.
    fn roll_over(&mut self) -> Result<()> {
        let next = match new_active(self.reader.dir(), self.active.id + 1, &self.opts) {
            Ok(v) => v,
            Err(e) => {
                self.poisoned = Some(e.to_string());
                return Err(e);
            }
        };
        let old = std::mem::replace(&mut self.active, next);
        // The old segment is complete: map exactly its length to give back address space.
        let old_view = SegmentView {
            map: Arc::new(map(&old.file, old.len, &old.path)?),
            ..old.view()
        };
        {
            let mut v = self.reader.view_mut();
            v.segments.insert(old.id, old_view);
            v.segments.insert(self.active.id, self.active.view());
            v.active = self.active.id;
        }
        let seed = self.active.seed;
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

    /// Drops forks and stale data below the finalized head from the indexes: blocks that
    /// neither are on the finalized chain nor descend from the finalized head, their
    /// notarizations, and vote guards of epochs the node can no longer vote in. The bytes
    /// stay in their segments until [`compact`](Storage::compact) rewrites them.
    pub fn prune(&mut self) -> PruneStats {
        self.reader.view_mut().index.prune()
    }

    /// Applies the [`Retention`] policy: deletes old segments whose only live content is
    /// finalized blocks below the retention window, after copying everything else they
    /// hold that is still live (blocks, notarizations, epoch status, clock notarizations,
    /// committees) plus a checkpoint of the small state records (guards, finalized head,
    /// stop blocks) into one new durable batch. Pruned forks in those segments go with
    /// them. Never touches the active segment. Returns the deleted segment ids.
    ///
    /// Crash safety: the copies are durable before any file is deleted, and duplicates
    /// left by a crash between the two are harmless (indexing is idempotent).
    pub fn compact(&mut self) -> Result<Vec<u64>> {
        self.check_poisoned()?;
        let Retention::KeepFinalizedHeights(keep) = self.opts.retention else {
            return Ok(Vec::new());
        };
        let Some(victims) = self.compaction_victims(keep) else {
            return Ok(Vec::new());
        };
        let copies = self.compaction_copies(&victims)?;
        self.commit(&copies)?;
        self.remove_segments(&victims)?;
        Ok(victims)
    }

    /// Prunes, then picks the oldest non-active segments holding nothing inside the
    /// window, and forgets the finalized heights below it. `None` if there are none.
    pub(crate) fn compaction_victims(&mut self, keep: u64) -> Option<Vec<u64>> {
        let mut v = self.reader.view_mut();
        let head = v.index.finalized_entry().copied()?;
        v.index.prune();
        let threshold = head.meta.height.saturating_sub(keep);
        // Stop at the first segment holding a finalized block inside the window (later
        // ones would too, as heights grow with ids).
        let recent: std::collections::HashSet<u64> = v
            .index
            .finalized
            .range(threshold..)
            .filter_map(|(_, (_, h))| v.index.by_hash.get(h).map(|e| e.loc.segment))
            .collect();
        let victims: Vec<u64> = v
            .segments
            .keys()
            .copied()
            .take_while(|id| *id != self.active.id && !recent.contains(id))
            .collect();
        if victims.is_empty() {
            return None;
        }
        v.index.forget_finalized_below(threshold);
        Some(victims)
    }

    /// Everything still live in `victims`, plus a checkpoint of the small state records.
    pub(crate) fn compaction_copies(&self, victims: &[u64]) -> Result<Vec<Record>> {
        let doomed = |loc: &Loc| victims.contains(&loc.segment);
        let (blocks, notas, clocks, committees, state) = self.reader.with_index(|i| {
            let mut blocks: Vec<BlockEntry> = i
                .by_hash
                .values()
                .filter(|e| doomed(&e.loc))
                .copied()
                .collect();
            blocks.sort_by_key(|e| (e.meta.height, e.meta.sn));
            let notas: Vec<Loc> = i
                .notarizations
                .values()
                .filter(|n| doomed(&n.loc))
                .map(|n| n.loc)
                .collect();
            let clocks: Vec<Loc> = i
                .clock_notarizations
                .values()
                .filter(|l| doomed(l))
                .copied()
                .collect();
            let committees: Vec<Loc> = i
                .committees
                .values()
                .filter(|l| doomed(l))
                .copied()
                .collect();
            let mut state: Vec<Record> = i
                .vote_guards
                .iter()
                .map(|(e, s)| Record::VoteGuard { epoch: *e, s: *s })
                .collect();
            state.extend(i.clock_guard.map(Record::ClockGuard));
            state.extend(i.finalized_head.map(Record::FinalizedHead));
            state.extend(i.stop_blocks.iter().map(|(s, h)| Record::StopBlock {
                session: *s,
                height: *h,
            }));
            (blocks, notas, clocks, committees, state)
        });
        let mut copies: Vec<Record> = Vec::new();
        for e in &blocks {
            copies.push(Record::Block(Arc::new(self.reader.block_at(e)?)));
        }
        for loc in notas {
            copies.push(Record::Notarization(
                self.reader.decode(loc, RecordKind::Notarization)?,
            ));
        }
        for loc in clocks {
            copies.push(Record::ClockNotarization(
                self.reader.decode(loc, RecordKind::ClockNotarization)?,
            ));
        }
        for loc in committees {
            copies.push(Record::Committee(
                self.reader.decode(loc, RecordKind::Committee)?,
            ));
        }
        if let Some(status) = self.reader.epoch_status()? {
            copies.push(Record::EpochStatus(status));
        }
        copies.extend(state);
        Ok(copies)
    }

    pub(crate) fn remove_segments(&mut self, victims: &[u64]) -> Result<()> {
        for id in victims {
            let gone = self.reader.view_mut().segments.remove(id);
            if let Some(seg) = gone {
                fs::remove_file(&seg.path)
                    .map_err(io_err("remove compacted segment", &seg.path))?;
            }
        }
        sync_dir(self.reader.dir())
    }

    /// Syncs anything staged and closes the directory.
    pub fn close(mut self) -> Result<Durable> {
        self.sync()
    }
}

impl ActiveSegment {
    pub(crate) fn view(&self) -> SegmentView {
        SegmentView {
            path: self.path.clone(),
            map: self.map.clone(),
            len: self.len,
            records: self.records,
        }
    }
}

/// Creates segment `id` and maps a whole segment's worth of it.
fn new_active(dir: &Path, id: u64, opts: &Options) -> Result<ActiveSegment> {
    let seg = create_segment(dir, id)?;
    let cap = opts.segment_size.max(SEGMENT_HEADER_LEN as u64);
    Ok(ActiveSegment {
        id,
        map: Arc::new(map(&seg.file, cap, &seg.path)?),
        path: seg.path,
        seed: seg.seed,
        file: seg.file,
        len: SEGMENT_HEADER_LEN as u64,
        records: 0,
        cap,
    })
}
