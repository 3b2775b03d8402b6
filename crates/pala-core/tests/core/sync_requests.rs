//! Requesting sync (W-7.1..W-7.3): whom the node asks, when a slot is free again, and
//! what a block request lists.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;
use std::sync::Arc;

fn gets_epoch(outs: &[Output]) -> Vec<Option<NodeId>> {
    sends(outs)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::GetEpoch(_)))
        .map(|(to, _)| to)
        .collect()
}

fn gets_blocks(outs: &[Output]) -> Vec<FresherHeadRequest> {
    sends(outs)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::GetFresherHead(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn status(epoch: u32, head: BlockSn, height: u64) -> Message {
    Message::Status(Status {
        epoch: Epoch::new(1, epoch),
        head,
        head_height: height,
        ..Status::default()
    })
}

fn connected_voter(f: &Fixture, peers: &[usize]) -> Node {
    let mut v = f.node(2);
    v.handle(0, Input::Start);
    for &p in peers {
        v.handle(0, Input::PeerConnected(f.id(p)));
    }
    v
}

/// W-7.2 / W-7.3: only a peer strictly ahead is asked: a peer in the same epoch is not
/// asked for the epoch, one with the same head not for blocks.
#[test]
fn w7_only_a_peer_strictly_ahead_is_asked() {
    let f = Fixture::new(2, 3, 2);
    let mut v = connected_voter(&f, &[0]);
    let outs = f.deliver(&mut v, 0, 0, status(1, BlockSn::GENESIS, 0));
    assert!(gets_epoch(&outs).is_empty() && gets_blocks(&outs).is_empty());
    let outs = f.deliver(&mut v, 0, 0, status(1, sn(1, 1, 3), 3));
    assert!(gets_epoch(&outs).is_empty(), "the same epoch");
    assert_eq!(gets_blocks(&outs).len(), 1);
    let mut v = connected_voter(&f, &[0]);
    let outs = f.deliver(&mut v, 0, 0, status(2, BlockSn::GENESIS, 0));
    assert_eq!(gets_epoch(&outs), [Some(f.id(0))]);
    assert!(gets_blocks(&outs).is_empty(), "the same head");
}

/// W-7.1: an epoch slot is free again when its peer answers, not when another peer
/// does; a peer that still claims a later epoch is then asked again.
#[test]
fn w7_1_the_epoch_slot_is_freed_by_the_answer_of_the_peer_asked() {
    let f = Fixture::new(2, 3, 2);
    let mut v = connected_voter(&f, &[0, 1]);
    assert_eq!(
        gets_epoch(&f.deliver(&mut v, 0, 0, status(3, BlockSn::GENESIS, 0))),
        [Some(f.id(0))]
    );
    let nothing = |session| {
        Message::Epoch(EpochResponse {
            session,
            clock: None,
            is_last: false,
            stop_proof: Vec::new(),
        })
    };
    let outs = f.deliver(&mut v, 1, 1, nothing(1));
    assert!(
        gets_epoch(&outs).is_empty(),
        "peer 0's request is still out"
    );
    let outs = f.deliver(&mut v, 2, 0, nothing(1));
    assert_eq!(gets_epoch(&outs), [Some(f.id(0))]);
}

/// W-7.1: a penalty lasts exactly `T_VOTER`: the silent peer is asked again from the
/// tick its penalty ends, not before. (Each status the peer sends pokes the syncer.)
#[test]
fn w7_1_a_penalty_ends_on_its_tick() {
    let f = Fixture::new(2, 3, 2);
    let mut v = connected_voter(&f, &[0]);
    let poke =
        |v: &mut Node, now| gets_epoch(&f.deliver(v, now, 0, status(3, BlockSn::GENESIS, 0)));
    assert_eq!(poke(&mut v, 0), [Some(f.id(0))]);
    let timeout = f.cfg.sync_request_timeout_ms();
    assert!(
        poke(&mut v, timeout - 1).is_empty(),
        "the request is still out"
    );
    assert!(poke(&mut v, timeout).is_empty(), "timed out and penalized");
    assert_eq!(v.counters().get(CoreEvent::SyncTimeouts), 1);
    let end = timeout + f.cfg.sync_penalty_ms();
    assert!(poke(&mut v, end - 1).is_empty());
    assert_eq!(poke(&mut v, end), [Some(f.id(0))]);
}

/// W-7.3: a block request lists the newest `sync_known_limit - 1` blocks of the head's
/// path and then the root, so that a peer finds a common block whatever it missed.
#[test]
fn w7_3_a_block_request_lists_the_head_path_up_to_the_limit_and_the_root() {
    let mut f = Fixture::new(2, 3, 5);
    f.cfg.sync_known_limit = 3;
    let mut v = connected_voter(&f, &[0]);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 6);
    let refs: Vec<&Arc<Block>> = c.iter().collect();
    f.deliver(&mut v, 0, 1, fresher(&refs, &f));
    assert_eq!((v.head(), v.finalized()), (sn(1, 1, 6), sn(1, 1, 1)));
    let reqs = gets_blocks(&f.deliver(&mut v, 0, 0, status(1, sn(1, 1, 9), 9)));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].head, sn(1, 1, 6));
    assert_eq!(
        reqs[0].known,
        [(6, c[5].hash()), (5, c[4].hash()), (1, c[0].hash())]
    );
    // With the whole path within the limit, the root is listed once.
    f.cfg.sync_known_limit = 64;
    let mut w = connected_voter(&f, &[0]);
    f.deliver(&mut w, 0, 1, fresher(&refs[..2], &f));
    let reqs = gets_blocks(&f.deliver(&mut w, 0, 0, status(1, sn(1, 1, 9), 9)));
    assert_eq!(
        reqs[0].known,
        [(2, c[1].hash()), (1, c[0].hash()), (0, f.genesis.hash())]
    );
}

