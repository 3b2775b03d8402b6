//! Reconfiguration rules on single nodes (T-4, T-50; C-1..C-8).

use crate::fixture::*;
use pala_core::*;
use pala_types::*;
use std::sync::Arc;

/// A fixture with K = 2 and stop block = the 5th block of each session; session 2 has
/// the same members (installed in the fixture's verifier only when `verify_s2`).
fn fixture(verify_s2: bool) -> Fixture {
    let mut f = Fixture::new(2, 3, 2);
    f.cfg.stop_offset = 5;
    f.schedule_same_members(2, verify_s2);
    f
}

#[test]
fn t4_insert_after_stop_block_and_branch_resolution() {
    let f = fixture(true);
    let mut n = f.node(1); // standby proposer: stores, never votes
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    // A branch (1,2,1..3) off the stop block (1,1,5).
    let br = f.chain(&c1[..5], Epoch::new(1, 2), 3);
    for b in &c1[..5] {
        f.deliver(&mut n, 0, 0, fresher(&[b], &f));
    }
    assert_eq!(n.finalized(), BlockSn::new(1, 1, 3));
    // The branch is notarized first: (1,2,3) finalizes (1,2,1) and with it the stop block.
    let outs = f.deliver(&mut n, 0, 0, fresher(&[&br[0], &br[1], &br[2]], &f));
    assert_eq!(n.finalized(), BlockSn::new(1, 2, 1));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::CommitteeInstalled(c) if c.session == 2)));
    assert_eq!(n.epoch(), Epoch::new(2, 1), "C-3: L := (S+1, 1)");
    // While the finalized head is still in session 1, blocks hanging off the stop block
    // are accepted (C-7a) even though they do not extend the finalized head.
    f.deliver(&mut n, 0, 0, fresher(&[&c1[5], &c1[6]], &f));
    assert!(n.chain().get(BlockSn::new(1, 1, 7)).is_some());
    let h6 = c1[5].height();
    // The new session's chain on (1,1,7) wins (C-7c): (2,1,3) notarized finalizes (2,1,1).
    let s2 = f.chain(&c1[..7], Epoch::new(2, 1), 3);
    let outs = f.deliver(&mut n, 0, 0, fresher(&[&s2[0], &s2[1], &s2[2]], &f));
    assert_eq!(n.finalized(), BlockSn::new(2, 1, 1));
    let refinalized: Vec<BlockSn> = finalized(&outs);
    assert_eq!(
        refinalized,
        vec![
            BlockSn::new(1, 1, 6),
            BlockSn::new(1, 1, 7),
            BlockSn::new(2, 1, 1)
        ],
        "the finalized block at the old height changes"
    );
    assert_eq!(
        outs.iter()
            .filter(|o| matches!(o, Output::Finalized { block, .. } if block.height() == h6))
            .count(),
        1
    );
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::ReconfigurationEnded { session: 2 })));
    // Afterwards a block extending the abandoned branch is rejected.
    let ext = f.block(&br[2], BlockSn::new(1, 2, 4), vec![f.nota(&br[0])], None);
    f.deliver(&mut n, 0, 0, fresher(&[&ext], &f));
    assert!(n.chain().get(BlockSn::new(1, 2, 4)).is_none());
}

#[test]
fn c2_no_transactions_after_the_stop_block() {
    let f = fixture(true);
    let mut n = f.node(1);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 5);
    for b in &c1 {
        f.deliver(&mut n, 0, 0, fresher(&[b], &f));
    }
    let with_tx = f.block_with(
        &c1[4],
        BlockSn::new(1, 1, 6),
        vec![f.nota(&c1[3])],
        None,
        b"tx",
    );
    f.deliver(&mut n, 0, 0, fresher(&[&with_tx], &f));
    assert!(n.chain().get(BlockSn::new(1, 1, 6)).is_none());
    // A new session may not start before the stop block (C-4).
    let early = f.chain(&c1[..3], Epoch::new(2, 1), 1);
    f.deliver(&mut n, 0, 0, fresher(&[&early[0]], &f));
    assert!(n.chain().get(BlockSn::new(2, 1, 1)).is_none());
}

