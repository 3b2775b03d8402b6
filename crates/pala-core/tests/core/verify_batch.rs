//! Batches of messages (verify/batch.rs): what `verify_many` answers is what `verify`
//! answers one message at a time, each distinct quorum signature is asked once, and the
//! batch's signatures go to the scheme as one combination.

use pala_core::{Committees, MessageVerifier, VerifyError};
use pala_crypto::{seeded_committee, BlsScheme, BlsSigner};
use pala_types::{
    BatchItem, Block, BlockHeader, BlockSn, ClockMessage, Committee, ConsensusInfo, Domain, Epoch,
    Hash, Message, Notarization, PreparedKeys, Proposal, PublicKey, QuorumItem, Signature,
    SignatureScheme, Signer, SignerBitmap, StateCommitment, Vote, VoteCounting,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const NET: u64 = 7;

/// BLS, counting what the verifier asks of it.
#[derive(Default)]
struct Counting {
    bls: BlsScheme,
    combined: AtomicUsize,
    combined_quorums: AtomicUsize,
    combined_singles: AtomicUsize,
    aggregated: AtomicUsize,
}

impl SignatureScheme for Counting {
    fn name(&self) -> &'static str {
        "counting-bls"
    }
    fn check_public_key(&self, pk: &PublicKey) -> bool {
        self.bls.check_public_key(pk)
    }
    fn verify(&self, pk: &PublicKey, d: Domain, n: u64, msg: &[u8], sig: &Signature) -> bool {
        self.bls.verify(pk, d, n, msg, sig)
    }
    fn aggregate(&self, sigs: &[&Signature]) -> Option<Signature> {
        self.aggregated.fetch_add(1, Ordering::Relaxed);
        self.bls.aggregate(sigs)
    }
    fn verify_same_message(
        &self,
        pks: &[&PublicKey],
        d: Domain,
        n: u64,
        msg: &[u8],
        sig: &Signature,
    ) -> bool {
        self.bls.verify_same_message(pks, d, n, msg, sig)
    }
    fn verify_with_quorums(
        &self,
        n: u64,
        singles: &[BatchItem<'_>],
        quorums: &[QuorumItem<'_>],
    ) -> bool {
        self.combined.fetch_add(1, Ordering::Relaxed);
        self.combined_singles
            .fetch_add(singles.len(), Ordering::Relaxed);
        self.combined_quorums
            .fetch_add(quorums.len(), Ordering::Relaxed);
        self.bls.verify_with_quorums(n, singles, quorums)
    }
    fn prepare_keys(&self, pks: &[PublicKey]) -> Arc<dyn PreparedKeys> {
        self.bls.prepare_keys(pks)
    }
}

struct Fixture {
    scheme: Arc<Counting>,
    verifier: MessageVerifier,
    committee: Committee,
    proposers: Vec<BlsSigner>,
    voters: Vec<BlsSigner>,
}

fn fixture() -> Fixture {
    let (committee, proposers, voters) =
        seeded_committee("batch", 1, 2, 4, NET, VoteCounting::Seat);
    let scheme = Arc::new(Counting::default());
    let mut committees = Committees::default();
    committees.install(scheme.as_ref(), committee.clone());
    let dyn_scheme: Arc<dyn SignatureScheme> = scheme.clone();
    Fixture {
        verifier: MessageVerifier::new(dyn_scheme, NET, committees),
        scheme,
        committee,
        proposers,
        voters,
    }
}

fn block(s: u32, notarizations: Vec<Notarization>) -> Block {
    Block::new(
        BlockHeader {
            sn: BlockSn::new(1, 1, s),
            parent_sn: BlockSn::new(1, 1, s - 1),
            parent_hash: Hash::of(&s.to_le_bytes()),
            height: u64::from(s),
            session_offset: s,
            timestamp_ms: 0,
            state: StateCommitment::NONE,
        },
        vec![vec![s as u8]],
        ConsensusInfo {
            notarizations,
            clock: None,
        },
    )
}

/// The primary of epoch (1,1) notarizes `b` with the votes of `who`.
fn notarize(f: &Fixture, b: &Block, who: &[usize]) -> Notarization {
    let mut signers = SignerBitmap::new(f.committee.voters.len());
    let mut sigs = vec![f.proposers[0].sign(Domain::Vote, NET, &b.hash().0)];
    for &i in who {
        signers.insert(i);
        sigs.push(f.voters[i].sign(Domain::Vote, NET, &b.hash().0));
    }
    let refs: Vec<&Signature> = sigs.iter().collect();
    Notarization {
        sn: b.sn(),
        block_hash: b.hash(),
        proposer_idx: 0,
        signers,
        signature: f.scheme.aggregate(&refs).unwrap(),
    }
}

fn propose(by: &BlsSigner, b: Block) -> Proposal {
    Proposal {
        proposer: by.node_id(),
        signature: by.sign(Domain::Proposal, NET, &b.hash().0),
        block: Arc::new(b),
    }
}

/// The voter's steady state: the notarization of block s and the proposal of block s+K
/// that embeds it arrive together.
fn notarization_and_proposal(f: &Fixture, s: u32) -> (Notarization, Proposal) {
    let n = notarize(f, &block(s, vec![]), &[0, 1, 2]);
    let p = propose(&f.proposers[0], block(s + 4, vec![n.clone()]));
    (n, p)
}

#[test]
fn a_notarization_and_the_proposal_embedding_it_cost_one_combination_of_two_checks() {
    let f = fixture();
    let (n, p) = notarization_and_proposal(&f, 5);
    let out = f
        .verifier
        .verify_many(vec![Message::Notarization(n), Message::Proposal(p)]);
    assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
    assert_eq!(f.scheme.combined.load(Ordering::Relaxed), 1);
    assert_eq!(f.scheme.combined_singles.load(Ordering::Relaxed), 1);
    assert_eq!(f.scheme.combined_quorums.load(Ordering::Relaxed), 1);
    // Both are remembered: the same pair again asks nothing of the scheme but the
    // proposal signature (a lone check, not a combination).
    let (n, p) = notarization_and_proposal(&f, 5);
    let out = f
        .verifier
        .verify_many(vec![Message::Notarization(n), Message::Proposal(p)]);
    assert!(out.iter().all(|r| r.is_ok()));
    assert_eq!(f.scheme.combined.load(Ordering::Relaxed), 1);
}

#[test]
fn one_bad_message_is_rejected_alone_with_the_error_verify_gives() {
    let f = fixture();
    let (n1, p1) = notarization_and_proposal(&f, 5);
    let (n2, _) = notarization_and_proposal(&f, 6);
    // A proposal signed by the standby proposer (V-3), one with a bad signature, and a
    // notarization whose aggregate is for another block.
    let not_primary = propose(&f.proposers[1], block(9, vec![]));
    let mut bad_sig = propose(&f.proposers[0], block(10, vec![]));
    bad_sig.signature = f.proposers[0].sign(Domain::Proposal, NET, b"other");
    let mut moved = n2.clone();
    moved.signature = n1.signature.clone();
    let batch = vec![
        Message::Notarization(n1),
        Message::Proposal(p1),
        Message::Proposal(not_primary),
        Message::Proposal(bad_sig),
        Message::Notarization(moved),
        Message::Notarization(n2),
    ];
    let one_by_one: Vec<_> = {
        let g = fixture();
        batch
            .iter()
            .map(|m| g.verifier.verify(m.clone()).map(|v| v.into_inner()))
            .collect()
    };
    let together: Vec<_> = f
        .verifier
        .verify_many(batch)
        .into_iter()
        .map(|r| r.map(|v| v.into_inner()))
        .collect();
    assert_eq!(together, one_by_one);
    let errors: Vec<_> = together.iter().map(|r| r.as_ref().err().cloned()).collect();
    assert_eq!(
        errors,
        vec![
            None,
            None,
            Some(VerifyError::NotPrimary),
            Some(VerifyError::BadSignature("proposal")),
            Some(VerifyError::BadSignature("notarization")),
            None,
        ]
    );
}

#[test]
fn a_proposal_embedding_a_forged_notarization_is_refused_even_beside_the_real_one() {
    let f = fixture();
    let (n, _) = notarization_and_proposal(&f, 5);
    let mut forged = n.clone();
    forged.signature = f.voters[0].sign(Domain::Vote, NET, &n.block_hash.0);
    let p = propose(&f.proposers[0], block(9, vec![forged]));
    let out = f
        .verifier
        .verify_many(vec![Message::Notarization(n), Message::Proposal(p)]);
    assert!(out[0].is_ok());
    assert_eq!(
        out[1].as_ref().err(),
        Some(&VerifyError::BadSignature("notarization"))
    );
}

#[test]
fn sync_messages_and_an_empty_batch_pass_through() {
    let f = fixture();
    assert!(f.verifier.verify_many(vec![]).is_empty());
    let out = f
        .verifier
        .verify_many(vec![Message::GetEpoch(pala_types::Epoch::new(1, 1))]);
    assert!(out[0].is_ok());
    assert_eq!(f.scheme.combined.load(Ordering::Relaxed), 0);
}

/// A signature is one answer only for exactly the same question: a voter's clock message
/// for (1,2) and a forged one for (1,3) carrying the same signature bytes share the
/// signer, domain and signature but not the message, so the forgery is rejected.
#[test]
fn a_signature_copied_onto_another_message_is_not_answered_by_the_original() {
    let f = fixture();
    let clock = |epoch: Epoch, signed: Epoch| {
        Message::Clock(ClockMessage {
            voter: f.voters[0].node_id(),
            epoch,
            signature: f.voters[0].sign(Domain::Clock, NET, &signed.signing_bytes()),
        })
    };
    let (e2, e3) = (Epoch::new(1, 2), Epoch::new(1, 3));
    let results = f
        .verifier
        .verify_many(vec![clock(e2, e2), clock(e3, e2), clock(e3, e3)]);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(VerifyError::BadSignature(_))));
    assert!(results[2].is_ok());
}

/// A vote that arrives twice in one batch (the same signature from the same voter) is
/// checked once: the copy takes the first one's answer.
#[test]
fn a_vote_repeated_in_a_batch_is_checked_once() {
    let f = fixture();
    let b = block(5, vec![]);
    let v = Vote {
        voter: f.voters[0].node_id(),
        sn: b.sn(),
        block_hash: b.hash(),
        signature: f.voters[0].sign(Domain::Vote, NET, &b.hash().0),
    };
    let results = f.verifier.verify_votes(vec![v.clone(), v]);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(
        f.scheme.aggregated.load(Ordering::Relaxed),
        1,
        "one aggregate check"
    );
}

/// The same proposal twice in one batch (a resend beside the original) is one question:
/// its signature goes to the scheme once (alone: there is nothing to combine it with),
/// and both copies get its answer.
#[test]
fn a_proposal_repeated_in_a_batch_is_checked_once() {
    let f = fixture();
    let p = propose(&f.proposers[0], block(5, vec![]));
    let results = f
        .verifier
        .verify_many(vec![Message::Proposal(p.clone()), Message::Proposal(p)]);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(f.scheme.combined.load(Ordering::Relaxed), 0);
}
