//! Votes at the primary (PV-1..PV-3, docs/protocol.md section 3.4), read from the
//! counters that say why a vote was not used.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;

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
