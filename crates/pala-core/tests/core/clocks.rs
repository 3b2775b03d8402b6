//! Clock messages (E-2..E-5): what a voter sends when it times out, and what the primary
//! does with the ones it receives.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;

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
