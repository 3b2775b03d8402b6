//! Protocol rules of docs/protocol.md sections 3-5 and 7 on single nodes (scenarios of
//! section 10.1-10.4), every message passing through the real verifier.

use crate::fixture::*;
use pala_core::*;
use pala_types::insecure::InsecureTestScheme;
use pala_types::*;
use std::sync::Arc;

#[test]
fn t5_embedded_notarization_placement() {
    let f = Fixture::new(3, 3, 2);
    let g = f.genesis.clone();
    let c = f.chain(std::slice::from_ref(&g), Epoch::new(1, 1), 4);
    let mut n = f.node(2);
    for b in &c[..2] {
        f.deliver(&mut n, 0, 0, Message::Proposal(f.proposal(b)));
    }
    // A notarization inside (e, s <= K) is rejected.
    let bad = f.block(&c[0], sn(1, 1, 2), vec![f.nota(&c[0])], None);
    let mut m = f.node(2);
    f.deliver(&mut m, 0, 0, Message::Proposal(f.proposal(&c[0])));
    f.deliver(&mut m, 0, 0, Message::Proposal(f.proposal(&bad)));
    assert!(m.chain().get(sn(1, 1, 2)).is_none());
    // (e, s > K) without nota(e, s-K) is rejected, with it accepted.
    let bare = f.block(&c[1], sn(1, 1, 3), vec![], None);
    f.deliver(&mut n, 0, 0, Message::Proposal(f.proposal(&bare)));
    assert!(n.chain().get(sn(1, 1, 3)).is_none());
    let wrong = f.block(&c[1], sn(1, 1, 3), vec![f.nota(&c[1])], None);
    f.deliver(&mut n, 0, 0, Message::Proposal(f.proposal(&wrong)));
    assert!(
        n.chain().get(sn(1, 1, 3)).is_none(),
        "must be exactly nota(e, s-K)"
    );
    f.deliver(&mut n, 0, 0, Message::Proposal(f.proposal(&c[2])));
    assert!(n.chain().get(sn(1, 1, 3)).is_some());
    // s = 1 with a PaLa parent and no notarization is rejected; a missing cnota too.
    let no_nota = f.block(&c[2], sn(1, 2, 1), vec![], Some(f.cnota(Epoch::new(1, 2))));
    let no_clock = f.block(&c[2], sn(1, 2, 1), vec![f.nota(&c[1]), f.nota(&c[2])], None);
    for b in [&no_nota, &no_clock] {
        f.deliver(&mut n, 0, 0, fresher(&[b], &f));
        assert!(n.chain().get(sn(1, 2, 1)).is_none());
    }
}

#[test]
fn t10_proposal_signature_and_primary_checks() {
    let f = Fixture::new(2, 3, 2);
    let b = f
        .chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 1)
        .remove(0);
    let good = f.proposal(&b);
    assert!(f.verifier.verify(Message::Proposal(good.clone())).is_ok());
    let mut bad_sig = good.clone();
    bad_sig.signature = f.keys[0].sign(Domain::Proposal, NET, b"other");
    assert_eq!(
        f.verifier.verify(Message::Proposal(bad_sig)),
        Err(VerifyError::BadSignature("proposal"))
    );
    let not_primary = Proposal {
        proposer: f.id(1),
        signature: f.keys[1].sign(Domain::Proposal, NET, &b.hash().0),
        block: b.clone(),
    };
    assert_eq!(
        f.verifier.verify(Message::Proposal(not_primary)),
        Err(VerifyError::NotPrimary)
    );
    let wrong_domain = Proposal {
        signature: f.keys[0].sign(Domain::Vote, NET, &b.hash().0),
        ..good
    };
    assert!(f.verifier.verify(Message::Proposal(wrong_domain)).is_err());
}

