//! The verifier's signature rules with real BLS signatures (docs/protocol.md T-11, T-12, T-13,
//! D-8, D-12, D-14, PV-2, PV-3): vote batches with bisection, notarizations and clock
//! notarizations, committee admission and rogue keys. The same rules run with the
//! insecure test scheme in rules.rs; BLS adds malformed points, subgroups and aggregation
//! that can actually be attacked.

use pala_core::verify::{validate_committee, CommitteeError};
use pala_core::{Committees, MessageVerifier, VerifyError};
use pala_crypto::{seeded_committee, BlsScheme, BlsSigner};
use pala_types::{
    BlockSn, ClockMessage, ClockNotarization, Committee, Domain, Epoch, Hash, Message, NodeId,
    Notarization, PublicKey, Signature, SignatureScheme, Signer, SignerBitmap, Vote, VoteCounting,
};
use std::sync::Arc;

const NET: u64 = 7;

struct Fixture {
    verifier: MessageVerifier,
    committee: Committee,
    proposers: Vec<BlsSigner>,
    voters: Vec<BlsSigner>,
}

fn verifier_for(committee: &Committee) -> MessageVerifier {
    let scheme: Arc<dyn SignatureScheme> = Arc::new(BlsScheme::new());
    let mut committees = Committees::default();
    committees.install(scheme.as_ref(), committee.clone());
    MessageVerifier::new(scheme, NET, committees)
}

fn fixture(label: &str, voters: usize, counting: VoteCounting) -> Fixture {
    let (committee, proposers, voters) = seeded_committee(label, 1, 2, voters, NET, counting);
    validate_committee(&BlsScheme::new(), &committee, NET).expect("seeded committee is valid");
    Fixture {
        verifier: verifier_for(&committee),
        committee,
        proposers,
        voters,
    }
}

fn sn() -> BlockSn {
    BlockSn::new(1, 1, 5)
}

fn hash() -> Hash {
    Hash::of(b"block (1,1,5)")
}

fn vote(s: &dyn Signer, sn: BlockSn, h: Hash) -> Vote {
    Vote {
        voter: s.node_id(),
        sn,
        block_hash: h,
        signature: s.sign(Domain::Vote, NET, &h.0),
    }
}

fn votes(f: &Fixture, who: &[usize]) -> Vec<Vote> {
    who.iter()
        .map(|&i| vote(&f.voters[i], sn(), hash()))
        .collect()
}

/// A vote claiming to be from voter `i` but signed by somebody else.
fn forged_vote(f: &Fixture, i: usize) -> Vote {
    Vote {
        voter: f.voters[i].node_id(),
        ..vote(&BlsSigner::from_seed(b"outsider"), sn(), hash())
    }
}

/// The input indexes `verify_votes` rejected, with the reason.
fn rejected(v: &MessageVerifier, votes: Vec<Vote>) -> Vec<(usize, VerifyError)> {
    v.verify_votes(votes)
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.err().map(|e| (i, e)))
        .collect()
}

fn bad_vote() -> VerifyError {
    VerifyError::BadSignature("vote")
}

/// A quorum signature assembled by hand (as an attacker would): the bitmap says `bitmap`,
/// the aggregate sums `sigs`.
fn quorum_sig(f: &Fixture, bitmap: &[usize], sigs: &[Signature]) -> (SignerBitmap, Signature) {
    let mut signers = SignerBitmap::new(f.committee.voters.len());
    for &i in bitmap {
        signers.insert(i);
    }
    let refs: Vec<&Signature> = sigs.iter().collect();
    let sig = BlsScheme::new()
        .aggregate(&refs)
        .expect("well-formed signatures");
    (signers, sig)
}

fn notarization(
    f: &Fixture,
    bitmap: &[usize],
    sigs: &[Signature],
    proposer_idx: u16,
) -> Notarization {
    let (signers, signature) = quorum_sig(f, bitmap, sigs);
    Notarization {
        sn: sn(),
        block_hash: hash(),
        proposer_idx,
        signers,
        signature,
    }
}

/// The notarization proposer `p` aggregates from the votes of `who`.
fn nota_by(f: &Fixture, who: &[usize], p: usize) -> Notarization {
    let mut sigs: Vec<Signature> = votes(f, who).into_iter().map(|v| v.signature).collect();
    sigs.push(f.proposers[p].sign(Domain::Vote, NET, &hash().0));
    notarization(f, who, &sigs, p as u16)
}

