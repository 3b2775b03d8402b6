//! The io_uring direct-IO write path: block padding, torn rewrites of the tail block,
//! the fallback where `O_DIRECT` is unavailable, and reads that overlap a commit.
//!
//! Direct IO needs a real filesystem: these tests put their directories under Cargo's
//! target dir (ext4 on the build machine), never in /tmp, which may be tmpfs. The
//! fallback test uses /dev/shm (tmpfs) on purpose.

mod common;

use common::*;
use glommio::{LocalExecutorBuilder, Placement};
use pala_storage::{IoPath, LogWriter, Options, Record, Storage, StorageError, WritePath};
use pala_types::Encode;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

const BLOCK: u64 = 4096;

fn disk_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn dma_opts() -> Options {
    Options {
        write_path: WritePath::Dma,
        ..Options::default()
    }
}

/// Runs `f` on a fresh glommio executor (DMA files are bound to their executor).
fn on_executor<T, F, Fut>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(64 << 10)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// Commits each group of `batches` as one batch through the DMA path; returns the
/// logical length after each batch.
fn write_dma(dir: &Path, batches: Vec<Vec<Record>>) -> Vec<u64> {
    let dir = dir.to_path_buf();
    on_executor(move || async move {
        let mut w = LogWriter::new(Storage::open(&dir, dma_opts()).unwrap())
            .await
            .unwrap();
        assert_eq!(w.io_path(), IoPath::Dma);
        let mut lens = Vec::new();
        for b in &batches {
            w.commit(b).await.unwrap();
            lens.push(w.segments().last().unwrap().len);
        }
        w.close().await.unwrap();
        lens
    })
}

fn blocks(c: &[Arc<pala_types::Block>], range: std::ops::Range<usize>) -> Vec<Record> {
    c[range].iter().cloned().map(Record::Block).collect()
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = disk_dir();
    for f in segment_files(from) {
        std::fs::copy(&f, to.path().join(f.file_name().unwrap())).unwrap();
    }
    to
}

fn file_len(dir: &Path) -> u64 {
    std::fs::metadata(&segment_files(dir)[0]).unwrap().len()
}

#[test]
fn dma_log_is_block_padded_and_reopens_clean() {
    let tmp = disk_dir();
    let c = chain(40, 700);
    let lens = write_dma(
        tmp.path(),
        vec![
            blocks(&c, 1..2),
            blocks(&c, 2..9),
            blocks(&c, 9..30),
            blocks(&c, 30..41),
        ],
    );
    let logical = *lens.last().unwrap();
    assert!(
        lens.iter().all(|l| l % BLOCK != 0),
        "every batch ends mid-block here"
    );
    assert_eq!(file_len(tmp.path()), logical.next_multiple_of(BLOCK));
    let s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert!(s.recovery_report().is_clean(), "{}", s.recovery_report());
    assert_eq!(s.recovery_report().batches, 4);
    assert_eq!(s.segments()[0].len, logical);
    for b in &c[1..] {
        assert_eq!(s.block(b.sn()).unwrap().map(Arc::new).as_ref(), Some(b));
    }
    drop(s);
    let summary = pala_storage::inspect(tmp.path()).unwrap();
    assert!(summary.recovery.is_clean());
    assert_eq!(summary.blocks, 40);
}

#[test]
fn dma_rolls_over_segments_and_page_cache_writer_continues_the_log() {
    let tmp = disk_dir();
    let c = chain(60, 1000);
    let dir = tmp.path().to_path_buf();
    let recs: Vec<Vec<Record>> = (0..12).map(|i| blocks(&c, 1 + 5 * i..6 + 5 * i)).collect();
    on_executor(move || async move {
        let opts = Options {
            segment_size: 16 << 10,
            ..dma_opts()
        };
        let mut w = LogWriter::new(Storage::open(&dir, opts).unwrap())
            .await
            .unwrap();
        for b in &recs {
            w.commit(b).await.unwrap();
        }
        assert!(w.segments().len() > 2);
        w.close().await.unwrap();
    });
    // The same directory continues through the page cache, from the logical end.
    let extra = child(&c[60], pala_types::BlockSn::new(1, 1, 61), 10, 1);
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert!(s.recovery_report().is_clean(), "{}", s.recovery_report());
    s.commit(&[Record::Block(extra.clone())]).unwrap();
    drop(s);
    let s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert!(s.recovery_report().is_clean(), "{}", s.recovery_report());
    assert_eq!(s.block_count(), 61);
    assert!(s.block(extra.sn()).unwrap().is_some());
}