#[test]
fn t50_blocks_of_two_sessions_in_one_sync_message() {
    let f = fixture(false); // the verifier does not know session 2 yet
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let s2 = f.chain(&c1[..7], Epoch::new(2, 1), 4);
    let all: Vec<&Arc<Block>> = c1.iter().chain(&s2).collect();
    let msg = f
        .verifier
        .verify(fresher(&all, &f))
        .expect("the session-1 prefix verifies");
    assert_eq!(
        msg.deferred().len(),
        4,
        "session-2 blocks are kept aside (C-8)"
    );
    let mut n = f.node(2);
    let outs = n.handle(0, Input::Message { from: f.id(0), msg });
    assert_eq!(n.epoch(), Epoch::new(2, 1));
    let installed = outs
        .iter()
        .find_map(|o| match o {
            Output::CommitteeInstalled(c) => Some((**c).clone()),
            _ => None,
        })
        .expect("reconfiguration began");
    let (from, blocks) = outs
        .iter()
        .find_map(|o| match o {
            Output::Reverify { from, blocks } => Some((*from, blocks.clone())),
            _ => None,
        })
        .expect("the buffered blocks come back for verification");
    let mut v = f.verifier.clone();
    v.install(installed);
    let again = v
        .verify(Message::FresherHead(FresherHeadResponse {
            blocks,
            finalized: None,
        }))
        .expect("verifiable after reconfiguration");
    n.handle(0, Input::Message { from, msg: again });
    assert_eq!(n.head(), BlockSn::new(2, 1, 4));
    assert_eq!(n.finalized(), BlockSn::new(2, 1, 2));
    // C-8 keeps aside only what follows a verified prefix: a message that starts in an
    // unknown session has nothing verified and is refused.
    let only_s2: Vec<&Arc<Block>> = s2.iter().collect();
    assert_eq!(
        f.verifier.verify(fresher(&only_s2, &f)).err(),
        Some(VerifyError::UnknownSession(2))
    );
    // Only the block that enters the new session starts the part kept aside: one whose
    // parent is already in that unknown session is refused too.
    assert_eq!(
        f.verifier.verify(fresher(&[&c1[6], &s2[1]], &f)).err(),
        Some(VerifyError::UnknownSession(2))
    );
}

#[test]
fn t49_first_block_and_stop_block_finalized_together() {
    let f = fixture(true);
    let mut n = f.node(1);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let refs: Vec<&Arc<Block>> = c1.iter().collect();
    f.deliver(&mut n, 0, 0, fresher(&refs, &f));
    assert_eq!(n.epoch(), Epoch::new(2, 1));
    // Session 2: timeout blocks (2,1,1) <- (2,2,1) <- (2,3,1) <- (2,4,1), then epoch 5
    // whose first block (2,5,1) is session 2's stop block (its 5th block).
    let mut run: Vec<Arc<Block>> = c1[..7].to_vec();
    let mut blocks = Vec::new();
    for e in 1..=4 {
        let b = f.chain(&run, Epoch::new(2, e), 1).remove(0);
        run = vec![b.clone()];
        blocks.push(b);
    }
    let e5 = f.chain(&run, Epoch::new(2, 5), 3);
    blocks.extend(e5.iter().cloned());
    let refs: Vec<&Arc<Block>> = blocks.iter().collect();
    let outs = f.deliver(&mut n, 0, 0, fresher(&refs, &f));
    assert_eq!(n.finalized(), BlockSn::new(2, 5, 1));
    let ended = outs
        .iter()
        .position(|o| matches!(o, Output::ReconfigurationEnded { session: 2 }));
    let began = outs
        .iter()
        .position(|o| matches!(o, Output::CommitteeInstalled(c) if c.session == 3));
    assert!(
        ended.is_some() && began.is_some() && ended < began,
        "end 1->2 first, then begin 2->3"
    );
    assert_eq!(n.epoch(), Epoch::new(3, 1));
}