// ---------------------------------------------------------------------------------------
// T-11 notarization table

#[test]
fn t11_below_quorum_is_rejected_even_when_correctly_signed() {
    let f = fixture("t11a", 4, VoteCounting::Seat);
    assert_eq!(
        f.verifier.check_notarization(&nota_by(&f, &[0, 1], 0)),
        Err(VerifyError::BelowQuorum { got: 2, quorum: 3 })
    );
    assert_eq!(
        f.verifier.check_notarization(&nota_by(&f, &[], 0)),
        Err(VerifyError::BelowQuorum { got: 0, quorum: 3 })
    );
}

#[test]
fn t11_exactly_enough_and_all() {
    let f = fixture("t11b", 4, VoteCounting::Seat);
    for who in [&[0usize, 2, 3][..], &[0, 1, 2, 3][..]] {
        assert!(rejected(&f.verifier, votes(&f, who)).is_empty());
        let n = nota_by(&f, who, 1);
        assert_eq!(n.vote_count(), who.len());
        f.verifier.check_notarization(&n).unwrap();
    }
}

#[test]
fn t11_duplicated_votes_verify_but_count_once_in_a_notarization() {
    let f = fixture("t11c", 4, VoteCounting::Seat);
    // Copies of one vote are all genuine (the core counts the voter once).
    assert!(rejected(&f.verifier, votes(&f, &[0, 0, 1, 0])).is_empty());
    // A notarization cannot count a signature twice: its bitmap names each voter once,
    // and a doubled signature in the aggregate does not match the bitmap's keys.
    let vs = votes(&f, &[0, 0, 1]);
    let sigs = [
        vs[0].signature.clone(),
        vs[1].signature.clone(),
        vs[2].signature.clone(),
        f.proposers[0].sign(Domain::Vote, NET, &hash().0),
    ];
    assert!(matches!(
        f.verifier
            .check_notarization(&notarization(&f, &[0, 1], &sigs, 0)),
        Err(VerifyError::BelowQuorum { .. })
    ));
    assert_eq!(
        f.verifier
            .check_notarization(&notarization(&f, &[0, 1, 2], &sigs, 0)),
        Err(VerifyError::BadSignature("notarization"))
    );
}

#[test]
fn t11_enough_only_when_counting_an_invalid_vote() {
    let f = fixture("t11d", 4, VoteCounting::Seat);
    let mut vs = votes(&f, &[0, 1]);
    vs.push(forged_vote(&f, 2));
    assert_eq!(rejected(&f.verifier, vs.clone()), vec![(2, bad_vote())]);
    let sigs: Vec<Signature> = vs
        .iter()
        .map(|v| v.signature.clone())
        .chain([f.proposers[0].sign(Domain::Vote, NET, &hash().0)])
        .collect();
    assert_eq!(
        f.verifier
            .check_notarization(&notarization(&f, &[0, 1, 2], &sigs, 0)),
        Err(VerifyError::BadSignature("notarization"))
    );
}

#[test]
fn t11_votes_for_other_blocks_are_grouped_apart() {
    let f = fixture("t11e", 4, VoteCounting::Seat);
    let other = Hash::of(b"other");
    let mut vs = votes(&f, &[0, 1]);
    vs.push(vote(&f.voters[2], BlockSn::new(1, 1, 6), other));
    vs.push(vote(&f.voters[3], sn(), other));
    // A vote signed for one block but claiming another.
    vs.push(Vote {
        block_hash: other,
        ..vote(&f.voters[0], sn(), hash())
    });
    assert_eq!(rejected(&f.verifier, vs.clone()), vec![(4, bad_vote())]);
    // The other block's vote signature inside an aggregate claiming this block fails.
    let sigs: Vec<Signature> = vs[..3]
        .iter()
        .map(|v| v.signature.clone())
        .chain([f.proposers[0].sign(Domain::Vote, NET, &hash().0)])
        .collect();
    assert_eq!(
        f.verifier
            .check_notarization(&notarization(&f, &[0, 1, 2], &sigs, 0)),
        Err(VerifyError::BadSignature("notarization"))
    );
}

