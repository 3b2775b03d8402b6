//! Finality (docs/protocol.md section 4.2, F-1 / F-B / F-C) on single nodes, every message
//! passing through the real verifier.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;

/// F-B recomputed from scratch: the freshest notarized tip (e,t) with t > K finalizes (e,t-K).
fn final_from_scratch(notarized: &[BlockSn], k: u32) -> Option<BlockSn> {
    let head = notarized.iter().max()?;
    (head.s > k).then(|| BlockSn::at(head.epoch, head.s - k))
}

#[test]
fn t2_t3_finality_f_b_and_insertion_must_extend_final() {
    let f = Fixture::new(3, 3, 2);
    let mut n = f.node(2); // a standby proposer: stores, never votes
    let g = f.genesis.clone();
    let c1 = f.chain(std::slice::from_ref(&g), Epoch::new(1, 1), 7);
    let mut notarized = vec![];
    for (i, b) in c1.iter().enumerate() {
        let outs = f.deliver(&mut n, 0, 0, fresher(&[b], &f));
        notarized.push(b.sn());
        let expect = final_from_scratch(&notarized, 2);
        assert_eq!(n.head(), b.sn());
        match expect {
            None => assert_eq!(
                n.finalized(),
                BlockSn::GENESIS,
                "after {i}: nothing final yet"
            ),
            Some(x) => {
                assert_eq!(n.finalized(), x, "incremental F-B equals the recomputation");
                assert_eq!(finalized(&outs).last(), Some(&x));
            }
        }
    }
    assert_eq!(
        n.finalized(),
        sn(1, 1, 5),
        "notarize tail (1,1,7) => finalized head (1,1,5)"
    );
    // A branch (1,2,1..4) from (1,1,5) finalizes (1,2,2).
    let c2 = f.chain(&c1[..5], Epoch::new(1, 2), 4);
    for b in &c2 {
        f.deliver(&mut n, 0, 0, fresher(&[b], &f));
    }
    assert_eq!(n.head(), sn(1, 2, 4));
    assert_eq!(n.finalized(), sn(1, 2, 2));
    // (1,3,1) on (1,1,2) or (1,1,4) does not extend the finalized chain.
    for parent in [&c1[1], &c1[3]] {
        let b = f.block(parent, sn(1, 3, 1), vec![], Some(f.cnota(Epoch::new(1, 3))));
        f.deliver(&mut n, 0, 0, fresher(&[&b], &f));
        assert!(
            n.chain().get(sn(1, 3, 1)).is_none(),
            "must not insert a block off the finalized chain"
        );
    }
    // On (1,2,2) it is accepted (an unnotarized fork of a notarized tip).
    let ok = f.block(
        &c2[1],
        sn(1, 3, 1),
        vec![f.nota(&c2[0]), f.nota(&c2[1])],
        Some(f.cnota(Epoch::new(1, 3))),
    );
    let p = f.proposal(&ok);
    f.deliver(&mut n, 0, 0, Message::Proposal(p));
    assert!(n.chain().get(sn(1, 3, 1)).is_some());
    // Extending the notarized tip and the unnotarized tip both work.
    let ext = f.block(&c2[3], sn(1, 2, 5), vec![f.nota(&c2[2])], None);
    f.deliver(&mut n, 0, 0, fresher(&[&ext], &f));
    assert_eq!(
        n.head(),
        sn(1, 2, 5),
        "the unnotarized (1,3,1) does not move the head"
    );
    assert_eq!(
        n.epoch(),
        Epoch::new(1, 3),
        "cnota(1,3) in (1,3,1) advanced the epoch first (E-8)"
    );
}

/// F-C (F-1): a notarization that arrives after the head moved to a fresher epoch still
/// finalizes its K-th ancestor, which the head's chain contains (found by the
/// reconfiguration sweep, seed 3934: the stop block's proof arrived after a timeout).
#[test]
fn f_c_a_late_notarization_below_a_fresher_head_finalizes() {
    let f = Fixture::new(3, 3, 2);
    let mut n = f.node(2);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 5);
    for b in &c1[..4] {
        f.deliver(&mut n, 0, 0, fresher(&[b], &f));
    }
    assert_eq!(n.finalized(), sn(1, 1, 2));
    // Epoch (1,2) on (1,1,4): its head (1,2,2) has s <= K and finalizes nothing.
    let br = f.chain(&c1[..4], Epoch::new(1, 2), 2);
    f.deliver(&mut n, 0, 0, fresher(&[&br[0], &br[1]], &f));
    assert_eq!(n.head(), sn(1, 2, 2));
    assert_eq!(n.finalized(), sn(1, 1, 2));
    // (1,1,5) notarized late finalizes (1,1,3); the head stays.
    let outs = f.deliver(&mut n, 0, 0, fresher(&[&c1[4]], &f));
    assert_eq!(n.head(), sn(1, 2, 2));
    assert_eq!(n.finalized(), sn(1, 1, 3));
    assert_eq!(finalized(&outs), vec![sn(1, 1, 3)]);
}

/// F-2 and FC-3 as a voter sees them: each head extension re-arms the voter timer and
/// announces the new head (E-2(b), W-6), and finality forgets the votes and clock
/// messages it made useless, keeping those above the finalized block.
#[test]
fn f2_finality_forgets_what_it_made_useless_and_fc3_follows_the_head() {
    let f = Fixture::new(1, 3, 2);
    let mut v = f.node(1);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 4);
    for b in &c {
        f.deliver(&mut v, 0, 0, Message::Proposal(f.proposal(b)));
    }
    assert_eq!(v.buffer_sizes()["voted"], 4);
    assert_eq!(
        v.head(),
        sn(1, 1, 2),
        "notarizations embedded in (1,1,3..4)"
    );
    let t = 7;
    let outs = f.deliver(&mut v, t, 0, Message::Notarization(f.nota(&c[2])));
    assert_eq!(v.head(), sn(1, 1, 3));
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::SetTimer { kind: TimerKind::Voter, at } if *at == t + f.cfg.voter_timeout_ms
    )));
    assert!(sends(&outs)
        .iter()
        .any(|(to, m)| to.is_none() && matches!(m, Message::Status(s) if s.head == sn(1, 1, 3))));
    f.deliver(&mut v, t, 0, Message::Notarization(f.nota(&c[3])));
    assert_eq!(v.finalized(), sn(1, 1, 2));
    assert_eq!(v.buffer_sizes()["voted"], 2, "votes above (1,1,2) stay");
}
