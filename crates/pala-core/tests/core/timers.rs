//! Timer inputs: the core keeps its own deadlines and acts only on those that are due.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;

/// A timer input before its deadline (a host that fired early, or one that still holds
/// a deadline the core has since moved) changes nothing: no clock message before T_VOTER
/// (E-2).
#[test]
fn a_timer_before_its_deadline_is_ignored() {
    let f = Fixture::new(1, 3, 2);
    let mut v = f.node(1);
    v.handle(0, Input::Start);
    let clocks = |outs: &[Output]| {
        sends(outs)
            .iter()
            .filter(|(_, m)| matches!(m, Message::Clock(_)))
            .count()
    };
    let t = f.cfg.voter_timeout_ms;
    assert_eq!(clocks(&v.handle(t - 1, Input::Timer(TimerKind::Voter))), 0);
    assert_eq!(v.counters().get(CoreEvent::ClockMessagesSent), 0);
    assert_eq!(clocks(&v.handle(t, Input::Timer(TimerKind::Voter))), 1);
}

/// A due heartbeat broadcasts the status and comes back one period later (W-6).
#[test]
fn the_heartbeat_rearms_one_period_later() {
    let f = Fixture::new(1, 3, 2);
    let mut v = f.node(1);
    v.handle(0, Input::Start);
    let hb = f.cfg.heartbeat_ms;
    let outs = v.handle(hb, Input::Timer(TimerKind::Heartbeat));
    assert!(sends(&outs)
        .iter()
        .any(|(to, m)| to.is_none() && matches!(m, Message::Status(_))));
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::SetTimer { kind: TimerKind::Heartbeat, at } if *at == 2 * hb
    )));
}
