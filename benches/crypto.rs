//! Signature cost of the node: `pala_core::MessageVerifier`, the code the node's verify
//! stage runs on every message, timed next to the BLS primitives it is built on.
//!
//! * `crypto::floor::…` are the primitives: one signature check (`verify`, a pairing
//!   equation), one fast-aggregate verify of a whole committee against prepared keys
//!   (`fast_aggregate_verify`), `sign`, and a random-linear-combination batch of
//!   independent messages (`rlc_batch`, used for proofs of possession).
//! * `crypto::verifier::…` are the verifier's real paths: one vote, the votes of one block
//!   as the verify stage hands them over (`verify_votes`, which aggregates per block and
//!   bisects only when an aggregate fails, PV-3), the votes of two blocks mixed as they
//!   arrive with K > 1, a notarization (D-12) and a clock notarization (D-14) checked for
//!   the first time, a proposal (V-3) whose embedded notarization was already seen (the
//!   steady state) or not, and one forged vote among 100.
//!
//! The node's variant (`min_sig`) is under `crypto::…`, the other one under
//! `crypto::min_pk::…` so the two can be compared on the node's own code (perf/crypto.md).
//!
//! Run: `cargo bench --bench crypto`. Sample sizes are small so the whole run takes a few
//! minutes on two cores.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pala_core::{Committees, MessageVerifier};
use pala_types::{
    BatchItem, Block, BlockHeader, BlockSn, ClockNotarization, Committee, ConsensusInfo, Domain,
    Epoch, Hash, Message, Notarization, Proposal, PublicKey, Signature, SignatureScheme, Signer,
    SignerBitmap, Vote, VoteCounting,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const NET: u64 = 1;
const VOTE_BATCH: [usize; 3] = [33, 100, 1000];
const NOTARIZATION: [usize; 2] = [33, 100];
const INDEPENDENT: [usize; 2] = [10, 100];

/// A block at `sn` embedding `notas` (what a proposal at s > K carries, N-3).
fn block(sn: BlockSn, notas: Vec<Notarization>) -> Arc<Block> {
    Arc::new(Block::new(
        BlockHeader {
            sn,
            parent_sn: BlockSn::new(sn.epoch.session, sn.epoch.e, sn.s - 1),
            parent_hash: Hash::of(b"parent"),
            height: 10,
            session_offset: 10,
            timestamp_ms: 0,
            state: pala_types::StateCommitment::NONE,
        },
        vec![b"payload".to_vec()],
        ConsensusInfo {
            notarizations: notas,
            clock: None,
        },
    ))
}

/// The quorum signature proposer 0 aggregates from all voters' signatures on `msg` (D-12,
/// D-14), as the core builds it.
fn aggregate_all(
    scheme: &dyn SignatureScheme,
    proposer: &dyn Signer,
    voters: &[impl Signer],
    domain: Domain,
    msg: &[u8],
) -> (SignerBitmap, Signature) {
    let mut signers = SignerBitmap::new(voters.len());
    let mut sigs = vec![proposer.sign(domain, NET, msg)];
    for (i, v) in voters.iter().enumerate() {
        signers.insert(i);
        sigs.push(v.sign(domain, NET, msg));
    }
    let refs: Vec<&Signature> = sigs.iter().collect();
    (signers, scheme.aggregate(&refs).expect("well-formed"))
}

macro_rules! variant_benches {
    ($fn_name:ident, $prefix:literal, $v:ident) => {
        fn $fn_name(c: &mut Criterion) {
            use pala_crypto::$v as v;
            let scheme: Arc<dyn SignatureScheme> = Arc::new(v::BlsScheme::new());
            let fixture = |n: usize| {
                let (committee, proposers, voters) =
                    v::seeded_committee("bench", 1, 1, n, NET, VoteCounting::Seat);
                let mut committees = Committees::default();
                committees.install(scheme.as_ref(), committee.clone());
                (committee, committees, proposers, voters)
            };
            // A verifier with nothing remembered: every quorum signature is checked.
            let fresh = |committees: &Committees| {
                MessageVerifier::new(scheme.clone(), NET, committees.clone())
            };
            let sn = BlockSn::new(1, 1, 20);
            let hash = Hash::of(b"block (1,1,20)");
            let votes_on = |voters: &[v::BlsSigner], sn: BlockSn, hash: Hash| -> Vec<Vote> {
                voters
                    .iter()
                    .map(|s| Vote {
                        voter: s.node_id(),
                        sn,
                        block_hash: hash,
                        signature: s.sign(Domain::Vote, NET, &hash.0),
                    })
                    .collect()
            };

            // ---- The floor: primitives.
            let signer = v::BlsSigner::from_seed(b"bench");
            let sig = signer.sign(Domain::Proposal, NET, &hash.0);
            // Warm the key cache: committee keys are decoded once per session.
            assert!(scheme.verify(signer.public_key(), Domain::Proposal, NET, &hash.0, &sig));
            c.bench_function(concat!($prefix, "::floor::sign"), |b| {
                b.iter(|| signer.sign(Domain::Proposal, NET, black_box(&hash.0)))
            });
            c.bench_function(concat!($prefix, "::floor::verify"), |b| {
                b.iter(|| {
                    assert!(scheme.verify(
                        signer.public_key(),
                        Domain::Proposal,
                        NET,
                        black_box(&hash.0),
                        &sig,
                    ))
                })
            });
            {
                let (committee, _, proposers, voters) = fixture(100);
                let pks: Vec<PublicKey> = committee
                    .voters
                    .iter()
                    .map(|m| m.public_key.clone())
                    .collect();
                let prepared = scheme.prepare_keys(&pks);
                let (signers, agg) = aggregate_all(
                    scheme.as_ref(),
                    &proposers[0],
                    &voters,
                    Domain::Vote,
                    &hash.0,
                );
                c.bench_function(
                    concat!($prefix, "::floor::fast_aggregate_verify/voters=100"),
                    |b| {
                        b.iter(|| {
                            assert!(prepared.verify_subset(
                                &signers,
                                Some(proposers[0].public_key()),
                                Domain::Vote,
                                NET,
                                black_box(&hash.0),
                                &agg,
                            ))
                        })
                    },
                );
                // Independent messages: proposals, votes and clock messages of different
                // blocks by different signers.
                let mut group = c.benchmark_group(concat!($prefix, "::floor::rlc_batch"));
                for &m in &INDEPENDENT {
                    let msgs: Vec<[u8; 32]> = (0..m)
                        .map(|i| Hash::of(&(i as u64).to_le_bytes()).0)
                        .collect();
                    let domains = [Domain::Proposal, Domain::Vote, Domain::Clock];
                    let sigs: Vec<_> = (0..m)
                        .map(|i| voters[i % voters.len()].sign(domains[i % 3], NET, &msgs[i]))
                        .collect();
                    let items: Vec<BatchItem<'_>> = (0..m)
                        .map(|i| BatchItem {
                            public_key: voters[i % voters.len()].public_key(),
                            domain: domains[i % 3],
                            msg: &msgs[i],
                            signature: &sigs[i],
                        })
                        .collect();
                    group.bench_with_input(
                        BenchmarkId::from_parameter(format!("messages={m}")),
                        &items,
                        |b, items| b.iter(|| assert!(scheme.verify_batch(NET, items))),
                    );
                }
                group.finish();
            }

            // ---- The verifier: what the node runs.
            let (committee, committees, proposers, voters) = fixture(100);
            let verifier = fresh(&committees);
            let one = Message::Vote(votes_on(&voters[..1], sn, hash).remove(0));
            c.bench_function(concat!($prefix, "::verifier::vote"), |b| {
                b.iter(|| verifier.verify(black_box(one.clone())).expect("valid"))
            });

            let mut group = c.benchmark_group(concat!($prefix, "::verifier::vote_batch"));
            for &n in &VOTE_BATCH {
                let (_, committees, _, voters) = fixture(n);
                let verifier = fresh(&committees);
                let votes = votes_on(&voters, sn, hash);
                group.bench_with_input(
                    BenchmarkId::from_parameter(format!("voters={n}")),
                    &votes,
                    |b, votes| {
                        b.iter(|| {
                            let r = verifier.verify_votes(votes.clone());
                            assert!(r.iter().all(|r| r.is_ok()));
                            r
                        })
                    },
                );
            }
            group.finish();

            // With K > 1 the votes of consecutive blocks interleave in one verify batch.
            let next = BlockSn::new(1, 1, 21);
            let next_hash = Hash::of(b"block (1,1,21)");
            let mixed: Vec<Vote> = votes_on(&voters, sn, hash)
                .into_iter()
                .zip(votes_on(&voters, next, next_hash))
                .flat_map(|(a, b)| [a, b])
                .collect();
            c.bench_function(
                concat!($prefix, "::verifier::vote_batch_two_blocks/voters=100"),
                |b| {
                    b.iter(|| {
                        let r = verifier.verify_votes(mixed.clone());
                        assert!(r.iter().all(|r| r.is_ok()));
                        r
                    })
                },
            );

            let mut forged = votes_on(&voters, sn, hash);
            forged[100 / 3].signature = proposers[0].sign(Domain::Vote, NET, &hash.0);
            c.bench_function(
                concat!($prefix, "::verifier::bisection_one_bad/voters=100"),
                |b| {
                    b.iter(|| {
                        let r = verifier.verify_votes(forged.clone());
                        assert_eq!(r.iter().filter(|r| r.is_err()).count(), 1);
                        r
                    })
                },
            );

            let mut group = c.benchmark_group(concat!($prefix, "::verifier::notarization"));
            for &n in &NOTARIZATION {
                let (_, committees, proposers, voters) = fixture(n);
                let (signers, signature) = aggregate_all(
                    scheme.as_ref(),
                    &proposers[0],
                    &voters,
                    Domain::Vote,
                    &hash.0,
                );
                let nota = Notarization {
                    sn,
                    block_hash: hash,
                    proposer_idx: 0,
                    signers,
                    signature,
                };
                group.bench_with_input(
                    BenchmarkId::from_parameter(format!("voters={n}")),
                    &nota,
                    |b, nota| {
                        b.iter(|| {
                            fresh(&committees)
                                .check_notarization(black_box(nota))
                                .expect("valid")
                        })
                    },
                );
            }
            group.finish();

            let epoch = Epoch::new(1, 2);
            let (signers, signature) = aggregate_all(
                scheme.as_ref(),
                &proposers[0],
                &voters,
                Domain::Clock,
                &epoch.signing_bytes(),
            );
            let cnota = ClockNotarization {
                epoch,
                proposer_idx: 0,
                signers,
                signature,
            };
            c.bench_function(
                concat!($prefix, "::verifier::clock_notarization/voters=100"),
                |b| {
                    b.iter(|| {
                        fresh(&committees)
                            .check_clock_notarization(black_box(&cnota))
                            .expect("valid")
                    })
                },
            );

            // A proposal at s > K embeds nota(s - K) (N-3), which every node has usually
            // verified already when it was broadcast.
            let (signers, signature) = aggregate_all(
                scheme.as_ref(),
                &proposers[0],
                &voters,
                Domain::Vote,
                &hash.0,
            );
            let embedded = Notarization {
                sn,
                block_hash: hash,
                proposer_idx: 0,
                signers,
                signature,
            };
            let b = block(BlockSn::new(1, 1, 22), vec![embedded.clone()]);
            let primary: &Committee = &committee;
            assert_eq!(primary.primary(b.sn().epoch).id, proposers[0].node_id());
            let proposal = Message::Proposal(Proposal {
                proposer: proposers[0].node_id(),
                signature: proposers[0].sign(Domain::Proposal, NET, &b.hash().0),
                block: b,
            });
            let warm = fresh(&committees);
            warm.check_notarization(&embedded).expect("valid");
            c.bench_function(concat!($prefix, "::verifier::proposal"), |b| {
                b.iter(|| warm.verify(black_box(proposal.clone())).expect("valid"))
            });
            c.bench_function(
                concat!($prefix, "::verifier::proposal_unseen_notarization"),
                |b| {
                    b.iter(|| {
                        fresh(&committees)
                            .verify(black_box(proposal.clone()))
                            .expect("valid")
                    })
                },
            );
        }
    };
}

variant_benches!(chosen, "crypto", min_sig);
variant_benches!(other, "crypto::min_pk", min_pk);

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
}

criterion_group! {
    name = benches;
    config = config();
    targets = chosen, other
}
criterion_main!(benches);
