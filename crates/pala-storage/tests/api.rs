//! Indexes, pruning, group-commit tickets, retention and the record codec.

mod common;

use common::*;
use pala_storage::{Options, Record, RecordKind, Retention, Storage};
use pala_types::{BlockSn, Decode, Encode, Epoch};
use std::sync::Arc;

#[test]
fn record_codec_round_trips_every_kind() {
    let c = chain(1, 33);
    let recs = vec![
        Record::Block(c[1].clone()),
        Record::Notarization(nota(&c[1], 2)),
        epoch_status(Epoch::new(3, 4)),
        epoch_status(Epoch::new(3, 1)),
        Record::ClockNotarization(cnota(Epoch::new(3, 4))),
        Record::VoteGuard {
            epoch: Epoch::new(3, 4),
            s: 17,
        },
        Record::ClockGuard(Epoch::new(3, 5)),
        Record::FinalizedHead(BlockSn::new(3, 4, 2)),
        Record::StopBlock {
            session: 3,
            height: 999,
        },
        Record::Committee(committee(4, 3, 1)),
    ];
    let kinds: Vec<RecordKind> = recs.iter().map(Record::kind).collect();
    for k in RecordKind::ALL {
        assert!(kinds.contains(&k), "{k:?} not covered");
        assert_eq!(RecordKind::from_code(k.code()), Some(k));
    }
    for r in &recs {
        let bytes = r.to_bytes();
        assert_eq!(&Record::from_bytes(&bytes).unwrap(), r);
        // Truncations and trailing bytes are errors, not panics.
        for cut in 0..bytes.len() {
            assert!(Record::from_bytes(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Record::from_bytes(&longer).is_err());
    }
    assert!(Record::from_bytes(&[0x42, 1, 2]).is_err());
}

#[test]
fn tickets_are_acknowledged_only_by_a_later_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    let empty = s.sync().unwrap();
    assert_eq!(empty.batch(), None);
    let a = s.append(&Record::ClockGuard(Epoch::new(1, 2))).unwrap();
    let b = s
        .append(&Record::VoteGuard {
            epoch: Epoch::new(1, 2),
            s: 1,
        })
        .unwrap();
    assert!(!empty.covers(&a));
    // Not visible before the sync.
    assert_eq!(s.clock_guard(), None);
    assert_eq!(s.pending_records(), 2);
    let ack = s.sync().unwrap();
    assert!(ack.covers(&a) && ack.covers(&b));
    assert_eq!(ack.records(), 2);
    assert_eq!(s.clock_guard(), Some(Epoch::new(1, 2)));
    let c = s.append(&Record::ClockGuard(Epoch::new(1, 3))).unwrap();
    assert!(!ack.covers(&c));
    let ack2 = s.sync().unwrap();
    assert!(ack2.covers(&c) && ack2.covers(&a));
    assert!(ack2.batch() > ack.batch());
    // A ticket from another storage instance is never covered.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut other = Storage::open(tmp2.path(), Options::default()).unwrap();
    let foreign = other.append(&Record::ClockGuard(Epoch::new(1, 1))).unwrap();
    assert!(!ack2.covers(&foreign));
    // An oversized record is refused and leaves the batch as it was.
    let mut small = Storage::open(
        tempfile::tempdir().unwrap().path(),
        Options {
            max_record_len: 100,
            ..Options::default()
        },
    )
    .unwrap();
    let big = chain(1, 500);
    let ok = Record::ClockGuard(Epoch::new(1, 1));
    assert!(small.commit(&[ok, Record::Block(big[1].clone())]).is_err());
    assert_eq!(small.pending_records(), 0);
}

#[test]
fn forks_below_the_finalized_head_are_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let c = chain(5, 16);
    // A fork off block 1 at (1,2,1), and a fork off block 3 (still descends from 2).
    let fork_low = child(&c[1], BlockSn::new(1, 2, 1), 16, 0xAA);
    let fork_low2 = child(&fork_low, BlockSn::new(1, 2, 2), 16, 0xAB);
    let fork_high = child(&c[3], BlockSn::new(1, 3, 1), 16, 0xAC);
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    let mut recs: Vec<Record> = c.iter().map(|b| Record::Block(b.clone())).collect();
    for f in [&fork_low, &fork_low2, &fork_high] {
        recs.push(Record::Block(f.clone()));
        recs.push(Record::Notarization(nota(f, 3)));
    }
    recs.push(Record::VoteGuard {
        epoch: Epoch::new(1, 1),
        s: 5,
    });
    recs.push(Record::VoteGuard {
        epoch: Epoch::new(1, 3),
        s: 1,
    });
    recs.push(epoch_status(Epoch::new(1, 3)));
    recs.push(Record::FinalizedHead(c[2].sn()));
    s.commit(&recs).unwrap();
    assert_eq!(s.block_count(), 9);
    let stats = s.prune();
    // fork_low and its child are dead; fork_high descends from the finalized head (2).
    assert_eq!(stats.blocks, 2);
    assert_eq!(
        stats.notarizations, 2,
        "the notarizations of the pruned fork blocks"
    );
    assert_eq!(stats.vote_guards, 0, "the finalized head is in epoch (1,1)");
    assert!(s.block(fork_low.sn()).unwrap().is_none());
    assert!(s.block(fork_high.sn()).unwrap().is_some());
    let set = s.recovery_set().unwrap();
    let desc: Vec<BlockSn> = set.descendants.iter().map(|d| d.block.sn()).collect();
    assert_eq!(desc, vec![c[3].sn(), c[4].sn(), fork_high.sn(), c[5].sn()]);
    assert_eq!(set.descendants[2].notarization, Some(nota(&fork_high, 3)));
    // Moving finality into epoch (1,3) retires the guard of (1,1).
    let d = child(&fork_high, BlockSn::new(1, 3, 2), 16, 0xAD);
    s.commit(&[Record::Block(d.clone()), Record::FinalizedHead(d.sn())])
        .unwrap();
    let stats = s.prune();
    assert_eq!(stats.vote_guards, 1);
    assert_eq!(s.vote_guard(Epoch::new(1, 3)), Some(1));
    assert_eq!(stats.blocks, 2, "c4 and c5 are now a dead fork");
    assert_eq!(s.finalized_at(3), Some((c[3].sn(), c[3].hash())));
    assert_eq!(s.finalized_at(4), Some((fork_high.sn(), fork_high.hash())));
    assert_eq!(s.finalized_at(5), Some((d.sn(), d.hash())));
    // Pruning happens on open as well and is reported.
    drop(s);
    let s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(s.recovery_report().pruned.blocks, 4);
    assert_eq!(s.finalized_range(), Some((0, 5)));
}

