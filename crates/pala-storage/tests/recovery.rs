//! Crash, corruption and reopen behaviour.

mod common;

use common::*;
use pala_storage::{Options, Record, Storage, StorageError};
use pala_types::{BlockSn, Epoch};
use proptest::prelude::*;
use std::fs;
use std::path::Path;

/// Writes `records`, each in its own batch; returns the segment length after each batch.
fn write_each(dir: &Path, opts: &Options, records: &[Record]) -> Vec<u64> {
    let mut s = Storage::open(dir, opts.clone()).unwrap();
    let mut lens = Vec::new();
    for r in records {
        s.commit([r]).unwrap();
        lens.push(s.segments().last().unwrap().len);
    }
    lens
}

fn sample_records() -> Vec<Record> {
    let c = chain(3, 200);
    vec![
        Record::Block(c[0].clone()),
        Record::Block(c[1].clone()),
        Record::Notarization(nota(&c[1], 5)),
        epoch_status(Epoch::new(1, 2)),
        Record::VoteGuard {
            epoch: Epoch::new(1, 2),
            s: 1,
        },
        Record::Block(c[2].clone()),
    ]
}

/// Checks which of `records` (written one per batch) are visible.
fn visible(s: &Storage, records: &[Record]) -> Vec<bool> {
    records
        .iter()
        .map(|r| match r {
            Record::Block(b) => s.block_by_hash(&b.hash()).unwrap().is_some(),
            Record::Notarization(n) => s.notarization(n.sn).unwrap().as_ref() == Some(n),
            Record::EpochStatus(e) => s.epoch_status().unwrap().as_ref() == Some(e),
            Record::VoteGuard { epoch, s: v } => s.vote_guard(*epoch) == Some(*v),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn crash_at_every_byte_of_the_last_record() {
    for last_is_guard in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut records = sample_records();
        if last_is_guard {
            records.swap(4, 5);
        }
        let lens = write_each(dir, &Options::default(), &records);
        let seg = segment_files(dir).pop().unwrap();
        let full = fs::read(&seg).unwrap();
        let before = lens[lens.len() - 2] as usize;
        assert_eq!(full.len() as u64, *lens.last().unwrap());
        for cut in before..full.len() {
            fs::write(&seg, &full[..cut]).unwrap();
            let s = Storage::open(dir, Options::default())
                .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            let vis = visible(&s, &records);
            let n = records.len();
            assert!(
                vis[..n - 1].iter().all(|v| *v),
                "cut at {cut}: earlier record lost: {vis:?}"
            );
            assert!(!vis[n - 1], "cut at {cut}: torn record visible");
            let rep = s.recovery_report();
            assert_eq!(rep.truncated.is_some(), cut > before, "cut at {cut}: {rep}");
            drop(s);
            assert_eq!(
                fs::metadata(&seg).unwrap().len() as usize,
                before,
                "tail cut back"
            );
        }
        // Appending after a repaired tail works and survives a reopen.
        fs::write(&seg, &full[..before + 3]).unwrap();
        let mut s = Storage::open(dir, Options::default()).unwrap();
        s.commit([&records[records.len() - 1]]).unwrap();
        drop(s);
        let s = Storage::open(dir, Options::default()).unwrap();
        assert!(visible(&s, &records).iter().all(|v| *v));
        assert!(s.recovery_report().is_clean());
    }
}

#[test]
fn a_batch_is_atomic() {
    let tmp = tempfile::tempdir().unwrap();
    let c = chain(4, 100);
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    s.commit([&Record::Block(c[0].clone())]).unwrap();
    let before = s.segments()[0].len as usize;
    let batch: Vec<Record> = c[1..].iter().map(|b| Record::Block(b.clone())).collect();
    s.commit(&batch).unwrap();
    drop(s);
    let seg = segment_files(tmp.path()).pop().unwrap();
    let full = fs::read(&seg).unwrap();
    // Cut just before the commit marker: every record of the batch verifies, none counts.
    fs::write(&seg, &full[..full.len() - 25]).unwrap();
    let s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(s.block_count(), 1);
    let t = s.recovery_report().truncated.clone().unwrap();
    assert_eq!(t.offset as usize, before);
    assert_eq!(t.dropped_records, 4);
    drop(s);
    // A hole in the middle of the batch (a page that never reached the disk) while the
    // commit marker did: still torn, not committed.
    let mut holed = full.clone();
    for b in &mut holed[before + 300..before + 340] {
        *b = 0;
    }
    fs::write(&seg, &holed).unwrap();
    let s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(s.block_count(), 1);
    assert!(s.recovery_report().truncated.is_some());
}

#[test]
fn reopen_after_clean_shutdown_restores_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let c = chain(6, 64);
    let mut s = Storage::open(tmp.path(), small_opts()).unwrap();
    for b in &c {
        let _ = s.append(&Record::Block(b.clone())).unwrap();
        if b.sn().is_pala() {
            let _ = s.append(&Record::Notarization(nota(b, 3))).unwrap();
        }
    }
    let _ = s.append(&epoch_status(Epoch::new(1, 3))).unwrap();
    let _ = s
        .append(&Record::ClockNotarization(cnota(Epoch::new(1, 3))))
        .unwrap();
    let _ = s.append(&Record::FinalizedHead(c[3].sn())).unwrap();
    let _ = s
        .append(&Record::VoteGuard {
            epoch: Epoch::new(1, 3),
            s: 4,
        })
        .unwrap();
    let _ = s.append(&Record::ClockGuard(Epoch::new(1, 3))).unwrap();
    let _ = s
        .append(&Record::StopBlock {
            session: 1,
            height: 100,
        })
        .unwrap();
    s.sync().unwrap();
    let heads = s.heads();
    let set = s.recovery_set().unwrap();
    let segs = s.segments();
    s.close().unwrap();

    let s = Storage::open(tmp.path(), small_opts()).unwrap();
    assert!(s.recovery_report().is_clean(), "{}", s.recovery_report());
    assert_eq!(s.heads(), heads);
    assert_eq!(s.recovery_set().unwrap(), set);
    assert_eq!(s.segments(), segs);
    assert_eq!(heads.finalized, Some(c[3].sn()));
    assert_eq!(heads.finalized_block, Some((3, c[3].hash())));
    assert_eq!(heads.freshest_notarized, Some(c[6].sn()));
    assert_eq!(heads.epoch, Some(Epoch::new(1, 3)));
    assert_eq!(set.root.as_ref().unwrap().block, c[3]);
    assert_eq!(
        set.root.as_ref().unwrap().notarization,
        Some(nota(&c[3], 3))
    );
    assert_eq!(set.descendants.len(), 3);
    assert_eq!(set.descendants[2].block, c[6]);
    assert_eq!(set.epoch.unwrap().clock, Some(cnota(Epoch::new(1, 3))));
    assert_eq!(set.vote_guards.get(&Epoch::new(1, 3)), Some(&4));
    assert_eq!(set.clock_guard, Some(Epoch::new(1, 3)));
    assert_eq!(set.stop_blocks.get(&1), Some(&100));
    assert_eq!(
        s.clock_notarization(Epoch::new(1, 3)).unwrap(),
        Some(cnota(Epoch::new(1, 3)))
    );
    assert_eq!(
        s.newest_clock_notarization(1).unwrap(),
        Some(cnota(Epoch::new(1, 3)))
    );
    for (h, b) in c.iter().enumerate().take(4) {
        assert_eq!(s.finalized_block(h as u64).unwrap().as_ref(), Some(&**b));
    }
    assert_eq!(s.finalized_block(4).unwrap(), None);
}

#[test]
fn vote_guard_written_before_a_crash_survives_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    let e = Epoch::new(1, 1);
    let t1 = s.append(&Record::VoteGuard { epoch: e, s: 7 }).unwrap();
    let ack = s.sync().unwrap();
    assert!(ack.covers(&t1));
    // Staged but never synced: not acknowledged, so it may vanish.
    let t2 = s.append(&Record::VoteGuard { epoch: e, s: 8 }).unwrap();
    assert!(!ack.covers(&t2));
    std::mem::forget(s); // no destructor, no close: as close to a crash as a test gets
    let s = Storage::open(tmp.path(), Options::default());
    // The forgotten instance still holds the lock in this process; flock locks belong to
    // the open file description, so a second open in the same process is refused.
    assert!(matches!(s, Err(StorageError::Locked(_))));
    // Copy the directory to simulate a fresh process after the crash.
    let copy = tempfile::tempdir().unwrap();
    for f in segment_files(tmp.path()) {
        fs::copy(&f, copy.path().join(f.file_name().unwrap())).unwrap();
    }
    let s = Storage::open(copy.path(), Options::default()).unwrap();
    assert_eq!(s.vote_guard(e), Some(7));
}

