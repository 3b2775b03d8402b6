//! Tests of the primitives: prepared committee keys, aggregation, random-linear-combination
//! batches, T-15 handshake signatures, rogue keys, key files and identity lines. The
//! signature *rules* (votes, notarizations, committee admission) are tested where they
//! live, in pala-core's verifier (crates/pala-core/tests/core/verify_bls.rs).

use pala_crypto::{
    handshake, seeded_committee, BlsScheme, BlsSigner, HandshakeError, HandshakeSignature,
    IdentityError, KeyFileError, PublicIdentity, SecretKey,
};
use pala_types::{
    BatchItem, Domain, Hash, PreparedKeys, PublicKey, QuorumItem, Signature, SignatureScheme,
    Signer, SignerBitmap, VoteCounting,
};

const NET: u64 = 7;

fn hash() -> Hash {
    Hash::of(b"block (1,1,5)")
}

#[test]
fn prepared_keys_subset_paths_agree() {
    let (committee, proposers, voters) =
        seeded_committee("prep", 1, 1, 10, NET, VoteCounting::Seat);
    let scheme = BlsScheme::new();
    let pks: Vec<PublicKey> = committee
        .voters
        .iter()
        .map(|m| m.public_key.clone())
        .collect();
    let prepared = scheme.prepare_keys(&pks);
    let extra = proposers[0].public_key();
    let msg = b"subset";
    // 9 of 10 (total minus missing) and 3 of 10 (sum of included), with and without extra.
    for who in [&[0usize, 1, 2, 3, 4, 5, 6, 8, 9][..], &[1, 5, 7][..]] {
        let mut bm = SignerBitmap::new(10);
        let mut sigs: Vec<Signature> = Vec::new();
        for &i in who {
            bm.insert(i);
            sigs.push(voters[i].sign(Domain::Vote, NET, msg));
        }
        let refs: Vec<&Signature> = sigs.iter().collect();
        let agg = scheme.aggregate(&refs).unwrap();
        assert!(prepared.verify_subset(&bm, None, Domain::Vote, NET, msg, &agg));
        assert!(!prepared.verify_subset(&bm, Some(extra), Domain::Vote, NET, msg, &agg));
        sigs.push(proposers[0].sign(Domain::Vote, NET, msg));
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
// Rogue keys (committee admission rejects them: pala-core's verify_bls.rs)

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
        }
    };
}

rogue_key_test!(
    rogue_key_aggregates_but_has_no_proof_of_possession_min_sig,
    min_sig
);
rogue_key_test!(
    rogue_key_aggregates_but_has_no_proof_of_possession_min_pk,
    min_pk
);

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