/// Regression (found by the reconfiguration sweep): a fresh node whose very first
/// finalization jumps past the stop block must still begin reconfiguration.
#[test]
fn first_finalization_past_the_stop_block_reconfigures() {
    let mut f = fixture(true);
    f.cfg.k = 8;
    let mut n = f.node(1);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 14);
    for b in &c {
        f.deliver(&mut n, 0, 0, Message::Proposal(f.proposal(b)));
    }
    assert_eq!(
        n.head(),
        BlockSn::new(1, 1, 6),
        "embedded notarizations of (1,1,9..14)"
    );
    assert_eq!(n.finalized(), BlockSn::GENESIS);
    // Notarizations arrive newest first; (1,1,7) connects them all at once and the first
    // finalization moves straight to (1,1,6), past the stop block (1,1,5).
    for b in c[6..].iter().rev() {
        f.deliver(&mut n, 0, 0, Message::Notarization(f.nota(b)));
    }
    assert_eq!(n.head(), BlockSn::new(1, 1, 14));
    assert_eq!(n.finalized(), BlockSn::new(1, 1, 6));
    assert_eq!(n.epoch(), Epoch::new(2, 1), "reconfiguration began");
}

/// R-1 across C-3: once the stop block is final, the role is the one of the new session's
/// committee, which the core installed itself.
#[test]
fn r1_role_changes_with_the_committee_installed_at_reconfiguration() {
    let mut f = fixture(true);
    let c2 = f.cfg.schedule.get_mut(&2).expect("scheduled");
    c2.voters.pop(); // node 4 leaves
    c2.proposers.push(f.committee.voters[1].clone()); // node 3 also proposes
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let refs: Vec<&Arc<Block>> = c1.iter().collect();
    let mut roles = Vec::new();
    for i in [1, 3, 4] {
        let mut n = f.node(i);
        let before = (n.role(), n.role_in(2));
        f.deliver(&mut n, 0, 0, fresher(&refs, &f));
        assert_eq!(n.epoch(), Epoch::new(2, 1), "reconfiguration began");
        assert!(n.committees().get(2).is_some(), "C-3 installed session 2");
        roles.push((before, n.role_in(1), n.role()));
    }
    use Role::*;
    assert_eq!(
        roles,
        [
            ((Proposer, Follower), Proposer, Proposer),
            ((Voter, Follower), Voter, Proposer),
            ((Voter, Follower), Voter, Follower),
        ]
    );
}

/// Node 1 (a standby proposer) after it saw (1,1,1..7) notarized: the stop block (1,1,5)
/// is final and it is in session 2. Returns it and the chain.
fn left_session_1(f: &Fixture) -> (Node, Vec<Arc<Block>>) {
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let mut a = f.node(1);
    let refs: Vec<&Arc<Block>> = c1.iter().collect();
    f.deliver(&mut a, 0, 0, fresher(&refs, f));
    assert_eq!(a.epoch(), Epoch::new(2, 1));
    (a, c1)
}

/// C-9: a node left in session 1 finalizes the stop block from the proof that a node of
/// session 2 sends with its epoch answer, although its own head is on a fresher branch
/// that lacks the blocks that finalized the stop block (the situation of seed 3934 of the
/// reconfiguration sweep, where C-7c had dropped those blocks from the finalized chain).
#[test]
fn c9_stop_block_proof_from_a_node_that_left_the_session() {
    let f = fixture(true);
    let (mut a, c1) = left_session_1(&f);
    // B missed (1,1,7) and timed out into epoch (1,2), whose blocks hang off (1,1,6).
    let mut b = f.node(2);
    let refs: Vec<&Arc<Block>> = c1[..6].iter().collect();
    f.deliver(&mut b, 0, 0, fresher(&refs, &f));
    let br = f.chain(&c1[..6], Epoch::new(1, 2), 2);
    f.deliver(&mut b, 0, 0, fresher(&[&br[0], &br[1]], &f));
    assert_eq!(b.head(), BlockSn::new(1, 2, 2));
    assert_eq!(b.finalized(), BlockSn::new(1, 1, 4));
    let outs = f.deliver(&mut a, 0, 2, Message::GetEpoch(Epoch::new(1, 2)));
    let answer = outs
        .iter()
        .find_map(|o| match o {
            Output::Send {
                msg: m @ Message::Epoch(_),
                ..
            } => Some(m.clone()),
            _ => None,
        })
        .expect("A answers");
    let Message::Epoch(r) = &answer else {
        unreachable!("matched above")
    };
    assert!(r.is_last);
    assert_eq!(
        r.stop_proof
            .iter()
            .map(|nb| nb.block.sn())
            .collect::<Vec<_>>(),
        vec![BlockSn::new(1, 1, 6), BlockSn::new(1, 1, 7)],
        "the blocks after the stop block up to the one that finalized it"
    );
    // C-9a: the same proof is what A keeps for joiners (W-12); none for a session whose
    // stop block is not final yet.
    assert_eq!(
        a.stop_proof(1)
            .map(|p| p.iter().map(|nb| nb.block.sn()).collect::<Vec<_>>()),
        Some(vec![BlockSn::new(1, 1, 6), BlockSn::new(1, 1, 7)])
    );
    assert!(a.stop_proof(2).is_none());
    let outs = f.deliver(&mut b, 0, 1, answer);
    assert_eq!(b.finalized(), BlockSn::new(1, 1, 5));
    assert_eq!(b.head(), BlockSn::new(1, 2, 2), "the head stays");
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::CommitteeInstalled(c) if c.session == 2)));
    assert_eq!(b.epoch(), Epoch::new(2, 1), "reconfiguration began");
    assert_eq!(b.counters().get(CoreEvent::StopProofApplied), 1);
}