/// A crash while the tail block is rewritten: the committed prefix of that block is
/// rewritten with the same bytes, so whatever part of the write reached the disk, only
/// the new batch can be lost, and the log continues after recovery.
#[test]
fn dma_torn_rewrite_of_the_tail_block_loses_only_the_new_batch() {
    let tmp = disk_dir();
    let c = chain(4, 500);
    let lens = write_dma(tmp.path(), vec![blocks(&c, 1..3), blocks(&c, 3..4)]);
    let (end_a, end_b) = (lens[0], lens[1]);
    assert_eq!(
        end_a / BLOCK,
        end_b / BLOCK,
        "batch B shares A's last block"
    );
    let block_end = end_b.next_multiple_of(BLOCK);
    let seg = |d: &Path| segment_files(d)[0].clone();

    // (1) The sectors after the first few bytes of B never reached the disk (zeros).
    // (2) The write was cut: the file ends inside B.
    // (3) Nothing of B reached the disk: reads as padding, a clean log without B.
    type Damage = fn(&Path, u64, u64);
    let cases: [(&str, Damage, bool); 3] = [
        ("zeroed sectors", |p, a, e| zero(p, a + 16, e), false),
        ("cut file", |p, a, _| cut(p, a + 100), false),
        ("nothing written", |p, a, e| zero(p, a, e), true),
    ];
    for (name, damage, clean) in cases {
        let copy = copy_dir(tmp.path());
        damage(&seg(copy.path()), end_a, block_end);
        let s = Storage::open(copy.path(), Options::default()).unwrap();
        let r = s.recovery_report();
        assert_eq!(r.is_clean(), clean, "{name}: {r}");
        if let Some(t) = &r.truncated {
            assert_eq!(t.offset, end_a, "{name}: cut at the end of batch A");
        }
        assert!(s.block(c[1].sn()).unwrap().is_some(), "{name}");
        assert!(s.block(c[2].sn()).unwrap().is_some(), "{name}");
        assert!(
            s.block(c[3].sn()).unwrap().is_none(),
            "{name}: B was never acknowledged"
        );
        assert_eq!(s.segments()[0].len, end_a, "{name}");
        drop(s);
        // The DMA writer continues from the unaligned logical end.
        let more = child(&c[2], pala_types::BlockSn::new(1, 1, 7), 300, 9);
        let lens = write_dma(copy.path(), vec![vec![Record::Block(more.clone())]]);
        assert!(lens[0] > end_a);
        let s = Storage::open(copy.path(), Options::default()).unwrap();
        assert!(
            s.recovery_report().is_clean(),
            "{name}: {}",
            s.recovery_report()
        );
        assert!(s.block(c[1].sn()).unwrap().is_some(), "{name}");
        assert!(s.block(more.sn()).unwrap().is_some(), "{name}");
    }
}

fn zero(path: &Path, from: u64, to: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&vec![0u8; (to - from) as usize], from)
        .unwrap();
}

