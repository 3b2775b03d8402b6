//! Every check of [`super::check`], on a chain signed with the insecure test scheme.

use super::*;
use crate::state_sync::ChunkInfo;
use pala_core::Committees;
use pala_types::insecure::{InsecureTestScheme, InsecureTestSigner};
use pala_types::{
    Block, BlockHeader, Committee, ConsensusInfo, Domain, Epoch, Hash, Member, Notarization,
    SignatureScheme, Signer, SignerBitmap, StateCommitment, VoteCounting,
};
use std::sync::Arc;

const NET: u64 = 9;
const K: u32 = 2;

struct Net {
    scheme: InsecureTestScheme,
    keys: Vec<InsecureTestSigner>,
    verifier: MessageVerifier,
}

fn net() -> Net {
    let scheme = InsecureTestScheme::new();
    let keys: Vec<InsecureTestSigner> = (0..4).map(|i| scheme.keypair(i)).collect();
    let member = |k: &InsecureTestSigner| {
        Member::new(
            k.public_key().clone(),
            k.sign(Domain::ProofOfPossession, NET, &k.public_key().0),
            1,
            "",
        )
    };
    let committee = Committee {
        session: 1,
        proposers: keys[..1].iter().map(member).collect(),
        voters: keys[1..].iter().map(member).collect(),
        counting: VoteCounting::Seat,
    };
    let mut committees = Committees::default();
    committees.install(&scheme, committee);
    let verifier = MessageVerifier::new(Arc::new(scheme.clone()), NET, committees);
    Net {
        scheme,
        keys,
        verifier,
    }
}

impl Net {
    fn nota(&self, b: &Block) -> Notarization {
        let mut signers = SignerBitmap::new(3);
        let mut sigs = vec![self.keys[0].sign(Domain::Vote, NET, &b.hash().0)];
        for v in 0..3 {
            signers.insert(v);
            sigs.push(self.keys[1 + v].sign(Domain::Vote, NET, &b.hash().0));
        }
        let refs: Vec<_> = sigs.iter().collect();
        Notarization {
            sn: b.sn(),
            block_hash: b.hash(),
            proposer_idx: 0,
            signers,
            signature: self.scheme.aggregate(&refs).unwrap(),
        }
    }
}

/// Blocks at heights 5..=10 of epoch (session, 1), slot = height; block 7 commits to the
/// state after 5. The last one is notarized (F-C: (1,1,10) finalizes (1,1,8)).
fn chain(n: &Net, session: u32) -> Offer {
    let digest = Hash::of(b"state after 5");
    let mut blocks: Vec<Block> = Vec::new();
    for h in 5..=10u64 {
        let (parent_sn, parent_hash) = match blocks.last() {
            Some(p) => (p.sn(), p.hash()),
            None => (BlockSn::GENESIS, Hash::of(b"block 4")),
        };
        let state = if h == 7 {
            StateCommitment { height: 5, digest }
        } else {
            StateCommitment::NONE
        };
        blocks.push(Block::new(
            BlockHeader {
                sn: BlockSn {
                    epoch: Epoch::new(session, 1),
                    s: h as u32,
                },
                parent_sn,
                parent_hash,
                height: h,
                session_offset: h as u32,
                timestamp_ms: h,
                state,
            },
            vec![],
            ConsensusInfo::default(),
        ));
    }
    let top = n.nota(blocks.last().unwrap());
    let last = blocks.len() - 1;
    let proof = blocks
        .into_iter()
        .enumerate()
        .map(|(i, b)| NotarizedBlock {
            block: Arc::new(b),
            notarization: (i == last).then(|| top.clone()),
        })
        .collect::<Vec<_>>();
    Offer {
        manifest: Manifest {
            height: 5,
            block_hash: proof[0].block.hash(),
            state_digest: digest,
            total_pairs: 1,
            app_meta: vec![],
            chunks: vec![ChunkInfo::of(b"chunk")],
        },
        proof,
    }
}

#[test]
fn a_finalized_commitment_vouches_for_the_snapshot() {
    let n = net();
    let o = chain(&n, 1);
    // F = (1,1,8), at index 3.
    assert_eq!(check(&o, &n.verifier, K), Ok(3));
}

#[test]
fn every_gap_in_the_proof_is_refused() {
    let n = net();
    let good = chain(&n, 1);

    let mut o = good.clone();
    o.manifest.block_hash = Hash::of(b"another block");
    assert!(matches!(
        check(&o, &n.verifier, K),
        Err(ProofError::WrongStart { .. })
    ));

    let mut o = good.clone();
    o.proof.remove(2);
    assert_eq!(
        check(&o, &n.verifier, K),
        Err(ProofError::BrokenLink { height: 8 })
    );

    let mut o = good.clone();
    o.proof.last_mut().unwrap().notarization = None;
    assert!(matches!(
        check(&o, &n.verifier, K),
        Err(ProofError::NotNotarized { .. })
    ));

    // The digest does not match the header's commitment.
    let mut o = good.clone();
    o.manifest.state_digest = Hash::of(b"forged");
    let e = check(&o, &n.verifier, K).unwrap_err();
    assert!(matches!(e, ProofError::NoCommitment { .. }));
    assert!(
        e.to_string().contains("digest does not match the header"),
        "{e}"
    );

    // A notarized (1,1,8) finalizes (1,1,6), below the committing block 7: the
    // commitment is not final yet.
    let mut o = good.clone();
    o.proof.truncate(4);
    let top = n.nota(&o.proof[3].block);
    o.proof[3].notarization = Some(top);
    assert!(matches!(
        check(&o, &n.verifier, K),
        Err(ProofError::NoCommitment { .. })
    ));

    // A larger K: (1,1,10) finalizes (1,1,5), the snapshot's own block.
    assert!(matches!(
        check(&good, &n.verifier, 5),
        Err(ProofError::NoCommitment { .. })
    ));
    // K beyond the slot: finalizes nothing.
    assert!(matches!(
        check(&good, &n.verifier, 10),
        Err(ProofError::NotFinal { .. })
    ));

    // A notarization that is not a quorum's signature on this block.
    let mut o = good.clone();
    let other = n.nota(&o.proof[0].block);
    let last = o.proof.last_mut().unwrap();
    let mut forged = last.notarization.clone().unwrap();
    forged.signature = other.signature;
    last.notarization = Some(forged);
    assert!(matches!(
        check(&o, &n.verifier, K),
        Err(ProofError::Signature(_))
    ));

    // A later session's snapshot, checked without that session's committee.
    let o = chain(&n, 2);
    let e = check(&o, &n.verifier, K).unwrap_err();
    assert_eq!(e, ProofError::UnknownSession(2));
    assert!(e.to_string().contains("not known here"), "{e}");
    assert_eq!(check_links(&o, K), Ok(3));
    assert_eq!(session_of(&o), 2);
}

#[test]
fn a_later_session_is_checked_with_its_derived_committee() {
    let n = net();
    let mut v = MessageVerifier::new(
        Arc::new(n.scheme.clone()),
        NET,
        n.verifier.committees().clone(),
    );
    let mut c2 = Committee::clone(n.verifier.committees().get(1).unwrap());
    c2.session = 2;
    v.install(c2);
    assert_eq!(check(&chain(&n, 2), &v, K), Ok(3));
}