/// C-9: a proof that is not a chain of the session asked about is refused by the verifier.
#[test]
fn c9_a_stop_block_proof_that_is_no_chain_is_refused() {
    let f = fixture(true);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let proof = |blocks: &[&Arc<Block>]| {
        Message::Epoch(EpochResponse {
            session: 1,
            clock: None,
            is_last: true,
            stop_proof: blocks
                .iter()
                .map(|b| NotarizedBlock {
                    block: (*b).clone(),
                    notarization: Some(f.nota(b)),
                })
                .collect(),
        })
    };
    assert!(f.verifier.verify(proof(&[&c1[5], &c1[6]])).is_ok());
    // The right parent sn is not enough: (1,1,7) on another (1,1,6) is no chain with it.
    let other6 = f.block_with(&c1[4], BlockSn::new(1, 1, 6), vec![], None, b"other");
    for bad in [
        proof(&[&c1[4], &c1[6]]),
        proof(&[&c1[6], &c1[5]]),
        proof(&[&other6, &c1[6]]),
    ] {
        assert!(matches!(
            f.verifier.verify(bad),
            Err(VerifyError::StopProof(_))
        ));
    }
    let Message::Epoch(mut r) = proof(&[&c1[5]]) else {
        unreachable!("built above")
    };
    r.session = 2;
    assert!(matches!(
        f.verifier.verify(Message::Epoch(r)),
        Err(VerifyError::StopProof(_))
    ));
}

/// The epoch answer `node` gives a node of session 1 in epoch `e`.
fn epoch_answer(f: &Fixture, node: &mut Node, e: Epoch) -> Message {
    let outs = f.deliver(node, 0, 2, Message::GetEpoch(e));
    outs.iter()
        .find_map(|o| match o {
            Output::Send {
                msg: m @ Message::Epoch(_),
                ..
            } => Some(m.clone()),
            _ => None,
        })
        .expect("it answers")
}

