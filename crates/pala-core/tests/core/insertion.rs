//! Block insertion (N-9, I-2; docs/protocol.md section 3.6), one rule per test, each with
//! a block that only that rule refuses. The outcome is read from the counters of the
//! proposal path, which tell a stale block (N-9.5) from an invalid one, so a rule that
//! stopped refusing (or refused for another reason) is seen. Written for the survivors
//! of mutation testing (perf/mutants.md).

use crate::fixture::*;
use pala_core::*;
use pala_types::*;
use std::sync::Arc;

/// A voter (node 1 of one proposer and three voters, K = 2) that stored `blocks` from
/// their proposals.
fn voter_with(f: &Fixture, blocks: &[Arc<Block>]) -> Node {
    let mut n = f.node(1);
    for b in blocks {
        f.deliver(&mut n, 0, 0, Message::Proposal(f.proposal(b)));
        assert!(n.chain().get(b.sn()).is_some(), "{:?} stored", b.sn());
    }
    n
}

/// Delivers `b` as the primary's proposal; returns the counter that went up.
fn propose(f: &Fixture, n: &mut Node, b: &Arc<Block>) -> CoreEvent {
    let watched = [
        CoreEvent::ProposalInvalid,
        CoreEvent::ProposalStale,
        CoreEvent::ProposalConflict,
        CoreEvent::ProposalMissingParent,
    ];
    let before: Vec<u64> = watched.iter().map(|e| n.counters().get(*e)).collect();
    f.deliver(n, 0, 0, Message::Proposal(f.proposal(b)));
    let moved: Vec<CoreEvent> = watched
        .iter()
        .zip(before)
        .filter(|(e, b)| n.counters().get(**e) > *b)
        .map(|(e, _)| *e)
        .collect();
    assert_eq!(
        moved.len(),
        1,
        "{:?}: exactly one refusal, got {moved:?}",
        b.sn()
    );
    assert!(n
        .chain()
        .get(b.sn())
        .is_none_or(|e| e.block.hash() != b.hash()));
    moved[0]
}

/// A voter whose finalized root is (1,1,3): blocks (1,1,1)..(1,1,5) synced with their
/// notarizations (the notarization of (1,1,5) finalizes (1,1,3), F-B).
fn voter_rooted_at_3(f: &Fixture) -> (Node, Vec<Arc<Block>>) {
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 5);
    let mut n = f.node(1);
    let refs: Vec<&Arc<Block>> = c.iter().collect();
    f.deliver(&mut n, 0, 0, fresher(&refs, f));
    assert_eq!(n.chain().root(), sn(1, 1, 3));
    (n, c)
}

/// N-9.5: a block at or below the finalized root is stale, even one whose parent is the
/// root itself (it then breaks D-4 as well, but staleness is what it is refused for).
#[test]
fn n9_5_a_block_at_or_below_the_root_is_stale() {
    let f = Fixture::new(1, 3, 2);
    let (mut n, c) = voter_rooted_at_3(&f);
    let below = f.block_with(&c[2], sn(1, 1, 2), vec![], None, b"below");
    assert_eq!(propose(&f, &mut n, &below), CoreEvent::ProposalStale);
}

/// N-9.2 / N-9.5: a parent below the root was pruned, not missing: no catch-up.
#[test]
fn n9_5_a_parent_below_the_root_is_stale_not_missing() {
    let f = Fixture::new(1, 3, 2);
    let (mut n, c) = voter_rooted_at_3(&f);
    let off_pruned = f.block_with(&c[0], sn(1, 1, 6), vec![f.nota(&c[3])], None, b"x");
    assert_eq!(propose(&f, &mut n, &off_pruned), CoreEvent::ProposalStale);
}

/// D-4 / N-9.4: a block of a later epoch than its parent must be that epoch's first.
#[test]
fn n9_4_a_later_epoch_block_after_the_parent_epoch_must_have_serial_1() {
    let f = Fixture::new(1, 3, 2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 2);
    let mut n = voter_with(&f, &c);
    f.deliver(
        &mut n,
        0,
        0,
        Message::ClockNotarization(f.cnota(Epoch::new(1, 2))),
    );
    assert_eq!(n.epoch(), Epoch::new(1, 2));
    let skips = f.block(&c[1], sn(1, 2, 2), vec![], None);
    assert_eq!(propose(&f, &mut n, &skips), CoreEvent::ProposalInvalid);
}