#[test]
fn t11_invalid_votes() {
    let f = fixture("t11f", 6, VoteCounting::Seat);
    let mut vs = votes(&f, &[0, 1, 2, 3, 4, 5]);
    vs[1].signature = Signature(vec![1, 2, 3]); // wrong length
    vs[2].signature = Signature(vec![0x80; pala_crypto::SIGNATURE_LEN]); // not a curve point
    vs[3].signature = f.voters[3].sign(Domain::Proposal, NET, &hash().0); // wrong domain
    vs[4].signature = f.voters[4].sign(Domain::Vote, NET + 1, &hash().0); // wrong network
    assert_eq!(
        rejected(&f.verifier, vs),
        vec![
            (1, bad_vote()),
            (2, bad_vote()),
            (3, bad_vote()),
            (4, bad_vote())
        ]
    );
}

#[test]
fn pv2_a_forger_racing_the_real_voter_does_not_suppress_the_real_vote() {
    let f = fixture("t11g", 4, VoteCounting::Seat);
    let mut vs = vec![forged_vote(&f, 0)];
    vs.extend(votes(&f, &[0, 1, 2]));
    assert_eq!(rejected(&f.verifier, vs), vec![(0, bad_vote())]);
    // Forged twice (identical bytes) and once more with other bytes; the real vote last.
    let mut vs = votes(&f, &[1, 1]);
    vs.push(forged_vote(&f, 2));
    vs.push(forged_vote(&f, 2));
    let mut other_forgery = forged_vote(&f, 2);
    other_forgery.signature = f.voters[3].sign(Domain::Vote, NET, &hash().0);
    vs.push(other_forgery);
    vs.push(vote(&f.voters[2], sn(), hash()));
    assert_eq!(
        rejected(&f.verifier, vs),
        vec![(2, bad_vote()), (3, bad_vote()), (4, bad_vote())]
    );
}

#[test]
fn t11_notarization_moved_to_another_block_fails() {
    let f = fixture("t11h", 4, VoteCounting::Seat);
    let n = nota_by(&f, &[0, 1, 2], 0);
    f.verifier.check_notarization(&n).unwrap();
    let mut moved = n.clone();
    moved.block_hash = Hash::of(b"another block");
    assert_eq!(
        f.verifier.check_notarization(&moved),
        Err(VerifyError::BadSignature("notarization"))
    );
}

#[test]
fn a_remembered_notarization_answers_only_for_identical_inputs() {
    let f = fixture("t11i", 4, VoteCounting::Seat);
    let n = nota_by(&f, &[0, 1, 2, 3], 0);
    f.verifier.check_notarization(&n).unwrap();
    f.verifier.check_notarization(&n).unwrap();
    // Same message and signature, another aggregating proposer: checked for real.
    let mut other = n.clone();
    other.proposer_idx = 1;
    assert_eq!(
        f.verifier.check_notarization(&other),
        Err(VerifyError::BadSignature("notarization"))
    );
    // A verifier for another committee with the same session does not reuse it.
    let (stranger, _, _) = seeded_committee("t11i-other", 1, 2, 4, NET, VoteCounting::Seat);
    assert_eq!(
        verifier_for(&stranger).check_notarization(&n),
        Err(VerifyError::BadSignature("notarization"))
    );
}

#[test]
fn d12_structural_fixes() {
    let f = fixture("d12", 4, VoteCounting::Seat);
    let n = nota_by(&f, &[0, 1, 2, 3], 1);
    f.verifier.check_notarization(&n).unwrap();

    let mut bad = n.clone();
    bad.proposer_idx = 2; // == |proposers|: PROD's off-by-one
    assert_eq!(
        f.verifier.check_notarization(&bad),
        Err(VerifyError::ProposerIndex(2))
    );
    bad.proposer_idx = u16::MAX;
    assert_eq!(
        f.verifier.check_notarization(&bad),
        Err(VerifyError::ProposerIndex(u16::MAX))
    );

    let mut bad = n.clone();
    let mut longer = SignerBitmap::new(5);
    for i in 0..5 {
        longer.insert(i);
    }
    bad.signers = longer;
    assert_eq!(
        f.verifier.check_notarization(&bad),
        Err(VerifyError::BitmapLength {
            got: 5,
            expected: 4
        })
    );

    let mut bad = n.clone();
    bad.sn = BlockSn::new(2, 1, 5);
    assert_eq!(
        f.verifier.check_notarization(&bad),
        Err(VerifyError::UnknownSession(2))
    );

    let mut bad = n.clone();
    bad.signature = Signature(vec![0; pala_crypto::SIGNATURE_LEN]);
    assert_eq!(
        f.verifier.check_notarization(&bad),
        Err(VerifyError::BadSignature("notarization"))
    );

    // Claiming a voter whose signature is not in the aggregate.
    let mut bad = nota_by(&f, &[0, 1, 2], 1);
    bad.signers.insert(3);
    assert_eq!(
        f.verifier.check_notarization(&bad),
        Err(VerifyError::BadSignature("notarization"))
    );
    // Leaving out the aggregating proposer's own share.
    let sigs: Vec<Signature> = votes(&f, &[0, 1, 2])
        .into_iter()
        .map(|v| v.signature)
        .collect();
    assert_eq!(
        f.verifier
            .check_notarization(&notarization(&f, &[0, 1, 2], &sigs, 0)),
        Err(VerifyError::BadSignature("notarization"))
    );
}

