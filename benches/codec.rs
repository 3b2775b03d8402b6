//! Canonical wire encoding: encode and decode per message kind, with real BLS (`min_sig`)
//! signature and key sizes.
//!
//! - `codec::encode/proposal_txs=N` and `codec::decode/…`: a proposal of a block with N
//!   transactions of 250 bytes and one embedded notarization of 100 voters (a steady-state
//!   block, `s > K`); decoding includes re-hashing the block (the hash is part of the
//!   value);
//! - `…/vote`, `…/notarization_voters=100`, `…/status`, `…/clock`;
//! - `…/fresher_head_blocks=10`: a sync response of 10 notarized blocks (N_SYNC_BLOCKS).
//!
//! Run: `cargo bench --bench codec` (well under a minute).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pala_crypto::BlsSigner;
use pala_types::{
    Block, BlockHeader, BlockSn, ClockMessage, ConsensusInfo, Decode, Domain, Encode, Epoch,
    FresherHeadResponse, Hash, Message, Notarization, NotarizedBlock, Proposal, Signer,
    SignerBitmap, Status, Vote,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const NET: u64 = 1;

fn notarization(sn: BlockSn, hash: Hash, signer: &BlsSigner, voters: usize) -> Notarization {
    let mut signers = SignerBitmap::new(voters);
    for i in (0..voters).filter(|i| i % 10 != 0) {
        signers.insert(i);
    }
    Notarization {
        sn,
        block_hash: hash,
        proposer_idx: 0,
        signers,
        signature: signer.sign(Domain::Vote, NET, &hash.0),
    }
}

fn block(s: u32, txs: usize, signer: &BlsSigner) -> Arc<Block> {
    let embedded = notarization(
        BlockSn::new(1, 1, s.saturating_sub(10).max(1)),
        Hash::of(b"p"),
        signer,
        100,
    );
    Arc::new(Block::new(
        BlockHeader {
            sn: BlockSn::new(1, 1, s),
            parent_sn: BlockSn::new(1, 1, s - 1),
            parent_hash: Hash::of(&s.to_le_bytes()),
            height: u64::from(s),
            session_offset: s,
            timestamp_ms: 1_700_000_000_000,
            state: pala_types::StateCommitment::NONE,
        },
        (0..txs).map(|i| vec![(i % 251) as u8; 250]).collect(),
        ConsensusInfo {
            notarizations: vec![embedded],
            ..ConsensusInfo::default()
        },
    ))
}

fn messages() -> Vec<(String, Message)> {
    let signer = BlsSigner::from_seed(b"codec-bench");
    let mut out = Vec::new();
    for txs in [0usize, 100, 1000] {
        let b = block(20, txs, &signer);
        out.push((
            format!("proposal_txs={txs}"),
            Message::Proposal(Proposal {
                proposer: signer.node_id(),
                signature: signer.sign(Domain::Proposal, NET, &b.hash().0),
                block: b,
            }),
        ));
    }
    let hash = Hash::of(b"block");
    out.push((
        "vote".into(),
        Message::Vote(Vote {
            voter: signer.node_id(),
            sn: BlockSn::new(1, 1, 20),
            block_hash: hash,
            signature: signer.sign(Domain::Vote, NET, &hash.0),
        }),
    ));
    out.push((
        "notarization_voters=100".into(),
        Message::Notarization(notarization(BlockSn::new(1, 1, 20), hash, &signer, 100)),
    ));
    out.push((
        "status".into(),
        Message::Status(Status {
            head: BlockSn::new(1, 1, 20),
            head_height: 20,
            epoch: Epoch::new(1, 1),
            finalized: BlockSn::new(1, 1, 10),
        }),
    ));
    out.push((
        "clock".into(),
        Message::Clock(ClockMessage {
            voter: signer.node_id(),
            epoch: Epoch::new(1, 2),
            signature: signer.sign(Domain::Clock, NET, &Epoch::new(1, 2).signing_bytes()),
        }),
    ));
    let blocks = (11..=20)
        .map(|s| {
            let b = block(s, 10, &signer);
            NotarizedBlock {
                notarization: Some(notarization(b.sn(), b.hash(), &signer, 100)),
                block: b,
            }
        })
        .collect();
    out.push((
        "fresher_head_blocks=10".into(),
        Message::FresherHead(FresherHeadResponse {
            blocks,
            finalized: None,
        }),
    ));
    out
}

fn codec(c: &mut Criterion) {
    let msgs = messages();
    let mut enc = c.benchmark_group("codec::encode");
    for (name, m) in &msgs {
        let len = m.to_bytes().len();
        enc.throughput(Throughput::Bytes(len as u64));
        enc.bench_with_input(BenchmarkId::from_parameter(name), m, |b, m| {
            let mut buf = Vec::with_capacity(len);
            b.iter(|| {
                buf.clear();
                black_box(m).encode(&mut buf);
                buf.len()
            })
        });
    }
    enc.finish();
    let mut dec = c.benchmark_group("codec::decode");
    for (name, m) in &msgs {
        let bytes = m.to_bytes();
        dec.throughput(Throughput::Bytes(bytes.len() as u64));
        dec.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| Message::from_bytes(black_box(bytes)).expect("round trip"))
        });
        assert_eq!(&Message::from_bytes(&bytes).expect("decodes"), m);
    }
    dec.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = codec
}
criterion_main!(benches);