#[test]
fn guards_keep_the_maximum() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    let e = Epoch::new(2, 5);
    s.commit(&[
        Record::VoteGuard { epoch: e, s: 9 },
        Record::VoteGuard { epoch: e, s: 3 },
    ])
    .unwrap();
    s.commit(&[
        Record::ClockGuard(Epoch::new(2, 6)),
        Record::ClockGuard(Epoch::new(2, 4)),
    ])
    .unwrap();
    s.commit(&[
        epoch_status(Epoch::new(2, 6)),
        epoch_status(Epoch::new(2, 2)),
    ])
    .unwrap();
    drop(s);
    let s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(s.vote_guard(e), Some(9));
    assert_eq!(s.clock_guard(), Some(Epoch::new(2, 6)));
    assert_eq!(
        s.heads().epoch,
        Some(Epoch::new(2, 6)),
        "epoch never regresses"
    );
}

fn assert_corrupt_at(res: Result<Storage, StorageError>, seg: &Path, offset: u64) {
    match res {
        Err(StorageError::Corrupt {
            path,
            offset: o,
            reason,
        }) => {
            assert_eq!(path, seg);
            assert_eq!(o, offset, "{reason}");
            let msg = StorageError::Corrupt {
                path,
                offset: o,
                reason,
            }
            .to_string();
            assert!(
                msg.contains(seg.file_name().unwrap().to_str().unwrap()),
                "{msg}"
            );
            assert!(msg.contains(&format!("offset {offset}")), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("corruption not detected"),
    }
}

#[test]
fn corruption_in_the_middle_of_a_segment_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let records = sample_records();
    let lens = write_each(tmp.path(), &Options::default(), &records);
    let seg = segment_files(tmp.path()).pop().unwrap();
    let full = fs::read(&seg).unwrap();
    // Flip a payload byte of the second batch's record; later batches are intact.
    let rec_off = lens[0] as usize;
    let mut bad = full.clone();
    bad[rec_off + 20] ^= 0x40;
    fs::write(&seg, &bad).unwrap();
    assert_corrupt_at(
        Storage::open(tmp.path(), Options::default()),
        &seg,
        rec_off as u64,
    );
    // The file was not touched by the failed open.
    assert_eq!(fs::read(&seg).unwrap(), bad);
    // Same with an impossible length in the record header.
    let mut bad = full.clone();
    bad[rec_off + 3] = 0xff;
    fs::write(&seg, &bad).unwrap();
    assert_corrupt_at(
        Storage::open(tmp.path(), Options::default()),
        &seg,
        rec_off as u64,
    );
}

#[test]
fn corruption_in_an_earlier_segment_is_an_error_even_at_its_end() {
    let tmp = tempfile::tempdir().unwrap();
    let c = chain(40, 1024);
    let recs: Vec<Record> = c.iter().map(|b| Record::Block(b.clone())).collect();
    write_each(tmp.path(), &small_opts(), &recs);
    let segs = segment_files(tmp.path());
    assert!(segs.len() >= 3);
    let first = &segs[0];
    let mut bytes = fs::read(first).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 1; // inside the last commit marker of a non-last segment
    fs::write(first, &bytes).unwrap();
    match Storage::open(tmp.path(), small_opts()) {
        Err(StorageError::Corrupt { path, .. }) => assert_eq!(&path, first),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("not detected"),
    }
    // Truncating an earlier segment is detected too.
    bytes[n - 3] ^= 1;
    fs::write(first, &bytes[..n - 10]).unwrap();
    assert!(matches!(
        Storage::open(tmp.path(), small_opts()),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn rollover_across_several_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let c = chain(60, 1024);
    let mut s = Storage::open(tmp.path(), small_opts()).unwrap();
    for chunk in c.chunks(5) {
        let recs: Vec<Record> = chunk.iter().map(|b| Record::Block(b.clone())).collect();
        s.commit(&recs).unwrap();
        // Reads see every committed block, including across segments and in the active one.
        for b in chunk {
            assert_eq!(s.block(b.sn()).unwrap().as_ref(), Some(&**b));
        }
    }
    let segs = s.segments();
    assert!(segs.len() >= 4, "{} segments", segs.len());
    assert!(segs.iter().all(|g| g.len <= 16 << 10));
    assert_eq!(segs.iter().filter(|g| g.active).count(), 1);
    s.commit([&Record::FinalizedHead(c[60].sn())]).unwrap();
    drop(s);
    let s = Storage::open(tmp.path(), small_opts()).unwrap();
    assert_eq!(s.segments(), {
        let mut v = segs.clone();
        v.last_mut().unwrap().len += 25 + 9 + 12;
        v.last_mut().unwrap().records += 1;
        v
    });
    for b in &c {
        let bytes = s.finalized_block_bytes(b.height()).unwrap().unwrap();
        assert_eq!(bytes, pala_types::Encode::to_bytes(&**b).as_slice());
    }
    assert_eq!(s.finalized_range(), Some((0, 60)));
    // A single batch larger than a segment gets a segment of its own.
    let big = child(&c[60], BlockSn::new(1, 1, 61), 40 << 10, 1);
    let mut s = s;
    s.commit([&Record::Block(big.clone())]).unwrap();
    assert_eq!(s.block(big.sn()).unwrap().as_ref(), Some(&*big));
}

#[test]
fn a_better_notarization_replaces_the_earlier_one() {
    let tmp = tempfile::tempdir().unwrap();
    let c = chain(2, 10);
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    s.commit(&[
        Record::Block(c[1].clone()),
        Record::Notarization(nota(&c[1], 3)),
    ])
    .unwrap();
    assert_eq!(s.notarization(c[1].sn()).unwrap().unwrap().vote_count(), 3);
    s.commit([&Record::Notarization(nota(&c[1], 6))]).unwrap();
    assert_eq!(s.notarization(c[1].sn()).unwrap().unwrap().vote_count(), 6);
    drop(s);
    let s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(s.notarization(c[1].sn()).unwrap().unwrap().vote_count(), 6);
    assert_eq!(s.notarization_count(), 1);
    let nb = s.notarized_block(c[1].sn()).unwrap().unwrap();
    assert_eq!(nb.notarization.unwrap().vote_count(), 6);
}

#[test]
fn torn_segment_header_of_a_new_segment_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let records = sample_records();
    write_each(tmp.path(), &Options::default(), &records);
    let torn = tmp.path().join("seg-00000000000000000002.log");
    fs::write(&torn, b"PALASEG").unwrap();
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(
        s.recovery_report().removed_segment.as_deref(),
        Some(torn.as_path())
    );
    assert!(!torn.exists());
    assert!(visible(&s, &records).iter().all(|v| *v));
    s.commit([&Record::ClockGuard(Epoch::new(1, 1))]).unwrap();
    // A bad header in a segment that has data is an error.
    drop(s);
    let first = segment_files(tmp.path())[0].clone();
    let mut b = fs::read(&first).unwrap();
    b[9] ^= 1;
    fs::write(&first, &b).unwrap();
    assert!(matches!(
        Storage::open(tmp.path(), Options::default()),
        Err(StorageError::BadSegmentHeader { .. })
    ));
}

#[test]
fn second_open_is_refused_while_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert!(matches!(
        Storage::open(tmp.path(), Options::default()),
        Err(StorageError::Locked(_))
    ));
    drop(s);
    Storage::open(tmp.path(), Options::default()).unwrap();
}

struct Flip {
    offset: usize,
    bit: u8,
}

/// Builds a three-segment directory and returns (files, start of the last batch in the
/// last file).
fn flip_fixture(dir: &Path) -> (Vec<std::path::PathBuf>, usize, Vec<Record>) {
    let c = chain(10, 1500);
    let mut recs: Vec<Record> = Vec::new();
    for b in &c {
        recs.push(Record::Block(b.clone()));
    }
    recs.push(Record::VoteGuard {
        epoch: Epoch::new(1, 1),
        s: 10,
    });
    let opts = Options {
        segment_size: 8 << 10,
        ..Options::default()
    };
    let lens = write_each(dir, &opts, &recs);
    let files = segment_files(dir);
    assert_eq!(files.len(), 3, "fixture wants three segments");
    (files, lens[lens.len() - 2] as usize, recs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn random_bit_flips_are_detected(which in 0usize..3, pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let tmp = tempfile::tempdir().unwrap();
        let (files, last_batch_start, recs) = flip_fixture(tmp.path());
        let f = &files[which];
        let mut bytes = fs::read(f).unwrap();
        let flip = Flip { offset: pos.index(bytes.len()), bit };
        bytes[flip.offset] ^= 1 << flip.bit;
        fs::write(f, &bytes).unwrap();
        let opts = Options { segment_size: 8 << 10, ..Options::default() };
        let res = Storage::open(tmp.path(), opts);
        let in_torn_tail = which == 2 && flip.offset >= last_batch_start;
        match res {
            Ok(s) => {
                prop_assert!(in_torn_tail, "flip at {}:{} went unnoticed", which, flip.offset);
                prop_assert!(s.recovery_report().truncated.is_some());
                // Everything before the damaged batch is intact and identical.
                for r in &recs[..recs.len() - 1] {
                    if let Record::Block(b) = r {
                        let got = s.block(b.sn()).unwrap();
                        prop_assert_eq!(got.as_ref(), Some(&**b));
                    }
                }
                prop_assert_eq!(s.vote_guard(Epoch::new(1, 1)), None);
            }
            Err(e) => {
                prop_assert!(!in_torn_tail, "flip in the last batch must be a torn tail: {}", e);
                let ok = matches!(e, StorageError::Corrupt { .. } | StorageError::BadSegmentHeader { .. });
                prop_assert!(ok, "unexpected error {}", e);
            }
        }
    }
}

#[test]
fn inspect_summarises_without_modifying() {
    let tmp = tempfile::tempdir().unwrap();
    let c = chain(3, 10);
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    let recs: Vec<Record> = c.iter().map(|b| Record::Block(b.clone())).collect();
    s.commit(&recs).unwrap();
    s.commit(&[
        Record::Notarization(nota(&c[2], 4)),
        Record::FinalizedHead(c[1].sn()),
        epoch_status(Epoch::new(1, 1)),
    ])
    .unwrap();
    s.commit([&Record::VoteGuard {
        epoch: Epoch::new(1, 1),
        s: 3,
    }])
    .unwrap();
    drop(s);
    let seg = segment_files(tmp.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    bytes.truncate(bytes.len() - 4);
    fs::write(&seg, &bytes).unwrap();
    let sum = pala_storage::inspect(tmp.path()).unwrap();
    assert_eq!(sum.blocks, 4);
    assert_eq!(sum.heads.finalized, Some(c[1].sn()));
    assert_eq!(sum.heads.freshest_notarized, Some(c[2].sn()));
    assert!(sum.recovery.truncated.is_some());
    assert!(sum.vote_guards.is_empty());
    let text = sum.to_string();
    assert!(text.contains("finalized head      (1,1,1)"), "{text}");
    assert!(text.contains("tail: torn"), "{text}");
    assert_eq!(fs::read(&seg).unwrap(), bytes, "inspect must not repair");
    assert!(matches!(
        pala_storage::inspect(tmp.path().join("nope")),
        Err(StorageError::NoDataDir(_))
    ));
}
