//! W-7.4: the primary's unnotarized proposals for voters that could not have seen them
//! (scenario T-35 of section 10 and W-7.4b).

use crate::fixture::*;
use pala_core::*;
use pala_types::*;

/// A primary of epoch (1,1) with an unnotarized proposal (no votes come back).
fn producing_primary(f: &Fixture) -> Solo {
    let mut p = Solo::new(f.node(0));
    p.input(Input::Start);
    assert!(
        !p.node.is_producing(),
        "N-2: waits for statuses or 2 T_VOTER"
    );
    p.advance(2 * f.cfg.voter_timeout_ms + 5); // N-2 step 5: starts without statuses
    assert!(p.node.is_producing());
    assert!(p.node.unnotarized_proposals().next().is_some());
    p
}

/// Delivers `from`'s status at `epoch` to the primary; how many batches of unnotarized
/// proposals the primary sent back to it.
fn resent_on_status(p: &mut Solo, f: &Fixture, from: NodeId, epoch: Epoch) -> usize {
    let status = f
        .verifier
        .verify(Message::Status(Status {
            epoch,
            ..Status::default()
        }))
        .unwrap();
    p.input(Input::Message { from, msg: status })
        .iter()
        .filter(|o| matches!(o, Output::Send { to, msg: Message::UnnotarizedProposals(_) } if *to == from))
        .count()
}

#[test]
fn t35_unnotarized_proposals_to_a_new_voter_once_per_cool_down() {
    let f = Fixture::new(1, 3, 2);
    let mut p = producing_primary(&f);
    let voter = f.id(1);
    p.input(Input::PeerConnected(voter));
    assert_eq!(
        resent_on_status(&mut p, &f, voter, Epoch::new(1, 1)),
        1,
        "sent to a newly seen voter"
    );
    assert_eq!(
        resent_on_status(&mut p, &f, voter, Epoch::new(1, 1)),
        0,
        "only on the first status of a connection"
    );
    p.input(Input::PeerDisconnected(voter));
    p.input(Input::PeerConnected(voter));
    assert_eq!(
        resent_on_status(&mut p, &f, voter, Epoch::new(1, 1)),
        0,
        "not resent within the cool-down"
    );
    let sent_at = p.now;
    p.advance(sent_at + f.cfg.unnotarized_resend_ms);
    p.input(Input::PeerDisconnected(voter));
    p.input(Input::PeerConnected(voter));
    let ours = p.node.epoch();
    assert_eq!(
        resent_on_status(&mut p, &f, voter, ours),
        1,
        "resent once the cool-down is over"
    );
}

/// W-7.4b: a voter that was behind when it got the proposals (it dropped them, W-11b)
/// gets them again once its status reports the primary's epoch, once per epoch: a peer
/// that moves its status back and forth cannot make the primary repeat them.
#[test]
fn w7_4b_unnotarized_proposals_again_when_a_voter_enters_the_epoch() {
    let f = Fixture::new(1, 3, 2);
    let mut p = producing_primary(&f);
    let voter = f.id(1);
    let behind = Epoch::new(1, 0);
    let ours = p.node.epoch();
    assert!(behind < ours);
    p.input(Input::PeerConnected(voter));
    assert_eq!(
        resent_on_status(&mut p, &f, voter, behind),
        1,
        "W-7.4: the greeting"
    );
    assert_eq!(
        resent_on_status(&mut p, &f, voter, behind),
        0,
        "still behind: nothing more"
    );
    assert_eq!(
        resent_on_status(&mut p, &f, voter, ours),
        1,
        "entered our epoch: again, within the cool-down"
    );
    for epoch in [ours, behind, ours] {
        assert_eq!(
            resent_on_status(&mut p, &f, voter, epoch),
            0,
            "once per epoch (status {epoch:?})"
        );
    }
    // A voter greeted while already in our epoch got them in time: nothing more.
    let other = f.id(2);
    p.input(Input::PeerConnected(other));
    assert_eq!(resent_on_status(&mut p, &f, other, ours), 1);
    for epoch in [behind, ours] {
        assert_eq!(
            resent_on_status(&mut p, &f, other, epoch),
            0,
            "status {epoch:?}"
        );
    }
}

/// W-7.4: only voters get the unnotarized proposals: a standby proposer greeting the
/// primary (it never votes, R-2) gets none.
#[test]
fn w7_4_unnotarized_proposals_go_to_voters_only() {
    let f = Fixture::new(2, 3, 2);
    let mut p = producing_primary(&f);
    let ours = p.node.epoch();
    let standby = f.id(1);
    p.input(Input::PeerConnected(standby));
    assert_eq!(resent_on_status(&mut p, &f, standby, ours), 0);
    let voter = f.id(2);
    p.input(Input::PeerConnected(voter));
    assert_eq!(resent_on_status(&mut p, &f, voter, ours), 1);
}

/// W-7.4: a primary with no unnotarized proposals sends no (empty) batch to a voter
/// that greets it.
#[test]
fn w7_4_a_primary_with_nothing_unnotarized_sends_nothing() {
    let f = Fixture::new(1, 3, 2);
    let mut p = Solo::new(f.node(0));
    p.input(Input::Start);
    assert!(p.node.unnotarized_proposals().next().is_none());
    let (voter, ours) = (f.id(1), p.node.epoch());
    p.input(Input::PeerConnected(voter));
    assert_eq!(resent_on_status(&mut p, &f, voter, ours), 0);
}

/// W-7.4b is for voters that enter the primary's epoch: a voter that was already in it
/// when the primary began producing got the proposals as they were broadcast, so its
/// later statuses bring no batch.
#[test]
fn w7_4b_a_voter_already_in_the_epoch_gets_no_batch_later() {
    let f = Fixture::new(1, 3, 2);
    let mut p = Solo::new(f.node(0));
    p.input(Input::Start);
    let (voter, ours) = (f.id(1), p.node.epoch());
    p.input(Input::PeerConnected(voter));
    assert_eq!(
        resent_on_status(&mut p, &f, voter, ours),
        0,
        "nothing to send yet"
    );
    p.advance(2 * f.cfg.voter_timeout_ms + 5);
    assert!(p.node.unnotarized_proposals().next().is_some());
    assert_eq!(resent_on_status(&mut p, &f, voter, ours), 0);
}
