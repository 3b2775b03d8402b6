//! The stage as the runtime drives it: blocks in, commitments checked, snapshots out.

use super::ingress::AppMessage;
use super::*;
use crate::app::{Application, KvStore, KvTx};
use crate::clock::SystemClock;
use crate::fatal::Fatal;
use crate::mempool::MempoolHandle;
use crate::metrics::Metrics;
use crate::state_sync::SnapshotStore;
use pala_types::{Block, Hash, StateCommitment};
use std::sync::{Arc, Mutex};

/// Block `height` with one transaction, committing to `state`.
pub(crate) fn block(height: u64, state: StateCommitment) -> Arc<Block> {
    let tx = KvTx {
        k: format!("k{}", height % 3),
        v: format!("v{height}"),
        n: height,
    }
    .encode();
    Arc::new(crate::test_blocks::block_at(
        height,
        height * 100,
        state,
        vec![tx],
    ))
}

pub(crate) struct Run {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) view: AppView,
    store: Arc<Mutex<SnapshotStore>>,
}

/// Runs the stage over `blocks` (snapshots every 2 heights) until it has applied them all.
pub(crate) fn run(dir: &std::path::Path, blocks: &[Arc<Block>]) -> Run {
    let metrics = Arc::new(Metrics::default());
    let (store, _) = SnapshotStore::open(&dir.join("snapshots"), 2).unwrap();
    let store = Arc::new(Mutex::new(store));
    let (fatal, _rx) = Fatal::channel();
    let (stage, mailbox, view) = ApplicationStage::spawn(
        KvStore::open(None).unwrap(),
        16,
        ApplicationDeps {
            metrics: metrics.clone(),
            mempool: MempoolHandle::new(Default::default()),
            wall: Arc::new(SystemClock),
            max_submitted: 16,
            fatal,
            data_dir: dir.to_path_buf(),
            history: StateHistory::default(),
            replay_mismatches: Vec::new(),
            snapshots: Some(SnapshotPolicy {
                store: store.clone(),
                interval: 2,
                chunk_bytes: 4096,
            }),
        },
    )
    .unwrap();
    for b in blocks {
        mailbox.tx.send(AppMessage::Finalized(b.clone())).unwrap();
    }
    drop(mailbox);
    stage.join();
    Run {
        metrics,
        view,
        store,
    }
}

/// What an honest replica's digests are after each height of `blocks`.
pub(crate) fn digests(blocks: &[Arc<Block>]) -> Vec<StateCommitment> {
    let mut kv = KvStore::open(None).unwrap();
    blocks
        .iter()
        .map(|b| {
            kv.apply(b);
            StateCommitment {
                height: b.height(),
                digest: kv.state_digest(),
            }
        })
        .collect()
}

#[test]
fn agreeing_commitments_pass_and_snapshots_are_taken_at_the_interval() {
    let plain: Vec<_> = (1..=5).map(|h| block(h, StateCommitment::NONE)).collect();
    let honest = digests(&plain);
    // Each block commits to the state two heights back, as a pipelined proposer does.
    let blocks: Vec<_> = (1..=5u64)
        .map(|h| {
            let c = if h > 2 {
                honest[h as usize - 3]
            } else {
                StateCommitment::NONE
            };
            block(h, c)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &blocks);
    assert_eq!(r.metrics.state_commitment_mismatches.get(), 0);
    assert_eq!(r.metrics.state_commitments_checked.get(), 3);
    assert_eq!(r.view.commitment(), honest[4]);
    let store = r.store.lock().unwrap();
    assert_eq!(store.heights(), vec![4, 2]);
    assert_eq!(store.manifests()[0].commitment(), honest[3]);
    assert_eq!(r.metrics.state_snapshots.get(), 2);
}

/// The stage run over `n` blocks without commitments, with the digests after each
/// height (the temporary directory lives as long as the run is read).
pub(crate) fn applied(n: u64) -> (Run, Vec<StateCommitment>, tempfile::TempDir) {
    let blocks: Vec<_> = (1..=n).map(|h| block(h, StateCommitment::NONE)).collect();
    let honest = digests(&blocks);
    let dir = tempfile::tempdir().unwrap();
    (run(dir.path(), &blocks), honest, dir)
}

/// W-12e: the view gives a proposal at height `h` the newest applied state at or below
/// `h − 1 − 2K`, and tells a voter whether a proposal's commitment agrees.
#[test]
fn the_view_gives_proposals_a_bounded_commitment_and_checks_theirs() {
    let (r, honest, _dir) = applied(5);
    assert_eq!(
        r.view.commitment_for(20, 2),
        honest[4],
        "the newest, 5 <= 15"
    );
    assert_eq!(r.view.commitment_for(8, 2), honest[2], "at most 3");
    assert_eq!(r.view.commitment_for(5, 2), StateCommitment::NONE);
    assert_eq!(r.view.before_vote(&block(9, honest[2])), BeforeVote::Agrees);
    let mut forged = honest[2];
    forged.digest = Hash::of(b"not the state");
    assert!(matches!(
        r.view.before_vote(&block(9, forged)),
        BeforeVote::Contradicts(_)
    ));
    let ahead = StateCommitment {
        height: 7,
        ..honest[4]
    };
    assert_eq!(
        r.view.before_vote(&block(20, ahead)),
        BeforeVote::NotApplied
    );
}

#[test]
fn a_disagreeing_commitment_is_counted_and_stops_snapshots() {
    let plain: Vec<_> = (1..=6).map(|h| block(h, StateCommitment::NONE)).collect();
    let honest = digests(&plain);
    let mut forged = honest[1];
    forged.digest = Hash::of(b"not the state");
    let blocks = vec![
        block(1, StateCommitment::NONE),
        block(2, StateCommitment::NONE),
        block(3, honest[1]),
        block(4, forged),
        // A commitment to a height no honest proposer had applied.
        block(5, honest[4]),
        block(6, honest[4]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &blocks);
    assert_eq!(r.metrics.state_commitment_mismatches.get(), 2);
    assert_eq!(
        r.metrics.state_commitments_checked.get(),
        2,
        "blocks 3 and 6"
    );
    // The store's own state is still the honest one: the node applies what is final.
    assert_eq!(r.view.commitment(), honest[5]);
    let store = r.store.lock().unwrap();
    assert_eq!(store.heights(), vec![2], "no snapshot after the mismatch");
    assert!(store.manifests().is_empty(), "none served");
    let why = store.refused().unwrap();
    assert!(
        why.contains("block 4"),
        "the first mismatch against this node's state: {why}"
    );
    assert!(
        why.contains(&forged.digest.to_string()) && why.contains(&honest[1].digest.to_string()),
        "{why}"
    );
    assert!(dir.path().join("snapshots/DIVERGED").exists());
}

#[test]
fn a_commitment_to_an_impossible_height_is_counted_but_blames_only_the_proposer() {
    let plain: Vec<_> = (1..=4).map(|h| block(h, StateCommitment::NONE)).collect();
    let honest = digests(&plain);
    let blocks = vec![
        block(1, StateCommitment::NONE),
        block(2, StateCommitment::NONE),
        block(3, honest[2]),
        block(4, honest[2]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &blocks);
    assert_eq!(r.metrics.state_commitment_mismatches.get(), 1);
    assert_eq!(r.metrics.state_commitments_checked.get(), 1);
    let store = r.store.lock().unwrap();
    assert_eq!(store.refused(), None);
    assert_eq!(store.heights(), vec![4, 2], "snapshots go on");
}
