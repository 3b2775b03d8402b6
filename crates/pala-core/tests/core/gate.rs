//! The new primary's readiness gate (N-2, docs/protocol.md section 3.2): with a quorum
//! of voters caught up it proposes after `DELAY_FIRST_PROPOSAL` (at once when its head is
//! in an earlier session: the session's first block), without one after 2 × `T_VOTER`
//! at the latest; only connected peers' statuses count.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;

/// A primary that becomes primary at `t0` (not 0, so that sums and products of the
/// gate's times differ): of epoch (1,1) on genesis, or, with `second_epoch`, of (1,2) on
/// a synced chain of (1,1). The statuses of `voters` come from connected peers at once;
/// `leave` disconnects them again; `silent` connects them without a status. Returns
/// when it first produced, after `t0`.
fn gate(second_epoch: bool, voters: &[usize], leave: bool, silent: bool) -> Gate {
    let mut f = Fixture::new(1, 3, 2); // quorum 2 of 3
                                       // No other timer may wake the primary inside the gate: only the gate's own do.
    f.cfg.heartbeat_ms = 100 * f.cfg.voter_timeout_ms;
    f.cfg.sync_period_ms = 100 * f.cfg.voter_timeout_ms;
    let t0 = 1000;
    let mut p = Solo::new(f.node(0));
    if second_epoch {
        p.input(Input::Start);
        let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 2);
        p.deliver(&f, 1, fresher(&[&c[0], &c[1]], &f));
        p.advance(t0);
        p.deliver(&f, 1, Message::ClockNotarization(f.cnota(Epoch::new(1, 2))));
        assert_eq!(p.node.epoch(), Epoch::new(1, 2));
        assert!(!p.node.is_producing());
    } else {
        p.advance(t0);
        p.input(Input::Start);
    }
    for &v in voters {
        p.input(Input::PeerConnected(f.id(v)));
        if !silent {
            p.deliver(&f, v, Message::Status(Status::default()));
        }
        if leave {
            p.input(Input::PeerDisconnected(f.id(v)));
        }
    }
    let limit = t0 + 3 * f.cfg.voter_timeout_ms;
    while !p.node.is_producing() {
        assert!(p.now < limit, "never produced");
        p.advance(p.now + 1);
    }
    Gate {
        at: p.now - t0,
        delay: f.cfg.first_proposal_delay_ms,
        t_voter: f.cfg.voter_timeout_ms,
    }
}

/// What [`gate`] saw, in milliseconds after the primary's start.
struct Gate {
    at: Tick,
    delay: Tick,
    t_voter: Tick,
}

fn first_production(second_epoch: bool, voters: &[usize], leave: bool) -> (Tick, Tick, Tick) {
    let g = gate(second_epoch, voters, leave, false);
    (g.at, g.delay, g.t_voter)
}

#[test]
fn n2_with_a_quorum_caught_up_the_primary_proposes_after_the_first_proposal_delay() {
    let (at, delay, _) = first_production(true, &[1, 2], false);
    assert_eq!(at, delay);
}

#[test]
fn n2_the_first_block_of_a_session_goes_out_as_soon_as_a_quorum_is_caught_up() {
    let (at, _, _) = first_production(false, &[1, 2], false);
    assert_eq!(at, 0, "genesis is session 0");
}

#[test]
fn n2_without_a_quorum_the_primary_proposes_after_twice_the_voter_timeout() {
    for second_epoch in [false, true] {
        let (at, _, t_voter) = first_production(second_epoch, &[1], false);
        assert_eq!(at, 2 * t_voter, "one voter of three is below the quorum");
        let (at, _, t_voter) = first_production(second_epoch, &[], false);
        assert_eq!(at, 2 * t_voter);
    }
}

#[test]
fn n2_statuses_of_disconnected_peers_do_not_count() {
    for second_epoch in [false, true] {
        let (at, _, t_voter) = first_production(second_epoch, &[1, 2], true);
        assert_eq!(at, 2 * t_voter);
    }
}

/// A connected voter counts once its status says it is caught up, not before.
#[test]
fn n2_connected_voters_without_a_status_do_not_count() {
    let g = gate(true, &[1, 2], false, true);
    assert_eq!(g.at, 2 * g.t_voter);
}