// ---------------------------------------------------------------------------------------
// T-12 clock notarization table

fn clock(s: &BlsSigner, e: Epoch) -> ClockMessage {
    ClockMessage {
        voter: s.node_id(),
        epoch: e,
        signature: s.sign(Domain::Clock, NET, &e.signing_bytes()),
    }
}

fn cnota_by(f: &Fixture, e: Epoch, who: &[usize], p: usize) -> ClockNotarization {
    let mut sigs: Vec<Signature> = who
        .iter()
        .map(|&i| clock(&f.voters[i], e).signature)
        .collect();
    sigs.push(f.proposers[p].sign(Domain::Clock, NET, &e.signing_bytes()));
    let (signers, signature) = quorum_sig(f, who, &sigs);
    ClockNotarization {
        epoch: e,
        proposer_idx: p as u16,
        signers,
        signature,
    }
}

#[test]
fn t12_clock_notarization_table() {
    let f = fixture("t12", 4, VoteCounting::Seat);
    let e = Epoch::new(1, 3);
    let check = |c: &ClockNotarization| f.verifier.check_clock_notarization(c);

    assert!(matches!(
        check(&cnota_by(&f, e, &[0, 1], 0)),
        Err(VerifyError::BelowQuorum { got: 2, quorum: 3 })
    ));
    for who in [&[1usize, 2, 3][..], &[0, 1, 2, 3][..]] {
        check(&cnota_by(&f, e, who, 0)).unwrap();
    }
    // Clock messages: a good one, one under the vote domain, one by a non-voter.
    f.verifier
        .verify(Message::Clock(clock(&f.voters[0], e)))
        .unwrap();
    let mut wrong_domain = clock(&f.voters[2], e);
    wrong_domain.signature = f.voters[2].sign(Domain::Vote, NET, &e.signing_bytes());
    assert_eq!(
        f.verifier.verify(Message::Clock(wrong_domain)),
        Err(VerifyError::BadSignature("clock message"))
    );
    assert_eq!(
        f.verifier.verify(Message::Clock(clock(&f.proposers[0], e))),
        Err(VerifyError::NotAMember("voter"))
    );
    // A clock notarization re-labelled with another epoch fails.
    let c = cnota_by(&f, e, &[0, 1, 2], 0);
    let relabelled = ClockNotarization {
        epoch: e.next(),
        ..c.clone()
    };
    assert_eq!(
        check(&relabelled),
        Err(VerifyError::BadSignature("clock notarization"))
    );
    // Structural checks apply too.
    let bad = ClockNotarization {
        proposer_idx: 2,
        ..c.clone()
    };
    assert_eq!(check(&bad), Err(VerifyError::ProposerIndex(2)));
    let bad = ClockNotarization {
        signers: SignerBitmap::new(3),
        ..c.clone()
    };
    assert!(matches!(check(&bad), Err(VerifyError::BitmapLength { .. })));
    // Domain separation: a block notarization's aggregate is not a clock notarization's
    // over the same bytes, and the reverse.
    let over_hash = nota_by(&f, &[0, 1, 2], 0);
    let as_clock = ClockNotarization {
        signers: over_hash.signers.clone(),
        signature: over_hash.signature.clone(),
        ..c.clone()
    };
    assert!(check(&as_clock).is_err());
    let as_block = Notarization {
        signers: c.signers.clone(),
        signature: c.signature.clone(),
        ..over_hash
    };
    assert_eq!(
        f.verifier.check_notarization(&as_block),
        Err(VerifyError::BadSignature("notarization"))
    );
}