/// A proposal signature and the quorum signatures that come with it, in one combination:
/// every valid mix passes, and any one bad signature, bitmap or extra key fails the lot.
#[test]
fn quorum_signatures_join_the_batch_of_single_signatures() {
    let (committee, proposers, voters) =
        seeded_committee("mixed", 1, 2, 4, NET, VoteCounting::Seat);
    let scheme = BlsScheme::new();
    let pks: Vec<PublicKey> = committee
        .voters
        .iter()
        .map(|m| m.public_key.clone())
        .collect();
    let prepared = scheme.prepare_keys(&pks);
    let block = hash();
    let other = Hash::of(b"block (1,1,1)");
    let proposal = proposers[0].sign(Domain::Proposal, NET, &block.0);
    let notarize = |who: &[usize], msg: &Hash| {
        let mut bm = SignerBitmap::new(4);
        let mut sigs = vec![proposers[1].sign(Domain::Vote, NET, &msg.0)];
        for &i in who {
            bm.insert(i);
            sigs.push(voters[i].sign(Domain::Vote, NET, &msg.0));
        }
        let refs: Vec<&Signature> = sigs.iter().collect();
        (bm, scheme.aggregate(&refs).unwrap())
    };
    let (bm_a, agg_a) = notarize(&[0, 1, 2], &other);
    let (bm_b, agg_b) = notarize(&[1, 2, 3], &block);
    let single = [BatchItem {
        public_key: proposers[0].public_key(),
        domain: Domain::Proposal,
        msg: &block.0,
        signature: &proposal,
    }];
    fn quorum<'a>(
        keys: &'a dyn PreparedKeys,
        signers: &'a SignerBitmap,
        msg: &'a Hash,
        signature: &'a Signature,
        extra: Option<&'a PublicKey>,
    ) -> QuorumItem<'a> {
        QuorumItem {
            keys,
            signers,
            extra,
            domain: Domain::Vote,
            msg: &msg.0,
            signature,
        }
    }
    let keys = prepared.as_ref();
    let extra = Some(proposers[1].public_key());
    let good = [
        quorum(keys, &bm_a, &other, &agg_a, extra),
        quorum(keys, &bm_b, &block, &agg_b, extra),
    ];
    assert!(scheme.verify_with_quorums(NET, &single, &good));
    assert!(scheme.verify_with_quorums(NET, &[], &good));
    assert!(scheme.verify_with_quorums(NET, &[], &good[..1]));
    assert!(scheme.verify_with_quorums(NET, &single, &[]));
    assert!(!scheme.verify_with_quorums(NET + 1, &single, &good));
    // Each quorum signature claims the other's bitmap: the plain sum would not tell.
    let swapped = [
        quorum(keys, &bm_b, &other, &agg_a, extra),
        quorum(keys, &bm_a, &block, &agg_b, extra),
    ];
    assert!(!scheme.verify_with_quorums(NET, &single, &swapped));
    let no_extra = [good[0], quorum(keys, &bm_b, &block, &agg_b, None)];
    assert!(!scheme.verify_with_quorums(NET, &single, &no_extra));
    let wrong_msg = [good[0], quorum(keys, &bm_b, &other, &agg_b, extra)];
    assert!(!scheme.verify_with_quorums(NET, &single, &wrong_msg));
    let bad_single = [BatchItem {
        signature: &agg_b,
        ..single[0]
    }];
    assert!(!scheme.verify_with_quorums(NET, &bad_single, &good));
    let short = SignerBitmap::new(3);
    assert!(!scheme.verify_with_quorums(
        NET,
        &single,
        &[good[0], quorum(keys, &short, &block, &agg_b, extra)]
    ));
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
// The other variant's primitives (kept for the benchmarks; pala-core runs its verifier on it).

#[test]
fn min_pk_variant_primitives() {
    use pala_crypto::min_pk as v;
    let (committee, ps, vs) = v::seeded_committee("mpk", 1, 1, 7, NET, VoteCounting::Seat);
    let scheme = v::BlsScheme::new();
    assert_eq!(scheme.name(), "bls12-381-min-pk");
    let sig = vs[0].sign(Domain::Proposal, NET, b"p");
    assert_eq!(sig.0.len(), v::SIGNATURE_LEN);
    assert!(scheme.verify(vs[0].public_key(), Domain::Proposal, NET, b"p", &sig));
    assert!(!scheme.verify(vs[1].public_key(), Domain::Proposal, NET, b"p", &sig));
    let pks: Vec<PublicKey> = committee
        .voters
        .iter()
        .map(|m| m.public_key.clone())
        .collect();
    let prepared = scheme.prepare_keys(&pks);
    let mut signers = SignerBitmap::new(7);
    let mut sigs = vec![ps[0].sign(Domain::Vote, NET, &hash().0)];
    for i in [0, 1, 3, 4, 5, 6] {
        signers.insert(i);
        sigs.push(vs[i].sign(Domain::Vote, NET, &hash().0));
    }
    let refs: Vec<&Signature> = sigs.iter().collect();
    let agg = scheme.aggregate(&refs).unwrap();
    assert!(prepared.verify_subset(
        &signers,
        Some(ps[0].public_key()),
        Domain::Vote,
        NET,
        &hash().0,
        &agg
    ));
    signers.insert(2);
    assert!(!prepared.verify_subset(
        &signers,
        Some(ps[0].public_key()),
        Domain::Vote,
        NET,
        &hash().0,
        &agg
    ));
}