#[test]
fn d12_notarization_checks_recompute_the_quorum() {
    let f = Fixture::new(1, 4, 2); // quorum 3 of 4
    let b = f
        .chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 1)
        .remove(0);
    assert!(f
        .verifier
        .check_notarization(&f.nota_by(&b, &[0, 1, 2]))
        .is_ok());
    assert!(matches!(
        f.verifier.check_notarization(&f.nota_by(&b, &[0, 1])),
        Err(VerifyError::BelowQuorum { got: 2, quorum: 3 })
    ));
    let mut bad_idx = f.nota_by(&b, &[0, 1, 2]);
    bad_idx.proposer_idx = 1; // == |proposers|: PROD's off-by-one
    assert_eq!(
        f.verifier.check_notarization(&bad_idx),
        Err(VerifyError::ProposerIndex(1))
    );
    let mut short = f.nota_by(&b, &[0, 1, 2]);
    short.signers = SignerBitmap::new(3);
    assert!(matches!(
        f.verifier.check_notarization(&short),
        Err(VerifyError::BitmapLength { .. })
    ));
    // Claiming a fourth signer that did not sign breaks the aggregate.
    let mut inflated = f.nota_by(&b, &[0, 1, 2]);
    inflated.signers.insert(3);
    assert_eq!(
        f.verifier.check_notarization(&inflated),
        Err(VerifyError::BadSignature("notarization"))
    );
}

/// The verifier remembers notarizations that verified; anything that differs in one
/// input (signature, bitmap, proposer, committee) is checked again and fails.
#[test]
fn remembered_notarizations_match_every_input() {
    let f = Fixture::new(2, 4, 2); // quorum 3 of 4
    let b = f
        .chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 1)
        .remove(0);
    let good = f.nota_by(&b, &[0, 1, 2]);
    assert!(f.verifier.check_notarization(&good).is_ok());
    assert!(f.verifier.check_notarization(&good).is_ok(), "repeat");
    let other = f.nota_by(&b, &[1, 2, 3]);
    let mut wrong_sig = good.clone();
    wrong_sig.signature = other.signature.clone();
    assert_eq!(
        f.verifier.check_notarization(&wrong_sig),
        Err(VerifyError::BadSignature("notarization"))
    );
    let mut wrong_bitmap = good.clone();
    wrong_bitmap.signers = other.signers.clone();
    assert_eq!(
        f.verifier.check_notarization(&wrong_bitmap),
        Err(VerifyError::BadSignature("notarization"))
    );
    let mut wrong_proposer = good.clone();
    wrong_proposer.proposer_idx = 1;
    assert_eq!(
        f.verifier.check_notarization(&wrong_proposer),
        Err(VerifyError::BadSignature("notarization"))
    );
    assert!(f.verifier.check_notarization(&good).is_ok());
    // A clone shares what was remembered, but a replaced committee is checked afresh:
    // with the voter list reversed the same bitmap names other keys.
    let mut reinstalled = f.verifier.clone();
    let mut reversed = f.committee.clone();
    reversed.voters.reverse();
    reinstalled.install(reversed);
    assert_eq!(
        reinstalled.check_notarization(&good),
        Err(VerifyError::BadSignature("notarization"))
    );
    assert!(f.verifier.check_notarization(&good).is_ok());
}

#[test]
fn t21_signed_by_self_proposes_votes_notarizes_and_times_out_alone() {
    let f = Fixture::with_roles(1, 1, 2, &[(0, 1)]);
    let mut s = Solo::new(f.node(0));
    s.input(Input::Start);
    s.advance(100);
    assert!(
        s.node.head() >= sn(1, 1, 3),
        "a one-node committee makes progress alone: head {:?}",
        s.node.head()
    );
    assert!(s.node.finalized() >= sn(1, 1, 1));
    // Stop feeding payloads: no progress, so the voter timer fires and its own clock
    // message forms cnota(1,2) locally.
    s.auto_payload = false;
    s.advance(400);
    assert!(
        s.node.epoch() >= Epoch::new(1, 2),
        "epoch {:?}",
        s.node.epoch()
    );
}

