//! Clock messages (E-2..E-5): what a voter sends when it times out, and what the primary
//! does with the ones it receives.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;
use std::sync::Arc;

fn clock(f: &Fixture, node: usize, epoch: Epoch) -> Message {
    Message::Clock(ClockMessage {
        voter: f.id(node),
        epoch,
        signature: f.keys[node].sign(Domain::Clock, NET, &epoch.signing_bytes()),
    })
}

fn clock_epochs(outs: &[Output]) -> Vec<Epoch> {
    sends(outs)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Clock(c) => Some(c.epoch),
            _ => None,
        })
        .collect()
}

/// A voter that times out again in the same epoch repeats its clock message; once its
/// epoch moved on, it signs one for the next epoch instead of repeating the old one.
#[test]
fn a_voter_times_out_into_the_epoch_after_its_current_one() {
    let f = Fixture::new(1, 3, 2);
    let mut v = f.node(1);
    v.handle(0, Input::Start);
    let t = f.cfg.voter_timeout_ms;
    let first = clock_epochs(&v.handle(t, Input::Timer(TimerKind::Voter)));
    assert_eq!(first, [Epoch::new(1, 2)]);
    let again = clock_epochs(&v.handle(2 * t, Input::Timer(TimerKind::Voter)));
    assert_eq!(again, [Epoch::new(1, 2)], "still in (1,1)");
    f.deliver(
        &mut v,
        2 * t,
        0,
        Message::ClockNotarization(f.cnota(Epoch::new(1, 2))),
    );
    assert_eq!(v.epoch(), Epoch::new(1, 2));
    let next = clock_epochs(&v.handle(3 * t, Input::Timer(TimerKind::Voter)));
    assert_eq!(next, [Epoch::new(1, 3)]);
}

/// E-4: the primary forms a clock notarization from a quorum of clock messages for one
/// epoch, and again for a later epoch from the same voters' newer messages; a message
/// for an epoch before its own is counted stale, one for its own epoch is not.
#[test]
fn the_primary_follows_each_voters_newest_clock_message() {
    let f = Fixture::new(1, 3, 2);
    let mut p = f.node(0);
    p.handle(0, Input::Start);
    f.deliver(&mut p, 0, 1, clock(&f, 1, Epoch::new(1, 1)));
    assert_eq!(p.counters().get(CoreEvent::ClockStale), 0, "its own epoch");
    for e in [2, 3] {
        for voter in 1..3 {
            f.deliver(&mut p, 0, voter, clock(&f, voter, Epoch::new(1, e)));
        }
        assert_eq!(p.epoch(), Epoch::new(1, e), "a quorum of (1,{e})");
    }
    f.deliver(&mut p, 0, 3, clock(&f, 3, Epoch::new(1, 2)));
    assert_eq!(p.counters().get(CoreEvent::ClockStale), 1, "an older epoch");
}

fn clocks_held(n: &Node) -> usize {
    n.buffer_sizes()["clocks"]
}

/// E-4, E-7: when its epoch advances to `x`, a proposer forgets the clock messages for
/// `x` and older (they can form nothing any more) and keeps a voter's message for a later
/// epoch, which still counts towards that epoch's quorum.
#[test]
fn e7_advancing_keeps_only_clock_messages_for_later_epochs() {
    let f = Fixture::new(1, 3, 2);
    let mut p = f.node(0);
    p.handle(0, Input::Start);
    f.deliver(&mut p, 0, 1, clock(&f, 1, Epoch::new(1, 3)));
    for voter in [2, 3] {
        f.deliver(&mut p, 0, voter, clock(&f, voter, Epoch::new(1, 2)));
    }
    assert_eq!(p.epoch(), Epoch::new(1, 2));
    assert_eq!(clocks_held(&p), 1, "only voter 1's clock(1,3) is left");
    f.deliver(&mut p, 0, 2, clock(&f, 2, Epoch::new(1, 3)));
    assert_eq!(
        p.epoch(),
        Epoch::new(1, 3),
        "voter 1's earlier clock(1,3) completes the quorum"
    );
}

/// F-2: finality forgets the clock messages of the finalized block's epoch and older,
/// and keeps those for later epochs, which still count towards their quorum.
#[test]
fn f2_finality_keeps_only_clock_messages_for_later_epochs() {
    let f = Fixture::new(2, 3, 2);
    let mut p = f.node(1); // a standby proposer: it collects clock messages (E-4)
    p.handle(0, Input::Start);
    f.deliver(&mut p, 0, 2, clock(&f, 2, Epoch::new(1, 2)));
    f.deliver(&mut p, 0, 3, clock(&f, 3, Epoch::new(1, 1)));
    assert_eq!(clocks_held(&p), 2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 3);
    let refs: Vec<&Arc<Block>> = c.iter().collect();
    f.deliver(&mut p, 0, 0, fresher(&refs, &f));
    assert_eq!(p.finalized(), sn(1, 1, 1));
    assert_eq!(
        clocks_held(&p),
        1,
        "the clock for the finalized epoch is gone"
    );
    f.deliver(&mut p, 0, 4, clock(&f, 4, Epoch::new(1, 2)));
    assert_eq!(
        p.epoch(),
        Epoch::new(1, 2),
        "voter 2's clock(1,2) from before finality completes the quorum"
    );
}

/// E-7: a voter's pending proposals of the epoch it leaves are dropped (V-0: it could
/// never vote for them).
#[test]
fn e7_advancing_drops_pending_proposals_of_older_epochs() {
    let f = Fixture::new(1, 3, 2);
    let mut v = f.node(1);
    v.handle(0, Input::Start);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 2);
    f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(&c[1])));
    assert_eq!(v.buffer_sizes()["pending"], 1, "its parent is missing");
    f.deliver(
        &mut v,
        0,
        0,
        Message::ClockNotarization(f.cnota(Epoch::new(1, 2))),
    );
    assert_eq!(v.epoch(), Epoch::new(1, 2));
    assert_eq!(v.buffer_sizes()["pending"], 0);
}

/// E-6: a clock notarization moves `L` only within its session; one for a later epoch
/// of the next session (valid: the verifier knows that committee) leaves `L` alone, as
/// one for an epoch that is not later does.
#[test]
fn e6_a_clock_notarization_of_another_session_does_not_move_the_epoch() {
    let mut f = Fixture::new(1, 3, 2);
    f.schedule_same_members(2, true);
    let mut v = f.node(1);
    v.handle(0, Input::Start);
    for e in [Epoch::new(2, 2), Epoch::new(1, 1)] {
        f.deliver(&mut v, 0, 0, Message::ClockNotarization(f.cnota(e)));
        assert_eq!(v.epoch(), Epoch::new(1, 1), "after cnota{e}");
    }
}
