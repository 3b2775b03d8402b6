//! Votes at the primary (PV-1..PV-3, docs/protocol.md section 3.4), read from the
//! counters that say why a vote was not used.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;
use std::sync::Arc;

/// PV-1: only votes for blocks of the local epoch are collected; one for another epoch
/// is "not for me", whatever block it names.
#[test]
fn pv1_a_vote_for_another_epoch_is_not_collected() {
    let f = Fixture::new(1, 3, 2);
    let mut p = Solo::new(f.node(0));
    p.input(Input::Start);
    p.advance(2 * f.cfg.voter_timeout_ms + 5); // N-2 step 5: starts without statuses
    assert!(p.node.is_producing());
    assert_eq!(p.node.epoch(), Epoch::new(1, 1));
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 1);
    let later = f.block(
        &c[0],
        sn(1, 2, 1),
        vec![f.nota(&c[0])],
        Some(f.cnota(Epoch::new(1, 2))),
    );
    let (not_for_me, unknown) = (CoreEvent::VoteNotForMe, CoreEvent::VoteUnknownBlock);
    let before = (
        p.node.counters().get(not_for_me),
        p.node.counters().get(unknown),
    );
    p.deliver(&f, 1, Message::Vote(f.vote(1, &later)));
    assert_eq!(p.node.counters().get(not_for_me), before.0 + 1);
    assert_eq!(p.node.counters().get(unknown), before.1);
}

/// V-0 note [INFERRED, MAY]: the first block of a later epoch of this session that
/// embeds that epoch's clock notarization moves `L` there first (E-6), and is then voted
/// for like any proposal of `L`.
#[test]
fn v0_the_first_block_of_a_later_epoch_brings_its_clock_notarization() {
    let f = Fixture::new(1, 3, 2);
    let mut v = f.node(1);
    v.handle(0, Input::Start);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 2);
    let refs: Vec<&Arc<Block>> = c1.iter().collect();
    f.deliver(&mut v, 0, 0, fresher(&refs, &f));
    let e2 = f.chain(&c1, Epoch::new(1, 2), 1);
    let outs = f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(&e2[0])));
    assert_eq!(v.epoch(), Epoch::new(1, 2));
    assert_eq!(
        votes(&outs).iter().map(|v| v.sn).collect::<Vec<_>>(),
        [sn(1, 2, 1)]
    );
}

/// V-0 note: a first block of another session's epoch (valid: the verifier knows that
/// committee) does not move `L`, though it embeds a clock notarization: sessions change
/// only by reconfiguration (C-3); the proposal is for another epoch (V-0).
#[test]
fn v0_the_first_block_of_another_sessions_epoch_leaves_the_epoch_alone() {
    let mut f = Fixture::new(1, 3, 2);
    f.cfg.stop_offset = 5;
    f.schedule_same_members(2, true);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 5);
    let mut v = f.node(1);
    v.handle(0, Input::Start);
    let refs: Vec<&Arc<Block>> = c1.iter().collect();
    f.deliver(&mut v, 0, 0, fresher(&refs, &f));
    let next = f.block(
        &c1[4],
        sn(2, 2, 1),
        vec![f.nota(&c1[3]), f.nota(&c1[4])],
        Some(f.cnota(Epoch::new(2, 2))),
    );
    f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(&next)));
    assert_eq!(v.epoch(), Epoch::new(1, 1));
    assert_eq!(v.counters().get(CoreEvent::ProposalWrongEpoch), 1);
}