fn cut(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

#[test]
fn without_direct_io_auto_falls_back_and_dma_refuses() {
    let shm = PathBuf::from("/dev/shm");
    assert!(shm.is_dir(), "this test needs a tmpfs at /dev/shm");
    let tmp = tempfile::tempdir_in(&shm).unwrap();
    let dir = tmp.path().to_path_buf();
    let c = chain(3, 100);
    let recs = blocks(&c, 1..4);
    on_executor(move || async move {
        let refused = LogWriter::new(Storage::open(&dir, dma_opts()).unwrap()).await;
        assert!(matches!(
            refused.err(),
            Some(StorageError::DirectIoUnsupported { .. })
        ));
        let mut w = LogWriter::new(Storage::open(&dir, Options::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(w.io_path(), IoPath::PageCache);
        w.commit(&recs).await.unwrap();
        w.close().await.unwrap();
    });
    let s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert!(s.recovery_report().is_clean());
    assert_eq!(s.block_count(), 3);
}

/// What a read made from inside a commit saw.
#[derive(Clone, Copy)]
struct InCommitRead {
    count: usize,
    /// The newest published block read back with its exact encoding.
    newest_intact: bool,
}

/// Reads complete while a commit's write and fdatasync are in progress, on both write
/// paths: the reader handle never waits for the disk. The writer's commit hook runs in the
/// middle of each commit (batch written, fdatasync and publication still to come) and,
/// from there, has another thread read through a [`pala_storage::StorageReader`] with a
/// bounded wait. A writer that held the readers' lock across the IO, or otherwise blocked
/// them, leaves that read hanging until the hook gives up on it.
#[test]
fn reads_complete_while_a_commit_is_in_progress() {
    const COMMITS: usize = 4;
    const PER_COMMIT: usize = 8;
    // Far beyond an uncontended read even on a loaded machine; a blocked read never ends
    // while the hook waits, so the bound only decides how long a failing run takes.
    const READ_BOUND: Duration = Duration::from_secs(2);
    for path in [WritePath::Dma, WritePath::PageCache] {
        let tmp = disk_dir();
        let c = chain((COMMITS * PER_COMMIT) as u32, 3000);
        let mut store = Storage::open(
            tmp.path(),
            Options {
                write_path: path,
                ..Options::default()
            },
        )
        .unwrap();
        // One entry per commit; `None` where the read did not finish within the bound.
        let seen: Arc<Mutex<Vec<Option<InCommitRead>>>> = Arc::default();
        let (reader, log, chain_) = (store.reader(), seen.clone(), c.clone());
        store.set_commit_io_hook(move || {
            let (reader, chain_) = (reader.clone(), chain_.clone());
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let count = reader.block_count();
                let newest_intact = match count {
                    0 => true,
                    n => matches!(reader.block_bytes(chain_[n].sn()),
                        Ok(Some(bytes)) if *bytes == chain_[n].to_bytes()[..]),
                };
                let _ = tx.send(InCommitRead {
                    count,
                    newest_intact,
                });
            });
            log.lock().unwrap().push(rx.recv_timeout(READ_BOUND).ok());
        });
        let recs: Vec<Vec<Record>> = (0..COMMITS)
            .map(|i| blocks(&c, 1 + PER_COMMIT * i..1 + PER_COMMIT * (i + 1)))
            .collect();
        let io_path = on_executor(move || async move {
            let mut w = LogWriter::new(store).await.unwrap();
            for b in &recs {
                w.commit(b).await.unwrap();
            }
            assert_eq!(w.block_count(), COMMITS * PER_COMMIT);
            w.io_path()
        });
        let want_path = match path {
            WritePath::PageCache => IoPath::PageCache,
            _ => IoPath::Dma,
        };
        assert_eq!(io_path, want_path);
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.len(),
            COMMITS,
            "{path:?}: the hook runs once per commit"
        );
        for (i, read) in seen.iter().enumerate() {
            let Some(InCommitRead {
                count,
                newest_intact,
            }) = *read
            else {
                panic!("{path:?}: a read during commit {i} did not finish within {READ_BOUND:?}: readers wait for the disk");
            };
            assert_eq!(
                count,
                PER_COMMIT * i,
                "{path:?}: commit {i} must not be visible before it is durable"
            );
            assert!(newest_intact, "{path:?}: commit {i}");
        }
    }
}

/// Compaction through the writer's direct-IO path: old segments go, the copies and the
/// commits after them land in the tail the writer keeps, and the directory reopens clean
/// with the retained blocks (a blocking compaction beside the DMA tail would leave its
/// cached tail block stale).
#[test]
fn compaction_through_the_dma_writer_keeps_the_tail_consistent() {
    let tmp = disk_dir();
    let dir = tmp.path().to_path_buf();
    let opts = Options {
        segment_size: 8 << 10,
        retention: pala_storage::Retention::KeepFinalizedHeights(10),
        ..dma_opts()
    };
    let c = chain(80, 1000);
    let (deleted, lo) = {
        let (dir, opts, c) = (dir.clone(), opts.clone(), c.clone());
        on_executor(move || async move {
            let mut w = LogWriter::new(Storage::open(&dir, opts).unwrap())
                .await
                .unwrap();
            assert_eq!(w.io_path(), IoPath::Dma);
            for b in &c[..60] {
                w.commit(&[Record::Block(b.clone()), Record::Notarization(nota(b, 3))])
                    .await
                    .unwrap();
            }
            w.commit(&[Record::FinalizedHead(c[50].sn())])
                .await
                .unwrap();
            let deleted = w.compact().await.unwrap();
            // Commits after the compaction go on in the same tail.
            for b in &c[60..] {
                w.commit(&[Record::Block(b.clone()), Record::Notarization(nota(b, 3))])
                    .await
                    .unwrap();
            }
            w.commit(&[Record::FinalizedHead(c[75].sn())])
                .await
                .unwrap();
            let lo = w.finalized_range().unwrap().0;
            w.close().await.unwrap();
            (deleted, lo)
        })
    };
    assert!(!deleted.is_empty(), "old segments deleted");
    assert!(lo > 1 && lo <= 40, "lo {lo}");
    let s = Storage::open(&dir, opts).unwrap();
    assert!(s.recovery_report().is_clean(), "{:?}", s.recovery_report());
    assert_eq!(s.finalized_head(), Some(c[75].sn()));
    for b in &c[40..] {
        assert_eq!(s.block(b.sn()).unwrap().as_ref(), Some(&**b));
    }
    assert!(
        s.block(c[1].sn()).unwrap().is_none(),
        "below retention: gone"
    );
}