#[test]
fn finalized_map_fills_gaps_when_blocks_arrive_later() {
    let tmp = tempfile::tempdir().unwrap();
    let c = chain(6, 8);
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    // Chain sync delivers the finalized head first, then older blocks.
    s.commit(&[Record::FinalizedHead(c[6].sn())]).unwrap();
    assert_eq!(s.finalized_range(), None);
    s.commit(&[Record::Block(c[6].clone()), Record::Block(c[5].clone())])
        .unwrap();
    assert_eq!(s.finalized_range(), Some((5, 6)));
    let rest: Vec<Record> = c[..5].iter().map(|b| Record::Block(b.clone())).collect();
    s.commit(&rest).unwrap();
    assert_eq!(s.finalized_range(), Some((0, 6)));
    assert_eq!(s.finalized_block(2).unwrap().as_ref(), Some(&*c[2]));
}

#[test]
fn equivocating_blocks_stay_reachable_by_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let c = chain(1, 8);
    let twin = child(&c[0], c[1].sn(), 8, 0x55);
    assert_ne!(twin.hash(), c[1].hash());
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    s.commit(&[Record::Block(c[1].clone()), Record::Block(twin.clone())])
        .unwrap();
    assert_eq!(
        s.block(c[1].sn()).unwrap().map(Arc::new),
        Some(twin.clone())
    );
    assert!(s.block_by_hash(&c[1].hash()).unwrap().is_some());
    assert_eq!(
        s.block_bytes_by_hash(&c[1].hash()).unwrap().unwrap(),
        c[1].to_bytes().as_slice()
    );
}

#[test]
fn retention_deletes_old_finalized_segments_and_keeps_state() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_size: 8 << 10,
        retention: Retention::KeepFinalizedHeights(10),
        ..Options::default()
    };
    let c = chain(60, 1000);
    let mut s = Storage::open(tmp.path(), opts.clone()).unwrap();
    s.commit(&[
        Record::VoteGuard {
            epoch: Epoch::new(1, 1),
            s: 60,
        },
        epoch_status(Epoch::new(1, 1)),
        Record::StopBlock {
            session: 1,
            height: 500,
        },
        Record::Committee(committee(2, 4, 2)),
    ])
    .unwrap();
    for b in &c {
        s.commit(&[Record::Block(b.clone()), Record::Notarization(nota(b, 3))])
            .unwrap();
    }
    // Finalize up to 50; blocks 51..60 stay unfinalized.
    s.commit([&Record::FinalizedHead(c[50].sn())]).unwrap();
    let before = s.segments().len();
    let deleted = s.compact().unwrap();
    assert!(!deleted.is_empty());
    assert_eq!(s.segments().len(), before - deleted.len());
    let check = |s: &Storage| {
        assert_eq!(s.vote_guard(Epoch::new(1, 1)), Some(60));
        assert_eq!(s.heads().epoch, Some(Epoch::new(1, 1)));
        assert_eq!(s.stop_block(1), Some(500));
        assert_eq!(s.committee(2).unwrap(), Some(committee(2, 4, 2)));
        assert_eq!(s.finalized_head(), Some(c[50].sn()));
        let (lo, hi) = s.finalized_range().unwrap();
        assert!(lo <= 40 && lo > 0, "lo {lo}");
        assert_eq!(hi, 50);
        for b in &c[40..] {
            assert_eq!(s.block(b.sn()).unwrap().as_ref(), Some(&**b));
            assert_eq!(s.notarization(b.sn()).unwrap(), Some(nota(b, 3)));
        }
        assert_eq!(s.recovery_set().unwrap().descendants.len(), 10);
    };
    check(&s);
    drop(s);
    let s = Storage::open(tmp.path(), opts).unwrap();
    assert!(s.recovery_report().is_clean());
    check(&s);
    // KeepAll never deletes.
    drop(s);
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert!(s.compact().unwrap().is_empty());
}

#[test]
fn committees_are_recovered_latest_per_session() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert!(s.recovery_set().unwrap().committees.is_empty());
    s.commit(&[
        Record::Committee(committee(3, 4, 1)),
        Record::Committee(committee(2, 4, 1)),
    ])
    .unwrap();
    // A later record for a session replaces the earlier one.
    s.commit(&[Record::Committee(committee(3, 5, 9))]).unwrap();
    drop(s);
    let s = Storage::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(
        s.recovery_set().unwrap().committees,
        vec![committee(2, 4, 1), committee(3, 5, 9)]
    );
    assert_eq!(s.committee(4).unwrap(), None);
    drop(s);
    let summary = pala_storage::inspect(tmp.path()).unwrap();
    assert_eq!(summary.committees, vec![2, 3]);
    assert!(summary
        .to_string()
        .contains("committees          sessions 2, 3"));
}
