//! Canonical encoding: every message round-trips, and decoding arbitrary bytes returns
//! a value or an error, never a panic.

use pala_types::*;
use proptest::prelude::*;
use std::sync::Arc;

fn sn() -> impl Strategy<Value = BlockSn> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| BlockSn::new(a, b, c))
}
fn epoch() -> impl Strategy<Value = Epoch> {
    (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Epoch::new(a, b))
}
fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}
fn id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 20]>().prop_map(NodeId)
}
fn sig() -> impl Strategy<Value = Signature> {
    proptest::collection::vec(any::<u8>(), 0..=96).prop_map(Signature)
}
fn bitmap() -> impl Strategy<Value = SignerBitmap> {
    (0usize..300, proptest::collection::vec(any::<u16>(), 0..40)).prop_map(|(n, idx)| {
        let mut b = SignerBitmap::new(n);
        for i in idx {
            if n > 0 {
                b.insert(i as usize % n);
            }
        }
        b
    })
}
fn nota() -> impl Strategy<Value = Notarization> {
    (sn(), hash(), any::<u16>(), bitmap(), sig()).prop_map(
        |(sn, block_hash, proposer_idx, signers, signature)| Notarization {
            sn,
            block_hash,
            proposer_idx,
            signers,
            signature,
        },
    )
}
fn cnota() -> impl Strategy<Value = ClockNotarization> {
    (epoch(), any::<u16>(), bitmap(), sig()).prop_map(
        |(epoch, proposer_idx, signers, signature)| ClockNotarization {
            epoch,
            proposer_idx,
            signers,
            signature,
        },
    )
}
fn block() -> impl Strategy<Value = Arc<Block>> {
    (
        sn(),
        sn(),
        hash(),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..4),
        proptest::collection::vec(nota(), 0..3),
        proptest::option::of(cnota()),
        (any::<u64>(), hash()),
    )
        .prop_map(
            |(
                sn,
                parent_sn,
                parent_hash,
                height,
                session_offset,
                timestamp_ms,
                txs,
                notarizations,
                clock,
                (state_height, state_digest),
            )| {
                Arc::new(Block::new(
                    BlockHeader {
                        sn,
                        parent_sn,
                        parent_hash,
                        height,
                        session_offset,
                        timestamp_ms,
                        state: pala_types::StateCommitment {
                            height: state_height,
                            digest: state_digest,
                        },
                    },
                    txs,
                    ConsensusInfo {
                        notarizations,
                        clock,
                    },
                ))
            },
        )
}
fn proposal() -> impl Strategy<Value = Proposal> {
    (id(), sig(), block()).prop_map(|(proposer, signature, block)| Proposal {
        proposer,
        signature,
        block,
    })
}
fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        proposal().prop_map(Message::Proposal),
        (id(), sn(), hash(), sig()).prop_map(|(voter, sn, block_hash, signature)| Message::Vote(
            Vote {
                voter,
                sn,
                block_hash,
                signature
            }
        )),
        nota().prop_map(Message::Notarization),
        (id(), epoch(), sig()).prop_map(|(voter, epoch, signature)| Message::Clock(ClockMessage {
            voter,
            epoch,
            signature
        })),
        cnota().prop_map(Message::ClockNotarization),
        proptest::collection::vec(proposal(), 0..3).prop_map(Message::UnnotarizedProposals),
        (sn(), any::<u64>(), epoch(), sn()).prop_map(|(head, head_height, epoch, finalized)| {
            Message::Status(Status {
                head,
                head_height,
                epoch,
                finalized,
            })
        }),
        epoch().prop_map(Message::GetEpoch),
        (
            any::<u32>(),
            proptest::option::of(cnota()),
            any::<bool>(),
            proptest::collection::vec((block(), proptest::option::of(nota())), 0..3)
        )
            .prop_map(|(session, clock, is_last, proof)| {
                Message::Epoch(EpochResponse {
                    session,
                    clock,
                    is_last,
                    stop_proof: proof
                        .into_iter()
                        .map(|(block, notarization)| NotarizedBlock {
                            block,
                            notarization,
                        })
                        .collect(),
                })
            }),
        (
            sn(),
            proptest::collection::vec((any::<u64>(), hash()), 0..5)
        )
            .prop_map(|(head, known)| Message::GetFresherHead(FresherHeadRequest { head, known })),
        (
            proptest::collection::vec((block(), proptest::option::of(nota())), 0..3),
            proptest::option::of((any::<u64>(), hash(), sn()))
        )
            .prop_map(
                |(blocks, finalized)| Message::FresherHead(FresherHeadResponse {
                    blocks: blocks
                        .into_iter()
                        .map(|(block, notarization)| NotarizedBlock {
                            block,
                            notarization
                        })
                        .collect(),
                    finalized
                })
            ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_message_round_trips(m in message()) {
        let bytes = m.to_bytes();
        let back = Message::from_bytes(&bytes).expect("decodes");
        prop_assert_eq!(&back, &m);
        // Block hashes are recomputed from the decoded bytes and must agree.
        if let (Message::Proposal(a), Message::Proposal(b)) = (&m, &back) {
            prop_assert_eq!(a.block.hash(), b.block.hash());
        }
        // Any strict prefix fails cleanly.
        for cut in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
            if cut < bytes.len() {
                prop_assert!(Message::from_bytes(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(code in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = vec![code];
        bytes.extend(body);
        let _ = Message::from_bytes(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(m in message(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = m.to_bytes();
        let i = pos % bytes.len();
        bytes[i] = byte;
        let _ = Message::from_bytes(&bytes);
    }

    #[test]
    fn committee_round_trips(n in 1usize..5, stake in any::<u64>()) {
        let members: Vec<Member> = (0..n)
            .map(|i| Member::new(PublicKey(vec![i as u8; 48]), Signature(vec![1; 96]), stake, format!("10.0.0.{i}:9000")))
            .collect();
        let c = Committee { session: 2, proposers: members.clone(), voters: members, counting: VoteCounting::Stake };
        prop_assert_eq!(Committee::from_bytes(&c.to_bytes()).unwrap(), c);
    }
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    // A FresherHead claiming 2^32-1 blocks in a 9-byte message.
    let mut bytes = vec![0x28];
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    assert!(matches!(
        Message::from_bytes(&bytes),
        Err(DecodeError::Truncated { .. })
    ));
}