/// I-2: (e,1) carries the parent epoch's last K notarizations by sn *and* hash: one of a
/// sibling at the right sn is refused.
#[test]
fn i2_a_timeout_block_embedding_a_siblings_notarization_is_invalid() {
    let f = Fixture::new(1, 3, 2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 2);
    let sibling = f.block_with(&c[0], sn(1, 1, 2), vec![], None, b"sibling");
    let mut n = voter_with(&f, &c);
    let e2 = Epoch::new(1, 2);
    let bad = f.block(
        &c[1],
        sn(1, 2, 1),
        vec![f.nota(&c[0]), f.nota(&sibling)],
        Some(f.cnota(e2)),
    );
    assert_eq!(propose(&f, &mut n, &bad), CoreEvent::ProposalInvalid);
    let good = f.block(
        &c[1],
        sn(1, 2, 1),
        vec![f.nota(&c[0]), f.nota(&c[1])],
        Some(f.cnota(e2)),
    );
    f.deliver(&mut n, 0, 0, Message::Proposal(f.proposal(&good)));
    assert!(
        n.chain().get(sn(1, 2, 1)).is_some(),
        "the right one is taken"
    );
}

/// I-2: (e,1) carries cnota(e) iff E > 1: the first block of the session carries none.
#[test]
fn i2_the_sessions_first_block_carries_no_clock_notarization() {
    let f = Fixture::new(1, 3, 2);
    let mut n = f.node(1);
    let e1 = Epoch::new(1, 1);
    let with_clock = f.block(&f.genesis, sn(1, 1, 1), vec![], Some(f.cnota(e1)));
    assert_eq!(propose(&f, &mut n, &with_clock), CoreEvent::ProposalInvalid);
}

/// I-2: (e,1) with E > 1 must carry cnota(e), also at a node already in epoch e (which
/// needs no proof of it any more).
#[test]
fn i2_a_timeout_block_without_its_clock_notarization_is_invalid_in_its_epoch() {
    let f = Fixture::new(1, 3, 2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 2);
    let mut n = voter_with(&f, &c);
    let e2 = Epoch::new(1, 2);
    f.deliver(&mut n, 0, 0, Message::ClockNotarization(f.cnota(e2)));
    assert_eq!(n.epoch(), e2);
    let bare = f.block(&c[1], sn(1, 2, 1), vec![f.nota(&c[0]), f.nota(&c[1])], None);
    assert_eq!(propose(&f, &mut n, &bare), CoreEvent::ProposalInvalid);
}

/// N-9.6 / E-8: an embedded clock notarization moves L only inside L's session; sessions
/// change through finality alone (C-3), even where the verifier already knows the next
/// session's committee (as here).
#[test]
fn n9_6_a_clock_notarization_of_the_next_session_does_not_move_the_epoch() {
    let mut f = Fixture::new(1, 3, 2);
    f.cfg.stop_offset = 5;
    f.schedule_same_members(2, true);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 5);
    let mut n = f.node(1);
    let refs: Vec<&Arc<Block>> = c1.iter().collect();
    f.deliver(&mut n, 0, 0, fresher(&refs, &f));
    assert_eq!(
        n.chain().head(),
        sn(1, 1, 5),
        "up to the stop block, not final"
    );
    let e22 = Epoch::new(2, 2);
    let next = f.block(
        &c1[4],
        sn(2, 2, 1),
        vec![f.nota(&c1[3]), f.nota(&c1[4])],
        Some(f.cnota(e22)),
    );
    f.deliver(&mut n, 0, 0, fresher(&[&next], &f));
    assert_eq!(n.epoch(), Epoch::new(1, 1));
    assert!(n.chain().get(sn(2, 2, 1)).is_none());
}

/// W-12e: block (1,1,6) at height 6 with K = 2 may commit to height 1 at most.
#[test]
fn w12e_a_state_commitment_too_recent_for_the_height_is_refused() {
    let f = Fixture::new(1, 3, 2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 5);
    let mut n = voter_with(&f, &c);
    let committing = |height| {
        let mut h = header(&c[4], sn(1, 1, 6));
        h.state = StateCommitment {
            height,
            digest: Hash([3; 32]),
        };
        let info = ConsensusInfo {
            notarizations: vec![f.nota(&c[3])],
            clock: None,
        };
        Arc::new(Block::new(h, vec![b"payload".to_vec()], info))
    };
    assert_eq!(
        propose(&f, &mut n, &committing(2)),
        CoreEvent::ProposalInvalid
    );
    let ok = committing(1);
    f.deliver(&mut n, 0, 0, Message::Proposal(f.proposal(&ok)));
    assert_eq!(
        n.chain().get(ok.sn()).map(|e| e.block.hash()),
        Some(ok.hash())
    );
}
