//! What the node keeps of its peers (W-6, W-7.1): the status exchange on connecting,
//! the statuses it reports, and the request slots a disconnecting peer frees.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;

fn st(e: u32) -> Status {
    Status {
        epoch: Epoch::new(1, e),
        ..Status::default()
    }
}

/// W-6: a connected peer gets the node's status at once; the statuses kept are the
/// connected peers' latest, and a peer that leaves is listed as disconnected, without one.
#[test]
fn w6_status_on_connect_and_the_statuses_the_node_reports() {
    let f = Fixture::new(2, 3, 2);
    let mut v = f.node(2);
    v.handle(0, Input::Start);
    let outs = v.handle(0, Input::PeerConnected(f.id(0)));
    assert!(
        sends(&outs)
            .iter()
            .any(|(to, m)| *to == Some(f.id(0)) && matches!(m, Message::Status(_))),
        "the status goes out on connecting"
    );
    f.deliver(&mut v, 0, 0, Message::Status(st(2)));
    let seen: Vec<_> = v
        .peer_statuses()
        .map(|(id, up, s)| (id, up, s.map(|s| s.epoch)))
        .collect();
    assert_eq!(seen, vec![(f.id(0), true, Some(Epoch::new(1, 2)))]);
    v.handle(1, Input::PeerDisconnected(f.id(0)));
    let seen: Vec<_> = v
        .peer_statuses()
        .map(|(id, up, s)| (id, up, s.is_some()))
        .collect();
    assert_eq!(seen, vec![(f.id(0), false, false)]);
}

/// W-7.1: a request slot whose peer disconnects is free at once: the next poll asks
/// another peer instead of waiting out the request timeout. The peer that stays is
/// not affected.
#[test]
fn w7_1_a_disconnected_peers_request_slot_is_freed() {
    let f = Fixture::new(2, 3, 2);
    let mut v = f.node(2);
    v.handle(0, Input::Start);
    for p in [0usize, 1] {
        v.handle(0, Input::PeerConnected(f.id(p)));
    }
    let head = |s| Status {
        head: BlockSn::new(1, 1, s),
        head_height: s as u64,
        ..st(1)
    };
    let asked = |outs: &[Output], epoch: bool| -> Vec<Option<NodeId>> {
        sends(outs)
            .into_iter()
            .filter(|(_, m)| {
                if epoch {
                    matches!(m, Message::GetEpoch(_))
                } else {
                    matches!(m, Message::GetFresherHead(_))
                }
            })
            .map(|(to, _)| to)
            .collect()
    };
    // Peer 0 is ahead in epoch and head, peer 1 only a little less: both slots go to 0.
    let outs = f.deliver(
        &mut v,
        0,
        0,
        Message::Status(Status {
            epoch: Epoch::new(1, 3),
            ..head(9)
        }),
    );
    assert_eq!(asked(&outs, true), vec![Some(f.id(0))]);
    assert_eq!(asked(&outs, false), vec![Some(f.id(0))]);
    f.deliver(
        &mut v,
        0,
        1,
        Message::Status(Status {
            epoch: Epoch::new(1, 2),
            ..head(8)
        }),
    );
    // Both requests are outstanding until T_VOTER / 2; everything below happens before.
    let timeout = f.cfg.voter_timeout_ms / 2;
    let outs = v.handle(timeout / 3, Input::Timer(TimerKind::Sync));
    assert!(
        asked(&outs, true).is_empty() && asked(&outs, false).is_empty(),
        "both busy"
    );
    let mut outs = v.handle(timeout / 2, Input::PeerDisconnected(f.id(0)));
    outs.extend(v.handle(timeout / 2 + 1, Input::Timer(TimerKind::Sync)));
    assert_eq!(
        asked(&outs, true),
        vec![Some(f.id(1))],
        "the epoch slot was freed"
    );
    assert_eq!(
        asked(&outs, false),
        vec![Some(f.id(1))],
        "the blocks slot was freed"
    );
}

/// W-7.3 (serving): a fresher-head request is answered, to the asker alone (what the
/// answer holds is `serve_fresher_head`'s, which `rules.rs` tests).
#[test]
fn w7_3_a_fresher_head_request_is_answered_to_the_asker() {
    let f = Fixture::new(2, 3, 2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 3);
    let mut v = f.node(2);
    let refs: Vec<&std::sync::Arc<Block>> = c.iter().collect();
    f.deliver(&mut v, 0, 1, fresher(&refs, &f));
    assert_eq!(v.chain().head(), sn(1, 1, 3));
    let req = FresherHeadRequest {
        head: f.genesis.sn(),
        known: vec![(f.genesis.height(), f.genesis.hash())],
    };
    let outs = f.deliver(&mut v, 0, 3, Message::GetFresherHead(req));
    let to: Vec<_> = sends(&outs)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::FresherHead(_)))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(to, vec![Some(f.id(3))]);
}