/// C-9d (seed 5030 of the reconfiguration sweep): a node that restarts inside the
/// reconfiguration window rebuilds the stop block's proof from its store, so the nodes it
/// left behind in session 1 can still finalize the stop block from its epoch answer. Both
/// cases: the finalized head is the stop block itself (the proof is all above it), or
/// beyond it (the proof starts in the archive).
#[test]
fn c9d_a_restarted_node_still_proves_the_stop_block_final() {
    let f = fixture(true);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 9);
    for (delivered, final_after, proof) in [
        (7, BlockSn::new(1, 1, 5), vec![sn(1, 1, 6), sn(1, 1, 7)]),
        (8, BlockSn::new(1, 1, 6), vec![sn(1, 1, 6), sn(1, 1, 7)]),
        // The finalized head is past the block that proved it: the proof stops there.
        (9, BlockSn::new(1, 1, 7), vec![sn(1, 1, 6), sn(1, 1, 7)]),
    ] {
        // A saw the stop block (1,1,5) finalized, entered session 2, and restarts.
        let mut a = f.node(1);
        let refs: Vec<&Arc<Block>> = c1[..delivered].iter().collect();
        let outs = f.deliver(&mut a, 0, 0, fresher(&refs, &f));
        assert_eq!((a.epoch(), a.finalized()), (Epoch::new(2, 1), final_after));
        let mut a = f.recovered(1, &outs);
        assert_eq!((a.epoch(), a.finalized()), (Epoch::new(2, 1), final_after));
        // B missed (1,1,7) and timed out into epoch (1,2), whose blocks hang off (1,1,6).
        let mut b = f.node(2);
        let refs: Vec<&Arc<Block>> = c1[..6].iter().collect();
        f.deliver(&mut b, 0, 0, fresher(&refs, &f));
        let br = f.chain(&c1[..6], Epoch::new(1, 2), 2);
        f.deliver(&mut b, 0, 0, fresher(&[&br[0], &br[1]], &f));
        assert_eq!(b.finalized(), BlockSn::new(1, 1, 4));
        let answer = epoch_answer(&f, &mut a, Epoch::new(1, 2));
        let Message::Epoch(r) = &answer else {
            unreachable!("matched in epoch_answer")
        };
        let sns: Vec<BlockSn> = r.stop_proof.iter().map(|nb| nb.block.sn()).collect();
        assert_eq!(sns, proof, "delivered {delivered}");
        f.deliver(&mut b, 0, 1, answer);
        assert_eq!(b.finalized(), BlockSn::new(1, 1, 5));
        assert_eq!(b.epoch(), Epoch::new(2, 1), "reconfiguration began");
        assert_eq!(b.counters().get(CoreEvent::StopProofApplied), 1);
    }
}

/// A restart before the stop block leaves the reconfiguration closed, so finalizing the
/// stop block later still begins it (C-3); a restart inside the window keeps it open, so
/// the new session's first final block still ends it (C-5).
#[test]
fn a_restart_before_or_inside_the_reconfiguration_window_keeps_its_state() {
    let f = fixture(true);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let deliver = |n: &mut Node, bs: &[Arc<Block>]| {
        let r: Vec<&Arc<Block>> = bs.iter().collect();
        f.deliver(n, 0, 0, fresher(&r, &f))
    };
    // Before: (1,1,2) final, restart, then the rest of session 1.
    let mut a = f.node(1);
    let outs = deliver(&mut a, &c1[..4]);
    assert_eq!(a.finalized(), BlockSn::new(1, 1, 2));
    let mut a = f.recovered(1, &outs);
    deliver(&mut a, &c1[4..]);
    assert_eq!(
        a.epoch(),
        Epoch::new(2, 1),
        "the stop block (1,1,5) began it"
    );
    // Inside: the stop block final, restart, then session 2's first blocks.
    let mut b = f.node(1);
    let outs = deliver(&mut b, &c1);
    assert_eq!(b.epoch(), Epoch::new(2, 1));
    let mut b = f.recovered(1, &outs);
    let s2 = f.chain(&c1, Epoch::new(2, 1), 3);
    let outs = deliver(&mut b, &s2);
    assert_eq!(b.finalized(), BlockSn::new(2, 1, 1));
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::ReconfigurationEnded { session: 2 })),
        "C-5 after the restart"
    );
}

/// After the stop block the primary seals its empty blocks (C-2) without asking for a
/// payload, as many as the K window lets it in one step: when the notarization of
/// (1,1,5) arrives while that of (1,1,6) is already there, (1,1,7) and (1,1,8) follow at
/// once (the settle loop runs production again after each block sealed in place).
#[test]
fn blocks_after_the_stop_block_are_sealed_as_far_as_the_window_allows() {
    let f = fixture(true);
    let mut p = Solo::new(f.node(0));
    p.input(Input::Start);
    let mut outs = p.advance(2 * f.cfg.voter_timeout_ms + 5);
    let proposed = |outs: &[Output]| -> Vec<Arc<Block>> {
        sends(outs)
            .into_iter()
            .filter_map(|(_, m)| match m {
                Message::Proposal(pr) => Some(pr.block.clone()),
                _ => None,
            })
            .collect()
    };
    let mut to_vote: Vec<Arc<Block>> = Vec::new();
    let mut held: Option<Arc<Block>> = None;
    let mut together = Vec::new();
    for _ in 0..200 {
        to_vote.extend(proposed(&outs));
        outs.clear();
        let Some(b) = to_vote.first().cloned() else {
            outs = p.advance(p.now + 1);
            continue;
        };
        to_vote.remove(0);
        if b.sn() == BlockSn::new(1, 1, 5) {
            held = Some(b);
            continue;
        }
        for i in 2..5 {
            outs.extend(p.deliver(&f, i, Message::Vote(f.vote(i, &b))));
        }
        if b.sn() == BlockSn::new(1, 1, 6) {
            let stop = held.take().expect("(1,1,5) came first");
            for i in 2..5 {
                let o = p.deliver(&f, i, Message::Vote(f.vote(i, &stop)));
                together.push(proposed(&o).iter().map(|b| b.sn()).collect::<Vec<_>>());
                outs.extend(o);
            }
            break;
        }
    }
    assert!(
        together.contains(&vec![BlockSn::new(1, 1, 7), BlockSn::new(1, 1, 8)]),
        "{together:?}"
    );
}