fn empty_answer(finalized: Option<(u64, Hash, BlockSn)>) -> Message {
    Message::FresherHead(FresherHeadResponse {
        blocks: Vec::new(),
        finalized,
    })
}

/// W-7.3: an answer with no blocks names the peer's finalized block; a peer whose
/// finalized block is not on this node's finalized chain (at this node's finalized
/// height, or below it in the archive) is inconsistent. One whose finalized block is
/// above this node's cannot be judged.
#[test]
fn w7_3_a_peer_whose_finalized_block_is_not_ours_is_inconsistent() {
    let f = Fixture::new(2, 3, 2);
    let (mut v, _, c) = f.synced_with_archive(2, 6);
    assert_eq!(v.finalized(), sn(1, 1, 4));
    let bogus = Hash([9; 32]);
    let cases = [
        (4, c[3].hash(), false),
        (4, bogus, true),
        (2, c[1].hash(), false),
        (2, bogus, true),
        (9, bogus, false),
    ];
    for (height, hash, inconsistent) in cases {
        let before = v.counters().get(CoreEvent::SyncPeerInconsistent);
        f.deliver(
            &mut v,
            0,
            0,
            empty_answer(Some((height, hash, BlockSn::GENESIS))),
        );
        assert_eq!(
            v.counters().get(CoreEvent::SyncPeerInconsistent) - before,
            u64::from(inconsistent),
            "finalized at height {height}, {}",
            if hash == bogus {
                "another block"
            } else {
                "our block"
            }
        );
    }
}

/// W-7.1: the block slot is free again when its peer answers, not when another peer
/// does; an answer that moved the head is followed at once by the next request to a
/// peer still ahead, one that moved nothing holds its peer off (and counts no progress).
#[test]
fn w7_1_the_block_slot_is_freed_by_the_answer_of_the_peer_asked() {
    let f = Fixture::new(2, 3, 2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 6);
    let mut v = connected_voter(&f, &[0, 1]);
    let ahead = status(1, sn(1, 1, 6), 6);
    assert_eq!(
        gets_blocks(&f.deliver(&mut v, 0, 0, ahead.clone())).len(),
        1
    );
    f.deliver(&mut v, 0, 1, ahead);
    let outs = f.deliver(&mut v, 1, 1, fresher(&[&c[0]], &f));
    assert_eq!(v.head(), sn(1, 1, 1), "an unasked answer still inserts");
    assert!(
        gets_blocks(&outs).is_empty(),
        "peer 0's request is still out"
    );
    let outs = f.deliver(&mut v, 2, 0, fresher(&[&c[1]], &f));
    assert_eq!(v.head(), sn(1, 1, 2));
    assert_eq!(v.counters().get(CoreEvent::SyncProgress), 2);
    let next = gets_blocks(&outs);
    assert_eq!(next.len(), 1, "at once, to a peer still ahead");
    assert_eq!(next[0].head, sn(1, 1, 2));
    // Peer 0 answers again with what the node has: no progress, and it is held off, so
    // the next request goes to peer 1.
    let outs = f.deliver(&mut v, 3, 0, fresher(&[&c[1]], &f));
    assert_eq!(v.counters().get(CoreEvent::SyncProgress), 2);
    assert_eq!(
        sends(&outs)
            .into_iter()
            .filter(|(_, m)| matches!(m, Message::GetFresherHead(_)))
            .map(|(to, _)| to)
            .collect::<Vec<_>>(),
        [Some(f.id(1))]
    );
}

/// N-10 in sync: a synced block whose parent is unknown is counted as such, not as a
/// rejected block.
#[test]
fn n10_a_synced_block_without_its_parent_is_counted_as_missing_its_parent() {
    let f = Fixture::new(2, 3, 2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 3);
    let mut v = connected_voter(&f, &[0]);
    f.deliver(&mut v, 0, 0, fresher(&[&c[1], &c[2]], &f));
    assert_eq!(v.counters().get(CoreEvent::SyncMissingParent), 1);
    assert_eq!(v.counters().get(CoreEvent::SyncBlockRejected), 0);
}

/// W-6/W-7: only a status ahead of this node (a later epoch or a fresher head) pokes the
/// syncer; one level with it waits for the sync timer, which is where an overdue
/// request times out.
#[test]
fn w7_a_status_level_with_the_node_does_not_poke_the_syncer() {
    let f = Fixture::new(2, 3, 2);
    let mut v = connected_voter(&f, &[0, 1]);
    assert_eq!(
        gets_epoch(&f.deliver(&mut v, 0, 0, status(3, BlockSn::GENESIS, 0))),
        [Some(f.id(0))]
    );
    let overdue = f.cfg.sync_request_timeout_ms() + 1;
    f.deliver(&mut v, overdue, 1, status(1, BlockSn::GENESIS, 0));
    assert_eq!(v.counters().get(CoreEvent::SyncTimeouts), 0);
    f.deliver(&mut v, overdue, 1, status(2, BlockSn::GENESIS, 0));
    assert_eq!(
        v.counters().get(CoreEvent::SyncTimeouts),
        1,
        "a status ahead"
    );
}
