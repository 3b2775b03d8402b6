use super::*;
use pala_types::{
    BlockHeader, ConsensusInfo, Member, Notarization, PublicKey, Signature, SignerBitmap,
    VoteCounting,
};
use std::sync::Arc;

fn child(parent: &Block, sn: BlockSn, session_offset: u32) -> Arc<Block> {
    Arc::new(Block::new(
        BlockHeader {
            sn,
            parent_sn: parent.sn(),
            parent_hash: parent.hash(),
            height: parent.height() + 1,
            session_offset,
            timestamp_ms: 0,
            state: pala_types::StateCommitment::NONE,
        },
        vec![],
        ConsensusInfo::default(),
    ))
}

fn nota(b: &Block) -> Notarization {
    let mut signers = SignerBitmap::new(4);
    for i in 0..3 {
        signers.insert(i);
    }
    Notarization {
        sn: b.sn(),
        block_hash: b.hash(),
        proposer_idx: 0,
        signers,
        signature: Signature(vec![]),
    }
}

fn sn(session: u32, e: u32, s: u32) -> BlockSn {
    BlockSn::new(session, e, s)
}

/// Inserts and notarizes (when `notarized`) each block in order.
fn grow(c: &mut Chain, blocks: &[(&Arc<Block>, bool)]) {
    for (b, notarized) in blocks {
        c.insert((*b).clone());
        if *notarized {
            c.attach(nota(b));
        }
    }
}

fn find(t: &TreeView, at: BlockSn) -> &BlockView {
    let want = sn_json(at);
    t.blocks
        .iter()
        .find(|b| b.sn == want)
        .unwrap_or_else(|| panic!("{at:?} is not in the view"))
}

#[test]
fn timeout_block_of_a_new_epoch_is_marked_and_in_the_k_window() {
    // (1,1,1) <- (1,1,2) <- (1,1,3, never notarized); the voters timed out into (1,2)
    // and its primary built (1,2,1) on the head (1,1,2) (E-12).
    let g = Arc::new(Block::genesis(vec![]));
    let mut c = Chain::new(g.clone(), None);
    let b1 = child(&g, sn(1, 1, 1), 1);
    let b2 = child(&b1, sn(1, 1, 2), 2);
    let b3 = child(&b2, sn(1, 1, 3), 3);
    let t1 = child(&b2, sn(1, 2, 1), 3);
    grow(
        &mut c,
        &[(&b1, true), (&b2, true), (&b3, false), (&t1, false)],
    );
    let t = tree_view(&c, Epoch::new(1, 2), 0, []);
    assert_eq!(t.left_out, 0);
    assert_eq!(
        t.blocks.iter().map(|b| b.height).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 3],
        "oldest first"
    );
    let timeout = find(&t, sn(1, 2, 1));
    assert!(timeout.timeout && timeout.k_window && !timeout.notarized);
    assert!(!timeout.stop && !timeout.session_start && !timeout.freshest);
    assert_eq!(timeout.parent, (1, 1, 2));
    // The abandoned proposal of the old epoch is outside the K window of L = (1,2).
    let old = find(&t, sn(1, 1, 3));
    assert!(!old.timeout && !old.k_window && !old.notarized);
    let head = find(&t, sn(1, 1, 2));
    assert!(head.notarized && head.freshest && !head.finalized && !head.timeout);
    // (1,1,1) follows genesis, an earlier epoch: a timeout block too (D-5).
    assert!(find(&t, sn(1, 1, 1)).timeout);
    let genesis = find(&t, BlockSn::GENESIS);
    assert!(genesis.finalized && genesis.notarized && genesis.freshest);
    assert!(!genesis.timeout, "genesis is no PaLa block");
}

#[test]
fn stop_block_and_the_first_block_of_the_next_session_are_marked() {
    // Stop offset 2: (1,1,2) is the stop block of session 1 (C-1); it is final, so it is
    // the root (C-7a), and (2,1,1) opens session 2 on (1,1,3) (C-4).
    let g = Arc::new(Block::genesis(vec![]));
    let mut c = Chain::new(g.clone(), None);
    let b1 = child(&g, sn(1, 1, 1), 1);
    let stop = child(&b1, sn(1, 1, 2), 2);
    let after = child(&stop, sn(1, 1, 3), 3);
    let s2 = child(&after, sn(2, 1, 1), 1);
    let s2b = child(&s2, sn(2, 1, 2), 2);
    grow(
        &mut c,
        &[
            (&b1, true),
            (&stop, true),
            (&after, true),
            (&s2, true),
            (&s2b, false),
        ],
    );
    c.finalize(stop.sn(), stop.sn());
    let t = tree_view(&c, Epoch::new(2, 1), 2, [s2b.sn()]);
    assert_eq!(c.root(), stop.sn());
    let st = find(&t, stop.sn());
    assert!(st.stop && st.finalized && !st.timeout && !st.session_start);
    let first = find(&t, s2.sn());
    assert!(first.session_start && first.timeout && !first.stop);
    assert!(first.notarized && first.freshest && !first.finalized);
    let next = find(&t, s2b.sn());
    assert!(next.k_window && !next.session_start && !next.timeout);
    // The session offset restarts at each session (D-6): offset 2 of session 2 is that
    // session's stop block.
    assert!(next.stop);
    assert!(
        t.blocks.iter().all(|b| b.height >= 2),
        "pruned below the root"
    );
}