/// While the reconfiguration window is open, finalizing more of session 1 keeps the stop
/// block as the root (blocks hanging off it stay insertable, C-7a) and does not end the
/// window (C-5 waits for a final block of session 2).
#[test]
fn finality_inside_the_window_keeps_the_stop_block_as_root() {
    let f = fixture(true);
    let mut n = f.node(1);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let br = f.chain(&c1[..5], Epoch::new(1, 2), 5);
    for b in &c1[..5] {
        f.deliver(&mut n, 0, 0, fresher(&[b], &f));
    }
    f.deliver(&mut n, 0, 0, fresher(&[&br[0], &br[1], &br[2]], &f));
    assert_eq!(
        (n.finalized(), n.epoch()),
        (BlockSn::new(1, 2, 1), Epoch::new(2, 1))
    );
    let outs = f.deliver(&mut n, 0, 0, fresher(&[&br[3]], &f));
    assert_eq!(n.finalized(), BlockSn::new(1, 2, 2), "session 1 goes on");
    assert!(!outs
        .iter()
        .any(|o| matches!(o, Output::ReconfigurationEnded { .. })));
    assert_eq!(n.chain().root(), BlockSn::new(1, 1, 5), "the stop block");
    f.deliver(&mut n, 0, 0, fresher(&[&c1[5]], &f));
    assert!(n.chain().get(BlockSn::new(1, 1, 6)).is_some(), "C-7a");
}

/// C-9a: a node keeps the stop-block proofs of the last four sessions it crossed, and
/// drops older ones.
#[test]
fn c9a_the_proofs_of_the_last_four_sessions_are_kept() {
    let mut f = fixture(true);
    for s in 3..=6 {
        f.schedule_same_members(s, true);
    }
    let mut n = f.node(1);
    let mut run = vec![f.genesis.clone()];
    for s in 1..=5 {
        run = f.chain(&run, Epoch::new(s, 1), 7);
        let refs: Vec<&Arc<Block>> = run.iter().collect();
        f.deliver(&mut n, 0, 0, fresher(&refs, &f));
        assert_eq!(
            n.epoch(),
            Epoch::new(s + 1, 1),
            "session {s}'s stop block is final"
        );
    }
    let kept: Vec<Session> = (1..=6).filter(|&s| n.stop_proof(s).is_some()).collect();
    assert_eq!(kept, [2, 3, 4, 5]);
}

/// C-9 (receiving): only a proof for the node's own session is applied; an answer about
/// a session it has left changes nothing (E-6: nor does its clock notarization).
#[test]
fn c9_an_epoch_answer_about_a_session_the_node_left_changes_nothing() {
    let f = fixture(true);
    let (mut a, _) = left_session_1(&f);
    let answer = epoch_answer(&f, &mut a, Epoch::new(1, 2));
    let counts = |n: &Node| {
        [
            CoreEvent::SyncBlockRejected,
            CoreEvent::SyncMissingParent,
            CoreEvent::StopProofApplied,
        ]
        .map(|e| n.counters().get(e))
    };
    let Message::Epoch(mut r) = answer else {
        unreachable!("an epoch answer")
    };
    assert!(r.is_last && !r.stop_proof.is_empty());
    r.clock = Some(f.cnota(Epoch::new(1, 3)));
    let before = (counts(&a), a.chain().block_count(), a.epoch());
    f.deliver(&mut a, 0, 2, Message::Epoch(r));
    assert_eq!((counts(&a), a.chain().block_count(), a.epoch()), before);
}