#[test]
fn t22_voting_rules() {
    let f = Fixture::new(2, 3, 2);
    let voter = 2;
    let g = f.genesis.clone();
    let c = f.chain(std::slice::from_ref(&g), Epoch::new(1, 1), 5);
    let setup = |notarized: usize| {
        let mut v = f.node(voter);
        for b in &c[..4] {
            f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(b)));
        }
        for b in &c[..notarized] {
            f.deliver(&mut v, 0, 0, Message::Notarization(f.nota(b)));
        }
        v
    };
    let v = setup(2);
    assert_eq!(v.head(), sn(1, 1, 2));
    // A proposal for an epoch other than L is dropped.
    let mut v = setup(2);
    let other = f.block(&c[0], sn(1, 2, 2), vec![], None);
    let outs = f.deliver(&mut v, 0, 1, Message::Proposal(f.proposal(&other)));
    assert!(votes(&outs).is_empty());
    // (1,1,5) carrying nota(1,1,3) is voted (the embedded notarization extends the head).
    let outs = f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(&c[4])));
    assert_eq!(votes(&outs).len(), 1);
    // Out-of-order serial: (1,1,5) on (1,1,3) is rejected.
    let mut v = setup(2);
    let skip = f.block(&c[2], sn(1, 1, 5), vec![f.nota(&c[2])], None);
    let outs = f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(&skip)));
    assert!(votes(&outs).is_empty() && v.chain().get(sn(1, 1, 5)).is_none());
    // (1,2,1) on (1,1,4) with nota(1,1,3), nota(1,1,4): the notarizations extend the head
    // to (1,1,4) first, so the parent equals the head and the voter votes.
    let mut v = setup(2);
    f.deliver(
        &mut v,
        0,
        0,
        Message::ClockNotarization(f.cnota(Epoch::new(1, 2))),
    );
    let b21 = f.block(
        &c[3],
        sn(1, 2, 1),
        vec![f.nota(&c[2]), f.nota(&c[3])],
        Some(f.cnota(Epoch::new(1, 2))),
    );
    let outs = f.deliver(&mut v, 0, 1, Message::Proposal(f.proposal(&b21)));
    assert_eq!(votes(&outs).len(), 1, "{:?}", v.counters());
    assert_eq!(v.head(), sn(1, 1, 4));
    // Parent staler than head: head (1,1,4), (1,2,1) on (1,1,2) is dropped (V-5c).
    let mut v = setup(4);
    f.deliver(
        &mut v,
        0,
        0,
        Message::ClockNotarization(f.cnota(Epoch::new(1, 2))),
    );
    let stale = f.block(
        &c[1],
        sn(1, 2, 1),
        vec![f.nota(&c[0]), f.nota(&c[1])],
        Some(f.cnota(Epoch::new(1, 2))),
    );
    let outs = f.deliver(&mut v, 0, 1, Message::Proposal(f.proposal(&stale)));
    assert!(votes(&outs).is_empty());
    assert_eq!(v.counters().get(CoreEvent::ProposalStaleParent), 1);
    // Same sn, different parent hash: rejected.
    let mut v = setup(2);
    let mut h = (*c[2]).clone().header;
    h.parent_hash = Hash::of(b"x");
    let forged = Arc::new(Block::new(h, vec![], c[2].consensus.clone()));
    let outs = f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(&forged)));
    assert!(votes(&outs).is_empty());
}

#[test]
fn t23_inconsistent_block_replaced_by_the_notarized_one() {
    let f = Fixture::new(1, 3, 2);
    let mut v = f.node(1);
    let a = f.block_with(&f.genesis, sn(1, 1, 1), vec![], None, b"a");
    let b = f.block_with(&f.genesis, sn(1, 1, 1), vec![], None, b"b");
    assert_eq!(
        votes(&f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(&a)))).len(),
        1
    );
    assert!(
        votes(&f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(&b)))).is_empty(),
        "never two blocks at one sn"
    );
    f.deliver(&mut v, 0, 0, fresher(&[&b], &f));
    assert_eq!(v.chain().hash(sn(1, 1, 1)), Some(b.hash()));
    assert_eq!(v.head(), sn(1, 1, 1));
}

