//! What the primary seals (N-3, N-4, I-1, C-2; docs/protocol.md sections 3.2 and 6):
//! the payload it asked for at the sn it asked for, the clock notarization in a later
//! epoch's first block, no transactions after the stop block (also when the head
//! reached it while the payload was on its way), and the newest application state.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;
use std::sync::Arc;

/// One proposer, three voters, K = 2, stop block at session offset 3.
fn fixture() -> Fixture {
    let mut f = Fixture::new(1, 3, 2);
    f.cfg.stop_offset = 3;
    f
}

fn payload(sn: BlockSn, tx: &[u8], state_height: u64) -> Input {
    Input::Payload {
        sn,
        txs: vec![tx.to_vec()],
        timestamp_ms: 1,
        state: StateCommitment {
            height: state_height,
            digest: Hash([7; 32]),
        },
    }
}

/// The blocks the primary proposed in `outs`.
fn proposed(outs: &[Output]) -> Vec<Arc<Block>> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Broadcast(Message::Proposal(p)) => Some(p.block.clone()),
            _ => None,
        })
        .collect()
}

/// The primary of (1,1) on genesis, past its gate, answering payload requests by hand.
fn producing(f: &Fixture) -> Solo {
    let mut p = Solo::new(f.node(0));
    p.auto_payload = false;
    p.input(Input::Start);
    p.advance(2 * f.cfg.voter_timeout_ms + 5);
    assert!(p.node.is_producing());
    p
}

/// Votes of voters 1 and 2 (a quorum of three) for `b`.
fn notarize(f: &Fixture, p: &mut Solo, b: &Block) -> Vec<Output> {
    let mut outs = p.deliver(f, 1, Message::Vote(f.vote(1, b)));
    outs.extend(p.deliver(f, 2, Message::Vote(f.vote(2, b))));
    outs
}

#[test]
fn a_payload_for_another_sn_is_ignored_and_the_one_asked_for_is_sealed() {
    let f = fixture();
    let mut p = producing(&f);
    assert_eq!(p.pending_payload, vec![sn(1, 1, 1)]);
    let started = p.node.counters().get(CoreEvent::ProductionStarted);
    let outs = p.input(payload(sn(1, 1, 2), b"early", 0));
    assert!(proposed(&outs).is_empty());
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::RequestPayload { .. })),
        "still waiting for (1,1,1): nothing asked again"
    );
    assert_eq!(p.node.counters().get(CoreEvent::ProductionStarted), started);
    let outs = p.input(payload(sn(1, 1, 1), b"tx", 0));
    let blocks = proposed(&outs);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].sn(), sn(1, 1, 1));
    assert_eq!(blocks[0].txs, vec![b"tx".to_vec()]);
}

/// The stop block carries its payload; the blocks after it are sealed empty (C-2) with
/// the newest state a payload brought, never an older one that came later, and only
/// from the height where W-12e allows it (`h − 1 − 2K`, so 6 for state 1 at K = 2):
/// below it they commit to nothing.
#[test]
fn the_stop_block_keeps_its_transactions_and_the_blocks_after_it_carry_the_newest_state() {
    let f = fixture();
    let mut p = producing(&f);
    let mut blocks = Vec::new();
    for (s, height) in [(1, 1), (2, 0), (3, 0)] {
        p.pending_payload.clear();
        let outs = p.input(payload(sn(1, 1, s), b"tx", height));
        let b = proposed(&outs)
            .into_iter()
            .find(|b| b.sn() == sn(1, 1, s))
            .unwrap_or_else(|| panic!("(1,1,{s}) sealed"));
        notarize(&f, &mut p, &b);
        blocks.push(b);
    }
    let stop = &blocks[2];
    assert_eq!(stop.header.session_offset, 3);
    assert_eq!(
        stop.txs,
        vec![b"tx".to_vec()],
        "the stop block is not after itself"
    );
    // Notarize the empty blocks after the stop block until one at height 6 is sealed.
    for s in 4..=5 {
        let b = proposed(&p.log)
            .into_iter()
            .find(|b| b.sn() == sn(1, 1, s))
            .unwrap_or_else(|| panic!("(1,1,{s}) sealed"));
        notarize(&f, &mut p, &b);
    }
    let after = proposed(&p.log);
    let after: Vec<_> = after
        .iter()
        .filter(|b| b.header.session_offset > 3)
        .collect();
    let heights: Vec<u64> = after.iter().map(|b| b.height()).collect();
    assert!(heights.contains(&6), "sealed up to height 6: {heights:?}");
    for b in after {
        assert!(b.txs.is_empty());
        let expected = if b.height() >= 6 { 1 } else { 0 };
        assert_eq!(
            b.header.state.height,
            expected,
            "{:?}: the newest state, not the last one given, once allowed",
            b.sn()
        );
    }
}

