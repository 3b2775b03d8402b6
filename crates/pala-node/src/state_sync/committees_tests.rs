//! Every check of [`super::next_committee`], on session proofs signed with the insecure
//! test scheme: stop offset 4, K = 2, so blocks (S,1,1)..(S,1,4) and the notarized
//! (S,1,6), whose F-C target (S,1,4) is the stop block.

use super::*;
use pala_types::committee::committee_change_tx;
use pala_types::insecure::{InsecureTestScheme, InsecureTestSigner};
use pala_types::{
    Block, BlockHeader, ConsensusInfo, Domain, Epoch, Hash, Member, Notarization, Signer,
    SignerBitmap, StateCommitment, VoteCounting,
};

const NET: u64 = 9;
const STOP: u32 = 4;

fn member(k: &InsecureTestSigner) -> Member {
    let pop = k.sign(Domain::ProofOfPossession, NET, &k.public_key().0);
    Member::new(k.public_key().clone(), pop, 1, "")
}

/// Proposer seed 0, voters `seeds`.
fn committee(scheme: &InsecureTestScheme, seeds: &[u64], session: Session) -> Committee {
    Committee {
        session,
        proposers: vec![member(&scheme.keypair(0))],
        voters: seeds.iter().map(|s| member(&scheme.keypair(*s))).collect(),
        counting: VoteCounting::Seat,
    }
}

fn rules(scheme: &InsecureTestScheme) -> ChainRules {
    ChainRules {
        scheme: Arc::new(scheme.clone()),
        network_id: NET,
        stop_offset: STOP,
        k: 2,
        schedule: BTreeMap::new(),
    }
}

/// A quorum of `seeds` (all of them) signs `b`.
fn nota(scheme: &InsecureTestScheme, seeds: &[u64], b: &Block) -> Notarization {
    let mut signers = SignerBitmap::new(seeds.len());
    let mut sigs = vec![scheme.keypair(0).sign(Domain::Vote, NET, &b.hash().0)];
    for (i, s) in seeds.iter().enumerate() {
        signers.insert(i);
        sigs.push(scheme.keypair(*s).sign(Domain::Vote, NET, &b.hash().0));
    }
    let refs: Vec<_> = sigs.iter().collect();
    Notarization {
        sn: b.sn(),
        block_hash: b.hash(),
        proposer_idx: 0,
        signers,
        signature: scheme.aggregate(&refs).unwrap(),
    }
}

/// Session `session`'s blocks at heights 100.. with `txs[i]` in the block at offset
/// `i + 1`, through slot `last`; the last one notarized by `signers`.
fn proof(
    scheme: &InsecureTestScheme,
    session: Session,
    txs: &[Vec<Vec<u8>>],
    last: u32,
    signers: &[u64],
) -> Vec<NotarizedBlock> {
    let mut blocks: Vec<Block> = Vec::new();
    for s in 1..=last {
        let (parent_sn, parent_hash) = match blocks.last() {
            Some(p) => (p.sn(), p.hash()),
            None => (
                BlockSn::at(Epoch::new(session - 1, 3), 9),
                Hash::of(b"previous"),
            ),
        };
        blocks.push(Block::new(
            BlockHeader {
                sn: BlockSn::at(Epoch::new(session, 1), s),
                parent_sn,
                parent_hash,
                height: 99 + u64::from(s),
                session_offset: s,
                timestamp_ms: u64::from(s),
                state: StateCommitment::NONE,
            },
            txs.get(s as usize - 1).cloned().unwrap_or_default(),
            ConsensusInfo::default(),
        ));
    }
    let top = nota(scheme, signers, blocks.last().unwrap());
    let n = blocks.len();
    blocks
        .into_iter()
        .enumerate()
        .map(|(i, b)| NotarizedBlock {
            block: Arc::new(b),
            notarization: (i + 1 == n).then(|| top.clone()),
        })
        .collect()
}