// ---------------------------------------------------------------------------------------
// T-13 vote counting

#[test]
fn t13_stake_and_seat_counting() {
    let (mut committee, proposers, voters) =
        seeded_committee("t13", 1, 1, 4, NET, VoteCounting::Stake);
    for (m, stake) in committee.voters.iter_mut().zip([1, 1, 1, 7]) {
        m.stake = stake; // W = 10, q = 7
    }
    let mut seat = committee.clone();
    seat.counting = VoteCounting::Seat;
    let f = Fixture {
        verifier: verifier_for(&committee),
        committee,
        proposers,
        voters,
    };
    let seat_verifier = verifier_for(&seat);

    // Three of four seats, but 3 of 10 stake: valid under seat counting only.
    let n3 = nota_by(&f, &[0, 1, 2], 0);
    seat_verifier.check_notarization(&n3).unwrap();
    assert_eq!(
        f.verifier.check_notarization(&n3),
        Err(VerifyError::BelowQuorum { got: 3, quorum: 7 })
    );
    // The big staker alone reaches the stake quorum, not the seat quorum.
    let n = nota_by(&f, &[3], 0);
    f.verifier.check_notarization(&n).unwrap();
    assert!(matches!(
        seat_verifier.check_notarization(&n),
        Err(VerifyError::BelowQuorum { .. })
    ));
    // Unknown ids are not voters.
    let mut with_unknown = votes(&f, &[0, 1, 2]);
    with_unknown.push(vote(&BlsSigner::from_seed(b"stranger"), sn(), hash()));
    assert_eq!(
        rejected(&f.verifier, with_unknown),
        vec![(3, VerifyError::NotAMember("voter"))]
    );
}

// ---------------------------------------------------------------------------------------
// PV-3: vote batches and bisection

#[test]
fn one_forged_vote_in_100_is_found_by_bisection() {
    let f = fixture("bis", 100, VoteCounting::Seat);
    let mut vs = votes(&f, &(0..100).collect::<Vec<_>>());
    vs[37] = forged_vote(&f, 37);
    assert_eq!(rejected(&f.verifier, vs), vec![(37, bad_vote())]);
    // The 99 others notarize.
    let who: Vec<usize> = (0..100).filter(|&i| i != 37).collect();
    f.verifier
        .check_notarization(&nota_by(&f, &who, 0))
        .unwrap();
}

#[test]
fn several_forged_votes_are_all_found_in_mixed_batches() {
    let f = fixture("bis2", 40, VoteCounting::Seat);
    let mut vs = votes(&f, &(0..40).collect::<Vec<_>>());
    for i in [0, 13, 14, 39] {
        vs[i] = forged_vote(&f, i);
    }
    // Interleaved with the votes of another block, one of them forged too.
    let next = BlockSn::new(1, 1, 6);
    let next_hash = Hash::of(b"block (1,1,6)");
    let mut mixed = Vec::new();
    for (i, v) in vs.into_iter().enumerate() {
        mixed.push(v);
        let mut w = vote(&f.voters[i], next, next_hash);
        if i == 20 {
            w.signature = f.voters[21].sign(Domain::Vote, NET, &next_hash.0);
        }
        mixed.push(w);
    }
    let bad: Vec<usize> = rejected(&f.verifier, mixed)
        .into_iter()
        .map(|(i, e)| {
            assert_eq!(e, bad_vote());
            i
        })
        .collect();
    assert_eq!(bad, vec![0, 26, 28, 41, 78]);
    // All forged.
    let all_bad: Vec<Vote> = (0..4).map(|i| forged_vote(&f, i)).collect();
    assert_eq!(rejected(&f.verifier, all_bad).len(), 4);
}

#[test]
fn votes_of_an_unknown_session_are_rejected() {
    let f = fixture("sess", 4, VoteCounting::Seat);
    let mut v = vote(&f.voters[0], sn(), hash());
    v.sn = BlockSn::new(3, 1, 1);
    assert_eq!(
        rejected(&f.verifier, vec![v]),
        vec![(0, VerifyError::UnknownSession(3))]
    );
}