#[test]
fn t24_t25_late_votes_and_invalid_votes() {
    let f = Fixture::new(1, 3, 2); // quorum 2 of 3
    let mut p = Solo::new(f.node(0));
    p.auto_payload = false;
    p.input(Input::Start);
    p.input(Input::PeerConnected(f.id(1)));
    for i in 1..=3 {
        p.input(Input::Message {
            from: f.id(i),
            msg: f
                .verifier
                .verify(Message::Status(Status::default()))
                .unwrap(),
        });
    }
    p.advance(20);
    let sn1 = p.pending_payload.remove(0);
    p.input(Input::Payload {
        sn: sn1,
        txs: vec![],
        timestamp_ms: 0,
        state: pala_types::StateCommitment::NONE,
    });
    let sn2 = p.pending_payload.remove(0);
    p.input(Input::Payload {
        sn: sn2,
        txs: vec![],
        timestamp_ms: 0,
        state: pala_types::StateCommitment::NONE,
    });
    let b1 = p.node.chain().block(sn1).unwrap().clone();
    // T-25: a vote from a non-member is rejected by the verifier and changes nothing.
    let outsider = InsecureTestScheme::new().keypair(99);
    let forged = Vote {
        voter: outsider.node_id(),
        sn: sn1,
        block_hash: b1.hash(),
        signature: outsider.sign(Domain::Vote, NET, &b1.hash().0),
    };
    assert_eq!(
        f.verifier.verify(Message::Vote(forged)),
        Err(VerifyError::NotAMember("voter"))
    );
    let outs = p.deliver(&f, 1, Message::Vote(f.vote(1, &b1)));
    assert!(sends(&outs)
        .iter()
        .all(|(_, m)| !matches!(m, Message::Notarization(_))));
    let outs = p.deliver(&f, 2, Message::Vote(f.vote(2, &b1)));
    let first: Vec<_> = sends(&outs)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Notarization(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(first.len(), 1, "the first quorum is broadcast");
    assert_eq!(first[0].vote_count(), 2);
    // T-24: a late third vote ends up in the notarization embedded in (1,1,3).
    p.deliver(&f, 3, Message::Vote(f.vote(3, &b1)));
    let outs = p.input(Input::Payload {
        sn: p.pending_payload[0],
        txs: vec![],
        timestamp_ms: 0,
        state: pala_types::StateCommitment::NONE,
    });
    let b3 = outs
        .iter()
        .find_map(|o| match o {
            Output::Broadcast(Message::Proposal(pr)) => Some(pr.block.clone()),
            _ => None,
        })
        .expect("(1,1,3) proposed");
    assert_eq!(b3.sn(), sn(1, 1, 3));
    assert_eq!(b3.consensus.notarizations[0].vote_count(), 3);
}

#[test]
fn t26_t29_pending_proposals_vote_after_catch_up() {
    for k in [1u32, 2] {
        let f = Fixture::new(1, 3, k);
        let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 5);
        let mut v = f.node(1);
        // Proposals arrive while the voter lacks their parents: temporary errors.
        for b in &c[2..] {
            let outs = f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(b)));
            assert!(votes(&outs).is_empty());
        }
        assert_eq!(
            v.buffer_sizes()["pending"],
            k as usize,
            "only the last K are kept"
        );
        // The notarized prefix arrives by sync; exactly the kept proposals get voted.
        let prefix: Vec<&Arc<Block>> = c[..5 - k as usize].iter().collect();
        let outs = f.deliver(&mut v, 0, 0, fresher(&prefix, &f));
        let voted: Vec<BlockSn> = votes(&outs).iter().map(|v| v.sn).collect();
        let expect: Vec<BlockSn> = c[5 - k as usize..].iter().map(|b| b.sn()).collect();
        assert_eq!(voted, expect, "K = {k}");
    }
}

#[test]
fn t28_epoch_advance_by_notarized_block() {
    let f = Fixture::new(2, 3, 2);
    let mut v = f.node(2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 2), 1);
    f.deliver(&mut v, 0, 1, fresher(&[&c[0]], &f));
    assert_eq!(v.epoch(), Epoch::new(1, 2));
    assert_eq!(v.head(), sn(1, 2, 1));
}