#[test]
fn a_proven_session_yields_the_committee_the_core_would_install() {
    let scheme = InsecureTestScheme::new();
    let genesis = committee(&scheme, &[1, 2, 3], 1);
    let changed = committee(&scheme, &[4, 5, 6, 7], 9);
    // A change in the block at offset 2: the next session's committee.
    let txs = vec![vec![], vec![committee_change_tx(&changed)]];
    let p = proof(&scheme, 1, &txs, 6, &[1, 2, 3]);
    let next = next_committee(&rules(&scheme), 1, &genesis, &p).unwrap();
    assert_eq!((next.session, &next.voters), (2, &changed.voters));
    // That committee signs session 2, which has no change: the same members again.
    let p2 = proof(&scheme, 2, &[], 6, &[4, 5, 6, 7]);
    let third = next_committee(&rules(&scheme), 2, &next, &p2).unwrap();
    assert_eq!((third.session, &third.voters), (3, &changed.voters));
    // ... unless genesis schedules one.
    let mut r = rules(&scheme);
    r.schedule.insert(3, committee(&scheme, &[8, 9], 3));
    let scheduled = next_committee(&r, 2, &next, &p2).unwrap();
    assert_eq!(scheduled.voters.len(), 2);
    // A change after the stop block (offset 5) does not count (C-1).
    let late = vec![
        vec![],
        vec![],
        vec![],
        vec![],
        vec![committee_change_tx(&changed)],
    ];
    let p = proof(&scheme, 1, &late, 6, &[1, 2, 3]);
    let same = next_committee(&rules(&scheme), 1, &genesis, &p).unwrap();
    assert_eq!(same.voters, genesis.voters);
}

#[test]
fn forged_session_proofs_are_refused_naming_what_is_wrong() {
    let scheme = InsecureTestScheme::new();
    let genesis = committee(&scheme, &[1, 2, 3], 1);
    let changed = committee(&scheme, &[4, 5, 6], 2);
    let txs = vec![vec![], vec![committee_change_tx(&changed)]];
    let good = proof(&scheme, 1, &txs, 6, &[1, 2, 3]);
    let r = rules(&scheme);
    let check = |p: &[NotarizedBlock]| next_committee(&r, 1, &genesis, p);
    assert!(check(&good).is_ok());

    // Signed by another committee (the adversary's keys).
    let other = proof(&scheme, 1, &txs, 6, &[11, 12, 13]);
    let e = check(&other).unwrap_err();
    assert!(matches!(e, SessionProofError::Signature { .. }), "{e}");
    assert!(e.to_string().contains("not signed by its committee"), "{e}");

    // A block missing.
    let mut p = good.clone();
    p.remove(2);
    assert_eq!(
        check(&p),
        Err(SessionProofError::BrokenLink {
            session: 1,
            height: 103
        })
    );

    // The committee-change transaction swapped for the adversary's: the block's hash
    // changes, and its child no longer links to it.
    let mut p = good.clone();
    let b = &p[1].block;
    let swapped = Block::new(
        b.header.clone(),
        vec![committee_change_tx(&committee(&scheme, &[11, 12, 13], 2))],
        b.consensus.clone(),
    );
    p[1].block = Arc::new(swapped);
    assert_eq!(
        check(&p),
        Err(SessionProofError::BrokenLink {
            session: 1,
            height: 102
        })
    );
    // ... or the whole chain rebuilt around it: then the notarization is of another block.
    let forged = proof(
        &scheme,
        1,
        &[
            vec![],
            vec![committee_change_tx(&committee(&scheme, &[11, 12, 13], 2))],
        ],
        6,
        &[1, 2, 3],
    );
    let mut p = forged.clone();
    p.last_mut().unwrap().notarization = good.last().unwrap().notarization.clone();
    assert!(matches!(
        check(&p),
        Err(SessionProofError::Signature { .. })
    ));

    // Not from the session's first block.
    let e = check(&good[1..]).unwrap_err();
    assert!(
        matches!(e, SessionProofError::NotFirst { offset: 2, .. }),
        "{e}"
    );
    // A proof of another session offered as this one's.
    assert!(matches!(
        next_committee(&r, 2, &genesis, &good),
        Err(SessionProofError::NotFirst { .. })
    ));

    // (1,1,5) notarized finalizes (1,1,3), before the stop block: not final.
    let short = proof(&scheme, 1, &txs, 5, &[1, 2, 3]);
    assert!(matches!(
        check(&short),
        Err(SessionProofError::NotFinal { .. })
    ));
    // The last block without its notarization.
    let mut p = good.clone();
    p.last_mut().unwrap().notarization = None;
    assert!(matches!(check(&p), Err(SessionProofError::NotFinal { .. })));
    // Only up to the stop block.
    assert!(matches!(
        check(&good[..4]),
        Err(SessionProofError::TooShort { blocks: 4, .. })
    ));
    // No reconfiguration in this network.
    let mut none = rules(&scheme);
    none.stop_offset = 0;
    assert_eq!(
        next_committee(&none, 1, &genesis, &good),
        Err(SessionProofError::NoReconfiguration(2))
    );
}
