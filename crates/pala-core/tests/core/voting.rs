//! A voter's and a standby's handling of proposals (V-1..V-7) where two blocks claim one
//! sn: the one stored first stays, and no vote goes to the other.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;

/// V-4 / N-9: a second, different proposal for an sn already stored is a conflict: the
/// stored block stays, the conflict is counted (a standby proposer, which stores every
/// proposal and votes for none, sees both).
#[test]
fn v4_a_conflicting_proposal_leaves_the_stored_block() {
    let f = Fixture::new(2, 3, 2);
    let mut n = f.node(1);
    n.handle(0, Input::Start);
    let first = f.block(&f.genesis, sn(1, 1, 1), vec![], None);
    let other = f.block_with(&f.genesis, sn(1, 1, 1), vec![], None, b"other");
    f.deliver(&mut n, 0, 0, Message::Proposal(f.proposal(&first)));
    f.deliver(&mut n, 0, 0, Message::Proposal(f.proposal(&other)));
    assert_eq!(n.chain().hash(sn(1, 1, 1)), Some(first.hash()));
    assert_eq!(n.counters().get(CoreEvent::ProposalConflict), 1);
}

/// V-5/V-7: a pending proposal whose sn meanwhile holds another block (synced with its
/// notarization) gets no vote when the pending proposals are retried.
#[test]
fn v7_a_pending_proposal_overtaken_by_another_block_gets_no_vote() {
    let f = Fixture::new(1, 3, 2);
    let mut v = f.node(1);
    v.handle(0, Input::Start);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 2);
    let other = f.block_with(&c[0], sn(1, 1, 2), vec![], None, b"other");
    f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(&other)));
    assert_eq!(v.buffer_sizes()["pending"], 1, "its parent is missing");
    let outs = f.deliver(&mut v, 0, 0, fresher(&[&c[0], &c[1]], &f));
    assert_eq!(v.chain().hash(sn(1, 1, 2)), Some(c[1].hash()));
    assert!(
        votes(&outs)
            .iter()
            .all(|vote| vote.block_hash != other.hash()),
        "no vote for the overtaken proposal"
    );
}