#[test]
fn restarted_voter_never_signs_twice() {
    let f = Fixture::new(1, 3, 2);
    let a = f.block_with(&f.genesis, sn(1, 1, 1), vec![], None, b"a");
    let b = f.block_with(&f.genesis, sn(1, 1, 1), vec![], None, b"b");
    let mut v = f.node(1);
    let outs = f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(&a)));
    assert_eq!(votes(&outs).len(), 1);
    // Restart with only the vote guard persisted (the block record lost): the guard alone
    // prevents a second signature at (1,1,1).
    let guards: Vec<(Epoch, u32)> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Persist(StateChange::VoteGuard { epoch, s }) => Some((*epoch, *s)),
            _ => None,
        })
        .collect();
    assert_eq!(guards, vec![(Epoch::new(1, 1), 1)]);
    let params = f.params(1, Arc::new(NoArchive));
    let mut v2 = Node::recover(
        params,
        RecoveredState {
            vote_guards: guards,
            ..RecoveredState::default()
        },
    );
    let outs = f.deliver(&mut v2, 0, 0, Message::Proposal(f.proposal(&b)));
    assert!(votes(&outs).is_empty());
}

#[test]
fn persist_outputs_precede_the_sends_that_depend_on_them() {
    let f = Fixture::new(1, 3, 2);
    let b = f
        .chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 1)
        .remove(0);
    let mut v = f.node(1);
    let outs = f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(&b)));
    let pos = |pred: &dyn Fn(&Output) -> bool| outs.iter().position(pred).unwrap();
    let block = pos(&|o| matches!(o, Output::Persist(StateChange::Block(_))));
    let guard = pos(&|o| matches!(o, Output::Persist(StateChange::VoteGuard { .. })));
    let vote = pos(&|o| {
        matches!(
            o,
            Output::Send {
                msg: Message::Vote(_),
                ..
            }
        )
    });
    assert!(block < vote && guard < vote);
}

#[test]
fn t31_epoch_sync_takes_the_highest_peer() {
    let f = Fixture::new(3, 3, 2);
    let mut v = f.node(3);
    v.handle(0, Input::Start);
    for (p, e) in [(0usize, 2u32), (1, 3)] {
        v.handle(0, Input::PeerConnected(f.id(p)));
        let st = Status {
            epoch: Epoch::new(1, e),
            ..Status::default()
        };
        f.deliver(&mut v, 0, p, Message::Status(st));
    }
    // The request went to the peer at (1,3) or (1,2) first; answer with cnota(1,3).
    let resp = EpochResponse {
        session: 1,
        clock: Some(f.cnota(Epoch::new(1, 3))),
        is_last: false,
        stop_proof: Vec::new(),
    };
    f.deliver(&mut v, 1, 1, Message::Epoch(resp));
    assert_eq!(v.epoch(), Epoch::new(1, 3));
}

#[test]
fn t32_t34_block_sync_one_request_at_a_time_and_serving() {
    let f = Fixture::new(1, 3, 2);
    // A server that has the whole chain (finalized part in its archive).
    let (server, archive, _) = f.synced_with_archive(0, 6);
    assert_eq!(server.head(), sn(1, 1, 6));
    let mut v = f.node(1);
    v.handle(0, Input::Start);
    v.handle(0, Input::PeerConnected(f.id(0)));
    let st = server.status();
    let outs = f.deliver(&mut v, 0, 0, Message::Status(st.clone()));
    let reqs: Vec<FresherHeadRequest> = sends(&outs)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::GetFresherHead(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reqs.len(), 1);
    // T-34: another status while the request is outstanding sends no duplicate.
    let outs = f.deliver(&mut v, 0, 0, Message::Status(st));
    assert!(sends(&outs)
        .iter()
        .all(|(_, m)| !matches!(m, Message::GetFresherHead(_))));
    // Serving: the server answers with notarized blocks from genesis on (3 from its
    // archive, the rest from memory), and the requester converges in rounds.
    let mut req = reqs[0].clone();
    for _ in 0..10 {
        let resp = serve_fresher_head(server.chain(), archive.as_ref(), &req, 2);
        let outs = f.deliver(&mut v, 1, 0, Message::FresherHead(resp));
        match sends(&outs).into_iter().find_map(|(_, m)| match m {
            Message::GetFresherHead(r) => Some(r.clone()),
            _ => None,
        }) {
            Some(r) => req = r,
            None => break,
        }
    }
    assert_eq!(v.head(), sn(1, 1, 6));
    assert_eq!(v.finalized(), server.finalized());
}

