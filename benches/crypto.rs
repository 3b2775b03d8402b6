//! BLS benchmarks for PaLa's signature pattern: many same-message votes per block checked
//! as one aggregate against cached committee keys, notarization checks, batches of
//! independent messages, and bisection when a vote is forged.
//!
//! The variant the node uses is benchmarked under `crypto::…`; the other one under
//! `crypto::<variant>::…` so the two can be compared (perf/crypto.md).
//!
//! Run: `cargo bench --bench crypto`. Sample sizes are small so the whole run takes a
//! couple of minutes on two cores.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pala_types::{BatchItem, BlockSn, Domain, Hash, SignatureScheme, Signer, Vote, VoteCounting};
use std::hint::black_box;
use std::time::Duration;

const NET: u64 = 1;
const VOTERS: [usize; 3] = [33, 100, 1000];
const INDEPENDENT: [usize; 2] = [10, 100];

macro_rules! variant_benches {
    ($fn_name:ident, $prefix:literal, $v:ident) => {
        fn $fn_name(c: &mut Criterion) {
            use pala_crypto::$v as v;
            let scheme = v::BlsScheme::new();
            let signer = v::BlsSigner::from_seed(b"bench");
            let msg = Hash::of(b"block").0;
            let sig = signer.sign(Domain::Proposal, NET, &msg);
            // Warm the key cache: committee keys are decoded once per session.
            assert!(scheme.verify(signer.public_key(), Domain::Proposal, NET, &msg, &sig));

            c.bench_function(concat!($prefix, "::sign"), |b| {
                b.iter(|| signer.sign(Domain::Proposal, NET, black_box(&msg)))
            });
            // One proposal (or one vote) checked on its own: the irreducible cost per block.
            c.bench_function(concat!($prefix, "::verify"), |b| {
                b.iter(|| {
                    scheme.verify(
                        signer.public_key(),
                        Domain::Proposal,
                        NET,
                        black_box(&msg),
                        &sig,
                    )
                })
            });

            let sn = BlockSn::new(1, 1, 1);
            let hash = Hash::of(b"block (1,1,1)");
            let mut group = c.benchmark_group(concat!($prefix, "::vote_batch"));
            let mut fixtures = Vec::new();
            for &n in &VOTERS {
                let (committee, proposers, voters) =
                    v::seeded_committee("bench", 1, 1, n, NET, VoteCounting::Seat);
                let keys =
                    v::validate_committee_with(&scheme, &committee, NET).expect("valid committee");
                let votes: Vec<Vote> = voters
                    .iter()
                    .map(|s| Vote {
                        voter: s.node_id(),
                        sn,
                        block_hash: hash,
                        signature: s.sign(Domain::Vote, NET, &hash.0),
                    })
                    .collect();
                // Aggregate-and-verify all votes of one block (decode, sum, one check).
                group.bench_with_input(
                    BenchmarkId::from_parameter(format!("voters={n}")),
                    &votes,
                    |b, votes| {
                        b.iter(|| {
                            let batch = keys.verify_votes(sn, hash, votes);
                            assert!(batch.rejected.is_empty());
                            batch
                        })
                    },
                );
                fixtures.push((n, keys, proposers, voters, votes));
            }
            group.finish();

            for (n, keys, proposers, voters, votes) in &fixtures {
                if *n != 100 {
                    continue;
                }
                // The same votes verified one by one (on the rayon pool, like the batch).
                c.bench_function(
                    &format!(concat!($prefix, "::individual_verify/voters={}"), n),
                    |b| {
                        use rayon::prelude::*;
                        b.iter(|| {
                            let ok = votes.par_iter().zip(voters.par_iter()).all(|(vote, s)| {
                                scheme.verify(
                                    s.public_key(),
                                    Domain::Vote,
                                    NET,
                                    &vote.block_hash.0,
                                    &vote.signature,
                                )
                            });
                            assert!(ok);
                        })
                    },
                );
                let batch = keys.verify_votes(sn, hash, votes);
                let nota = keys
                    .build_notarization(&batch, 0, &proposers[0])
                    .expect("quorum");
                c.bench_function(
                    &format!(concat!($prefix, "::verify_notarization/voters={}"), n),
                    |b| {
                        b.iter(|| {
                            keys.clear_verification_cache();
                            keys.verify_notarization(black_box(&nota)).expect("valid")
                        })
                    },
                );
                let mut forged = votes.clone();
                forged[n / 3].signature = proposers[0].sign(Domain::Vote, NET, &hash.0);
                c.bench_function(
                    &format!(concat!($prefix, "::bisection_one_bad/voters={}"), n),
                    |b| {
                        b.iter(|| {
                            let batch = keys.verify_votes(sn, hash, &forged);
                            assert_eq!(batch.rejected.len(), 1);
                            batch
                        })
                    },
                );
            }

            // Independent messages: proposals of different blocks, clock messages and votes
            // of different blocks, by different signers.
            let mut group = c.benchmark_group(concat!($prefix, "::batch_verify_independent"));
            let (_, _, voters) = v::seeded_committee("bench", 1, 1, 100, NET, VoteCounting::Seat);
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