#[test]
fn the_primarys_own_proposals_are_in_the_k_window_even_of_an_older_epoch() {
    let g = Arc::new(Block::genesis(vec![]));
    let mut c = Chain::new(g.clone(), None);
    let b1 = child(&g, sn(1, 1, 1), 1);
    grow(&mut c, &[(&b1, false)]);
    let t = tree_view(&c, Epoch::new(1, 3), 0, [b1.sn()]);
    assert!(find(&t, b1.sn()).k_window);
    let t = tree_view(&c, Epoch::new(1, 3), 0, []);
    assert!(!find(&t, b1.sn()).k_window);
}

#[test]
fn a_large_tree_keeps_its_root_and_the_newest_blocks() {
    let g = Arc::new(Block::genesis(vec![]));
    let mut c = Chain::new(g.clone(), None);
    let mut prev = g.clone();
    let n = MAX_TREE_BLOCKS as u32 + 40;
    for s in 1..=n {
        let b = child(&prev, sn(1, 1, s), s);
        grow(&mut c, &[(&b, false)]);
        prev = b;
    }
    let t = tree_view(&c, Epoch::new(1, 1), 0, []);
    assert_eq!(
        t.blocks.len(),
        MAX_TREE_BLOCKS + 1,
        "the newest and the root"
    );
    assert_eq!(t.left_out, 40, "the 41 oldest but the root");
    assert_eq!(t.blocks[0].sn, sn_json(BlockSn::GENESIS));
    assert_eq!(t.blocks.last().unwrap().sn, (1, 1, n));
    assert_eq!(
        t.blocks[1].height,
        u64::from(n) - MAX_TREE_BLOCKS as u64 + 1
    );
}

fn committee(proposers: u8, voters: u8) -> Committee {
    let member = |i: u8| Member::new(PublicKey(vec![i; 8]), Signature(vec![]), 1, "");
    Committee {
        session: 1,
        proposers: (0..proposers).map(member).collect(),
        voters: (100..100 + voters).map(member).collect(),
        counting: VoteCounting::default(),
    }
}

fn cnota(epoch: Epoch, proposer_idx: u16, signers: usize) -> ClockNotarization {
    let mut bits = SignerBitmap::new(4);
    for i in 0..signers {
        bits.insert(i);
    }
    ClockNotarization {
        epoch,
        proposer_idx,
        signers: bits,
        signature: Signature(vec![]),
    }
}

#[test]
fn epoch_change_causes_follow_the_proof_and_the_session() {
    let c = committee(2, 4);
    let p1 = c.proposers[1].id;
    let voter = c.voters[0].id;
    let (e1, e2) = (Epoch::new(1, 1), Epoch::new(1, 2));
    let proof = cnota(e2, 1, 3);

    let formed = EpochChange::new(e2, e1, Some(&proof), Some(&c), &p1, 7);
    assert_eq!(formed.cause, EpochCause::ClockNotarizationFormed);
    assert_eq!(formed.formed_by.as_deref(), Some("proposer 1"));
    assert_eq!((formed.signers, formed.from), (Some(3), Some((1, 1))));

    let received = EpochChange::new(e2, e1, Some(&proof), Some(&c), &voter, 7);
    assert_eq!(received.cause, EpochCause::ClockNotarizationReceived);
    assert_eq!(received.formed_by.as_deref(), Some("proposer 1"));

    // The proof held is a later epoch's: the earlier move's proof is not known.
    let superseded = EpochChange::new(e2, e1, Some(&cnota(Epoch::new(1, 3), 1, 3)), None, &p1, 7);
    assert_eq!(superseded.cause, EpochCause::ClockNotarizationReceived);
    assert_eq!((superseded.formed_by, superseded.signers), (None, None));

    let session = EpochChange::new(Epoch::new(2, 1), Epoch::new(1, 4), None, Some(&c), &p1, 9);
    assert_eq!(session.cause, EpochCause::NewSession);
    assert_eq!(session.formed_by, None);

    let json = serde_json::to_value(&session).unwrap();
    assert_eq!(json["cause"], "new_session");
    assert_eq!(json["epoch"], serde_json::json!([2, 1]));
    assert!(json.get("formed_by").is_none());
}

#[test]
fn the_epoch_log_keeps_the_newest_changes() {
    let mut log = EpochLog::new(Epoch::new(1, 1), 0);
    assert_eq!(log.newest_first()[0].cause, EpochCause::Start);
    for e in 2..=20 {
        log.push(EpochChange::new(
            Epoch::new(1, e),
            Epoch::new(1, e - 1),
            None,
            None,
            &NodeId([0; 20]),
            u64::from(e),
        ));
    }
    let kept = log.newest_first();
    assert_eq!(kept.len(), EPOCH_CHANGES_KEPT);
    assert_eq!(kept[0].epoch, (1, 20));
    assert_eq!(kept.last().unwrap().epoch, (1, 5));
    assert!(kept.iter().all(|c| c.cause != EpochCause::Start));
}

#[test]
fn peers_are_named_by_their_place_in_the_committee() {
    let c = committee(2, 4);
    let status = pala_types::Status {
        head: sn(1, 2, 5),
        head_height: 9,
        epoch: Epoch::new(1, 2),
        finalized: sn(1, 2, 3),
    };
    let p = PeerView::new(c.voters[3].id, Some(&c), true, Some(&status));
    assert_eq!(p.name, "voter 3");
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["status"]["head"], serde_json::json!([1, 2, 5]));
    assert_eq!(json["status"]["head_height"], 9);
    let gone = PeerView::new(c.proposers[0].id, Some(&c), false, None);
    assert_eq!(gone.name, "proposer 0");
    assert!(serde_json::to_value(&gone).unwrap().get("status").is_none());
    assert_eq!(member_name(Some(&c), &NodeId([7; 20])), "follower");
    assert_eq!(member_name(None, &c.voters[0].id), "follower");
}