/// W-12e: a state newer than the block's height allows is not sealed (every voter would
/// refuse the block); the block commits to nothing instead.
#[test]
fn w12e_a_primary_seals_no_commitment_its_block_may_not_carry() {
    let f = fixture();
    let mut p = producing(&f);
    let outs = p.input(payload(sn(1, 1, 1), b"tx", 1));
    let b = proposed(&outs)
        .into_iter()
        .find(|b| b.sn() == sn(1, 1, 1))
        .expect("(1,1,1) sealed");
    assert_eq!(b.header.state, StateCommitment::NONE);
}

/// A later epoch's first block carries cnota(e) (I-1); when the head reached the stop
/// block while its payload was on the way, it carries no transactions either (C-2).
#[test]
fn a_timeout_block_sealed_after_the_head_reached_the_stop_block_is_empty_and_carries_cnota() {
    let f = fixture();
    let mut p = Solo::new(f.node(0));
    p.auto_payload = false;
    p.input(Input::Start);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 3);
    p.deliver(&f, 1, fresher(&[&c[0], &c[1]], &f));
    let e2 = Epoch::new(1, 2);
    p.deliver(&f, 1, Message::ClockNotarization(f.cnota(e2)));
    assert_eq!(p.node.epoch(), e2);
    p.advance(p.now + 2 * f.cfg.voter_timeout_ms + 5);
    assert_eq!(p.pending_payload, vec![sn(1, 2, 1)]);
    // The stop block (1,1,3) arrives, notarized, before the payload.
    p.deliver(&f, 1, fresher(&[&c[2]], &f));
    assert_eq!(p.node.chain().head(), sn(1, 1, 3));
    let outs = p.input(payload(sn(1, 2, 1), b"tx", 0));
    let b = proposed(&outs)
        .into_iter()
        .find(|b| b.sn() == sn(1, 2, 1))
        .expect("(1,2,1) sealed");
    assert_eq!(b.parent_sn(), sn(1, 1, 3));
    assert!(b.txs.is_empty(), "after the stop block");
    assert_eq!(b.consensus.clock.as_ref().map(|c| c.epoch), Some(e2));
}

/// C-2: with the head already at the stop block, the next epoch's first block is sealed
/// at once, empty, without asking for a payload.
#[test]
fn after_the_stop_block_the_next_epochs_first_block_is_sealed_without_a_payload() {
    let f = fixture();
    let mut p = Solo::new(f.node(0));
    p.auto_payload = false;
    p.input(Input::Start);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 3);
    p.deliver(&f, 1, fresher(&[&c[0], &c[1], &c[2]], &f));
    assert_eq!(p.node.chain().head(), sn(1, 1, 3));
    p.deliver(&f, 1, Message::ClockNotarization(f.cnota(Epoch::new(1, 2))));
    p.log.clear();
    p.advance(p.now + 2 * f.cfg.voter_timeout_ms + 5);
    assert!(p.pending_payload.is_empty(), "{:?}", p.pending_payload);
    let first = proposed(&p.log)
        .into_iter()
        .find(|b| b.sn() == sn(1, 2, 1))
        .expect("(1,2,1) sealed");
    assert!(first.txs.is_empty());
    assert_eq!(first.parent_sn(), sn(1, 1, 3));
}

/// A proposer restarted inside an epoch it produced in proposes its stored blocks of
/// that epoch again and goes on after them (never a second block at one sn).
#[test]
fn a_restarted_primary_reproposes_its_stored_blocks_and_continues_after_them() {
    let f = Fixture::new(1, 3, 2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 2);
    let node = Node::recover(
        f.params(0, Arc::new(NoArchive)),
        RecoveredState {
            blocks: c.clone(),
            epoch: Some((Epoch::new(1, 1), None)),
            ..RecoveredState::default()
        },
    );
    let mut p = Solo::new(node);
    p.auto_payload = false;
    p.input(Input::Start);
    p.advance(2 * f.cfg.voter_timeout_ms + 5);
    assert_eq!(p.node.counters().get(CoreEvent::BlocksReproposed), 2);
    let again: Vec<BlockSn> = proposed(&p.log).iter().map(|b| b.sn()).collect();
    assert_eq!(again, vec![sn(1, 1, 1), sn(1, 1, 2)]);
    assert!(
        p.pending_payload.is_empty(),
        "(1,1,3) waits for nota(1,1,1)"
    );
    notarize(&f, &mut p, &c[0]);
    assert_eq!(p.pending_payload, vec![sn(1, 1, 3)]);
}