#[test]
fn block_sync_answer_without_progress_holds_the_peer_off() {
    let f = Fixture::new(2, 3, 2);
    let mut v = f.node(2);
    v.handle(0, Input::Start);
    v.handle(0, Input::PeerConnected(f.id(0)));
    let ahead = Status {
        head: sn(1, 1, 9),
        head_height: 9,
        ..Status::default()
    };
    let gets = |outs: &[Output]| {
        sends(outs)
            .into_iter()
            .filter(|(_, m)| matches!(m, Message::GetFresherHead(_)))
            .count()
    };
    assert_eq!(gets(&f.deliver(&mut v, 0, 0, Message::Status(ahead))), 1);
    // The peer cannot serve us (it answers with its finalized head only).
    let empty = Message::FresherHead(FresherHeadResponse {
        blocks: vec![],
        finalized: Some((0, f.genesis.hash(), BlockSn::GENESIS)),
    });
    let outs = f.deliver(&mut v, 10, 0, empty);
    assert_eq!(gets(&outs), 0, "no request straight back to the same peer");
    let wait = f.cfg.voter_timeout_ms / 2;
    let mut asked_at = vec![];
    for now in (10..=10 + wait + f.cfg.sync_period_ms).step_by(f.cfg.sync_period_ms as usize) {
        if gets(&v.handle(now, Input::Timer(TimerKind::Sync))) > 0 {
            asked_at.push(now);
        }
    }
    assert_eq!(
        asked_at.len(),
        1,
        "asked again once, after the hold-off: {asked_at:?}"
    );
    assert!(asked_at[0] >= 10 + wait, "{asked_at:?}");
    assert_eq!(v.counters().get(CoreEvent::SyncEmptyResponse), 1);
}

#[test]
fn t33_silent_sync_peer_times_out_and_is_penalized() {
    let f = Fixture::new(2, 3, 2);
    let mut v = f.node(2);
    v.handle(0, Input::Start);
    for p in [0usize, 1] {
        v.handle(0, Input::PeerConnected(f.id(p)));
    }
    let st = |e| Status {
        epoch: Epoch::new(1, e),
        ..Status::default()
    };
    let outs = f.deliver(&mut v, 0, 0, Message::Status(st(3)));
    let first: Vec<_> = sends(&outs)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::GetEpoch(_)))
        .collect();
    assert_eq!(first[0].0, Some(f.id(0)));
    f.deliver(&mut v, 0, 1, Message::Status(st(2)));
    // Peer 0 never answers: after T_VOTER/2 the next poll asks peer 1 instead. Peer 1
    // is silent too; peer 0 is asked again only after its penalty of T_VOTER.
    let t_voter = f.cfg.voter_timeout_ms;
    let mut asked = vec![];
    for now in (0..=3 * t_voter).step_by(f.cfg.sync_period_ms as usize) {
        let outs = v.handle(now, Input::Timer(TimerKind::Sync));
        asked.extend(
            sends(&outs)
                .into_iter()
                .filter(|(_, m)| matches!(m, Message::GetEpoch(_)))
                .map(|(to, _)| (now, to)),
        );
    }
    let peer1_at = asked
        .iter()
        .find(|(_, to)| *to == Some(f.id(1)))
        .map(|(at, _)| *at)
        .unwrap_or_else(|| panic!("peer 1 never asked: {asked:?}"));
    assert!(peer1_at <= t_voter / 2 + f.cfg.sync_period_ms, "{asked:?}");
    let peer0_again: Vec<u64> = asked
        .iter()
        .filter(|(_, to)| *to == Some(f.id(0)))
        .map(|(at, _)| *at)
        .collect();
    assert!(
        !peer0_again.is_empty(),
        "asked again once the penalty is over"
    );
    assert!(
        peer0_again.iter().all(|at| *at >= peer1_at + t_voter),
        "peer 0 timed out at {peer1_at} and is penalized for T_VOTER: {asked:?}"
    );
    assert!(v.counters().get(CoreEvent::SyncTimeouts) >= 2);
}

