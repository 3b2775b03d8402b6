//! R-2 and the roles: only `primary(L)` produces and collects votes; a proposer that is
//! not a voter never votes.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;

/// A standby proposer (not primary of (1,1), not a voter) stores the primary's proposal
/// but signs no vote for it, produces nothing, and counts votes sent to it as not its own.
#[test]
fn a_standby_proposer_neither_votes_nor_produces_nor_collects_votes() {
    let f = Fixture::new(2, 3, 2);
    let mut standby = Solo::new(f.node(1));
    standby.input(Input::Start);
    for i in 2..5 {
        standby.input(Input::PeerConnected(f.id(i)));
        standby.deliver(&f, i, Message::Status(Status::default()));
    }
    standby.advance(2 * f.cfg.voter_timeout_ms + 5);
    assert!(
        !standby.node.is_producing(),
        "proposer 0 is primary of (1,1)"
    );
    let b = f
        .chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 1)
        .remove(0);
    let outs = standby.deliver(&f, 0, Message::Proposal(f.proposal(&b)));
    assert!(votes(&outs).is_empty(), "a proposer only is no voter");
    assert!(standby.node.chain().get(b.sn()).is_some(), "stored (V-4)");
    standby.deliver(&f, 2, Message::Vote(f.vote(2, &b)));
    assert_eq!(standby.node.counters().get(CoreEvent::VoteNotForMe), 1);
}
