//! Crypto-level tests: PROTOCOL.md T-11, T-12, T-13, T-15, rogue keys, bisection, key files.

use pala_crypto::{
    handshake, seeded_committee, validate_committee, BlsScheme, BlsSigner, BuildError,
    CommitteeError, CommitteeKeys, HandshakeError, HandshakeSignature, IdentityError, KeyFileError,
    PublicIdentity, SecretKey, VerifyError, VoteRejection,
};
use pala_types::{
    BatchItem, BlockSn, ClockMessage, ClockNotarization, Committee, Domain, Epoch, Hash, NodeId,
    Notarization, PublicKey, Signature, SignatureScheme, Signer, SignerBitmap, Vote, VoteCounting,
};

const NET: u64 = 7;

struct Fixture {
    keys: CommitteeKeys,
    committee: Committee,
    proposers: Vec<BlsSigner>,
    voters: Vec<BlsSigner>,
}

fn fixture(label: &str, voters: usize, counting: VoteCounting) -> Fixture {
    let (committee, proposers, voters) = seeded_committee(label, 1, 2, voters, NET, counting);
    let keys = validate_committee(&committee, NET).expect("seeded committee is valid");
    Fixture {
        keys,
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

fn vote(s: &BlsSigner, sn: BlockSn, h: Hash) -> Vote {
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
    let outsider = BlsSigner::from_seed(b"outsider");
    Vote {
        voter: f.voters[i].node_id(),
        ..vote(&outsider, sn(), hash())
    }
}

fn reasons(b: &pala_crypto::VoteBatch) -> Vec<(usize, VoteRejection)> {
    b.rejected.iter().map(|r| (r.index, r.reason)).collect()
}

/// A notarization assembled by hand (as an attacker would), bypassing the builder.
fn manual_notarization(
    f: &Fixture,
    bitmap: &[usize],
    sigs: &[Signature],
    proposer_idx: u16,
) -> Notarization {
    let mut signers = SignerBitmap::new(f.committee.voters.len());
    for &i in bitmap {
        signers.insert(i);
    }
    let refs: Vec<&Signature> = sigs.iter().collect();
    Notarization {
        sn: sn(),
        block_hash: hash(),
        proposer_idx,
        signers,
        signature: BlsScheme::new()
            .aggregate(&refs)
            .expect("well-formed signatures"),
    }
}

fn proposer_share(f: &Fixture, p: usize) -> Signature {
    f.proposers[p].sign(Domain::Vote, NET, &hash().0)
}

// ---------------------------------------------------------------------------------------
// T-11 notarization table

#[test]
fn t11_not_enough_votes() {
    let f = fixture("t11a", 4, VoteCounting::Seat);
    let b = f.keys.verify_votes(sn(), hash(), &votes(&f, &[0, 1]));
    assert_eq!(b.accepted, vec![0, 1]);
    assert_eq!(
        f.keys.build_notarization(&b, 0, &f.proposers[0]),
        Err(BuildError::BelowQuorum {
            weight: 2,
            quorum: 3
        })
    );
    // A correctly signed sub-quorum aggregate (proposer + 2 voters) is still rejected: the
    // quorum is recomputed from the bitmap.
    let vs = votes(&f, &[0, 1]);
    let n = manual_notarization(
        &f,
        &[0, 1],
        &[
            vs[0].signature.clone(),
            vs[1].signature.clone(),
            proposer_share(&f, 0),
        ],
        0,
    );
    assert_eq!(
        f.keys.verify_notarization(&n),
        Err(VerifyError::BelowQuorum {
            weight: 2,
            quorum: 3
        })
    );
    // Proposer only.
    let n = manual_notarization(&f, &[], &[proposer_share(&f, 0)], 0);
    assert!(matches!(
        f.keys.verify_notarization(&n),
        Err(VerifyError::BelowQuorum { .. })
    ));
}

#[test]
fn t11_exactly_enough_and_all() {
    let f = fixture("t11b", 4, VoteCounting::Seat);
    for who in [&[0usize, 2, 3][..], &[0, 1, 2, 3][..]] {
        let b = f.keys.verify_votes(sn(), hash(), &votes(&f, who));
        assert!(b.rejected.is_empty());
        let n = f.keys.build_notarization(&b, 1, &f.proposers[1]).unwrap();
        assert_eq!(n.vote_count(), who.len());
        assert_eq!(n.signers.iter().collect::<Vec<_>>(), who);
        f.keys.verify_notarization(&n).unwrap();
        f.keys.verify_notarization_of(&n, &hash()).unwrap();
    }
}

#[test]
fn t11_duplicated_votes() {
    let f = fixture("t11c", 4, VoteCounting::Seat);
    let vs = votes(&f, &[0, 0, 1]);
    let b = f.keys.verify_votes(sn(), hash(), &vs);
    assert_eq!(reasons(&b), vec![(1, VoteRejection::Duplicate)]);
    assert_eq!(b.weight, 2, "a duplicate counts once");
    assert!(b.forgers().is_empty(), "a duplicate is not a forgery");
    assert!(matches!(
        f.keys.build_notarization(&b, 0, &f.proposers[0]),
        Err(BuildError::BelowQuorum { .. })
    ));
    // Counting the duplicated signature twice in the aggregate does not help either.
    let n = manual_notarization(
        &f,
        &[0, 1],
        &[
            vs[0].signature.clone(),
            vs[1].signature.clone(),
            vs[2].signature.clone(),
            proposer_share(&f, 0),
        ],
        0,
    );
    assert!(matches!(
        f.keys.verify_notarization(&n),
        Err(VerifyError::BelowQuorum { .. })
    ));
    let b = f.keys.verify_votes(sn(), hash(), &votes(&f, &[0, 0, 1, 2]));
    f.keys
        .verify_notarization(&f.keys.build_notarization(&b, 0, &f.proposers[0]).unwrap())
        .unwrap();
}

#[test]
fn t11_enough_only_when_counting_an_invalid_vote() {
    let f = fixture("t11d", 4, VoteCounting::Seat);
    let mut vs = votes(&f, &[0, 1]);
    vs.push(forged_vote(&f, 2));
    let b = f.keys.verify_votes(sn(), hash(), &vs);
    assert_eq!(reasons(&b), vec![(2, VoteRejection::BadSignature)]);
    assert_eq!(b.forgers(), vec![f.voters[2].node_id()]);
    assert!(matches!(
        f.keys.build_notarization(&b, 0, &f.proposers[0]),
        Err(BuildError::BelowQuorum { .. })
    ));
    let sigs: Vec<Signature> = vs
        .iter()
        .map(|v| v.signature.clone())
        .chain([proposer_share(&f, 0)])
        .collect();
    let n = manual_notarization(&f, &[0, 1, 2], &sigs, 0);
    assert_eq!(
        f.keys.verify_notarization(&n),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn t11_vote_for_another_sn_or_block_mixed_in() {
    let f = fixture("t11e", 4, VoteCounting::Seat);
    let mut vs = votes(&f, &[0, 1]);
    vs.push(vote(
        &f.voters[2],
        BlockSn::new(1, 1, 6),
        Hash::of(b"other"),
    ));
    vs.push(vote(&f.voters[3], sn(), Hash::of(b"other")));
    let b = f.keys.verify_votes(sn(), hash(), &vs);
    assert_eq!(
        reasons(&b),
        vec![
            (2, VoteRejection::WrongTarget),
            (3, VoteRejection::WrongTarget)
        ]
    );
    assert!(matches!(
        f.keys.build_notarization(&b, 0, &f.proposers[0]),
        Err(BuildError::BelowQuorum { .. })
    ));
    // The other block's vote signature inside an aggregate claiming this block fails.
    let sigs: Vec<Signature> = vs[..3]
        .iter()
        .map(|v| v.signature.clone())
        .chain([proposer_share(&f, 0)])
        .collect();
    let n = manual_notarization(&f, &[0, 1, 2], &sigs, 0);
    assert_eq!(
        f.keys.verify_notarization(&n),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn t11_invalid_votes() {
    let f = fixture("t11f", 6, VoteCounting::Seat); // q = 4
    let mut vs = votes(&f, &[0, 1, 2, 3, 4, 5]);
    vs[1].signature = Signature(vec![1, 2, 3]); // wrong length
    vs[2].signature = Signature(vec![0x80; pala_crypto::SIGNATURE_LEN]); // not a curve point
    vs[3].signature = f.voters[3].sign(Domain::Proposal, NET, &hash().0); // wrong domain
    vs[4].signature = f.voters[4].sign(Domain::Vote, NET + 1, &hash().0); // wrong network
    let b = f.keys.verify_votes(sn(), hash(), &vs);
    assert_eq!(
        reasons(&b),
        vec![
            (1, VoteRejection::MalformedSignature),
            (2, VoteRejection::MalformedSignature),
            (3, VoteRejection::BadSignature),
            (4, VoteRejection::BadSignature),
        ]
    );
    assert_eq!(b.accepted, vec![0, 5]);
    assert_eq!(b.forgers().len(), 4);
}

#[test]
fn t11_invalid_and_duplicated() {
    let f = fixture("t11g", 4, VoteCounting::Seat);
    // A forger races voter 0; the real vote arriving later must still count (PV-2).
    let mut vs = vec![forged_vote(&f, 0)];
    vs.extend(votes(&f, &[0, 1, 2]));
    let b = f.keys.verify_votes(sn(), hash(), &vs);
    assert_eq!(reasons(&b), vec![(0, VoteRejection::BadSignature)]);
    assert_eq!(b.accepted, vec![1, 2, 3]);
    let n = f.keys.build_notarization(&b, 0, &f.proposers[0]).unwrap();
    f.keys.verify_notarization(&n).unwrap();
    // Invalid + duplicated only: voter 1 twice and a forged voter 2 is not a quorum.
    let mut vs = votes(&f, &[0, 1, 1]);
    vs.push(forged_vote(&f, 2));
    vs.push(forged_vote(&f, 2));
    let b = f.keys.verify_votes(sn(), hash(), &vs);
    assert_eq!(
        reasons(&b),
        vec![
            (2, VoteRejection::Duplicate),
            (3, VoteRejection::BadSignature),
            (4, VoteRejection::Duplicate)
        ]
    );
    assert_eq!(b.weight, 2);
}

#[test]
fn t11_block_hash_mismatch() {
    let f = fixture("t11h", 4, VoteCounting::Seat);
    let b = f.keys.verify_votes(sn(), hash(), &votes(&f, &[0, 1, 2]));
    let n = f.keys.build_notarization(&b, 0, &f.proposers[0]).unwrap();
    assert_eq!(
        f.keys
            .verify_notarization_of(&n, &Hash::of(b"another block")),
        Err(VerifyError::BlockHashMismatch)
    );
    let mut moved = n.clone();
    moved.block_hash = Hash::of(b"another block");
    assert_eq!(
        f.keys.verify_notarization(&moved),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn t11_verification_cache() {
    let f = fixture("t11i", 4, VoteCounting::Seat);
    let b = f.keys.verify_votes(sn(), hash(), &votes(&f, &[0, 1, 2, 3]));
    let n = f.keys.build_notarization(&b, 0, &f.proposers[0]).unwrap();
    f.keys.verify_notarization(&n).unwrap();
    assert_eq!(f.keys.cache_hits(), 0);
    f.keys.verify_notarization(&n).unwrap();
    assert_eq!(f.keys.cache_hits(), 1);
    // Any change to the object misses the cache and is checked for real.
    let mut other = n.clone();
    other.proposer_idx = 1;
    assert_eq!(
        f.keys.verify_notarization(&other),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(f.keys.cache_hits(), 1);
}

#[test]
fn d12_structural_fixes() {
    let f = fixture("d12", 4, VoteCounting::Seat);
    let b = f.keys.verify_votes(sn(), hash(), &votes(&f, &[0, 1, 2, 3]));
    let n = f.keys.build_notarization(&b, 1, &f.proposers[1]).unwrap();
    f.keys.verify_notarization(&n).unwrap();

    let mut bad = n.clone();
    bad.proposer_idx = 2; // == |proposers|: PROD's off-by-one
    assert_eq!(
        f.keys.verify_notarization(&bad),
        Err(VerifyError::ProposerIndex {
            index: 2,
            proposers: 2
        })
    );
    bad.proposer_idx = u16::MAX;
    assert!(matches!(
        f.keys.verify_notarization(&bad),
        Err(VerifyError::ProposerIndex { .. })
    ));

    let mut bad = n.clone();
    let mut longer = SignerBitmap::new(5);
    for i in 0..5 {
        longer.insert(i);
    }
    bad.signers = longer;
    assert_eq!(
        f.keys.verify_notarization(&bad),
        Err(VerifyError::BitmapLength {
            expected: 4,
            got: 5
        })
    );

    let mut bad = n.clone();
    bad.sn = BlockSn::new(2, 1, 5);
    assert_eq!(
        f.keys.verify_notarization(&bad),
        Err(VerifyError::WrongSession {
            expected: 1,
            got: 2
        })
    );

    let mut bad = n.clone();
    bad.signature = Signature(vec![0; pala_crypto::SIGNATURE_LEN]);
    assert_eq!(
        f.keys.verify_notarization(&bad),
        Err(VerifyError::MalformedSignature)
    );

    // Claiming a voter whose signature is not in the aggregate.
    let b3 = f.keys.verify_votes(sn(), hash(), &votes(&f, &[0, 1, 2]));
    let mut bad = f.keys.build_notarization(&b3, 1, &f.proposers[1]).unwrap();
    bad.signers.insert(3);
    assert_eq!(
        f.keys.verify_notarization(&bad),
        Err(VerifyError::BadSignature)
    );

    // Builder refuses an out-of-range index or a signer that is not that proposer.
    assert_eq!(
        f.keys.build_notarization(&b, 2, &f.proposers[1]),
        Err(BuildError::ProposerIndex {
            index: 2,
            proposers: 2
        })
    );
    assert_eq!(
        f.keys.build_notarization(&b, 0, &f.proposers[1]),
        Err(BuildError::NotTheProposer(0))
    );
}

#[test]
fn prepared_keys_subset_paths_agree() {
    let f = fixture("prep", 10, VoteCounting::Seat);
    let scheme = BlsScheme::new();
    let pks: Vec<PublicKey> = f
        .committee
        .voters
        .iter()
        .map(|m| m.public_key.clone())
        .collect();
    let prepared = scheme.prepare_keys(&pks);
    let extra = f.proposers[0].public_key();
    let msg = b"subset";
    // 9 of 10 (total minus missing) and 3 of 10 (sum of included), with and without extra.
    for who in [&[0usize, 1, 2, 3, 4, 5, 6, 8, 9][..], &[1, 5, 7][..]] {
        let mut bm = SignerBitmap::new(10);
        let mut sigs: Vec<Signature> = Vec::new();
        for &i in who {
            bm.insert(i);
            sigs.push(f.voters[i].sign(Domain::Vote, NET, msg));
        }
        let refs: Vec<&Signature> = sigs.iter().collect();
        let agg = scheme.aggregate(&refs).unwrap();
        assert!(prepared.verify_subset(&bm, None, Domain::Vote, NET, msg, &agg));
        assert!(!prepared.verify_subset(&bm, Some(extra), Domain::Vote, NET, msg, &agg));
        sigs.push(f.proposers[0].sign(Domain::Vote, NET, msg));
        let refs: Vec<&Signature> = sigs.iter().collect();
        let agg2 = scheme.aggregate(&refs).unwrap();
        assert!(prepared.verify_subset(&bm, Some(extra), Domain::Vote, NET, msg, &agg2));
        assert!(!prepared.verify_subset(&SignerBitmap::new(9), None, Domain::Vote, NET, msg, &agg));
        let pk_refs: Vec<&PublicKey> = who.iter().map(|&i| &pks[i]).collect();
        assert!(scheme.verify_same_message(&pk_refs, Domain::Vote, NET, msg, &agg));
    }
    assert!(!prepared.verify_subset(
        &SignerBitmap::new(10),
        None,
        Domain::Vote,
        NET,
        msg,
        &Signature(vec![])
    ));
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

#[test]
fn t12_clock_notarization_table() {
    let f = fixture("t12", 4, VoteCounting::Seat);
    let e = Epoch::new(1, 3);
    let cm = |who: &[usize]| -> Vec<ClockMessage> {
        who.iter().map(|&i| clock(&f.voters[i], e)).collect()
    };

    // Not enough.
    let b = f.keys.verify_clock_messages(e, &cm(&[0, 1]));
    assert!(matches!(
        f.keys.build_clock_notarization(&b, 0, &f.proposers[0]),
        Err(BuildError::BelowQuorum { .. })
    ));
    // Exactly enough and all.
    for who in [&[1usize, 2, 3][..], &[0, 1, 2, 3][..]] {
        let b = f.keys.verify_clock_messages(e, &cm(who));
        let c = f
            .keys
            .build_clock_notarization(&b, 0, &f.proposers[0])
            .unwrap();
        f.keys.verify_clock_notarization(&c).unwrap();
        f.keys.verify_clock_notarization_for(&c, e).unwrap();
        assert_eq!(
            f.keys.verify_clock_notarization_for(&c, e.next()),
            Err(VerifyError::EpochMismatch {
                expected: e.next(),
                got: e
            })
        );
    }
    // Duplicated.
    let b = f.keys.verify_clock_messages(e, &cm(&[0, 0, 1]));
    assert_eq!(reasons(&b), vec![(1, VoteRejection::Duplicate)]);
    // Enough only when counting an invalid one.
    let mut ms = cm(&[0, 1, 2]);
    ms[2].signature = f.voters[2].sign(Domain::Vote, NET, &e.signing_bytes()); // wrong domain
    let b = f.keys.verify_clock_messages(e, &ms);
    assert_eq!(reasons(&b), vec![(2, VoteRejection::BadSignature)]);
    assert!(f
        .keys
        .build_clock_notarization(&b, 0, &f.proposers[0])
        .is_err());
    // Wrong epoch mixed in.
    let mut ms = cm(&[0, 1]);
    ms.push(clock(&f.voters[2], e.next()));
    let b = f.keys.verify_clock_messages(e, &ms);
    assert_eq!(reasons(&b), vec![(2, VoteRejection::WrongTarget)]);
    assert!(f
        .keys
        .build_clock_notarization(&b, 0, &f.proposers[0])
        .is_err());
    // A clock notarization re-labelled with another epoch fails.
    let b = f.keys.verify_clock_messages(e, &cm(&[0, 1, 2]));
    let c = f
        .keys
        .build_clock_notarization(&b, 0, &f.proposers[0])
        .unwrap();
    let relabelled = ClockNotarization {
        epoch: e.next(),
        ..c.clone()
    };
    assert_eq!(
        f.keys.verify_clock_notarization(&relabelled),
        Err(VerifyError::BadSignature)
    );
    // Structural checks apply too.
    let bad = ClockNotarization {
        proposer_idx: 2,
        ..c.clone()
    };
    assert!(matches!(
        f.keys.verify_clock_notarization(&bad),
        Err(VerifyError::ProposerIndex { .. })
    ));
    let bad = ClockNotarization {
        signers: SignerBitmap::new(3),
        ..c.clone()
    };
    assert!(matches!(
        f.keys.verify_clock_notarization(&bad),
        Err(VerifyError::BitmapLength { .. })
    ));
    // A vote batch cannot become a clock notarization and vice versa.
    assert_eq!(
        f.keys.build_notarization(&b, 0, &f.proposers[0]),
        Err(BuildError::WrongTarget)
    );
    // A block notarization's signature is not a clock notarization's (domain separation).
    let vb = f.keys.verify_votes(sn(), hash(), &votes(&f, &[0, 1, 2]));
    assert_eq!(
        f.keys.build_clock_notarization(&vb, 0, &f.proposers[0]),
        Err(BuildError::WrongTarget)
    );
}

// ---------------------------------------------------------------------------------------
// T-13 vote counting at the crypto level

#[test]
fn t13_stake_and_seat_counting() {
    let (mut committee, proposers, voters) =
        seeded_committee("t13", 1, 1, 4, NET, VoteCounting::Stake);
    for (m, stake) in committee.voters.iter_mut().zip([1, 1, 1, 7]) {
        m.stake = stake; // W = 10, q = 7
    }
    let keys = validate_committee(&committee, NET).unwrap();
    let vs: Vec<Vote> = voters.iter().map(|s| vote(s, sn(), hash())).collect();

    // Three of four seats but only 3 of 10 stake.
    let b = keys.verify_votes(sn(), hash(), &vs[..3]);
    assert_eq!(b.weight, 3);
    assert_eq!(
        keys.build_notarization(&b, 0, &proposers[0]),
        Err(BuildError::BelowQuorum {
            weight: 3,
            quorum: 7
        })
    );
    // The same signer set under seat counting is a quorum, so the aggregate is valid and
    // only the weight check can reject it.
    let mut seat = committee.clone();
    seat.counting = VoteCounting::Seat;
    let seat_keys = validate_committee(&seat, NET).unwrap();
    let n3 = seat_keys
        .build_notarization(
            &seat_keys.verify_votes(sn(), hash(), &vs[..3]),
            0,
            &proposers[0],
        )
        .unwrap();
    seat_keys.verify_notarization(&n3).unwrap();
    assert_eq!(
        keys.verify_notarization(&n3),
        Err(VerifyError::BelowQuorum {
            weight: 3,
            quorum: 7
        })
    );
    // The big staker alone reaches the stake quorum.
    let b = keys.verify_votes(sn(), hash(), &vs[3..]);
    let n = keys.build_notarization(&b, 0, &proposers[0]).unwrap();
    keys.verify_notarization(&n).unwrap();
    assert!(matches!(
        seat_keys.verify_notarization(&n),
        Err(VerifyError::BelowQuorum { .. })
    ));
    // Unknown ids count nothing.
    let stranger = BlsSigner::from_seed(b"stranger");
    let mut with_unknown = vs[..3].to_vec();
    with_unknown.push(vote(&stranger, sn(), hash()));
    let b = keys.verify_votes(sn(), hash(), &with_unknown);
    assert_eq!(reasons(&b), vec![(3, VoteRejection::UnknownVoter)]);
    assert_eq!(b.weight, 3);
}

// ---------------------------------------------------------------------------------------
// T-15 handshake signing

#[test]
fn t15_handshake_round_trip_and_rejections() {
    let client = BlsSigner::from_seed(b"client");
    let scheme = BlsScheme::new();
    let z = b"server SubjectPublicKeyInfo DER";
    let exporter = [9u8; 32];
    let ch = handshake::challenge(z, &exporter, handshake::ROLE_CLIENT, NET);
    let blob = client.sign_handshake(NET, &ch).encode();
    assert_eq!(blob[0], handshake::SCHEME_BLS);
    assert_eq!(
        HandshakeSignature::decode(&blob).unwrap().public_key,
        client.public_key().clone()
    );
    assert_eq!(
        scheme.verify_handshake(&blob, NET, &ch),
        Ok(client.node_id())
    );

    let mut wrong = blob.clone();
    wrong[0] = 0x02;
    assert_eq!(
        scheme.verify_handshake(&wrong, NET, &ch),
        Err(HandshakeError::UnknownScheme(0x02))
    );
    assert_eq!(
        scheme.verify_handshake(&[], NET, &ch),
        Err(HandshakeError::Truncated)
    );
    assert_eq!(
        scheme.verify_handshake(&blob[..2], NET, &ch),
        Err(HandshakeError::Truncated)
    );
    assert_eq!(
        scheme.verify_handshake(&blob[..20], NET, &ch),
        Err(HandshakeError::Truncated)
    );
    assert_eq!(
        scheme.verify_handshake(&blob[..blob.len() - 1], NET, &ch),
        Err(HandshakeError::Malformed)
    );
    // A person in the middle's key, another TLS session, the other role or another network.
    for other in [
        handshake::challenge(b"middle key", &exporter, handshake::ROLE_CLIENT, NET),
        handshake::challenge(z, &[8u8; 32], handshake::ROLE_CLIENT, NET),
        handshake::challenge(z, &exporter, handshake::ROLE_SERVER, NET),
        handshake::challenge(z, &exporter, handshake::ROLE_CLIENT, NET + 1),
    ] {
        assert_eq!(
            scheme.verify_handshake(&blob, NET, &other),
            Err(HandshakeError::BadSignature)
        );
    }
    assert_eq!(
        scheme.verify_handshake(&blob, NET + 1, &ch),
        Err(HandshakeError::BadSignature)
    );
    // A signature of another message kind over the same bytes does not pass (domain tags).
    let as_vote = HandshakeSignature {
        public_key: client.public_key().clone(),
        signature: client.sign(Domain::Vote, NET, &ch),
    };
    assert_eq!(
        scheme.verify_handshake(&as_vote.encode(), NET, &ch),
        Err(HandshakeError::BadSignature)
    );
    // The other variant's blob is malformed for this one.
    let other_variant =
        pala_crypto::min_pk::BlsSigner::from_seed(b"client").sign_handshake(NET, &ch);
    assert_eq!(
        scheme.verify_handshake(&other_variant.encode(), NET, &ch),
        Err(HandshakeError::Malformed)
    );
}

// ---------------------------------------------------------------------------------------
// Rogue keys and committee validation

macro_rules! rogue_key_test {
    ($name:ident, $variant:ident) => {
        #[test]
        fn $name() {
            use blst::$variant as raw;
            use pala_crypto::$variant as v;
            let victim = v::BlsSigner::from_seed(b"victim");
            let attacker = v::BlsSigner::from_seed(b"attacker");
            // rogue = pk_attacker - pk_victim, so victim + rogue = pk_attacker: the attacker
            // alone can produce a "two-party" aggregate without the victim's secret.
            let pk_a = raw::PublicKey::uncompress(&attacker.public_key().0).unwrap();
            let pk_v = raw::PublicKey::uncompress(&victim.public_key().0).unwrap();
            let mut rogue = raw::AggregatePublicKey::from_public_key(&pk_a);
            rogue.sub_aggregate(&raw::AggregatePublicKey::from_public_key(&pk_v));
            let rogue_pk = PublicKey(rogue.to_public_key().compress().to_vec());
            let scheme = v::BlsScheme::new();
            let msg = hash().0;
            let forged = attacker.sign(Domain::Vote, NET, &msg);
            assert!(
                scheme.verify_same_message(
                    &[victim.public_key(), &rogue_pk],
                    Domain::Vote,
                    NET,
                    &msg,
                    &forged
                ),
                "without proofs of possession the rogue aggregate verifies"
            );
            // The attacker cannot prove possession of the rogue key: its best attempt is a
            // signature with its own key.
            let fake_pop = attacker.sign(Domain::ProofOfPossession, NET, &rogue_pk.0);
            assert!(!scheme.verify_possession(&rogue_pk, NET, &fake_pop));
            let committee = Committee {
                session: 1,
                proposers: vec![attacker.member(NET, 1, "")],
                voters: vec![
                    victim.member(NET, 1, ""),
                    pala_types::Member::new(rogue_pk.clone(), fake_pop, 1, ""),
                ],
                counting: VoteCounting::Seat,
            };
            match v::validate_committee(&committee, NET) {
                Err(CommitteeError::BadProofOfPossession {
                    list: "voter",
                    index: 1,
                    ..
                }) => {}
                other => panic!("rogue key accepted: {other:?}"),
            }
        }
    };
}

rogue_key_test!(
    rogue_key_without_proof_of_possession_is_rejected_min_sig,
    min_sig
);
rogue_key_test!(
    rogue_key_without_proof_of_possession_is_rejected_min_pk,
    min_pk
);

#[test]
fn committee_validation_errors() {
    let (good, _, voters) = seeded_committee("cv", 1, 1, 3, NET, VoteCounting::Seat);
    validate_committee(&good, NET).unwrap();
    // Proofs are per network.
    assert!(matches!(
        validate_committee(&good, NET + 1),
        Err(CommitteeError::BadProofOfPossession {
            list: "proposer",
            index: 0,
            ..
        })
    ));
    let mut c = good.clone();
    c.voters[1].id = NodeId([1; 20]);
    assert!(matches!(
        validate_committee(&c, NET),
        Err(CommitteeError::IdMismatch {
            list: "voter",
            index: 1,
            ..
        })
    ));
    let mut c = good.clone();
    c.voters[2] = c.voters[0].clone();
    assert_eq!(
        validate_committee(&c, NET).err(),
        Some(CommitteeError::Duplicate {
            list: "voter",
            index: 2,
            first: 0
        })
    );
    let mut c = good.clone();
    c.voters[1] = pala_types::Member::new(PublicKey(vec![0xc0; 96]), Signature(vec![]), 1, "");
    assert_eq!(
        validate_committee(&c, NET).err(),
        Some(CommitteeError::InvalidKey {
            list: "voter",
            index: 1
        })
    );
    let mut c = good.clone();
    c.voters[1].proof_of_possession = voters[1].sign(Domain::ProofOfPossession, NET, b"not my key");
    assert!(matches!(
        validate_committee(&c, NET),
        Err(CommitteeError::BadProofOfPossession {
            list: "voter",
            index: 1,
            ..
        })
    ));
    let mut c = good.clone();
    c.voters.clear();
    assert_eq!(
        validate_committee(&c, NET).err(),
        Some(CommitteeError::NoVoters(1))
    );
    let mut c = good;
    c.proposers.clear();
    assert_eq!(
        validate_committee(&c, NET).err(),
        Some(CommitteeError::NoProposers(1))
    );
}

// ---------------------------------------------------------------------------------------
// Vote batches: bisection

#[test]
fn one_forged_vote_in_100_found_by_bisection_and_99_still_notarize() {
    let f = fixture("bis", 100, VoteCounting::Seat);
    let mut vs = votes(&f, &(0..100).collect::<Vec<_>>());
    vs[37] = forged_vote(&f, 37);
    let b = f.keys.verify_votes(sn(), hash(), &vs);
    assert_eq!(reasons(&b), vec![(37, VoteRejection::BadSignature)]);
    assert_eq!(b.forgers(), vec![f.voters[37].node_id()]);
    assert_eq!(b.accepted.len(), 99);
    assert!(!b.signers.contains(37));
    let n = f.keys.build_notarization(&b, 0, &f.proposers[0]).unwrap();
    assert_eq!(n.vote_count(), 99);
    f.keys.verify_notarization(&n).unwrap();
    // The aggregate of the 99 alone is a valid same-message aggregate of their keys.
    let scheme = BlsScheme::new();
    let pks: Vec<&PublicKey> = b
        .signers
        .iter()
        .map(|i| &f.committee.voters[i].public_key)
        .collect();
    assert!(scheme.verify_same_message(
        &pks,
        Domain::Vote,
        NET,
        &hash().0,
        &b.aggregate_signature().unwrap()
    ));
}

#[test]
fn several_forged_votes_are_all_found() {
    let f = fixture("bis2", 40, VoteCounting::Seat);
    let mut vs = votes(&f, &(0..40).collect::<Vec<_>>());
    for i in [0, 13, 14, 39] {
        vs[i] = forged_vote(&f, i);
    }
    let b = f.keys.verify_votes(sn(), hash(), &vs);
    let bad: Vec<usize> = b.rejected.iter().map(|r| r.index).collect();
    assert_eq!(bad, vec![0, 13, 14, 39]);
    f.keys
        .verify_notarization(&f.keys.build_notarization(&b, 1, &f.proposers[1]).unwrap())
        .unwrap();
    // All forged: nothing accepted, no aggregate.
    let all_bad: Vec<Vote> = (0..4).map(|i| forged_vote(&f, i)).collect();
    let b = f.keys.verify_votes(sn(), hash(), &all_bad);
    assert!(b.accepted.is_empty());
    assert_eq!(b.rejected.len(), 4);
    assert!(b.aggregate_signature().is_none());
}

// ---------------------------------------------------------------------------------------
// Independent messages: random linear combination

#[test]
fn batch_of_independent_messages() {
    let scheme = BlsScheme::new();
    let signers: Vec<BlsSigner> = (0..6u8).map(|i| BlsSigner::from_seed(&[i])).collect();
    let domains = [
        Domain::Proposal,
        Domain::Vote,
        Domain::Clock,
        Domain::Handshake,
    ];
    let msgs: Vec<Vec<u8>> = (0..24u8).map(|i| vec![i; 1 + i as usize]).collect();
    let sigs: Vec<Signature> = (0..24)
        .map(|i| signers[i % 6].sign(domains[i % 4], NET, &msgs[i]))
        .collect();
    let mut items: Vec<BatchItem<'_>> = (0..24)
        .map(|i| BatchItem {
            public_key: signers[i % 6].public_key(),
            domain: domains[i % 4],
            msg: &msgs[i],
            signature: &sigs[i],
        })
        .collect();
    assert!(scheme.verify_batch(NET, &items));
    assert!(scheme.verify_batch(NET, &[]));
    assert!(scheme.verify_batch(NET, &items[..1]));
    assert!(!scheme.verify_batch(NET + 1, &items));
    assert_eq!(scheme.verify_batch_each(NET, &items), vec![true; 24]);
    // Swapping two signatures keeps the plain sum of signatures equal; the random
    // weights still catch it.
    items[3].signature = &sigs[9];
    items[9].signature = &sigs[3];
    let mut expect = vec![true; 24];
    expect[3] = false;
    expect[9] = false;
    assert!(!scheme.verify_batch(NET, &items));
    assert_eq!(scheme.verify_batch_each(NET, &items), expect);
    let junk = Signature(vec![7; 3]);
    items[5].signature = &junk;
    assert!(!scheme.verify_batch(NET, &items));
}

// ---------------------------------------------------------------------------------------
// Keys, key files and identity lines

#[test]
fn keys_from_seed_are_deterministic_and_random_keys_differ() {
    assert_eq!(
        BlsSigner::from_seed(b"a").public_key(),
        BlsSigner::from_seed(b"a").public_key()
    );
    assert_ne!(
        BlsSigner::from_seed(b"a").public_key(),
        BlsSigner::from_seed(b"b").public_key()
    );
    let r1 = BlsSigner::generate();
    let r2 = BlsSigner::generate();
    assert_ne!(r1.public_key(), r2.public_key());
    assert_eq!(r1.public_key().0.len(), pala_crypto::PUBLIC_KEY_LEN);
    assert_eq!(r1.node_id(), r1.public_key().node_id());
    let scheme = BlsScheme::new();
    assert!(scheme.verify_possession(r1.public_key(), NET, &r1.proof_of_possession(NET)));
    assert!(!scheme.verify_possession(r2.public_key(), NET, &r1.proof_of_possession(NET)));
    assert!(format!("{:?}", r1.secret_key()).contains("redacted"));
}

#[cfg(unix)]
#[test]
fn key_file_round_trip_and_errors() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    let sk = SecretKey::from_seed(b"file");
    sk.save(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        SecretKey::load(&path).unwrap().public_key(),
        sk.public_key()
    );
    assert!(matches!(
        sk.save(&path),
        Err(KeyFileError::AlreadyExists { .. })
    ));

    let write = |name: &str, content: &[u8], mode: u32| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let good_text = std::fs::read(&path).unwrap();
    let p = write("open.key", &good_text, 0o644);
    let e = SecretKey::load(&p).unwrap_err();
    assert!(matches!(e, KeyFileError::Permissions { mode: 0o644, .. }));
    assert!(e.to_string().contains("open.key"), "{e}");
    let p = write("group.key", &good_text, 0o640);
    assert!(matches!(
        SecretKey::load(&p),
        Err(KeyFileError::Permissions { .. })
    ));

    let p = write("short.key", &good_text[..63], 0o600);
    let e = SecretKey::load(&p).unwrap_err();
    assert!(matches!(
        e,
        KeyFileError::Length {
            expected: 64,
            found: 63,
            ..
        }
    ));
    assert!(e.to_string().contains("short.key"), "{e}");
    let p = write("long.key", &[b'a'; 66], 0o600);
    assert!(matches!(
        SecretKey::load(&p),
        Err(KeyFileError::Length { found: 66, .. })
    ));

    let p = write("nothex.key", &[b'z'; 64], 0o600);
    let e = SecretKey::load(&p).unwrap_err();
    assert!(matches!(e, KeyFileError::Encoding { .. }));
    assert!(e.to_string().contains("nothex.key"), "{e}");

    let p = write("zero.key", &[b'0'; 64], 0o600);
    assert!(matches!(
        SecretKey::load(&p),
        Err(KeyFileError::InvalidKey { .. })
    ));
    let p = write("big.key", &[b'f'; 64], 0o600);
    let e = SecretKey::load(&p).unwrap_err();
    assert!(matches!(e, KeyFileError::InvalidKey { .. }));
    assert!(e.to_string().contains("big.key"), "{e}");

    let missing = dir.path().join("missing.key");
    let e = SecretKey::load(&missing).unwrap_err();
    assert!(matches!(e, KeyFileError::Io { .. }));
    assert!(e.to_string().contains("missing.key"), "{e}");

    let signer = BlsSigner::load(&path).unwrap();
    assert_eq!(signer.public_key(), &sk.public_key());
}

#[test]
fn identity_line_round_trip_and_errors() {
    let s = BlsSigner::from_seed(b"ident");
    let id = s.identity(NET);
    let line = id.to_line();
    assert!(line.starts_with(pala_crypto::SCHEME_NAME));
    assert_eq!(PublicIdentity::from_line(&line), Ok(id.clone()));
    assert_eq!(
        PublicIdentity::from_line(&line).unwrap().node_id(),
        s.node_id()
    );
    assert_eq!(
        PublicIdentity::from_line("a b"),
        Err(IdentityError::Fields(2))
    );
    let other_scheme = line.replacen(pala_crypto::SCHEME_NAME, "bls12-381-other", 1);
    assert!(matches!(
        PublicIdentity::from_line(&other_scheme),
        Err(IdentityError::Scheme { .. })
    ));
    let other_net = line.replacen(&format!(" {NET} "), " 8 ", 1);
    assert_eq!(
        PublicIdentity::from_line(&other_net),
        Err(IdentityError::BadProof)
    );
    let fields: Vec<&str> = line.split(' ').collect();
    let bad_hex = format!("{} {} {}zz {}", fields[0], fields[1], fields[2], fields[3]);
    assert!(matches!(
        PublicIdentity::from_line(&bad_hex),
        Err(IdentityError::Encoding { .. })
    ));
    let bad_key = format!(
        "{} {} {} {}",
        fields[0],
        fields[1],
        "00".repeat(pala_crypto::PUBLIC_KEY_LEN),
        fields[3]
    );
    assert_eq!(
        PublicIdentity::from_line(&bad_key),
        Err(IdentityError::InvalidKey)
    );
}

// ---------------------------------------------------------------------------------------
// The other variant still works end to end (it is kept for the benchmarks).

#[test]
fn min_pk_variant_end_to_end() {
    use pala_crypto::min_pk as v;
    let (committee, ps, vs) = v::seeded_committee("mpk", 1, 1, 7, NET, VoteCounting::Seat);
    let keys = v::validate_committee(&committee, NET).unwrap();
    let scheme = v::BlsScheme::new();
    assert_eq!(scheme.name(), "bls12-381-min-pk");
    let mut votes: Vec<Vote> = vs.iter().map(|s| vote_with(s, sn(), hash())).collect();
    votes[2].signature = vs[2].sign(Domain::Vote, NET, b"other");
    let b = keys.verify_votes(sn(), hash(), &votes);
    let rejected: Vec<(usize, VoteRejection)> =
        b.rejected.iter().map(|r| (r.index, r.reason)).collect();
    assert_eq!(rejected, vec![(2, VoteRejection::BadSignature)]);
    let n = keys.build_notarization(&b, 0, &ps[0]).unwrap();
    keys.verify_notarization(&n).unwrap();
    let sig = vs[0].sign(Domain::Proposal, NET, b"p");
    assert!(scheme.verify(vs[0].public_key(), Domain::Proposal, NET, b"p", &sig));
    assert!(!scheme.verify(vs[1].public_key(), Domain::Proposal, NET, b"p", &sig));
}

fn vote_with(s: &dyn Signer, sn: BlockSn, h: Hash) -> Vote {
    Vote {
        voter: s.node_id(),
        sn,
        block_hash: h,
        signature: s.sign(Domain::Vote, NET, &h.0),
    }
}