#[test]
fn t9_epoch_is_persisted_with_its_proof_never_regresses_and_serves_older_sessions() {
    let f = Fixture::new(1, 3, 2);
    let mut v = f.node(1);
    let outs = f.deliver(
        &mut v,
        0,
        0,
        Message::ClockNotarization(f.cnota(Epoch::new(1, 3))),
    );
    let persisted: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Persist(StateChange::Epoch { epoch, clock }) => {
                Some((*epoch, clock.as_ref().map(|c| c.epoch)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(persisted, vec![(Epoch::new(1, 3), Some(Epoch::new(1, 3)))]);
    // An older clock notarization never moves the epoch back.
    f.deliver(
        &mut v,
        0,
        0,
        Message::ClockNotarization(f.cnota(Epoch::new(1, 2))),
    );
    assert_eq!(v.epoch(), Epoch::new(1, 3));
    // A restart keeps the persisted epoch (section 0.1 item 8) even though the head is
    // still in (0,0).
    let params = f.params(1, Arc::new(NoArchive));
    let mut r = Node::recover(
        params,
        RecoveredState {
            epoch: Some((Epoch::new(1, 3), Some(f.cnota(Epoch::new(1, 3))))),
            ..RecoveredState::default()
        },
    );
    assert_eq!(r.epoch(), Epoch::new(1, 3));
    // Epoch sync serves the proof of the current epoch.
    let outs = f.deliver(&mut r, 0, 0, Message::GetEpoch(Epoch::new(1, 1)));
    let resp = sends(&outs)
        .into_iter()
        .find_map(|(_, m)| match m {
            Message::Epoch(e) => Some(e.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(resp.clock.map(|c| c.epoch), Some(Epoch::new(1, 3)));
}

/// D-6: a block carries the driver's wall-clock time, never the monotonic tick, and never
/// a time before its parent's, even when the proposer's wall clock steps back.
#[test]
fn block_timestamp_is_the_wall_clock_but_never_before_the_parent() {
    let f = Fixture::new(1, 3, 2);
    let mut p = Solo::new(f.node(0));
    p.auto_payload = false;
    p.input(Input::Start);
    for i in 1..=3 {
        p.input(Input::PeerConnected(f.id(i)));
        p.deliver(&f, i, Message::Status(Status::default()));
    }
    p.advance(20);
    let seal = |p: &mut Solo, timestamp_ms: u64| {
        let sn = p.pending_payload.remove(0);
        p.input(Input::Payload {
            sn,
            txs: vec![],
            timestamp_ms,
            state: pala_types::StateCommitment::NONE,
        });
        p.node.chain().block(sn).expect("sealed").clone()
    };
    let b1 = seal(&mut p, 5_000);
    assert_eq!(
        b1.header.timestamp_ms, 5_000,
        "the wall clock, not the tick"
    );
    let b2 = seal(&mut p, 3_000);
    assert_eq!(
        b2.header.timestamp_ms, 5_000,
        "a wall clock stepped back is raised to the parent's timestamp"
    );
    p.deliver(&f, 1, Message::Vote(f.vote(1, &b1)));
    p.deliver(&f, 2, Message::Vote(f.vote(2, &b1)));
    let b3 = seal(&mut p, 9_000);
    assert_eq!(b3.sn(), sn(1, 1, 3));
    assert_eq!(b3.header.timestamp_ms, 9_000);
    assert!(p.now < 1_000, "the tick stayed far from every timestamp");
}

/// the role comes from the local session's installed committee; a node holding both
/// keys counts as a proposer, and a session without an installed committee means follower.
#[test]
fn r1_role_from_the_committees_the_core_holds() {
    let f = Fixture::with_roles(2, 3, 2, &[(1, 2)]);
    let roles: Vec<Role> = (0..5).map(|i| f.node(i).role()).collect();
    assert_eq!(
        roles,
        [
            Role::Proposer,
            Role::Proposer, // also voter 2
            Role::Proposer, // the same key as node 1
            Role::Voter,
            Role::Voter
        ]
    );
    let mut params = f.params(0, Arc::new(NoArchive));
    params.signer = Arc::new(InsecureTestScheme::new().keypair(99));
    assert_eq!(Node::new(params).role(), Role::Follower, "in no committee");
    let n = f.node(3);
    assert_eq!(n.role_in(1), n.role());
    assert_eq!(n.role_in(2), Role::Follower, "session 2 is not installed");
    assert_eq!(n.committees().get(1).map(|c| c.session), Some(1));
    assert!(n.committees().get(2).is_none());
}