// ---------------------------------------------------------------------------------------
// Committee admission and rogue keys (D-8)

#[test]
fn committee_validation_errors() {
    let scheme = BlsScheme::new();
    let validate = |c: &Committee, net: u64| validate_committee(&scheme, c, net);
    let (good, _, voters) = seeded_committee("cv", 1, 1, 3, NET, VoteCounting::Seat);
    validate(&good, NET).unwrap();
    // Proofs are per network.
    assert!(matches!(
        validate(&good, NET + 1),
        Err(CommitteeError::BadProofOfPossession {
            list: "proposer",
            index: 0,
            ..
        })
    ));
    let mut c = good.clone();
    c.voters[1].id = NodeId([1; 20]);
    assert!(matches!(
        validate(&c, NET),
        Err(CommitteeError::IdMismatch {
            list: "voter",
            index: 1,
            ..
        })
    ));
    let mut c = good.clone();
    c.voters[2] = c.voters[0].clone();
    assert_eq!(
        validate(&c, NET),
        Err(CommitteeError::Duplicate {
            list: "voter",
            index: 2,
            first: 0
        })
    );
    // Not a point of G2 (the id is derived from the bytes, so only the key is wrong).
    let mut c = good.clone();
    c.voters[1] = pala_types::Member::new(PublicKey(vec![0xc0; 96]), Signature(vec![]), 1, "");
    assert_eq!(
        validate(&c, NET),
        Err(CommitteeError::InvalidKey {
            list: "voter",
            index: 1
        })
    );
    // A proof over other bytes than the key: what a rogue key's owner can at best offer.
    let mut c = good.clone();
    c.voters[1].proof_of_possession = voters[1].sign(Domain::ProofOfPossession, NET, b"not my key");
    assert!(matches!(
        validate(&c, NET),
        Err(CommitteeError::BadProofOfPossession {
            list: "voter",
            index: 1,
            ..
        })
    ));
    let mut c = good.clone();
    c.voters.clear();
    assert_eq!(validate(&c, NET), Err(CommitteeError::NoVoters(1)));
    let mut c = good.clone();
    c.proposers.clear();
    assert_eq!(validate(&c, NET), Err(CommitteeError::NoProposers(1)));
    // Signer indices are u16: 65535 members per list at most. (A list of copies of
    // one member stops at the duplicate when the size is allowed.)
    for (size, too_large) in [
        (usize::from(u16::MAX), false),
        (usize::from(u16::MAX) + 1, true),
    ] {
        let mut c = good.clone();
        c.voters = vec![c.voters[0].clone(); size];
        assert_eq!(
            validate(&c, NET) == Err(CommitteeError::TooLarge(size)),
            too_large,
            "{size} voters"
        );
    }
}

/// The other BLS variant runs through the same verifier.
#[test]
fn min_pk_variant_end_to_end() {
    use pala_crypto::min_pk as v;
    let (committee, ps, vs) = v::seeded_committee("mpk", 1, 1, 7, NET, VoteCounting::Seat);
    let scheme: Arc<dyn SignatureScheme> = Arc::new(v::BlsScheme::new());
    validate_committee(scheme.as_ref(), &committee, NET).unwrap();
    let mut committees = Committees::default();
    committees.install(scheme.as_ref(), committee);
    let verifier = MessageVerifier::new(scheme.clone(), NET, committees);
    let mut batch: Vec<Vote> = vs.iter().map(|s| vote(s, sn(), hash())).collect();
    batch[2].signature = vs[2].sign(Domain::Vote, NET, b"other");
    assert_eq!(rejected(&verifier, batch), vec![(2, bad_vote())]);
    let mut sigs: Vec<Signature> = vs
        .iter()
        .filter(|s| s.node_id() != vs[2].node_id())
        .map(|s| s.sign(Domain::Vote, NET, &hash().0))
        .collect();
    sigs.push(ps[0].sign(Domain::Vote, NET, &hash().0));
    let refs: Vec<&Signature> = sigs.iter().collect();
    let mut signers = SignerBitmap::new(7);
    for i in (0..7).filter(|&i| i != 2) {
        signers.insert(i);
    }
    let n = Notarization {
        sn: sn(),
        block_hash: hash(),
        proposer_idx: 0,
        signers,
        signature: scheme.aggregate(&refs).unwrap(),
    };
    verifier.check_notarization(&n).unwrap();
}