/// E-6 in epoch sync: a clock notarization of a later epoch moves `L` only within the
/// session (a valid one of the next session leaves it alone: sessions change by C-3).
#[test]
fn e6_an_epoch_answer_moves_the_epoch_only_within_the_session() {
    let f = fixture(true);
    let mut v = f.node(2);
    v.handle(0, Input::Start);
    let answer = |clock| {
        Message::Epoch(EpochResponse {
            session: 1,
            clock: Some(clock),
            is_last: false,
            stop_proof: Vec::new(),
        })
    };
    f.deliver(&mut v, 0, 0, answer(f.cnota(Epoch::new(2, 2))));
    assert_eq!(v.epoch(), Epoch::new(1, 1));
    f.deliver(&mut v, 0, 0, answer(f.cnota(Epoch::new(1, 2))));
    assert_eq!(v.epoch(), Epoch::new(1, 2));
}

/// C-3 step 1: the next session's committee is installed and persisted when the stop
/// block becomes final, unless the node already holds that very committee (then it is
/// only announced).
#[test]
fn c3_a_committee_the_node_already_holds_is_not_persisted_again() {
    let f = fixture(true);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let refs: Vec<&Arc<Block>> = c1.iter().collect();
    for known in [false, true] {
        let mut params = f.params(1, Arc::new(MemArchive::default()));
        if known {
            let mut c2 = f.committee.clone();
            c2.session = 2;
            params.committees.install(&f.scheme, c2);
        }
        let mut n = Node::new(params);
        let outs = f.deliver(&mut n, 0, 0, fresher(&refs, &f));
        assert_eq!(n.epoch(), Epoch::new(2, 1));
        let persisted = outs
            .iter()
            .filter(|o| matches!(o, Output::Persist(StateChange::Committee(c)) if c.session == 2))
            .count();
        assert_eq!(persisted, usize::from(!known), "known: {known}");
        assert!(outs
            .iter()
            .any(|o| matches!(o, Output::CommitteeInstalled(c) if c.session == 2)));
    }
}

/// C-9 (receiving): a stop-block proof that does not connect here finalizes nothing and
/// is not counted as applied.
#[test]
fn c9_a_proof_that_does_not_connect_is_not_counted_as_applied() {
    let f = fixture(true);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let mut b = f.node(2);
    let refs: Vec<&Arc<Block>> = c1[..3].iter().collect();
    f.deliver(&mut b, 0, 0, fresher(&refs, &f));
    let proof = Message::Epoch(EpochResponse {
        session: 1,
        clock: None,
        is_last: true,
        stop_proof: [&c1[5], &c1[6]]
            .iter()
            .map(|b| NotarizedBlock {
                block: (*b).clone(),
                notarization: Some(f.nota(b)),
            })
            .collect(),
    });
    f.deliver(&mut b, 0, 1, proof);
    assert_eq!(b.finalized(), sn(1, 1, 1));
    assert_eq!(b.counters().get(CoreEvent::StopProofApplied), 0);
    assert_eq!(b.counters().get(CoreEvent::SyncMissingParent), 1);
}

/// C-9d, F-1: the block that proves the stop block final is the first one `(e, t)` with
/// `t > K`; in an epoch that began right after the stop block, `(e, K)` does not count.
#[test]
fn c9d_a_rebuilt_proof_reaches_the_first_block_past_k_in_its_epoch() {
    let f = fixture(true);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 5);
    let e2 = f.chain(&c1, Epoch::new(1, 2), 3);
    let mut a = f.node(1);
    let refs: Vec<&Arc<Block>> = c1.iter().chain(&e2).collect();
    let outs = f.deliver(&mut a, 0, 0, fresher(&refs, &f));
    assert_eq!((a.epoch(), a.finalized()), (Epoch::new(2, 1), sn(1, 2, 1)));
    let a = f.recovered(1, &outs);
    let proof: Option<Vec<BlockSn>> = a
        .stop_proof(1)
        .map(|p| p.iter().map(|nb| nb.block.sn()).collect());
    assert_eq!(proof, Some(vec![sn(1, 2, 1), sn(1, 2, 2), sn(1, 2, 3)]));
}
